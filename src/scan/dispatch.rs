//! Any blob → findings: archives are opened (within limits) and their members scanned as blobs;
//! everything else gets the plain pass, and a file where it saw a trigger and that looks like an AI
//! chat export or a HAR capture is parsed so its findings name the conversation and message (or
//! the HAR entry and field). A malformed export keeps its plain findings, with a warning.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::finding::{Finding, Origin, SourceKind};
use super::scanner::{Nest, Scanner};
use crate::decode::{self, Encoding, Structured};
use crate::source::{ArchiveKind, Input, Member, expand_archive, gzip_member, looks_like_archive};

/// The first piece of a decompressing stream, read into `buf`, and where the stream stands.
struct Head<'r> {
    r: &'r mut dyn Read,
    buf: &'r mut Vec<u8>,
    /// The stream ended within the first piece.
    eof: bool,
    /// The error that cut the stream short after some bytes (those are scanned, then it is
    /// reported).
    cut: Option<io::Error>,
}

/// Read the first piece of `r` into `buf`. `Err` when not one byte decompressed.
fn first_piece<'r>(r: &'r mut dyn Read, buf: &'r mut Vec<u8>) -> io::Result<Head<'r>> {
    let (eof, cut) = match Input::Stream(&mut *r).fill(buf, PIECE) {
        Ok(eof) => (eof, None),
        Err(e) if buf.is_empty() => return Err(e),
        Err(e) => (true, Some(e)),
    };
    Ok(Head { r, buf, eof, cut })
}

