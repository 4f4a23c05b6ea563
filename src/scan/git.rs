//! Git as a source of findings: the history (`scan --git`: each distinct blob scanned once,
//! then fanned out to every path it was introduced at, each with its own allowlists, and one
//! finding per key and path, at the oldest commit) and the index (`scan --staged`: only the
//! added and changed lines).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::finding::{Finding, Origin, SourceKind};
use super::matcher::Matcher;
use super::policy::Policy;
use super::scanner::Scanner;
use crate::key::scrub_name;
use crate::source::{self, BlobProblem, GitError, History, HistoryOptions};

/// What a history or index scan found and read.
#[derive(Debug, Default)]
pub struct GitScan {
    /// Findings, one per (key, path), in no particular order.
    pub findings: Vec<Finding>,
    /// Blobs (or staged files) read.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs that could not be read (corrupt or missing objects); each was warned about.
    pub errors: u64,
    /// The clone is shallow: what was scanned is not the whole history.
    pub shallow: bool,
}

/// A warning sink shared by the threads of a history scan. The text may name paths from the
/// repository: the sink scrubs what it shows.
pub type SharedWarn<'a> = &'a (dyn Fn(String) + Sync);

/// A reader that claims some blobs (an image read by OCR, under `--images`) and returns their
/// findings, or `None` to leave the blob to the scanner.
pub type BlobHook<'a> =
    &'a (dyn Fn(&[u8], &Origin, &mut dyn FnMut(String)) -> Option<Vec<Finding>> + Sync);

