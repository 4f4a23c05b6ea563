//! From a line of OCR text to the keys it shows: a fuzzy `oc_live_` prefix, up to three tokens
//! joined, then a checksum-guided search over the characters OCR confuses (at most
//! [`MAX_EDITS`] edits, at most one of them an insertion or deletion), accepting only a
//! checksum-valid key, and nothing when two different keys fit.
//!
//! Pure functions of the text: [`recover`] is what the fuzz targets call.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::key::{ALPHABET, BODY_LEN, CSUM_LEN, PREFIX, Secret};

/// Characters after the prefix: body and checksum.
const TAIL: usize = BODY_LEN + CSUM_LEN;
/// At most this many characters changed in a recovered key.
pub const MAX_EDITS: u8 = 3;
/// At most this many checksum tests per candidate (an insertion of an unknown character
/// counts as 62). A random string passes one test with probability 2^-32, so this bounds the
/// chance of a wrong key per candidate to about 4e-5.
pub const MAX_TESTS: u64 = 160_000;
/// Tokens OCR may have split a key into (by reading a space inside it).
const MAX_TOKENS: usize = 3;

/// What a key-like start in a line came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One checksum-valid key, reached with this many corrections.
    Key {
        /// The key (shows only its redacted form).
        secret: Secret,
        /// Characters changed (0: OCR read it exactly).
        corrections: u8,
    },
    /// Two or more different valid keys fit: none is reported.
    Ambiguous,
    /// No valid key within the search.
    Unrecovered,
}

/// One key-like start in a line: the characters it spans (prefix to the last character used),
/// as char indices into the line, and what it came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Char indices (not bytes) of the line, prefix included.
    pub span: Range<usize>,
    /// The recovered key, or why there is none.
    pub outcome: Outcome,
    /// Checksum tests spent (an insertion counts 62).
    pub tests: u64,
}

/// Every key-like start in `line` and what it came to, in order.
pub fn recover(line: &str) -> Vec<Candidate> {
    let chars: Vec<char> = line.chars().map(normalize).collect();
    let flat: String = chars.iter().collect();
    // Byte offset in `flat` → char index.
    let mut char_at = vec![0usize; flat.len() + 1];
    let mut ci = 0;
    for (b, _) in flat.char_indices() {
        char_at[b] = ci;
        ci += 1;
    }
    char_at[flat.len()] = ci;
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(m) = prefix_re().find_at(&flat, from) {
        from = m.end().max(m.start() + 1);
        let start = char_at[m.start()];
        let after = char_at[m.end()];
        let tokens = tokens_after(&chars, after);
        let seen: usize = tokens.iter().map(|t| t.len()).sum();
        if seen < 12 {
            continue; // a bare prefix (documentation), or the prefix and a word
        }
        let mut best: Option<Candidate> = None;
        let mut joined = String::new();
        let mut end = after;
        let mut tests = 0;
        for t in tokens.iter().take(MAX_TOKENS) {
            joined.extend(&chars[t.clone()]);
            end = t.end;
            if joined.len() + 1 < TAIL {
                continue;
            }
            let used = joined.len().min(TAIL + 1);
            let (outcome, n) = search(&joined.as_bytes()[..used]);
            tests += n;
            let span_end = end - (joined.len() - used);
            best = Some(Candidate {
                span: start..span_end,
                outcome,
                tests,
            });
            break;
        }
        let cand = best.unwrap_or(Candidate {
            span: start..end,
            outcome: Outcome::Unrecovered,
            tests,
        });
        from = from.max(byte_of(&flat, cand.span.end));
        out.push(cand);
    }
    out
}

fn byte_of(s: &str, char_index: usize) -> usize {
    s.char_indices().nth(char_index).map_or(s.len(), |(b, _)| b)
}

/// Symbols OCR reads for letters and digits, mapped back one for one (so indices stay).
fn normalize(c: char) -> char {
    match c {
        '|' | '¦' | '!' => 'l',
        '$' | '§' => 'S',
        '©' | 'ø' | 'Ø' | 'ö' | 'ó' | 'ò' | 'ô' => 'o',
        '®' => 'R',
        '€' => 'E',
        '¢' => 'c',
        'í' | 'ì' | 'ï' | 'î' => 'i',
        'é' | 'è' | 'ë' => 'e',
        '‘' | '’' | '`' => '\'',
        '—' | '–' | '‐' | '‑' => '-',
        c => c,
    }
}