impl Scanner<'_> {
    /// The one place a blob's bytes are routed by format: archives are opened (their members
    /// scanned as blobs, one level deeper), everything else gets the plain pass, then the view
    /// its format gives (SQLite cells, PDF pages, RTF text, email parts, UTF-16 text, chat
    /// messages and HAR entries), whose findings replace the plain ones for the same key.
    pub(super) fn scan_nested(
        &mut self,
        data: &[u8],
        origin: &Origin,
        out: &mut Vec<Finding>,
        nest: Nest<'_>,
    ) {
        let limits = self.limits;
        let start = out.len();
        if let Some(kind) = looks_like_archive(data) {
            if nest.depth >= limits.max_depth {
                self.warn(format!(
                    "{}: archive nested deeper than {} levels, scanned as bytes",
                    origin.path, limits.max_depth
                ));
            } else if nest.depth == 0
                && kind == ArchiveKind::Gzip
                && self.scan_gzip(data, origin, out)
            {
                return;
            } else {
                // Each member is scanned as it is expanded, so only one is held at a time (a
                // ChatGPT export zip holds `conversations.json` and `chat.html`, each as big as
                // the other); the members' own warnings follow the archive's.
                let mut opened = false;
                let mut own = Vec::new();
                let mark = self.warnings_queued();
                expand_archive(
                    data,
                    kind,
                    &origin.path,
                    limits,
                    nest.budget,
                    &mut |m| {
                        let inner = Origin {
                            path: format!("{}!{}", origin.path, m.name),
                            ..origin.clone()
                        };
                        opened |= self.scan_member(m, &inner, out, nest.deeper());
                    },
                    &mut |w| own.push(w),
                );
                self.warn_at(mark, own);
                if kind == ArchiveKind::Zip {
                    self.document_view(data, origin, out, start);
                }
                if opened {
                    return;
                }
            }
        }
        self.scan_text(data, origin, out);
        if decode::formats::looks_like_sqlite(data) {
            self.sqlite_view(data, origin, out, start);
            return;
        }
        if decode::formats::looks_like_pdf(data) {
            self.pdf_view(data, origin, out, start);
            return;
        }
        if decode::formats::looks_like_rtf(data) {
            self.rtf_view(data, origin, out, start);
            return;
        }
        if decode::formats::looks_like_email(data)
            && nest.depth <= limits.max_depth
            && self.email_view(data, origin, out, start, nest)
        {
            return;
        }
        // A UTF-16 file with a byte-order mark is also scanned as the text it holds, so legacy
        // keys (whose context words have no UTF-16 literals) are found too, with lines and
        // columns in that text; a key the byte view found that this view did not is kept (the
        // BOM may lie).
        if let Some(text) = decode::utf16_with_bom(data) {
            let mut utf16 = Vec::new();
            self.scan_blob(text.as_bytes(), origin, &mut utf16);
            prefer_view(out, start, utf16, Some(Encoding::Utf16), &|_| false);
        }
    }

    /// One member of an archive, scanned as it is decompressed, a piece at a time (a zip of
    /// logs is never held whole), or read whole within its limit when it must be (see
    /// [`needs_whole`]) and scanned as any blob. False when not one byte of it decompressed (a
    /// file that only starts like a gzip is then scanned as the bytes it is).
    fn scan_member(
        &mut self,
        mut m: Member<'_>,
        origin: &Origin,
        out: &mut Vec<Finding>,
        nest: Nest<'_>,
    ) -> bool {
        let (limit, what) = (m.limit, m.what.to_owned());
        let mut buf = Vec::new();
        let mut r = (&mut *m.reader).take(limit);
        let head = match first_piece(&mut r, &mut buf) {
            Ok(head) => head,
            Err(e) => {
                self.warn(format!("{what}: cannot decompress ({e})"));
                return false;
            }
        };
        let beyond = format!(
            "{what}: expands beyond the archive limits (1 GiB per archive and 100:1); scanned its first {limit} bytes"
        );
        if head.cut.is_none() && needs_whole(head.buf) {
            // A member cut short (a decompression error, or the limits) is still scanned as
            // far as it was read, after the warning.
            if let Err(e) = head.r.read_to_end(head.buf) {
                self.warn(cut_short(&what, &e));
            } else if head.buf.len() as u64 == limit && m.has_more() {
                self.warn(beyond);
            }
            self.scan_nested(&buf, origin, out, nest);
            return true;
        }
        let full = self.scan_stream(head, limit, &what, origin, out);
        if full && m.has_more() {
            self.warn(beyond);
        }
        true
    }

    /// Scan the rest of a decompressing stream (read at most `limit` bytes of it) in pieces,
    /// from its first piece, warning when it was cut short. True when it reached `limit`: the
    /// caller tells whether more follows.
    fn scan_stream(
        &mut self,
        head: Head<'_>,
        limit: u64,
        what: &str,
        origin: &Origin,
        out: &mut Vec<Finding>,
    ) -> bool {
        let (matcher, policy) = (self.matcher, self.policy);
        let Head { r, buf, eof, cut } = head;
        let read = super::stream::pieces(matcher, &mut Input::Stream(r), buf, eof, PIECE, |p| {
            p.findings(matcher, policy, origin, |f, _| out.push(f));
            Ok(p.to)
        });
        match cut.map_or(read, Err) {
            Err(e) => {
                self.warn(cut_short(what, &e));
                false
            }
            Ok(n) => n >= limit,
        }
    }

    /// A gzip file scanned as it is decompressed, a piece at a time: constant memory whatever
    /// it expands to, up to [`ArchiveLimits::max_total`] (a log compresses far beyond the
    /// 100:1 that bounds what is expanded in memory; beyond the total, the rest is left with a
    /// warning). Only for a gzip file itself: one inside another archive counts against that
    /// archive's limits, so that an archive of many small gzip bombs cannot cost a gigabyte
    /// each. Answers false, having done nothing, when the text must be whole: an archive
    /// inside, a chat export or HAR capture, UTF-16, or a stream that does not start
    /// decompressing.
    ///
    /// [`ArchiveLimits::max_total`]: crate::source::ArchiveLimits::max_total
    fn scan_gzip(&mut self, data: &[u8], origin: &Origin, out: &mut Vec<Finding>) -> bool {
        let max = self.limits.max_total;
        let mut text = flate2::read::MultiGzDecoder::new(data).take(max);
        let mut buf = Vec::new();
        // A stream cut off within its first piece is scanned as far as it goes (whole, it
        // would not decompress at all).
        let Ok(head) = first_piece(&mut text, &mut buf) else {
            return false;
        };
        if head.cut.is_none() && needs_whole(head.buf) {
            return false;
        }
        let inner = Origin {
            path: format!("{}!{}", origin.path, gzip_member(&origin.path)),
            ..origin.clone()
        };
        let full = self.scan_stream(head, max, &origin.path, &inner, out);
        if full && text.into_inner().read(&mut [0u8]).is_ok_and(|k| k > 0) {
            self.warn(format!(
                "{}: expands beyond {} GiB; scanned that much",
                origin.path,
                max >> 30
            ));
        }
        true
    }

    /// Scan a large file without holding it whole: 64 KiB reads into the scanner's read
    /// buffer by [`super::stream::pieces`], as for a stream. A chat export or HAR capture is
    /// indexed by the same reads (`decode::Indexer`), and only the messages holding a hit are
    /// read again. A UTF-16 file (with a byte-order mark) is read again as the text it holds.
    /// Archives, documents and email, which must be whole to be read, are mapped and go to
    /// [`Scanner::scan_nested`].
    pub(super) fn scan_file_pieces(
        &mut self,
        mut file: &File,
        len: u64,
        origin: &Origin,
        out: &mut Vec<Finding>,
    ) -> io::Result<()> {
        let start = out.len();
        let mut buf = std::mem::take(&mut self.chunk);
        let read = self.scan_file_with(file, len, origin, out, &mut buf);
        self.chunk = buf;
        let Some((kind, ix, interesting, at)) = read? else {
            return Ok(());
        };
        let mut fetch = |a: usize, b: usize| -> io::Result<Cow<'static, [u8]>> {
            let mut bytes = vec![0u8; b - a];
            file.seek(SeekFrom::Start(a as u64))
                .and_then(|_| file.read_exact(&mut bytes))?;
            Ok(Cow::Owned(bytes))
        };
        let parts = ix
            .finish()
            .and_then(|skel| decode::structured_parts(&skel, kind, &interesting, &mut fetch));
        self.structured_view(kind, parts, origin, out, start, &at);
        Ok(())
    }

    /// The reads of [`Scanner::scan_file_pieces`] into `buf`; for a chat export or HAR capture
    /// holding a trigger, what its structured view needs: the kind, the index, where the
    /// triggers were and where each finding starts.
    fn scan_file_with(
        &mut self,
        mut file: &File,
        len: u64,
        origin: &Origin,
        out: &mut Vec<Finding>,
        buf: &mut Vec<u8>,
    ) -> io::Result<Option<StructuredFile>> {
        let (matcher, policy) = (self.matcher, self.policy);
        buf.clear();
        let mut reader = Input::File { file, left: len };
        let eof = reader.fill(buf, PIECE)?;
        if looks_like_archive(buf).is_some()
            || decode::formats::looks_like_email(buf)
            || decode::formats::looks_like_rtf(buf)
            || decode::formats::looks_like_pdf(buf)
            || decode::formats::looks_like_sqlite(buf)
        {
            // Archives, documents (RTF too) and email must be whole to be read.
            let map = crate::source::map(file)?;
            let budget = std::cell::Cell::new(self.limits.max_total);
            self.scan_nested(
                &map,
                origin,
                out,
                Nest {
                    depth: 0,
                    budget: &budget,
                },
            );
            return Ok(None);
        }
        let bom = match buf.get(..2) {
            Some([0xff, 0xfe]) => Some(true),
            Some([0xfe, 0xff]) => Some(false),
            _ => None,
        };
        let kind = decode::sniff(buf);
        let mut index = kind.map(decode::Indexer::without_nodes);
        let start = out.len();
        let mut interesting: Vec<usize> = Vec::new();
        let mut at: Vec<usize> = Vec::new();
        super::stream::pieces(matcher, &mut reader, buf, eof, PIECE, |p| {
            if let Some(ix) = index.as_mut() {
                ix.feed(p.fresh);
                let new = |&o: &usize| o >= p.from && o < p.to;
                interesting.extend(p.hits.iter().filter(|o| new(o)).map(|o| p.base + o));
                interesting.extend(p.picked.iter().map(|m| p.base + m.start));
            }
            p.findings(matcher, policy, origin, |f, o| {
                out.push(f);
                at.push(o);
            });
            Ok(p.to)
        })?;
        if let Some(le) = bom {
            // As `scan_nested` does for a whole file: the text a UTF-16 file holds is scanned
            // too (legacy keys, whose context words have no UTF-16 literals), decoded as it is
            // read again, and its findings are preferred.
            file.seek(SeekFrom::Start(2))?;
            let mut text = decode::Utf16Reader::new(file.take(len.saturating_sub(2)), le);
            let (mut view, mut tbuf) = (Vec::new(), Vec::new());
            super::stream::pieces(
                matcher,
                &mut Input::Stream(&mut text),
                &mut tbuf,
                false,
                PIECE,
                |p| {
                    p.findings(matcher, policy, origin, |f, _| view.push(f));
                    Ok(p.to)
                },
            )?;
            prefer_view(out, start, view, Some(Encoding::Utf16), &|_| false);
        }
        let (Some(kind), Some(ix)) = (kind, index) else {
            return Ok(None);
        };
        if interesting.is_empty() {
            return Ok(None);
        }
        Ok(Some((kind, ix, interesting, at)))
    }

    /// The plain pass over a blob, then the structured view of a chat export or HAR capture.
    fn scan_text(&mut self, data: &[u8], origin: &Origin, out: &mut Vec<Finding>) {
        let start = out.len();
        // Structured files are parsed only when the plain pass saw a trigger at all (a key, or
        // a context word such as a HAR header name on the line before its value).
        let (mut hits, mut at) = (Vec::new(), Vec::new());
        self.scan_blob_hits(data, origin, out, &mut hits, &mut at);
        if hits.is_empty() {
            return;
        }
        let Some(kind) = decode::sniff(data) else {
            return;
        };
        hits.extend(self.scratch.iter().map(|m| m.start));
        let parts = decode::parts_of(data, kind, &hits);
        self.structured_view(kind, parts, origin, out, start, &at);
    }

    /// Scan the texts of a chat export or HAR capture, and let their findings (which name the
    /// conversation and message, or the entry and field) replace those of the plain pass from
    /// `out[start..]`; or, when the file did not parse as its format, warn and keep the plain
    /// ones.
    fn structured_view(
        &mut self,
        kind: Structured,
        parts: Result<decode::Parsed, decode::DecodeError>,
        origin: &Origin,
        out: &mut Vec<Finding>,
        start: usize,
        at: &[usize],
    ) {
        let parts = match parts {
            Ok(p) => p,
            Err(e) => {
                self.warn(format!(
                    "{}: looks like {} but {e}; scanned as plain text",
                    origin.path,
                    describe(kind)
                ));
                return;
            }
        };
        if let Some(big) = parts.skipped.iter().max_by_key(|s| s.1 - s.0) {
            let n = parts.skipped.len();
            let (one, many) = unit(kind);
            self.warn(format!(
                "{}: {n} {} over {} MiB not parsed (the largest, {:.1} MiB, at byte {}): the \
                 findings in {} are reported by line and column only",
                origin.path,
                if n == 1 { one } else { many },
                decode::PART_MAX >> 20,
                (big.1 - big.0) as f64 / f64::from(1 << 20),
                big.0,
                if n == 1 { "it" } else { "them" },
            ));
        }
        let mut structured = Vec::new();
        for part in parts.parts {
            let o = Origin {
                source: Some(if kind == Structured::Har {
                    SourceKind::Har
                } else {
                    SourceKind::Transcript
                }),
                // Names come from the file: a conversation titled after a pasted key, or a
                // header named like one, must not carry it into the report.
                conversation: part.conversation.as_deref().map(crate::key::scrub),
                message: part.message,
                role: part.role,
                date: part.timestamp.or_else(|| origin.date.clone()),
                entry: part.entry,
                field: part.field.as_deref().map(crate::key::scrub),
                ..origin.clone()
            };
            self.scan_blob(part.text.as_bytes(), &o, &mut structured);
        }
        // A plain finding inside a message left unparsed stays, even when the view found the
        // same key elsewhere in the file.
        let skipped = &parts.skipped;
        let kept = |i: usize| {
            at.get(i)
                .is_some_and(|&o| skipped.iter().any(|&(a, b)| a <= o && o < b))
        };
        prefer_view(out, start, structured, None, &kept);
    }
}