/// `scan --git`: scan each distinct blob of the history of `opts.repo` once (blobs over
/// `max_size` bytes are skipped with a warning), in parallel; one finding per (key, path), with
/// the oldest commit that introduced it there, its author and date. `policy` applies per path.
pub fn scan_history(
    matcher: &Matcher,
    policy: &Policy,
    opts: &HistoryOptions,
    max_size: usize,
    warn: SharedWarn<'_>,
    hook: Option<BlobHook<'_>>,
) -> Result<GitScan, GitError> {
    let timing = source::timing_enabled();
    let started = Instant::now();
    // Each blob is scanned once keeping every finding; each of its paths then gets its own
    // allowlist and baseline, so an allowlisted first path (fixtures/) does not hide a copy of
    // the blob elsewhere.
    let unfiltered = Policy::default();
    // The whole history: every pack is walked in delta order first, each blob scanned without
    // a path, and its trees and commits kept as a graph of object keys. Only the blobs that
    // gave a finding or a warning there (or are over the size limit, or were not in a pack
    // that could be walked: loose, corrupt, missing) are then attributed, by a history walk
    // that reads only the commits and subtrees holding one, and read again and scanned at
    // their paths as before: the same findings and warnings as scanning every blob at its
    // paths. A blob hook (images read by OCR under `--images`) needs each blob at its path, so
    // it keeps the full walk and the per-blob read.
    let walk = (opts.range.is_none() && opts.since.is_none() && hook.is_none())
        .then(|| walk_packs(matcher, &unfiltered, opts, max_size))
        .flatten();
    let walked = started.elapsed();
    if timing && let Some(walk) = &walk {
        let t = &walk.timing;
        eprintln!(
            "offkey: timing: pack walk {} ms wall ({} trees, {} commits parsed, graph {} KiB{}; \
             thread time: scan {} ms, tree/commit parse {} ms, the rest is pack read, inflate \
             and delta apply)",
            t.wall.as_millis(),
            t.trees,
            t.commits,
            t.graph_bytes >> 10,
            if walk.graph_complete {
                ""
            } else {
                ", over the graph budget: full history walk"
            },
            t.visit.as_millis(),
            t.graph.as_millis(),
        );
    }
    let (hist, todo, walked_bytes, reachable) = match walk {
        Some(walk) if walk.graph_complete => {
            let clean: HashMap<u64, u64> = walk
                .seen
                .iter()
                .filter(|(id, _)| !walk.wanted.contains(*id))
                .map(|(id, &size)| (source::object_key(id.as_bytes()), size))
                .collect();
            let mut prune = source::Prune::new(&walk.graph, clean);
            let hist = source::history_with(opts, Some(&mut prune))?;
            let (reachable, clean_bytes) = hist.reachable.unwrap_or_default();
            for w in &hist.warnings {
                warn(w.clone());
            }
            // As when the walk came after the full history walk, which it followed only when
            // the history held a blob.
            if reachable > 0 {
                for w in &walk.warnings {
                    warn(w.clone());
                }
            }
            let todo = hist.blobs.clone();
            (hist, todo, clean_bytes, reachable)
        }
        Some(walk) => {
            // The trees were too many to keep as a graph: the full history walk, then only
            // the blobs the pack walk did not clear are read again.
            let hist = source::history(opts)?;
            for w in &hist.warnings {
                warn(w.clone());
            }
            if !hist.blobs.is_empty() {
                for w in &walk.warnings {
                    warn(w.clone());
                }
            }
            let mut walked_bytes = 0;
            let mut todo = Vec::new();
            for b in &hist.blobs {
                match walk.seen.get(&b.id) {
                    Some(size) if !walk.wanted.contains(&b.id) => walked_bytes += size,
                    _ => todo.push(b.clone()),
                }
            }
            let n = hist.blobs.len() as u64;
            (hist, todo, walked_bytes, n)
        }
        None => {
            let hist = source::history(opts)?;
            for w in &hist.warnings {
                warn(w.clone());
            }
            let n = hist.blobs.len() as u64;
            let todo = hist.blobs.clone();
            (hist, todo, 0, n)
        }
    };
    let attributed = started.elapsed();
    let bytes = AtomicU64::new(walked_bytes);
    let errors = AtomicU64::new(0);
    let found: Mutex<Vec<(usize, Finding)>> = Mutex::new(Vec::new());
    source::read_blobs(
        &opts.repo,
        &todo,
        max_size,
        || {
            (
                Scanner::new(matcher, &unfiltered, Box::new(warn)),
                Vec::new(),
            )
        },
        |(scanner, local), blob, res| {
            let data = match res {
                Ok(d) => d,
                Err(problem) => {
                    if matches!(problem, BlobProblem::Unreadable(_)) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let (path, _) = &blob.paths[0];
                    warn(format!("{path} ({}): {problem}", blob.id));
                    return;
                }
            };
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            let (first_path, first_commit) = &blob.paths[0];
            local.clear();
            let origin = git_origin(&hist, first_path, *first_commit);
            match hook.and_then(|h| h(data, &origin, &mut |m| warn(m))) {
                Some(found) => local.extend(found),
                None => scanner.scan_any(data, &origin, local),
            }
            if local.is_empty() {
                return;
            }
            let mine = fan_out(matcher, policy, &hist, &blob.paths, local);
            found.lock().expect("findings lock").extend(mine);
        },
    );
    if timing {
        eprintln!(
            "offkey: timing: pack walk {} ms, history walk (attribution) {} ms, {} blobs read and \
             scanned at their paths {} ms",
            walked.as_millis(),
            (attributed - walked).as_millis(),
            todo.len(),
            (started.elapsed() - attributed).as_millis(),
        );
    }
    Ok(GitScan {
        findings: oldest_per_path(found.into_inner().expect("findings lock")),
        blobs: reachable,
        bytes: bytes.into_inner(),
        errors: errors.into_inner() + hist.unreadable,
        shallow: hist.shallow,
    })
}