/// The prefix as OCR reads it: `o`/`0`/`O`, `c`, a lost, doubled or misread separator, `l`/`1`/`I`,
/// `i`/`l`/`1`, `v`, `e`, another separator. Spaces may fall anywhere between the parts.
fn prefix_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let sep = r"[\s_\-.,~'=]{0,3}";
        Regex::new(&format!(
            r"[oO0QD@][\s]?[cC(e]{sep}[lI1iLtj][iIl1jtr]?[vVyYu][eEcC3]{sep}"
        ))
        .expect("the prefix pattern is valid")
    })
}

/// Alphanumeric runs after `at`, each ended by whitespace (OCR splits a key where it reads a
/// space); stops at anything else, or after [`MAX_TOKENS`] runs.
fn tokens_after(chars: &[char], at: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = at;
    while out.len() < MAX_TOKENS {
        let s = i;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == s {
            break;
        }
        out.push(s..i);
        let ws = i;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        // Only a space between two runs joins them; punctuation ends the key.
        if i == ws || i - ws > 2 {
            break;
        }
    }
    out
}

/// What OCR reads a character as (and so what it may have been): confusion classes.
fn alternatives(b: u8) -> &'static [u8] {
    const CLASSES: &[&[u8]] = &[
        b"0OoDQ", b"1lIi", b"5Ss", b"8B", b"2Zz", b"6Gb", b"9gq", b"Cc", b"Kk", b"Pp", b"Uu",
        b"Vv", b"Ww", b"Xx", b"Yy", b"Jj", b"Mm", b"Ff", b"Ee", b"Aa4", b"Hh", b"Nn", b"Rr",
        b"Tt7", b"3",
    ];
    static TABLE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = vec![Vec::new(); 256];
        for class in CLASSES {
            for &c in *class {
                for &d in *class {
                    if c != d && !t[c as usize].contains(&d) {
                        t[c as usize].push(d);
                    }
                }
            }
        }
        t
    });
    &t[b as usize]
}

/// `DELTA[p][d]`: how the CRC-32 of a 32-byte body changes when byte `p` is XORed with `d`
/// (CRC-32 is affine, so changes add up by XOR).
fn delta() -> &'static [[u32; 256]; BODY_LEN] {
    static D: OnceLock<Box<[[u32; 256]; BODY_LEN]>> = OnceLock::new();
    D.get_or_init(|| {
        let zero = crc32fast::hash(&[0u8; BODY_LEN]);
        let mut t = Box::new([[0u32; 256]; BODY_LEN]);
        for (p, row) in t.iter_mut().enumerate() {
            for (d, slot) in row.iter_mut().enumerate() {
                let mut buf = [0u8; BODY_LEN];
                buf[p] = d as u8;
                *slot = crc32fast::hash(&buf) ^ zero;
            }
        }
        t
    })
}

fn digit(b: u8) -> u64 {
    match b {
        b'0'..=b'9' => u64::from(b - b'0'),
        b'A'..=b'Z' => u64::from(b - b'A') + 10,
        b'a'..=b'z' => u64::from(b - b'a') + 36,
        _ => 0,
    }
}

const POW62: [u64; CSUM_LEN] = [916_132_832, 14_776_336, 238_328, 3844, 62, 1];

/// One hypothesis: 38 characters, the edits already spent on them, and where an unknown
/// character was inserted (any of the 62 may stand there).
struct Search {
    tests: u64,
    found: Vec<([u8; TAIL], u8)>,
}