/// What [`Scanner::scan_file_with`] leaves for the structured view of a large file: its kind,
/// its index, where the triggers were and where each byte-view finding starts.
type StructuredFile = (Structured, decode::Indexer, Vec<usize>, Vec<usize>);

/// Whether decompressed text starting with `head` must be held whole to be scanned: an
/// archive (opened from memory), a chat export or HAR capture (parsed), UTF-16 (decoded).
fn needs_whole(head: &[u8]) -> bool {
    looks_like_archive(head).is_some()
        || decode::formats::looks_like_email(head)
        || decode::formats::looks_like_rtf(head)
        || decode::formats::looks_like_pdf(head)
        || decode::formats::looks_like_sqlite(head)
        || decode::sniff(head).is_some()
        || head.starts_with(&[0xff, 0xfe])
        || head.starts_with(&[0xfe, 0xff])
}

/// The warning for a stream that stopped decompressing partway.
fn cut_short(what: &str, e: &io::Error) -> String {
    format!("{what}: cannot decompress further ({e}); scanned up to there")
}

/// Bytes read at a time from a large file: small enough that what the kernel copies is still in
/// the CPU cache when the matcher reads it (1 MiB pieces cost 20 % more system time).
const PIECE: usize = 64 * 1024;

/// Replace the findings in `out[start..]` whose key `view` (a decoded view of the same blob)
/// also found, keeping the rest (never lose what the byte view found). A key the view found as
/// plain text is reported with `plain_as`, or else with the encoding it had in the bytes (for a
/// chat message, which is already decoded JSON).
pub(super) fn prefer_view(
    out: &mut Vec<Finding>,
    start: usize,
    mut view: Vec<Finding>,
    plain_as: Option<Encoding>,
    kept: &dyn Fn(usize) -> bool,
) {
    if view.is_empty() {
        return;
    }
    let bytes: Vec<Finding> = out.drain(start..).collect();
    let in_bytes: HashMap<String, Encoding> = bytes
        .iter()
        .map(|f| (f.secret.sha256(), f.encoding))
        .collect();
    let mut placed = HashSet::new();
    for f in &mut view {
        let sha = f.secret.sha256();
        if f.encoding == Encoding::Plain {
            f.encoding = plain_as
                .or_else(|| in_bytes.get(&sha).copied())
                .unwrap_or(Encoding::Plain);
        }
        placed.insert(sha);
    }
    out.extend(
        bytes
            .into_iter()
            .enumerate()
            .filter(|(i, f)| kept(*i) || !placed.contains(&f.secret.sha256()))
            .map(|(_, f)| f),
    );
    out.extend(view);
}

