//! Raw rules → checked, compiled rules. A bad rule fails here, at load time, naming its file and id.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::bytes::Regex;

use super::raw::{RawFile, RawRule};
use crate::key::{KeyKind, is_current};

/// How sure a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// An unverified candidate (a legacy key shape next to a context word).
    Low,
    /// A current key recovered from an image by OCR and checksum-guided correction.
    Medium,
    /// A checksum-valid current key, or a verified one.
    High,
}

/// A check on the matched secret beyond its regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// The CRC-32 base62 checksum of current Offset keys.
    OffsetChecksum,
}

impl Validator {
    /// True when the secret passes.
    pub fn check(self, secret: &[u8]) -> bool {
        match self {
            Validator::OffsetChecksum => is_current(secret),
        }
    }
}

/// Bytes that may not touch the secret: a 256-entry table per side.
#[derive(Clone)]
pub struct Boundary {
    before: [bool; 256],
    after: [bool; 256],
}

impl Boundary {
    fn none() -> Self {
        Boundary {
            before: [false; 256],
            after: [false; 256],
        }
    }

    /// May this byte stand right before the secret?
    #[inline]
    pub fn before_ok(&self, b: u8) -> bool {
        !self.before[b as usize]
    }

    /// May this byte stand right after the secret?
    #[inline]
    pub fn after_ok(&self, b: u8) -> bool {
        !self.after[b as usize]
    }
}

impl std::fmt::Debug for Boundary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Boundary")
    }
}

/// Words that must occur before a secret on its line.
#[derive(Debug, Clone)]
pub struct Context {
    /// Lowercase ASCII words.
    pub words: Vec<Vec<u8>>,
    /// How many bytes before the secret's start a word may begin.
    pub within: usize,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Stable id (`offset-api-key`).
    pub id: String,
    /// What it finds.
    pub description: String,
    /// What the report calls it.
    pub kind: KeyKind,
    /// How sure a match is before verification.
    pub confidence: Confidence,
    /// The secret's shape.
    pub regex: Regex,
    /// Which capture group holds the secret (0: the whole match).
    pub secret_group: usize,
    /// When the whole regex is one byte class repeated a fixed number of times (the legacy
    /// key's `[0-9a-f]{32}`): that class and count, so matches can be found by a plain scan
    /// for runs (what the regex would find, without its per-search set-up).
    pub run: Option<ClassRun>,
    /// Longest possible match, bounding the window searched around a keyword.
    pub max_len: usize,
    /// Minimum Shannon entropy in bits per byte.
    pub entropy: Option<f64>,
    /// Extra check on the secret.
    pub validator: Option<Validator>,
    /// Bytes that may not touch the secret.
    pub boundary: Boundary,
    /// Context words (instead of keywords).
    pub context: Option<Context>,
    /// Keywords, case-sensitive.
    pub keywords: Vec<Vec<u8>>,
    /// Secrets never reported.
    pub allow_regexes: Vec<Regex>,
    /// Paths never reported for this rule.
    pub allow_paths: GlobSet,
    /// Texts in which the rule must find a key.
    pub examples: Vec<String>,
    /// Texts in which it must find none.
    pub negative_examples: Vec<String>,
}

impl Rule {
    /// Does the secret pass entropy, validator and the rule's own allowlist?
    pub fn accepts(&self, secret: &[u8]) -> bool {
        if let Some(min) = self.entropy {
            if shannon_entropy(secret) < min {
                return false;
            }
        }
        if let Some(v) = self.validator {
            if !v.check(secret) {
                return false;
            }
        }
        !self.allow_regexes.iter().any(|r| r.is_match(secret))
    }
}

/// What a prefilter hit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Keyword `keyword` of rule `rule` starts here.
    Keyword {
        /// Index into [`RuleSet::rules`].
        rule: usize,
        /// Index into the rule's keywords.
        keyword: usize,
    },
    /// The first bytes of context word `word` of rule `rule` (some case variant) start here;
    /// the whole word must still be checked.
    Context {
        /// Index into [`RuleSet::rules`].
        rule: usize,
        /// Index into the rule's context words.
        word: usize,
    },
}