/// Walk the packs of `opts.repo` (see [`source::walk_packs`]), scanning each blob with no path:
/// a blob is wanted when that scan gives a finding or a warning. `None` when the walk cannot
/// stand in for the per-path scan: a rule whose path allowlist matches the empty path would
/// hide there what it shows at another path.
fn walk_packs(
    matcher: &Matcher,
    unfiltered: &Policy,
    opts: &HistoryOptions,
    max_size: usize,
) -> Option<source::PackWalk> {
    if matcher
        .rules()
        .rules
        .iter()
        .any(|r| r.allow_paths.is_match(""))
    {
        return None;
    }
    let objects = source::open_repo(&opts.repo).ok()?.path().join("objects");
    let origin = Origin {
        source: Some(SourceKind::Git),
        ..Origin::default()
    };
    let walk = source::walk_packs(
        &objects,
        max_size,
        rayon::current_num_threads(),
        || {
            let warned = Arc::new(AtomicBool::new(false));
            let flag = warned.clone();
            let sink = Box::new(move |_: String| flag.store(true, Ordering::Relaxed));
            (Scanner::new(matcher, unfiltered, sink), warned, Vec::new())
        },
        |(scanner, warned, local), data| {
            local.clear();
            warned.store(false, Ordering::Relaxed);
            scanner.scan_any(data, &origin, local);
            !local.is_empty() || warned.load(Ordering::Relaxed)
        },
    );
    Some(walk)
}

/// The findings of one blob, scanned as it was at its first path, for each path it was
/// introduced at (with the commit that did), after that path's allowlists and baseline.
fn fan_out(
    matcher: &Matcher,
    policy: &Policy,
    hist: &History,
    paths: &[(String, usize)],
    local: &[Finding],
) -> Vec<(usize, Finding)> {
    let first_path = &paths[0].0;
    let mut mine = Vec::new();
    for (path, ci) in paths {
        let o = git_origin(hist, path, *ci);
        for f in local {
            // Paths in findings are scrubbed (a file named after a key): so is the part
            // replaced, and what replaces it.
            let shown = f
                .location
                .path
                .replacen(&*scrub_name(first_path), &scrub_name(path), 1);
            let rule_allows = matcher
                .rules()
                .get(&f.rule)
                .is_some_and(|r| r.allow_paths.is_match(&shown));
            if rule_allows || !policy.keeps(&shown, &f.secret.sha256()) {
                continue;
            }
            let mut g = f.clone();
            g.location.path = shown;
            g.location.commit = o.commit.clone();
            g.location.author = o.author.clone();
            if g.location.source == SourceKind::Git {
                g.location.date = o.date.clone();
            }
            mine.push((*ci, g));
        }
    }
    mine
}

/// One finding per (key, path, conversation, message, entry): the one of the oldest commit
/// (commits are numbered oldest first).
fn oldest_per_path(mut all: Vec<(usize, Finding)>) -> Vec<Finding> {
    all.sort_by_key(|a| a.0);
    let mut seen = HashSet::new();
    all.into_iter()
        .filter(|(_, f)| {
            seen.insert((
                f.secret.sha256(),
                f.location.path.clone(),
                f.location.conversation.clone(),
                f.location.message,
                f.location.entry,
            ))
        })
        .map(|(_, f)| f)
        .collect()
}

fn git_origin(hist: &History, path: &str, commit: usize) -> Origin {
    let c = &hist.commits[commit];
    Origin {
        source: Some(SourceKind::Git),
        path: path.to_owned(),
        commit: Some(c.id.clone()),
        author: Some(c.author.clone()),
        date: Some(c.date.clone()),
        ..Origin::default()
    }
}

/// `scan --staged`: findings on the added or changed lines of the files staged in `repo`, with
/// staged line numbers (a finding inside an archive or document is kept whole: it has no line
/// of the staged file).
pub fn scan_staged(scanner: &mut Scanner<'_>, repo: &Path) -> Result<GitScan, GitError> {
    let files = source::staged(repo)?;
    let mut scan = GitScan {
        blobs: files.len() as u64,
        bytes: files.iter().map(|f| f.bytes.len() as u64).sum(),
        ..GitScan::default()
    };
    let mut local = Vec::new();
    for f in files {
        let origin = Origin {
            source: Some(SourceKind::Staged),
            path: f.path.clone(),
            ..Origin::default()
        };
        local.clear();
        scanner.scan_any(&f.bytes, &origin, &mut local);
        scan.findings.extend(local.drain(..).filter(|x| {
            x.location.source != SourceKind::Staged
                || f.added.binary_search(&(x.location.line as u32)).is_ok()
        }));
    }
    Ok(scan)
}