impl Search {
    /// Try every way of changing exactly `subs` characters of `t` (within their confusion
    /// classes, never at `free`), with `free` (if any) standing for any base62 character.
    fn run(&mut self, t: &[u8; TAIL], spent: u8, subs: u8, free: Option<usize>) {
        let crc = crc32fast::hash(&t[..BODY_LEN]);
        let val: u64 = (0..CSUM_LEN)
            .map(|j| digit(t[BODY_LEN + j]) * POW62[j])
            .sum();
        let positions: Vec<usize> = (0..TAIL)
            .filter(|&i| Some(i) != free && !alternatives(t[i]).is_empty())
            .collect();
        let mut changes = Vec::with_capacity(subs as usize);
        self.walk(
            t,
            &positions,
            0,
            subs,
            crc,
            val as i64,
            free,
            spent,
            &mut changes,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        t: &[u8; TAIL],
        positions: &[usize],
        from: usize,
        left: u8,
        crc: u32,
        val: i64,
        free: Option<usize>,
        spent: u8,
        changes: &mut Vec<(usize, u8)>,
    ) {
        if self.tests >= MAX_TESTS {
            return;
        }
        if left == 0 {
            self.test(t, crc, val, free, spent, changes);
            return;
        }
        for (k, &i) in positions.iter().enumerate().skip(from) {
            for &alt in alternatives(t[i]) {
                let (c2, v2) = if i < BODY_LEN {
                    (crc ^ delta()[i][(t[i] ^ alt) as usize], val)
                } else {
                    let j = i - BODY_LEN;
                    let diff = digit(alt) as i64 - digit(t[i]) as i64;
                    (crc, val + diff * POW62[j] as i64)
                };
                changes.push((i, alt));
                self.walk(t, positions, k + 1, left - 1, c2, v2, free, spent, changes);
                changes.pop();
                if self.tests >= MAX_TESTS {
                    return;
                }
            }
        }
    }

    fn test(
        &mut self,
        t: &[u8; TAIL],
        crc: u32,
        val: i64,
        free: Option<usize>,
        spent: u8,
        changes: &[(usize, u8)],
    ) {
        let edits = spent + changes.len() as u8;
        let fill = match free {
            None => {
                self.tests += 1;
                (val == i64::from(crc)).then_some(None)
            }
            // The free character was written as `0` in `t`: which character makes it valid?
            Some(p) if p < BODY_LEN => {
                self.tests += ALPHABET.len() as u64;
                ALPHABET
                    .iter()
                    .find(|&&c| crc ^ delta()[p][(c ^ b'0') as usize] == val as u32)
                    .filter(|_| (0..=i64::from(u32::MAX)).contains(&val))
                    .map(|&c| Some((p, c)))
            }
            Some(p) => {
                self.tests += ALPHABET.len() as u64;
                let w = POW62[p - BODY_LEN] as i64;
                let need = i64::from(crc) - val;
                (need >= 0 && need % w == 0 && need / w < 62)
                    .then(|| Some((p, ALPHABET[(need / w) as usize])))
            }
        };
        if let Some(fill) = fill {
            let mut k = *t;
            for &(i, c) in changes {
                k[i] = c;
            }
            if let Some((p, c)) = fill {
                k[p] = c;
            }
            if !self.found.iter().any(|(f, _)| *f == k) {
                self.found.push((k, edits));
            }
        }
    }
}

/// Search for the one valid key that `seen` (37 to 39 characters after the prefix) was read
/// from; the outcome and the tests spent.
pub fn search(seen: &[u8]) -> (Outcome, u64) {
    let mut s = Search {
        tests: 0,
        found: Vec::new(),
    };
    let take = |b: &[u8]| -> [u8; TAIL] { b.try_into().expect("38 characters") };
    // Cheapest hypotheses first, so the test budget cuts the least likely ones.
    for level in 0..=MAX_EDITS {
        match seen.len() {
            TAIL => s.run(&take(seen), 0, level, None),
            n if n == TAIL + 1 && level >= 1 => {
                for d in 0..n {
                    if d > 0 && seen[d] == seen[d - 1] {
                        continue; // the same string as deleting its twin
                    }
                    let mut t = seen.to_vec();
                    t.remove(d);
                    s.run(&take(&t), 1, level - 1, None);
                }
            }
            n if n + 1 == TAIL && level >= 1 => {
                for p in 0..TAIL {
                    let mut t = seen.to_vec();
                    t.insert(p, b'0');
                    s.run(&take(&t), 1, level - 1, Some(p));
                }
            }
            _ => {}
        }
    }
    let outcome = match s.found.as_slice() {
        [] => Outcome::Unrecovered,
        [(k, edits)] => {
            let mut key = String::with_capacity(PREFIX.len() + TAIL);
            key.push_str(PREFIX);
            key.push_str(std::str::from_utf8(k).expect("base62 is ASCII"));
            match Secret::parse(&key) {
                Ok(secret) => Outcome::Key {
                    secret,
                    corrections: *edits,
                },
                Err(_) => Outcome::Unrecovered,
            }
        }
        _ => Outcome::Ambiguous,
    };
    (outcome, s.tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL";

    fn keys(line: &str) -> Vec<(String, u8)> {
        recover(line)
            .into_iter()
            .filter_map(|c| match c.outcome {
                Outcome::Key {
                    secret,
                    corrections,
                } => Some((secret.expose().to_owned(), corrections)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn exact_key_is_read_with_no_correction() {
        assert_eq!(keys(&format!("KEY={KEY} # prod")), [(KEY.to_owned(), 0)]);
    }

    #[test]
    fn lost_underscores_and_confusions_are_corrected() {
        // Underscores lost, 0→O, 1→l, 5→S, B→8: four edits is one too many, three are fine.
        let seen = "oclive O l234S6789A8CDEFGHIJKLMNOPQRSTUV1ggZdL";
        assert_eq!(keys(seen), []);
        let seen = "oc live Ol234S6789ABCDEFGHIJKLMNOPQRSTUV1ggZdL";
        assert_eq!(keys(seen), [(KEY.to_owned(), 3)]);
    }

    #[test]
    fn split_tokens_are_joined() {
        let seen = "0c_Iive_0123456789ABCDEF GHIJKLMNOPQRST UV1ggZdL and more";
        assert_eq!(keys(seen), [(KEY.to_owned(), 0)]);
    }

    #[test]
    fn one_lost_or_doubled_character_is_restored() {
        let lost = KEY.replacen('7', "", 1);
        assert_eq!(keys(&lost), [(KEY.to_owned(), 1)]);
        let doubled = KEY.replacen('7', "77", 1);
        assert_eq!(keys(&doubled), [(KEY.to_owned(), 1)]);
        let lost_csum = KEY.replacen("gZ", "Z", 1);
        assert_eq!(keys(&lost_csum), [(KEY.to_owned(), 1)]);
        // A lost character plus a confusion; a doubled one plus two.
        let worse = lost.replacen('5', "S", 1);
        assert_eq!(keys(&worse), [(KEY.to_owned(), 2)]);
        let worse = doubled.replacen('0', "O", 1).replacen('5', "S", 1);
        assert_eq!(keys(&worse), [(KEY.to_owned(), 3)]);
    }

    #[test]
    fn look_alikes_are_not_keys() {
        // Checksum off by one, and a wholly made-up body: nothing within three edits.
        let off = "oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdM";
        let got = recover(off);
        assert_eq!(got.len(), 1);
        assert!(
            !matches!(got[0].outcome, Outcome::Key { ref secret, .. } if secret.expose() != KEY),
            "{got:?}"
        );
        let made_up = "oc_live_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
        assert_eq!(recover(made_up)[0].outcome, Outcome::Unrecovered);
        assert!(recover("the oc_live_ prefix").is_empty());
        assert!(recover("nothing here").is_empty());
    }

    #[test]
    fn the_search_stays_within_its_budget() {
        for seen in [
            "oc_live_0OoDQ0OoDQ0OoDQ0OoDQ0OoDQ0OoDQ1lIi1lIi1lI",
            "oc_live_0OoDQ0OoDQ0OoDQ0OoDQ0OoDQ0OoDQ1lIi1lIi1",
            "oc_live_0OoDQ0OoDQ0OoDQ0OoDQ0OoDQ0OoDQ1lIi1lIi",
        ] {
            for c in recover(seen) {
                assert!(c.tests <= MAX_TESTS + 62, "{}", c.tests);
            }
        }
    }
}
