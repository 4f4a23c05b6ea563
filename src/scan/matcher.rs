//! The matcher: one Aho-Corasick automaton over every trigger literal, then regex confirmation
//! in a bounded window around each hit, then boundaries, validators and context.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, packed};

use crate::decode::{self, Encoding};
use crate::key::Secret;
use crate::rules::{Rule, RuleSet, Trigger};

/// A confirmed secret in a blob.
#[derive(Debug, Clone)]
pub struct Match {
    /// Index into the rule set.
    pub rule: usize,
    /// Start of the secret (or of the encoded token holding it) in the blob.
    pub start: usize,
    /// End of the same span.
    pub end: usize,
    /// The secret, decoded.
    pub secret: Secret,
    /// How it was hidden.
    pub encoding: Encoding,
}

/// What one prefilter pattern stands for.
#[derive(Debug, Clone)]
enum Slot {
    Rule(Vec<Trigger>),
    Encoded(decode::Form),
}

/// Compiled once per scan, shared by every thread.
#[derive(Debug)]
pub struct Matcher {
    rules: Arc<RuleSet>,
    /// The packed (Teddy) searcher, forced rather than left to aho-corasick's heuristics: with
    /// every literal starting with `o`/`O` those pick a start-byte filter that stops at every `o`.
    packed: Option<packed::Searcher>,
    ac: Option<AhoCorasick>,
    slots: Vec<Slot>,
    /// Longest pattern, for callers that scan in overlapping chunks.
    max_window: usize,
}