/// What a message of `kind` is called, one and many.
fn unit(kind: Structured) -> (&'static str, &'static str) {
    match kind {
        Structured::ChatGpt | Structured::Claude => ("message", "messages"),
        Structured::ChatJsonl => ("line", "lines"),
        Structured::Har => ("entry", "entries"),
    }
}

fn describe(kind: Structured) -> &'static str {
    match kind {
        Structured::ChatGpt => "a ChatGPT export",
        Structured::Claude => "a Claude export",
        Structured::ChatJsonl => "a chat JSONL file",
        Structured::Har => "a HAR capture",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;
    use crate::scan::{Matcher, Policy};
    use std::cell::Cell;
    use std::io::Write;
    use std::sync::Arc;

    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in members {
            z.start_file(*name, opts).expect("zip member");
            z.write_all(data).expect("zip write");
        }
        z.finish().expect("zip finish");
        buf.into_inner()
    }

    #[test]
    fn nested_archives_share_one_budget() {
        // 400 KB for everything under outer.zip: a.zip's 300 KB member fits, b.zip's gets
        // what is left (each nested archive used to start again from the whole budget).
        let m = Matcher::new(Arc::new(RuleSet::builtin().expect("rules")), true);
        let filler = vec![b'x'; 300_000];
        let inner = |n: &str| zip_of(&[(n, &filler)]);
        let outer = zip_of(&[("a.zip", &inner("a.txt")), ("b.zip", &inner("b.txt"))]);
        let budget = Cell::new(400_000);
        let mut warnings = Vec::new();
        let origin = Origin {
            path: "outer.zip".into(),
            ..Origin::default()
        };
        let policy = Policy::default();
        let mut s = Scanner::new(&m, &policy, Box::new(|w| warnings.push(w)));
        let nest = Nest {
            depth: 0,
            budget: &budget,
        };
        s.scan_nested(&outer, &origin, &mut Vec::new(), nest);
        s.flush();
        drop(s);
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("outer.zip!b.zip!b.txt: expands beyond")),
            "{warnings:?}"
        );
        assert!(
            !warnings.iter().any(|w| w.contains("a.txt")),
            "{warnings:?}"
        );
        assert!(budget.get() < 1_000, "{}", budget.get());
    }
}
