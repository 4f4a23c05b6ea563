//! Streams (standard input, pasted logs) scanned and redacted in constant memory: fixed-size
//! chunks that overlap by the longest window a rule needs, so a key split across two reads is
//! still found exactly once.

use std::io::{self, Read, Write};

use super::blob::{ALLOW_MARKER, LineIndex, Place, to_finding};
use super::finding::{Finding, Origin};
use super::matcher::{Match, Matcher};
use super::policy::Policy;
use crate::decode::{self, Encoding};
use crate::source::Input;

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;

/// The longest run of base64 characters a piece is grown to hold whole (see [`pieces`]):
/// twice the distance the base64 decoder looks back from a hit.
const RUN_MAX: usize = 128 * 1024;

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=')
}

/// Whether every byte of `s` is [`is_base64_byte`]: written without branches, a chunk at a
/// time, so that it compiles to vector code.
fn all_base64(s: &[u8]) -> bool {
    let one = |b: u8| {
        ((b | 0x20).wrapping_sub(b'a') < 26)
            | (b.wrapping_sub(b'0') < 10)
            | (b == b'+')
            | (b == b'/')
            | (b == b'-')
            | (b == b'_')
            | (b == b'=')
    };
    s.chunks(64)
        .all(|c| c.iter().fold(true, |all, &b| all & one(b)))
}

/// Where `buf[0]` sits in its line: carried from piece to piece.
#[derive(Debug, Clone, Copy)]
pub(super) struct Carry {
    /// Line number of `buf[0]`.
    line: usize,
    /// Characters before `buf[0]` on its line.
    col: usize,
    /// `offkey:allow` occurred before `buf[0]` on its line.
    allowed: bool,
}

impl Carry {
    /// Step over bytes dropped from the front of the buffer.
    fn advance(&mut self, gone: &[u8]) {
        let marker = |b: &[u8]| memchr::memmem::find(b, ALLOW_MARKER).is_some();
        match memchr::memrchr(b'\n', gone) {
            Some(i) => {
                self.line += bytecount::count(gone, b'\n');
                self.col = bytecount::num_chars(&gone[i + 1..]);
                self.allowed = marker(&gone[i + 1..]);
            }
            None => {
                self.col += bytecount::num_chars(gone);
                self.allowed |= marker(gone);
            }
        }
    }
}

/// One read of a stream, as [`pieces`] hands it over.
pub(super) struct Piece<'a> {
    /// Look-behind context, then new bytes.
    pub buf: &'a [u8],
    /// The bytes no earlier piece held (for an index that must see each byte once).
    pub fresh: &'a [u8],
    /// Matches starting in `from..to` (each match of the stream in exactly one piece).
    pub picked: &'a [Match],
    /// Where triggers occurred in `buf` (see [`Matcher::find_hits`]).
    pub hits: &'a [usize],
    /// Stream offset of `buf[0]`.
    pub base: usize,
    /// This piece's part of `buf`.
    pub from: usize,
    pub to: usize,
    carry: Carry,
}

impl Piece<'_> {
    /// The picked matches as findings, with lines and columns of the whole stream; each with
    /// the stream offset where it starts.
    pub fn findings(
        &self,
        matcher: &Matcher,
        policy: &Policy,
        origin: &Origin,
        mut on: impl FnMut(Finding, usize),
    ) {
        let mut lines = LineIndex::new(self.buf);
        for m in self.picked {
            let (line, col, span) = lines.locate(m.start);
            if line == 1 && self.carry.allowed {
                continue; // `offkey:allow` earlier on this line, in a piece already gone
            }
            let col = if line == 1 { self.carry.col + col } else { col };
            let line = self.carry.line + line - 1;
            let place = Place {
                line,
                column: col,
                span,
            };
            if let Some(f) = to_finding(matcher, policy, self.buf, m, origin, place) {
                on(f, self.base + m.start);
            }
        }
    }
}

