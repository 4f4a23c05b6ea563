//! Email: `.eml` messages and `.mbox` mailboxes, read with `mail-parser` (multipart,
//! quoted-printable with its soft line breaks and `=5F`, base64, HTML bodies with their
//! entities, encoded-word headers, `message/rfc822` inside messages). Each text part becomes
//! a [`MailItem`] that names its message (Message-ID or subject, and Date) and its part; each
//! attachment is handed over as bytes, to be scanned as any file (a `.docx` attached is a
//! document).

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::{DecodeError, Limits};

/// How a part's body was encoded for transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// 7bit, 8bit, binary.
    Plain,
    /// `Content-Transfer-Encoding: quoted-printable`.
    QuotedPrintable,
    /// `Content-Transfer-Encoding: base64`.
    Base64,
}

/// What a part holds.
#[derive(Debug, Clone)]
pub enum MailText {
    /// Text to scan (an HTML body as the text it shows, entities decoded). `html` is the
    /// decoded HTML source, to tell a key behind an entity from one written plainly.
    Text {
        /// The text.
        text: String,
        /// The HTML it came from.
        html: Option<String>,
        /// Its transfer encoding.
        transfer: Transfer,
    },
    /// An attachment's bytes.
    Attachment(Vec<u8>),
}

/// One part of one message.
#[derive(Debug, Clone)]
pub struct MailItem {
    /// `Message-ID` of the message it belongs to (the innermost, for a forwarded message).
    pub message_id: Option<String>,
    /// Its `Subject`.
    pub subject: Option<String>,
    /// Its `Date` (RFC 3339).
    pub date: Option<String>,
    /// The part: an attachment's name (`invoice.docx`), `headers`, or `part N (type/subtype)`;
    /// inside a forwarded message, prefixed by it (`fwd.eml!part 1 (text/plain)`).
    pub part: String,
    /// Its text or bytes.
    pub content: MailText,
}

/// Whether `head` (the first bytes of a file) starts an email message or an mbox mailbox:
/// `From ` (mbox), or header lines among which at least two of the ones every message has.
pub fn looks_like_email(head: &[u8]) -> bool {
    let head = &head[..head.len().min(4096)];
    if head.starts_with(b"From ") {
        // An mbox separator line: `From sender date`, then headers.
        return memchr::memchr(b'\n', head).is_some_and(|nl| header_lines(&head[nl + 1..]) >= 2);
    }
    header_lines(head) >= 2
}

/// How many of the usual message headers open `head`, before anything that is not a header.
/// Answers 0 at the first line that is not `Name: value` (a log line's `10:00:00`, a source
/// line), so other text costs a look at its first line; nothing is allocated.
fn header_lines(head: &[u8]) -> usize {
    const USUAL: [&[u8]; 8] = [
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"received",
        b"return-path",
    ];
    if !head.first().is_some_and(u8::is_ascii_alphabetic) {
        return 0;
    }
    let mut n = 0;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue; // a folded header
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return 0;
        };
        let name = &line[..colon];
        let spaced = matches!(line.get(colon + 1), None | Some(b' ' | b'\t'));
        if !spaced
            || !name.first().is_some_and(u8::is_ascii_alphabetic)
            || !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return 0;
        }
        if USUAL.iter().any(|u| u.eq_ignore_ascii_case(name)) {
            n += 1;
        }
    }
    n
}

/// The parts of the message or mailbox `data`, all at once (see [`for_each_message`]).
pub fn mail_items(data: &[u8], limits: &Limits) -> Result<Vec<MailItem>, DecodeError> {
    let mut out = Vec::new();
    for_each_message(data, limits, &mut |_, items| out.extend(items))?;
    Ok(out)
}

