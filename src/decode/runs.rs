//! Decoding a run of encoded text that starts at a prefilter hit, keeping a map from every
//! decoded byte back to the original bytes so a finding points at the right line and a redaction
//! replaces the right span.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use super::Form;

/// Decoded text with, for each decoded byte, its offset in the original; `map` has one entry
/// more than `text` (the end of the run).
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// The decoded bytes; `text[0]` is the character before the run (or a space).
    pub text: Vec<u8>,
    /// Original offset of each decoded byte, then the run's end.
    pub map: Vec<usize>,
}

/// Longest run decoded from one hit.
const MAX_RUN: usize = 512;
/// Longest base64 token decoded from one hit (each side of it).
const MAX_B64: usize = 64 * 1024;

/// The literals under which `kw` shows in encoded text, each with its form: base64 and base64url
/// at the three byte alignments, percent- and `\u`-escaped punctuation, UTF-16 LE and BE.
pub fn encoded_literals(kw: &[u8]) -> Vec<(Vec<u8>, Form)> {
    let mut out: Vec<(Vec<u8>, Form)> = Vec::new();
    let mut push = |lit: Vec<u8>, form: Form| {
        if lit.len() >= 4 && lit != kw && !out.iter().any(|(l, _)| *l == lit) {
            out.push((lit, form));
        }
    };
    for a in 0..3usize {
        let mut bytes = vec![0u8; a];
        bytes.extend_from_slice(kw);
        bytes.extend_from_slice(&[0, 0, 0]);
        let first = (8 * a).div_ceil(6);
        let last = 8 * (a + kw.len()) / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let enc = engine.encode(&bytes).into_bytes();
            if last > first + 4 {
                push(
                    enc[first..last].to_vec(),
                    Form::Base64 {
                        lead: (first % 4) as u8,
                    },
                );
            }
        }
    }
    if kw.iter().any(|b| !b.is_ascii_alphanumeric()) {
        for upper in [true, false] {
            let mut pct = Vec::new();
            let mut uni = Vec::new();
            for &b in kw {
                if b.is_ascii_alphanumeric() {
                    pct.push(b);
                    uni.push(b);
                } else if upper {
                    pct.extend_from_slice(format!("%{b:02X}").as_bytes());
                    uni.extend_from_slice(format!("\\u{:04X}", b).as_bytes());
                } else {
                    pct.extend_from_slice(format!("%{b:02x}").as_bytes());
                    uni.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
                }
            }
            push(pct, Form::Percent);
            push(uni, Form::JsonUnicode);
        }
    }
    let head = &kw[..kw.len().min(8)];
    push(head.iter().flat_map(|&b| [b, 0]).collect(), Form::Utf16Le);
    push(head.iter().flat_map(|&b| [0, b]).collect(), Form::Utf16Be);
    out
}

/// Decode the run starting at `p` in `form` (not base64: see [`base64_token`]).
pub fn decode_run(data: &[u8], p: usize, form: Form) -> Option<Decoded> {
    let mut d = Decoded::default();
    match form {
        Form::Utf16Le | Form::Utf16Be => {
            let le = form == Form::Utf16Le;
            let unit = |i: usize| -> Option<u8> {
                let (c, z) = if le {
                    (*data.get(i)?, *data.get(i + 1)?)
                } else {
                    (*data.get(i + 1)?, *data.get(i)?)
                };
                (z == 0 && c.is_ascii() && c != 0).then_some(c)
            };
            let before = if p >= 2 { unit(p - 2) } else { None };
            d.text.push(before.unwrap_or(b' '));
            d.map.push(p.saturating_sub(2));
            let mut i = p;
            while d.text.len() < MAX_RUN {
                let Some(c) = unit(i) else { break };
                d.text.push(c);
                d.map.push(i);
                i += 2;
            }
            d.map.push(i);
        }
        Form::Percent | Form::JsonUnicode => {
            // The character before the run, itself decoded when it is an escape (`%3D`, `\n`).
            let before = match super::escape_before(&data[..p]) {
                Some((b, _)) => b,
                None => p.checked_sub(1).map_or(b' ', |i| data[i]),
            };
            d.text.push(before);
            d.map.push(p.saturating_sub(1));
            let mut i = p;
            while i < data.len() && d.text.len() < MAX_RUN {
                let b = data[i];
                if matches!(
                    b,
                    b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'&' | b'<' | b'>'
                ) {
                    break;
                }
                let (c, len) = if form == Form::Percent && b == b'%' {
                    match data.get(i + 1..i + 3).and_then(hex_byte) {
                        Some(c) => (c, 3),
                        None => (b, 1),
                    }
                } else if form == Form::JsonUnicode && b == b'\\' {
                    match data.get(i + 1) {
                        Some(b'u') => match data.get(i + 2..i + 6).and_then(hex_u16) {
                            Some(cp) if cp < 0x80 => (cp as u8, 6),
                            Some(_) => (b' ', 6),
                            None => break,
                        },
                        Some(b'/') => (b'/', 2),
                        _ => break,
                    }
                } else if form == Form::Percent && b == b'+' {
                    (b' ', 1)
                } else {
                    (b, 1)
                };
                d.text.push(c);
                d.map.push(i);
                i += len;
            }
            d.map.push(i);
        }
        Form::Base64 { .. } => return None,
    }
    Some(d)
}