impl Matcher {
    /// Build the automaton over every rule trigger and, with `decode`, the encoded forms of every
    /// keyword (base64 at three alignments, percent-encoded, `\u`-escaped, UTF-16).
    pub fn new(rules: Arc<RuleSet>, decode: bool) -> Self {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut slots = Vec::new();
        for (lit, trigs) in &rules.triggers {
            patterns.push(lit.clone());
            slots.push(Slot::Rule(trigs.clone()));
        }
        if decode {
            for rule in &rules.rules {
                for kw in &rule.keywords {
                    for (lit, form) in decode::encoded_literals(kw) {
                        if !patterns.contains(&lit) {
                            patterns.push(lit);
                            slots.push(Slot::Encoded(form));
                        }
                    }
                }
            }
        }
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&patterns)
            .build();
        // The general automaton is only needed where the packed searcher is not available; its
        // DFA takes longer to build than scanning one small file does.
        let ac = packed.is_none().then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .build(&patterns)
                .expect("trigger literals are non-empty and few")
        });
        let max_rule = rules.rules.iter().map(|r| r.max_len).max().unwrap_or(0);
        let max_ctx = rules
            .rules
            .iter()
            .filter_map(|r| r.context.as_ref().map(|c| c.within + r.max_len))
            .max()
            .unwrap_or(0);
        Matcher {
            rules,
            packed,
            ac,
            slots,
            max_window: max_rule.max(max_ctx) + 16,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// How many bytes of context a chunked reader must carry over between chunks.
    pub fn max_window(&self) -> usize {
        self.max_window * 4
    }

    /// Every secret in `data`, in order of position. `out` is cleared first.
    pub fn find(&self, data: &[u8], out: &mut Vec<Match>) {
        self.find_hits(data, out, &mut Vec::new());
    }

    /// [`Matcher::find`], also collecting where each keyword, whole context word or encoded
    /// keyword occurred (`hits`, cleared first).
    pub fn find_hits(&self, data: &[u8], out: &mut Vec<Match>, hits: &mut Vec<usize>) {
        out.clear();
        hits.clear();
        self.find_depth(data, out, 0, hits);
        out.sort_by_key(|m| (m.start, m.rule));
        out.dedup_by(|b, a| a.start == b.start && a.rule == b.rule);
    }

    pub(crate) fn find_depth(
        &self,
        data: &[u8],
        out: &mut Vec<Match>,
        depth: u8,
        hits: &mut Vec<usize>,
    ) {
        // Where each rule's last match started (on the stack for the usual few rules: this runs
        // once per file and per read piece).
        let n = self.rules.rules.len();
        let (mut few, mut many) = ([None; 8], Vec::new());
        let last_start: &mut [Option<usize>] = if n <= few.len() {
            &mut few[..n]
        } else {
            many.resize(n, None);
            &mut many
        };
        let mut skip_until = 0usize;
        let mut visit = |pattern: usize, p: usize| match &self.slots[pattern] {
            Slot::Rule(trigs) => {
                for t in trigs {
                    if self.trigger(data, *t, p, last_start, out) {
                        hits.push(p);
                    }
                }
            }
            Slot::Encoded(form) => {
                hits.push(p);
                if depth < 3 && p >= skip_until {
                    skip_until = super::encoded::expand(self, data, p, *form, depth, out);
                }
            }
        };
        if let Some(ps) = &self.packed {
            ps.find_iter(data)
                .for_each(|m| visit(m.pattern().as_usize(), m.start()));
        } else if let Some(ac) = &self.ac {
            ac.find_iter(data)
                .for_each(|m| visit(m.pattern().as_usize(), m.start()));
        }
    }

    /// One rule trigger at `p`. Answers whether it was a real hit (a keyword, or a whole
    /// context word rather than just its first bytes).
    fn trigger(
        &self,
        data: &[u8],
        t: Trigger,
        p: usize,
        last_start: &mut [Option<usize>],
        out: &mut Vec<Match>,
    ) -> bool {
        {
            match t {
                Trigger::Keyword { rule, keyword } => {
                    let r = &self.rules.rules[rule];
                    let kw_len = r.keywords[keyword].len();
                    let ws = p.saturating_sub(r.max_len);
                    let we = (p + kw_len + r.max_len).min(data.len());
                    // Keep matches that contain the keyword hit.
                    let keep = |s: usize, e: usize| {
                        if s > p + kw_len || e < p {
                            Keep::Skip
                        } else {
                            Keep::Yes
                        }
                    };
                    self.confirm(data, rule, (ws, we), keep, last_start, out);
                }
                Trigger::Context { rule, word } => {
                    let r = &self.rules.rules[rule];
                    let Some(ctx) = &r.context else { return false };
                    let w = &ctx.words[word];
                    if data.len() < p + w.len() || !data[p..p + w.len()].eq_ignore_ascii_case(w) {
                        return false;
                    }
                    let ws = p + w.len();
                    let limit = (p + ctx.within + r.max_len + 1).min(data.len());
                    let we = memchr::memchr(b'\n', &data[ws..limit]).map_or(limit, |i| ws + i);
                    // The secret must start within `within` bytes after the word's start.
                    let within = ctx.within;
                    let keep = |s: usize, _e: usize| {
                        if s - p > within {
                            Keep::Stop
                        } else {
                            Keep::Yes
                        }
                    };
                    self.confirm(data, rule, (ws, we), keep, last_start, out);
                }
            }
        }
        true
    }

    /// Keyword rules: regex over the window; keep matches that contain the keyword hit.
    /// Regex over the window `data[ws..we]`, then for each secret span that `keep(start, end)`
    /// accepts (or stops the search at): not reported yet, boundaries, the rule's own checks.
    fn confirm(
        &self,
        data: &[u8],
        rule: usize,
        (ws, we): (usize, usize),
        keep: impl Fn(usize, usize) -> Keep,
        last_start: &mut [Option<usize>],
        out: &mut Vec<Match>,
    ) {
        let r = &self.rules.rules[rule];
        secret_spans(r, &data[ws..we], |s, e| {
            let (s, e) = (s + ws, e + ws);
            match keep(s, e) {
                Keep::Yes => {}
                Keep::Skip => return true,
                Keep::Stop => return false,
            }
            if last_start[rule].is_some_and(|l| s <= l) {
                return true;
            }
            if let Some(enc) = check_span(r, data, s, e) {
                last_start[rule] = Some(s);
                out.push(Match {
                    rule,
                    start: s,
                    end: e,
                    secret: Secret::from_match(&data[s..e], r.kind),
                    encoding: enc,
                });
            }
            true
        });
    }
}

/// What [`Matcher::confirm`] does with one regex match.
enum Keep {
    Yes,
    Skip,
    Stop,
}

