//! Streams (standard input, pasted logs) scanned and redacted in constant memory: fixed-size
//! chunks that overlap by the longest window a rule needs, so a key split across two reads is
//! still found exactly once.

use std::io::{self, Read, Write};

use super::blob::{LineIndex, to_finding};
use super::finding::{Finding, Origin};
use super::matcher::{Match, Matcher};
use super::policy::Policy;
use crate::decode::{self, Encoding};

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;

/// Fill `buf` from `r` until it holds `want` more bytes or the input ends. True at the end.
/// Reads into the spare capacity (nothing is zeroed first).
pub(super) fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let want = want as u64;
    let got = r.take(want).read_to_end(buf)? as u64;
    Ok(got < want)
}

/// Walk `r` chunk by chunk; `visit(buf, matches, base_line, from, to)` gets the matches whose
/// start lies in `from..to` of `buf` (each match once over the whole stream) and returns how far
/// it consumed (at least `to`). Returns the number of bytes read.
fn chunks(
    matcher: &Matcher,
    r: &mut dyn Read,
    mut visit: impl FnMut(&[u8], &[Match], usize, usize, usize, bool) -> io::Result<usize>,
) -> io::Result<u64> {
    let keep = matcher.max_window();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 2 * keep);
    let mut matches = Vec::new();
    let mut total = 0u64;
    let mut from = 0usize; // offset in buf where unvisited bytes start
    let mut base_line = 1usize;
    loop {
        let before = buf.len();
        let eof = fill(r, &mut buf, CHUNK)?;
        total += (buf.len() - before) as u64;
        matcher.find(&buf, &mut matches);
        let to = if eof {
            buf.len()
        } else {
            buf.len().saturating_sub(keep).max(from)
        };
        let picked: Vec<Match> = matches
            .iter()
            .filter(|m| m.start >= from && m.start < to)
            .cloned()
            .collect();
        let consumed = visit(&buf, &picked, base_line, from, to, eof)?;
        if eof {
            return Ok(total);
        }
        // Keep `keep` bytes before the unvisited part as look-behind context.
        let drop = consumed.saturating_sub(keep);
        base_line += memchr::memchr_iter(b'\n', &buf[..drop]).count();
        buf.drain(..drop);
        from = consumed - drop;
    }
}

/// Scan a stream; each finding goes to `on` as soon as it is confirmed.
pub fn scan_reader(
    matcher: &Matcher,
    policy: &Policy,
    r: &mut dyn Read,
    origin: &Origin,
    mut on: impl FnMut(Finding),
) -> io::Result<u64> {
    chunks(matcher, r, |buf, picked, base_line, _from, to, _eof| {
        let mut lines = LineIndex::new(buf);
        for m in picked {
            let (line, col, span) = lines.locate(m.start);
            if let Some(f) = to_finding(
                matcher,
                policy,
                buf,
                m,
                origin,
                base_line + line - 1,
                col,
                span,
            ) {
                on(f);
            }
        }
        Ok(to)
    })
}

/// Copy `r` to `w` with every key replaced by `placeholder`, every other byte unchanged.
/// Returns how many keys were replaced.
pub fn redact_stream(
    matcher: &Matcher,
    r: &mut dyn Read,
    w: &mut dyn Write,
    placeholder: &str,
) -> io::Result<u64> {
    let mut replaced = 0u64;
    chunks(matcher, r, |buf, picked, _base_line, from, to, _eof| {
        let mut at = from;
        for m in picked {
            if m.start < at {
                continue; // inside a token already replaced
            }
            w.write_all(&buf[at..m.start])?;
            w.write_all(&replacement(&buf[m.start..m.end], m, placeholder))?;
            at = m.end;
            replaced += 1;
        }
        let end = to.max(at);
        w.write_all(&buf[at..end])?;
        Ok(end)
    })?;
    w.flush()?;
    Ok(replaced)
}

/// What replaces a key's span: the placeholder, in the span's own encoding where it has one.
fn replacement(span: &[u8], m: &Match, placeholder: &str) -> Vec<u8> {
    match m.encoding {
        Encoding::Base64 => {
            decode::reencode_base64(span, m.secret.expose().as_bytes(), placeholder.as_bytes())
                .unwrap_or_else(|| placeholder.as_bytes().to_vec())
        }
        Encoding::Utf16 if span.len() >= 2 => {
            let le = span[1] == 0;
            placeholder
                .bytes()
                .flat_map(|b| if le { [b, 0] } else { [0, b] })
                .collect()
        }
        _ => placeholder.as_bytes().to_vec(),
    }
}