fn hex_byte(h: &[u8]) -> Option<u8> {
    u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

fn hex_u16(h: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// The base64 token around a literal at `p` (which starts `lead` characters into its group),
/// decoded from the furthest group start before it. Every decoded byte maps to the token's start
/// and the end to the token's end, since a key inside base64 is the whole token's business.
pub fn base64_token(data: &[u8], p: usize, lead: usize) -> Option<(Decoded, usize, usize)> {
    let group = p.checked_sub(lead)?;
    let mut start = group;
    while start >= 4 && group - start < MAX_B64 && data[start - 4..start].iter().all(|&b| is_b64(b))
    {
        start -= 4;
    }
    let mut end = group;
    while end < data.len() && end - group < MAX_B64 && is_b64(data[end]) {
        end += 1;
    }
    let mut tok_end = end;
    while tok_end < data.len() && data[tok_end] == b'=' && tok_end - end < 2 {
        tok_end += 1;
    }
    let body = &data[start..end];
    let usable = body.len() - body.len() % 4
        + if body.len() % 4 >= 2 {
            body.len() % 4
        } else {
            0
        };
    let body = &body[..usable];
    let engine = engine_for(body);
    let bytes = engine.decode(body).ok()?;
    let mut d = Decoded {
        text: Vec::with_capacity(bytes.len() + 2),
        map: Vec::with_capacity(bytes.len() + 2),
    };
    d.text.push(b' ');
    d.map.push(start);
    for b in bytes {
        d.text.push(b);
        d.map.push(start);
    }
    d.text.push(b' ');
    d.map.push(tok_end);
    d.map.push(tok_end);
    Some((d, start, tok_end))
}

/// The alphabet a base64 token is written in: base64url when it uses `-` or `_`.
fn engine_for(body: &[u8]) -> &'static base64::engine::GeneralPurpose {
    if body.iter().any(|&b| b == b'-' || b == b'_') {
        &URL_SAFE_NO_PAD
    } else {
        &STANDARD_NO_PAD
    }
}

/// A base64 token with `secret` replaced by `placeholder` in its decoded bytes, encoded again
/// in the token's own alphabet and padding; `None` when the token does not decode.
pub fn reencode_base64(token: &[u8], secret: &[u8], placeholder: &[u8]) -> Option<Vec<u8>> {
    let pad = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - pad];
    let engine = engine_for(body);
    let bytes = engine.decode(body).ok()?;
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(secret) {
            out.extend_from_slice(placeholder);
            i += secret.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let mut enc = engine.encode(&out).into_bytes();
    if pad > 0 {
        while enc.len() % 4 != 0 {
            enc.push(b'=');
        }
    }
    Some(enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_of_the_prefix() {
        let lits = encoded_literals(b"oc_live_");
        let has = |s: &[u8]| lits.iter().any(|(l, _)| l == s);
        assert!(has(b"oc%5Flive%5F"));
        assert!(has(b"oc%5flive%5f"));
        assert!(has(b"oc\\u005flive\\u005f"));
        assert!(has(b"o\0c\0_\0l\0i\0v\0e\0_\0"));
        // base64("oc_live_") = "b2NfbGl2ZV8="; the first 10 characters are fixed.
        assert!(has(b"b2NfbGl2ZV"));
    }

    #[test]
    fn base64_round_trip() {
        let key = b"xx oc_live_abc:";
        for pre in ["", "a", "ab"] {
            let mut plain = pre.as_bytes().to_vec();
            plain.extend_from_slice(key);
            let enc = STANDARD_NO_PAD.encode(&plain);
            let text = format!("Authorization: Basic {enc}== next");
            let lits = encoded_literals(b"oc_live_");
            let (p, lead) = lits
                .iter()
                .find_map(|(l, f)| match f {
                    Form::Base64 { lead } => {
                        memchr::memmem::find(text.as_bytes(), l).map(|p| (p, *lead))
                    }
                    _ => None,
                })
                .expect("a literal occurs");
            let (d, s, _) = base64_token(text.as_bytes(), p, lead as usize).expect("decodes");
            assert_eq!(s, "Authorization: Basic ".len());
            assert!(memchr::memmem::find(&d.text, b"oc_live_abc").is_some());
        }
    }

    #[test]
    fn percent_run() {
        let data = b"u=oc%5Flive%5Fabc%26x";
        let d = decode_run(data, 2, Form::Percent).expect("decodes");
        assert_eq!(&d.text[..], b"=oc_live_abc&x");
        assert_eq!(d.map[1], 2);
    }
}