/// Every rule, plus the literal patterns that trigger them.
#[derive(Debug)]
pub struct RuleSet {
    /// Rules in load order; ids are unique.
    pub rules: Vec<Rule>,
    /// Distinct literals for the one prefilter, each with every meaning it has (context words
    /// of one rule may share their first bytes).
    pub triggers: Vec<(Vec<u8>, Vec<Trigger>)>,
}

/// A rule file that cannot be used. Names the file and, where it can, the rule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The file could not be read.
    #[error("{file}: cannot read rule file: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or not the rule format.
    #[error("{file}: not a valid rule file: {message}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's words.
        message: String,
    },
    /// One rule is wrong.
    #[error("{file}: rule {id:?}: {message}")]
    Rule {
        /// The file.
        file: String,
        /// The rule id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// How many leading bytes of a context word go into the prefilter (in every ASCII case variant).
/// Three: the built-in rules then need 17 literals, so with the encoded forms the automaton stays
/// within the 32 patterns of the fastest (slim) Teddy; with four bytes there were 49 and the
/// search was measured 20% slower. Words like "off" fire more often, but their check is a
/// 6-byte comparison.
const CONTEXT_PREFIX: usize = 3;

impl RuleSet {
    /// The built-in rules only.
    pub fn builtin() -> Result<Self, RuleError> {
        Self::load(&[])
    }

    /// The built-in rules plus user rule files.
    pub fn load(user_files: &[&Path]) -> Result<Self, RuleError> {
        let mut texts: Vec<(String, String)> = super::BUILTIN
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        for path in user_files {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| RuleError::Read {
                file: file.clone(),
                source,
            })?;
            texts.push((file, text));
        }
        let mut rules: Vec<Rule> = Vec::new();
        for (file, text) in &texts {
            let raw: RawFile = toml::from_str(text).map_err(|e| RuleError::Parse {
                file: file.clone(),
                message: e.to_string(),
            })?;
            for r in raw.rules {
                let id = r.id.clone();
                if rules.iter().any(|x| x.id == id) {
                    return Err(RuleError::Rule {
                        file: file.clone(),
                        id,
                        message: "a rule with this id is already loaded".into(),
                    });
                }
                let rule = compile_rule(r).map_err(|message| RuleError::Rule {
                    file: file.clone(),
                    id,
                    message,
                })?;
                rules.push(rule);
            }
        }
        let triggers = build_triggers(&rules);
        Ok(RuleSet { rules, triggers })
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

fn compile_rule(r: RawRule) -> Result<Rule, String> {
    if r.id.trim().is_empty()
        || !r
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("id must be non-empty and use only letters, digits, '-' and '_'".into());
    }
    let kind = match r.kind.as_deref() {
        None | Some("current") => KeyKind::Current,
        Some("legacy") => KeyKind::Legacy,
        Some(other) => return Err(format!("kind {other:?} is not \"current\" or \"legacy\"")),
    };
    let confidence = match r.confidence.as_deref() {
        None | Some("high") => Confidence::High,
        Some("low") => Confidence::Low,
        Some(other) => return Err(format!("confidence {other:?} is not \"high\" or \"low\"")),
    };
    let regex = Regex::new(&r.regex).map_err(|e| format!("regex does not compile: {e}"))?;
    let secret_group = r.secret_group.unwrap_or(0);
    if secret_group >= regex.captures_len() {
        return Err(format!(
            "secret_group {secret_group} but the regex has {} group(s)",
            regex.captures_len() - 1
        ));
    }
    let max_len = regex_syntax::parse(&r.regex)
        .ok()
        .and_then(|h| h.properties().maximum_len())
        .unwrap_or(4096)
        .min(4096);
    let validator = match r.validator.as_deref() {
        None => None,
        Some("offset-checksum") => Some(Validator::OffsetChecksum),
        Some(other) => {
            return Err(format!(
                "validator {other:?} is unknown (known: \"offset-checksum\")"
            ));
        }
    };
    if let Some(e) = r.entropy {
        if !(0.0..=8.0).contains(&e) {
            return Err(format!("entropy {e} is outside 0..=8 bits per byte"));
        }
    }
    let mut boundary = Boundary::none();
    if let Some(b) = &r.boundary {
        if let Some(class) = &b.before {
            boundary.before = byte_table(class).map_err(|e| format!("boundary.before: {e}"))?;
        }
        if let Some(class) = &b.after {
            boundary.after = byte_table(class).map_err(|e| format!("boundary.after: {e}"))?;
        }
    }
    let context = match r.context {
        None => None,
        Some(c) => {
            if c.words.is_empty() || c.words.iter().any(|w| w.len() < 2 || !w.is_ascii()) {
                return Err("context.words must be ASCII words of 2 bytes or more".into());
            }
            Some(Context {
                words: c
                    .words
                    .iter()
                    .map(|w| w.to_ascii_lowercase().into_bytes())
                    .collect(),
                within: c.within,
            })
        }
    };
    if context.is_none() && r.keywords.is_empty() {
        return Err(
            "needs keywords or context.words (the prefilter has nothing to look for)".into(),
        );
    }
    if context.is_some() && !r.keywords.is_empty() {
        return Err("use either keywords or context.words, not both".into());
    }
    if r.keywords.iter().any(|k| k.is_empty()) {
        return Err("a keyword is empty".into());
    }
    let allow = r.allowlist.unwrap_or_default();
    let allow_regexes = allow
        .regexes
        .iter()
        .map(|p| Regex::new(p).map_err(|e| format!("allowlist regex {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut gs = GlobSetBuilder::new();
    for p in &allow.paths {
        gs.add(Glob::new(p).map_err(|e| format!("allowlist path {p:?}: {e}"))?);
    }
    let allow_paths = gs.build().map_err(|e| format!("allowlist paths: {e}"))?;
    Ok(Rule {
        id: r.id,
        description: r.description,
        kind,
        confidence,
        run: if secret_group == 0 {
            class_run(regex.as_str())
        } else {
            None
        },
        regex,
        secret_group,
        max_len,
        entropy: r.entropy,
        validator,
        boundary,
        context,
        keywords: r.keywords.into_iter().map(String::into_bytes).collect(),
        allow_regexes,
        allow_paths,
        examples: r.examples,
        negative_examples: r.negative_examples,
    })
}

/// A regex that is one ASCII byte class repeated exactly `n` times.
#[derive(Debug, Clone)]
pub struct ClassRun {
    /// Bytes of the class.
    pub class: [bool; 256],
    /// How many.
    pub n: usize,
}

/// `[class]{n}` (ASCII class, fixed `n`) → its [`ClassRun`]; anything else → `None`.
fn class_run(pattern: &str) -> Option<ClassRun> {
    let hir = regex_syntax::parse(pattern).ok()?;
    let regex_syntax::hir::HirKind::Repetition(rep) = hir.kind() else {
        return None;
    };
    if rep.min == 0 || rep.max != Some(rep.min) {
        return None;
    }
    Some(ClassRun {
        class: byte_set(rep.sub.kind())?,
        n: rep.min as usize,
    })
}

/// The bytes a one-byte piece of regex matches: a byte class, a Unicode class within ASCII, or
/// a single-byte literal; `None` for anything else.
fn byte_set(kind: &regex_syntax::hir::HirKind) -> Option<[bool; 256]> {
    use regex_syntax::hir::{Class, HirKind};
    let mut set = [false; 256];
    match kind {
        HirKind::Class(Class::Unicode(c)) => {
            for r in c.ranges() {
                if !r.end().is_ascii() {
                    return None;
                }
                for b in r.start() as u8..=r.end() as u8 {
                    set[b as usize] = true;
                }
            }
        }
        HirKind::Class(Class::Bytes(c)) => {
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    set[b as usize] = true;
                }
            }
        }
        HirKind::Literal(lit) if lit.0.len() == 1 => set[lit.0[0] as usize] = true,
        _ => return None,
    }
    Some(set)
}

/// A regex character class → which bytes it matches. Read from the parsed class itself (building
/// a regex to try all 256 bytes was a third of a one-file scan's start-up); anything that does
/// not parse to a plain class or one byte is still tried byte by byte.
fn byte_table(class: &str) -> Result<[bool; 256], String> {
    let pattern = format!("(?-u:{class})");
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(&pattern)
        .map_err(|e| e.to_string())?;
    if let Some(set) = byte_set(hir.kind()) {
        return Ok(set);
    }
    let re = Regex::new(&format!("^{pattern}$")).map_err(|e| e.to_string())?;
    let mut table = [false; 256];
    for (b, slot) in table.iter_mut().enumerate() {
        *slot = re.is_match(&[b as u8]);
    }
    Ok(table)
}

/// Every literal the prefilter looks for. Context words go in as their first
/// [`CONTEXT_PREFIX`] bytes in every ASCII case variant (an ASCII-case-insensitive automaton
/// loses the packed SIMD prefilter); a word containing another word of the same rule is left out
/// because the shorter word already fires wherever the longer one occurs.
fn build_triggers(rules: &[Rule]) -> Vec<(Vec<u8>, Vec<Trigger>)> {
    let mut out: Vec<(Vec<u8>, Vec<Trigger>)> = Vec::new();
    let mut add = |lit: Vec<u8>, t: Trigger| match out.iter_mut().find(|(l, _)| *l == lit) {
        Some((_, ts)) => {
            if !ts.contains(&t) {
                ts.push(t);
            }
        }
        None => out.push((lit, vec![t])),
    };
    for (ri, rule) in rules.iter().enumerate() {
        for (ki, kw) in rule.keywords.iter().enumerate() {
            add(
                kw.clone(),
                Trigger::Keyword {
                    rule: ri,
                    keyword: ki,
                },
            );
        }
        if let Some(ctx) = &rule.context {
            for (wi, w) in ctx.words.iter().enumerate() {
                let covered = ctx.words.iter().enumerate().any(|(oi, o)| {
                    oi != wi && o.len() < w.len() && memchr::memmem::find(w, o).is_some()
                });
                if covered {
                    continue;
                }
                let head = &w[..w.len().min(CONTEXT_PREFIX)];
                for variant in case_variants(head) {
                    add(variant, Trigger::Context { rule: ri, word: wi });
                }
            }
        }
    }
    out
}

fn case_variants(head: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for &b in head {
        let lower = b.to_ascii_lowercase();
        let upper = b.to_ascii_uppercase();
        let mut next = Vec::with_capacity(out.len() * 2);
        for v in &out {
            let mut a = v.clone();
            a.push(lower);
            next.push(a);
            if upper != lower {
                let mut c = v.clone();
                c.push(upper);
                next.push(c);
            }
        }
        out = next;
    }
    out
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load() {
        let rs = RuleSet::builtin().expect("built-in rules compile");
        assert!(rs.get("offset-api-key").is_some());
        assert!(rs.get("offset-legacy-key").is_some());
        // x-offset-key is covered by offset; "off" (8 variants), "oc_" and "oc-" (4 each, shared
        // by two words each), and the keyword.
        assert_eq!(rs.triggers.len(), 1 + 8 + 4 + 4);
        let oc = rs
            .triggers
            .iter()
            .find(|(l, _)| l == b"OC_")
            .expect("OC_ variant");
        assert_eq!(oc.1.len(), 2, "oc_key and oc_api share it");
    }

    #[test]
    fn byte_tables_agree_with_the_regex() {
        for class in [
            "[0-9A-Za-z_]",
            "[0-9A-Za-z]",
            "[^a-z]",
            r"\w",
            r"\s",
            "_",
            "[-+/=]",
            r"[\x00-\x1f\x7f-\xff]",
            "(a|b)",
            "[[:alpha:]]",
        ] {
            let t = byte_table(class).expect(class);
            let re = Regex::new(&format!("^(?-u:{class})$")).expect(class);
            for b in 0..=255u8 {
                assert_eq!(t[b as usize], re.is_match(&[b]), "{class} at {b:#x}");
            }
        }
    }

    #[test]
    fn a_bad_rule_names_file_and_id() {
        let dir = std::env::temp_dir().join(format!("offkey-rule-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let f = dir.join("bad.toml");
        std::fs::write(
            &f,
            "[[rule]]\nid = \"mine\"\ndescription = \"x\"\nkeywords = [\"k\"]\nregex = \"(\"\n",
        )
        .expect("write");
        let err = RuleSet::load(&[&f]).expect_err("bad regex").to_string();
        assert!(
            err.contains("bad.toml") && err.contains("\"mine\""),
            "{err}"
        );
        std::fs::write(&f, "[[rule]]\nid = \"mine\"\n").expect("write");
        let err = RuleSet::load(&[&f])
            .expect_err("missing fields")
            .to_string();
        assert!(err.contains("bad.toml"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn entropy_of_uniform_bytes() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