/// Each secret span of the rule's regex in `window` (relative to it) to `each`, until it
/// answers false. No allocation: context words hit often.
fn secret_spans(r: &Rule, window: &[u8], mut each: impl FnMut(usize, usize) -> bool) {
    if let Some(run) = &r.run {
        // `[class]{n}`: the regex's leftmost-first matches are the runs of class bytes cut
        // into pieces of `n` from each run's start. Runs shorter than `n` are stepped over
        // from their far end: `i` is 0, or just after (or on) a byte outside the class, so
        // when `window[i + n - 1]` is outside too no run of `n` starts in `i..i + n`, and
        // otherwise the last outside byte before it is where the next candidate starts; a
        // candidate found whole is the start of its run.
        let n = run.n;
        let mut i = 0;
        while i + n <= window.len() {
            let last = i + n - 1;
            if !run.class[window[last] as usize] {
                i = last + 1;
                continue;
            }
            if let Some(j) = window[i..last]
                .iter()
                .rposition(|&b| !run.class[b as usize])
            {
                i += j + 1;
                continue;
            }
            let start = i;
            i = last + 1;
            while i < window.len() && run.class[window[i] as usize] {
                i += 1;
            }
            let mut s = start;
            while s + run.n <= i {
                if !each(s, s + run.n) {
                    return;
                }
                s += run.n;
            }
        }
    } else if r.secret_group == 0 {
        for m in r.regex.find_iter(window) {
            if !each(m.start(), m.end()) {
                return;
            }
        }
    } else {
        for c in r.regex.captures_iter(window) {
            if let Some(m) = c.get(r.secret_group)
                && !each(m.start(), m.end())
            {
                return;
            }
        }
    }
}