/// Each message of the mailbox (or the one message) `data` in turn: `each` gets the message's
/// bytes and its parts, which are dropped before the next message is parsed, so a large mbox
/// costs one message at a time. Returns how many messages were read; a mailbox message that
/// does not parse is passed over.
pub fn for_each_message(
    data: &[u8],
    limits: &Limits,
    each: &mut dyn FnMut(&[u8], Vec<MailItem>),
) -> Result<usize, DecodeError> {
    if data.starts_with(b"From ") {
        let mut n = 0;
        for m in mail_parser::mailbox::mbox::MessageIterator::new(data).flatten() {
            let mut items = Vec::new();
            if message(m.contents(), "", 0, limits, &mut items) {
                each(m.contents(), items);
                n += 1;
            }
        }
        return Ok(n);
    }
    let mut items = Vec::new();
    if !message(data, "", 0, limits, &mut items) {
        return Err(DecodeError::NotMail);
    }
    each(data, items);
    Ok(1)
}

/// The parts of one message, names prefixed by `prefix`; false when it does not parse.
fn message(data: &[u8], prefix: &str, depth: u8, limits: &Limits, out: &mut Vec<MailItem>) -> bool {
    let Some(m) = MessageParser::default().parse(data) else {
        return false;
    };
    walk(&m, prefix, depth, limits, out);
    true
}

fn walk(
    m: &mail_parser::Message<'_>,
    prefix: &str,
    depth: u8,
    limits: &Limits,
    out: &mut Vec<MailItem>,
) {
    let message_id = m.message_id().map(str::to_owned);
    let subject = m.subject().map(str::to_owned);
    let date = m.date().map(|d| d.to_rfc3339());
    let item = |part: String, content| MailItem {
        message_id: message_id.clone(),
        subject: subject.clone(),
        date: date.clone(),
        part,
        content,
    };
    // Headers as decoded (an encoded-word subject hides `=5F` for `_`).
    let mut headers = String::new();
    for (name, value) in [("Subject", m.subject())] {
        if let Some(v) = value {
            headers.push_str(&format!("{name}: {v}\n"));
        }
    }
    if !headers.is_empty() {
        out.push(item(
            format!("{prefix}headers"),
            MailText::Text {
                text: headers,
                html: None,
                transfer: Transfer::Plain,
            },
        ));
    }
    for (i, p) in m.parts.iter().enumerate() {
        let transfer = match p.encoding {
            mail_parser::Encoding::QuotedPrintable => Transfer::QuotedPrintable,
            mail_parser::Encoding::Base64 => Transfer::Base64,
            mail_parser::Encoding::None => Transfer::Plain,
        };
        let ctype = p
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_else(|| "text/plain".into());
        let name = match p.attachment_name() {
            Some(n) => format!("{prefix}{}", crate::key::scrub(n)),
            None => format!("{prefix}part {i} ({ctype})"),
        };
        if p.len() as u64 > limits.max_part {
            continue;
        }
        match &p.body {
            PartType::Text(t) => out.push(item(
                name,
                MailText::Text {
                    text: t.to_string(),
                    html: None,
                    transfer,
                },
            )),
            PartType::Html(h) => out.push(item(
                name,
                MailText::Text {
                    text: mail_parser::decoders::html::html_to_text(h),
                    html: Some(h.to_string()),
                    transfer,
                },
            )),
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                out.push(item(name, MailText::Attachment(b.to_vec())));
            }
            PartType::Message(inner) => {
                if depth < limits.max_depth {
                    let label = p
                        .attachment_name()
                        .map(crate::key::scrub)
                        .unwrap_or_else(|| format!("part {i} (message)"));
                    walk(inner, &format!("{prefix}{label}!"), depth + 1, limits, out);
                }
            }
            PartType::Multipart(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_recognised_by_its_headers_only() {
        assert!(looks_like_email(
            b"Return-Path: <a@b>\r\nFrom: a@b\r\nSubject: hi\r\n\r\nbody"
        ));
        assert!(looks_like_email(
            b"From a@b Sat Jan  3 01:05:34 1996\nFrom: a@b\nDate: x\n\nbody"
        ));
        assert!(!looks_like_email(b"From: a@b\nbut this is prose\n"));
        assert!(!looks_like_email(b"host: x\nport: 1\nfrom: y\n"));
        assert!(!looks_like_email(b"fn main() {}\n"));
    }
}