/// Walk `r` in reads of `size` bytes that overlap by the longest window a rule needs (a key
/// split across two reads is found exactly once). `buf` may already hold the first bytes
/// (`eof`: and nothing follows). `visit` gets each [`Piece`] and answers how far it consumed
/// (at least `to`). Never cuts inside a base64 token, whose findings are reported at its start
/// however deep in it the key is: the cut moves back to where the run of base64 characters
/// begins, reading more first when the run fills the piece (up to `RUN_MAX` bytes held).
/// Returns the number of bytes read; a read that fails ends the stream, and its error is
/// returned once what came before it has been visited.
pub(super) fn pieces(
    matcher: &Matcher,
    r: &mut Input<'_>,
    buf: &mut Vec<u8>,
    mut eof: bool,
    size: usize,
    mut visit: impl FnMut(&Piece<'_>) -> io::Result<usize>,
) -> io::Result<u64> {
    let keep = matcher.max_window();
    let (mut matches, mut hits, mut picked) = (Vec::new(), Vec::new(), Vec::new());
    let mut total = buf.len() as u64;
    let mut base = 0usize;
    let mut from = 0usize; // offset in buf where unvisited bytes start
    let mut fed = 0usize; // bytes of buf handed over as `fresh` already
    // A cut found `RUN_MAX + 1` base64 bytes before it (an offset in the stream).
    let mut giant_to: Option<usize> = None;
    let mut carry = Carry {
        line: 1,
        col: 0,
        allowed: false,
    };
    // A read that fails ends the stream: what was read before it is still scanned, then the
    // error is returned (a gzip cut off while being written keeps its last lines).
    let mut failed: Option<io::Error> = None;
    let mut fill = |buf: &mut Vec<u8>| match r.fill(buf, size) {
        Ok(end) => end,
        Err(e) => {
            failed = Some(e);
            true
        }
    };
    if buf.is_empty() && !eof {
        eof = fill(buf);
        total = buf.len() as u64;
    }
    loop {
        let to = loop {
            if eof {
                break buf.len();
            }
            let cut = buf.len().saturating_sub(keep).max(from);
            // Where the last cut inside a run longer than `RUN_MAX` was, if in this piece:
            // the `RUN_MAX + 1` bytes before it are known to be base64 and are not looked at
            // again (a long token was scanned back over for every read, 20 times the time).
            let known = giant_to
                .and_then(|g| g.checked_sub(base))
                .filter(|&g| g > from && g <= cut);
            let mut at = cut;
            if known.is_some_and(|k| all_base64(&buf[k..cut])) {
                at = cut.saturating_sub(RUN_MAX + 1).max(from);
            } else {
                while at > from && cut - at <= RUN_MAX && is_base64_byte(buf[at - 1]) {
                    at -= 1;
                }
            }
            giant_to = (cut - at > RUN_MAX).then_some(base + cut);
            if at > from || cut == from || buf.len() - from > RUN_MAX {
                break if at > from { at } else { cut };
            }
            let before = buf.len();
            eof = fill(buf);
            total += (buf.len() - before) as u64;
        };
        matcher.find_hits(buf, &mut matches, &mut hits);
        picked.clear();
        picked.extend(
            matches
                .iter()
                .filter(|m| m.start >= from && m.start < to)
                .cloned(),
        );
        let consumed = visit(&Piece {
            buf,
            fresh: &buf[fed..],
            picked: &picked,
            hits: &hits,
            base,
            from,
            to,
            carry,
        })?;
        if eof {
            return match failed {
                Some(e) => Err(e),
                None => Ok(total),
            };
        }
        // Keep `keep` bytes before the unvisited part as look-behind context.
        let drop = consumed.saturating_sub(keep);
        carry.advance(&buf[..drop]);
        buf.drain(..drop);
        base += drop;
        from = consumed - drop;
        fed = buf.len();
        let before = buf.len();
        eof = fill(buf);
        total += (buf.len() - before) as u64;
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
    let mut buf = Vec::with_capacity(CHUNK + 2 * matcher.max_window());
    pieces(
        matcher,
        &mut Input::Stream(r),
        &mut buf,
        false,
        CHUNK,
        |p| {
            p.findings(matcher, policy, origin, |f, _| on(f));
            Ok(p.to)
        },
    )
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
    let mut buf = Vec::with_capacity(CHUNK + 2 * matcher.max_window());
    pieces(
        matcher,
        &mut Input::Stream(r),
        &mut buf,
        false,
        CHUNK,
        |p| {
            let (buf, picked, from, to) = (p.buf, p.picked, p.from, p.to);
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
        },
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_base64_agrees_with_the_byte_test() {
        for b in 0..=255u8 {
            assert_eq!(all_base64(&[b]), is_base64_byte(b), "byte {b:#04x}");
            // Long enough for whole 64-byte chunks, the odd byte last.
            let mut s = vec![b'A'; 130];
            s[129] = b;
            assert_eq!(
                all_base64(&s),
                is_base64_byte(b),
                "byte {b:#04x} at the end"
            );
        }
        assert!(all_base64(b""));
    }
}