/// Boundaries (looking through an escape right before the secret), then the rule's own checks.
/// Returns how the secret was hidden, or `None` when it is not a key.
fn check_span(r: &Rule, data: &[u8], s: usize, e: usize) -> Option<Encoding> {
    if e < data.len() && !r.boundary.after_ok(data[e]) {
        return None;
    }
    let enc = if s == 0 || r.boundary.before_ok(data[s - 1]) {
        Encoding::Plain
    } else {
        let (byte, enc) = decode::escape_before(&data[..s])?;
        if !r.boundary.before_ok(byte) {
            return None;
        }
        enc
    };
    r.accepts(&data[s..e]).then_some(enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> Matcher {
        Matcher::new(Arc::new(RuleSet::builtin().expect("rules")), true)
    }

    fn found(m: &Matcher, text: &[u8]) -> Vec<(String, Encoding)> {
        let mut out = Vec::new();
        m.find(text, &mut out);
        out.into_iter()
            .map(|x| (x.secret.expose().to_owned(), x.encoding))
            .collect()
    }

    #[test]
    fn more_rules_than_fit_on_the_stack_all_match() {
        // Ten user rules beside the two built-in ones: each rule's matches are tracked apart.
        let dir = tempfile::tempdir().expect("tmp");
        let mut toml = String::new();
        for i in 0..10 {
            toml.push_str(&format!(
                "[[rule]]\nid = \"r{i}\"\ndescription = \"test\"\nkeywords = [\"tok{i}_\"]\nregex = 'tok{i}_[a-z]{{6}}'\n\n"
            ));
        }
        let path = dir.path().join("many.toml");
        std::fs::write(&path, toml).expect("write rules");
        let rules = RuleSet::load(&[path.as_path()]).expect("rules load");
        assert_eq!(rules.rules.len(), 12);
        let m = Matcher::new(Arc::new(rules), true);
        let text: String = (0..10)
            .map(|i| format!("a=tok{i}_abcdef b=tok{i}_ghijkl\n"))
            .collect();
        let got = found(&m, text.as_bytes());
        assert_eq!(got.len(), 20, "{got:?}");
        for i in 0..10 {
            assert!(
                got.iter().any(|(k, _)| *k == format!("tok{i}_ghijkl")),
                "{i}"
            );
        }
    }

    #[test]
    fn every_rule_example_and_negative_example_holds() {
        let m = matcher();
        for rule in &m.rules().rules {
            for ex in &rule.examples {
                let got = found(&m, ex.as_bytes());
                assert_eq!(
                    got.len(),
                    1,
                    "rule {} example {ex:?} found {}",
                    rule.id,
                    got.len()
                );
                assert!(ex.contains(&got[0].0));
            }
            for ex in &rule.negative_examples {
                assert!(
                    found(&m, ex.as_bytes()).is_empty(),
                    "rule {} negative example {ex:?}",
                    rule.id
                );
            }
        }
    }

    #[test]
    fn class_runs_find_what_the_regex_finds() {
        let m = matcher();
        let legacy = m
            .rules()
            .rules
            .iter()
            .find(|r| r.run.is_some())
            .expect("the legacy rule is a class run");
        assert_eq!(legacy.run.as_ref().map(|r| r.n), Some(32));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut matched = 0;
        for round in 0..3000 {
            // Breaks every 40, 12 or 5 bytes on average: long runs, and many short ones
            // (which the search steps over).
            let rate = [40, 12, 5][round % 3];
            let mut w = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 140) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly hex, with breaks, so runs of every length occur.
                w.push(if x % rate == 0 {
                    b"ABx =\n"[((x >> 8) % 6) as usize]
                } else {
                    b"0123456789abcdef"[((x >> 8) % 16) as usize]
                });
            }
            let mut fast = Vec::new();
            secret_spans(legacy, &w, |s, e| {
                fast.push((s, e));
                true
            });
            let slow: Vec<(usize, usize)> = legacy
                .regex
                .find_iter(&w)
                .map(|m| (m.start(), m.end()))
                .collect();
            assert_eq!(fast, slow, "{}", String::from_utf8_lossy(&w));
            matched += slow.len();
        }
        assert!(matched > 700, "{matched}");
    }

    const KEY: &str = "oc_live_Ky9Pf34qY6Nb3wWD25RQ4F5ZR3qa7yEe2zI7BX"; // offkey:allow (fake key)

    #[test]
    fn keys_behind_escapes_and_encodings() {
        use base64::Engine;
        let m = matcher();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"));
        let cases: Vec<(String, Encoding)> = vec![
            (
                format!("{{\"text\": \"use this\\n{KEY}\"}}"),
                Encoding::JsonEscaped,
            ),
            (format!("\"\\u201c{KEY}\\u201d\""), Encoding::JsonEscaped),
            (
                format!("GET /cb?next=%2Fx%3Fk%3D{KEY}%26a%3D1"),
                Encoding::UrlEncoded,
            ),
            (
                format!("u={}", KEY.replace('_', "%5F")),
                Encoding::UrlEncoded,
            ),
            (format!("\x1b[1;31m{KEY}\x1b[0m"), Encoding::Ansi),
            (
                format!("INFO \x1b[33mkey=\x1b[0m\x1b[1m{KEY}"),
                Encoding::Ansi,
            ),
            (format!("Authorization: Basic {b64}"), Encoding::Base64),
            (
                format!("{{\"k\":\"{}\"}}", KEY.replace('_', "\\u005f")),
                Encoding::JsonEscaped,
            ),
        ];
        for (text, enc) in cases {
            let got = found(&m, text.as_bytes());
            assert_eq!(got, vec![(KEY.to_owned(), enc)], "{text:?}");
        }
        let utf16: Vec<u8> = format!("key = {KEY}\r\n")
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(found(&m, &utf16), vec![(KEY.to_owned(), Encoding::Utf16)]);
        let utf16be: Vec<u8> = format!("key = {KEY}\r\n")
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(found(&m, &utf16be), vec![(KEY.to_owned(), Encoding::Utf16)]);
    }

    #[test]
    fn works_on_invalid_utf8_and_binary() {
        let m = matcher();
        let mut data = vec![0xff, 0xfe, 0x00, 0xc3, b' '];
        data.extend_from_slice(KEY.as_bytes());
        data.extend_from_slice(&[0x00, 0x80, 0xff]);
        assert_eq!(found(&m, &data).len(), 1);
    }

    #[test]
    fn each_key_once_even_with_many_context_words() {
        let m = matcher();
        let text = b"offset OFFSET x-offset-key oc_key: 1ecccc3fc1626e53a13043b026c48bbf offset 33feff9243a8f506b40928b5b7a767c7"; // offkey:allow (fake key)
        assert_eq!(found(&m, text).len(), 2);
    }
}
