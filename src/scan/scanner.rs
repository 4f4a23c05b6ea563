//! [`Scanner`]: what scanning a blob needs, held once per worker (as ripgrep's `SearchWorker`
//! holds its matcher, searcher and printer): the matcher, the policy, the archive limits, the
//! buffers reused from one blob to the next, and where warnings go. Every source (folders,
//! git history, the index, AI histories) scans through one.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::path::Path;

use super::finding::{Finding, Origin};
use super::matcher::{Match, Matcher};
use super::policy::Policy;
use crate::decode::formats::AiTool;
use crate::source::ArchiveLimits;

/// Where a [`Scanner`]'s warnings go (skipped archive members, malformed exports, …). The
/// text may name files from the scanned data: the sink scrubs what it shows.
pub type WarnSink<'a> = Box<dyn FnMut(String) + Send + 'a>;

/// Scans blobs into findings. Not shared between threads: make one per worker.
pub struct Scanner<'a> {
    pub(super) matcher: &'a Matcher,
    pub(super) policy: &'a Policy,
    pub(super) limits: ArchiveLimits,
    /// Matches of the blob being scanned, reused between blobs.
    pub(super) scratch: Vec<Match>,
    /// Read buffer for files scanned in pieces, reused between files.
    pub(super) chunk: Vec<u8>,
    /// Warnings of the scan under way, in the order they are shown (see [`Scanner::flush`]).
    pending: Vec<String>,
    sink: WarnSink<'a>,
}

/// How deep in archives (and attachments) a blob sits, and what the archives around it leave of
/// the bytes they may expand to.
#[derive(Clone, Copy)]
pub(super) struct Nest<'b> {
    pub depth: u8,
    pub budget: &'b Cell<u64>,
}

impl<'b> Nest<'b> {
    /// One level further in.
    pub fn deeper(self) -> Self {
        Nest {
            depth: self.depth + 1,
            ..self
        }
    }
}

impl<'a> Scanner<'a> {
    /// A scanner applying `policy` (allowlists, baseline) with the default archive limits.
    pub fn new(matcher: &'a Matcher, policy: &'a Policy, sink: WarnSink<'a>) -> Self {
        Scanner {
            matcher,
            policy,
            limits: ArchiveLimits::default(),
            scratch: Vec::new(),
            chunk: Vec::new(),
            pending: Vec::new(),
            sink,
        }
    }

    /// The matcher.
    pub fn matcher(&self) -> &'a Matcher {
        self.matcher
    }

    /// The policy.
    pub fn policy(&self) -> &'a Policy {
        self.policy
    }

    /// Queue a warning; [`Scanner::flush`] hands the queue to the sink at the end of each scan.
    pub(super) fn warn(&mut self, message: String) {
        self.pending.push(message);
    }

    /// How many warnings are queued: an archive's own warnings are put before those of its
    /// members (see `scan_nested`).
    pub(super) fn warnings_queued(&self) -> usize {
        self.pending.len()
    }

    /// Put `warnings` in the queue at `at` (a position [`Scanner::warnings_queued`] gave).
    pub(super) fn warn_at(&mut self, at: usize, warnings: Vec<String>) {
        self.pending.splice(at..at, warnings);
    }

    pub(super) fn flush(&mut self) {
        for w in self.pending.drain(..) {
            (self.sink)(w);
        }
    }

    /// Scan one blob of any kind: archives are opened (within the limits), documents, email,
    /// PDF, RTF, SQLite, chat exports and HAR captures are read as what they hold too.
    pub fn scan_any(&mut self, data: &[u8], origin: &Origin, out: &mut Vec<Finding>) {
        let budget = Cell::new(self.limits.max_total);
        self.scan_nested(
            data,
            origin,
            out,
            Nest {
                depth: 0,
                budget: &budget,
            },
        );
        self.flush();
    }

    /// Scan a large file without holding it whole (see `scan_file_pieces`).
    pub fn scan_file(
        &mut self,
        file: &File,
        len: u64,
        origin: &Origin,
        out: &mut Vec<Finding>,
    ) -> io::Result<()> {
        let read = self.scan_file_pieces(file, len, origin, out);
        self.flush();
        read
    }

    /// Only the plain pass over `data`: no archive, document or export is opened.
    pub fn scan_blob(&mut self, data: &[u8], origin: &Origin, out: &mut Vec<Finding>) {
        self.scan_blob_hits(data, origin, out, &mut Vec::new(), &mut Vec::new());
    }

    /// Scan one history file of an AI `tool`, read whole into `data` (`file` is where it is on
    /// disk, for the SQLite ones); `origin.path` names the file.
    pub fn scan_ai_file(
        &mut self,
        tool: AiTool,
        data: &[u8],
        file: &Path,
        origin: &Origin,
        out: &mut Vec<Finding>,
    ) {
        self.scan_ai(tool, data, file, origin, out);
        self.flush();
    }
}
