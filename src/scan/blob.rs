//! One blob's bytes → findings with line and column, after inline `offkey:allow` comments and
//! the policy (allowlists, baseline).

use super::finding::{Finding, Location, Origin};
use super::matcher::{Match, Matcher};
use super::policy::Policy;
use super::scanner::Scanner;

/// The marker that suppresses a finding on its line.
pub(super) const ALLOW_MARKER: &[u8] = b"offkey:allow";

/// Where a match sits: 1-based line and column, and the byte span of its line.
#[derive(Clone, Copy)]
pub(super) struct Place {
    pub line: usize,
    pub column: usize,
    pub span: (usize, usize),
}

impl Scanner<'_> {
    /// The plain pass over `data`, also collecting where triggers occurred (see
    /// [`Matcher::find_hits`]) and where each finding pushed to `out` starts (`at`); the
    /// matches stay in the scratch buffer.
    pub(super) fn scan_blob_hits(
        &mut self,
        data: &[u8],
        origin: &Origin,
        out: &mut Vec<Finding>,
        hits: &mut Vec<usize>,
        at: &mut Vec<usize>,
    ) {
        self.matcher.find_hits(data, &mut self.scratch, hits);
        if self.scratch.is_empty() {
            return;
        }
        let mut lines = LineIndex::new(data);
        for m in self.scratch.iter() {
            let (line, column, span) = lines.locate(m.start);
            let place = Place { line, column, span };
            if let Some(f) = to_finding(self.matcher, self.policy, data, m, origin, place) {
                out.push(f);
                at.push(m.start);
            }
        }
    }
}

/// A match → a finding, unless an `offkey:allow` comment, the rule's path allowlist or the
/// policy suppresses it.
pub(super) fn to_finding(
    matcher: &Matcher,
    policy: &Policy,
    data: &[u8],
    m: &Match,
    origin: &Origin,
    place: Place,
) -> Option<Finding> {
    let Place {
        line,
        column,
        span: line_span,
    } = place;
    let rule = &matcher.rules().rules[m.rule];
    if memchr::memmem::find(&data[line_span.0..line_span.1], ALLOW_MARKER).is_some()
        || rule.allow_paths.is_match(&origin.path)
    {
        return None;
    }
    let column = if m.encoding == super::Encoding::Utf16 {
        utf16_column(data, line_span.0, m.start)
    } else {
        column
    };
    let sha = m.secret.sha256();
    if !policy.keeps(&origin.path, &sha) {
        return None;
    }
    Some(Finding {
        rule: rule.id.clone(),
        kind: rule.kind,
        confidence: rule.confidence,
        secret: m.secret.clone(),
        location: Location::at(origin, line, column),
        encoding: m.encoding,
        verification: None,
        rotated_to: None,
        span: data[m.start..m.end.min(line_span.1).max(m.start)]
            .iter()
            .filter(|&&b| (b as i8) >= -0x40)
            .count(),
        corrections: None,
    })
}

/// The column of a key found in UTF-16 text, in characters of the decoded line (spec: columns
/// are in the decoded text): the byte span of the line may start at the newline's second byte,
/// and a byte-order mark is not a character.
fn utf16_column(data: &[u8], line_start: usize, at: usize) -> usize {
    let mut start = line_start + (at - line_start) % 2;
    if start == 0 && (data.starts_with(&[0xff, 0xfe]) || data.starts_with(&[0xfe, 0xff])) {
        start = 2;
    }
    at.saturating_sub(start) / 2 + 1
}

/// Line and column of offsets visited in increasing order, counting newlines only once.
pub struct LineIndex<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

impl<'a> LineIndex<'a> {
    /// Start at the top of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        LineIndex {
            data,
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// 1-based line, 1-based column (in Unicode scalar values, counting invalid bytes as one
    /// each) and the line's byte span. Offsets before the last one asked restart from the top.
    pub fn locate(&mut self, offset: usize) -> (usize, usize, (usize, usize)) {
        let offset = offset.min(self.data.len());
        if offset < self.pos {
            *self = LineIndex::new(self.data);
        }
        // One SIMD count over the gap rather than a call per newline: lines are only asked for
        // where there are findings, but in a big file those can be far apart.
        let gap = &self.data[self.pos..offset];
        let n = bytecount::count(gap, b'\n');
        if n > 0 {
            self.line += n;
            self.line_start = self.pos + memchr::memrchr(b'\n', gap).map_or(0, |i| i + 1);
        }
        self.pos = offset;
        let column = 1 + self.data[self.line_start..offset]
            .iter()
            .filter(|&&b| (b as i8) >= -0x40)
            .count();
        let line_end =
            memchr::memchr(b'\n', &self.data[offset..]).map_or(self.data.len(), |i| offset + i);
        (self.line, column, (self.line_start, line_end))
    }
}
