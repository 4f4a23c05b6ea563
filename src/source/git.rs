//! Git history and the git index as sources (git2). History: every commit reachable from every
//! ref (or a range), each distinct blob read once with the paths and the oldest commit that
//! introduced it there. Index: the staged blobs and which of their lines are added or changed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use git2::{DiffOptions, Oid, Repository, Sort};
use rayon::prelude::*;

/// A git source that cannot be used. Names the repository, range or ref.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Not a repository.
    #[error("{path}: not a git repository ({message})")]
    NotARepo {
        /// The path given.
        path: String,
        /// libgit2's words.
        message: String,
    },
    /// A range or ref that does not resolve.
    #[error("{what}: {message}")]
    BadRev {
        /// The range or ref.
        what: String,
        /// libgit2's words.
        message: String,
    },
    /// Anything else libgit2 refused.
    #[error("{context}: {source}")]
    Git {
        /// What was being done.
        context: String,
        /// libgit2's error.
        source: git2::Error,
    },
}

fn ctx(context: &str) -> impl FnOnce(git2::Error) -> GitError + '_ {
    move |source| GitError::Git {
        context: context.to_owned(),
        source,
    }
}

/// Which history to scan.
#[derive(Debug, Clone, Default)]
pub struct HistoryOptions {
    /// The repository (work tree or bare).
    pub repo: PathBuf,
    /// `BASE..HEAD`: only commits in it.
    pub range: Option<String>,
    /// Only commits at or after this time (Unix seconds).
    pub since: Option<i64>,
}

/// A commit as findings cite it.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    /// Full hex id.
    pub id: String,
    /// `Name <email>`.
    pub author: String,
    /// Author date, RFC 3339.
    pub date: String,
}

/// A distinct blob and where it appears: (path, index into `History::commits` of the oldest
/// commit that put it at that path).
#[derive(Debug, Clone)]
pub struct HistoryBlob {
    /// The blob id.
    pub id: Oid,
    /// Paths it was introduced at, each with its oldest introducing commit.
    pub paths: Vec<(String, usize)>,
}

/// What a history walk found.
#[derive(Debug, Default)]
pub struct History {
    /// Commits in walk order (oldest first).
    pub commits: Vec<CommitInfo>,
    /// Distinct blobs.
    pub blobs: Vec<HistoryBlob>,
    /// The clone is shallow: history is incomplete.
    pub shallow: bool,
    /// Non-fatal problems (a corrupt commit or tree), each naming the object.
    pub warnings: Vec<String>,
    /// How many of the warnings mean history went unscanned (a commit, a tree or the walk
    /// itself unreadable): the scan is then incomplete, an error unless keys were found.
    pub unreadable: u64,
    /// Of a pruned walk ([`history_with`]): every distinct blob of the history, and the bytes of
    /// the clean ones (`blobs` lists only the others).
    pub reachable: Option<(u64, u64)>,
}

/// What a history walk may skip, learned from a pack walk ([`crate::source::walk_packs`]): a
/// commit whose root tree, or a subtree, holds no blob to attribute is not read. Blobs to
/// attribute are those the walk did not see whole (loose, missing, in a pack not walked) and
/// those it was asked to keep; every other blob is *clean*.
pub struct Prune<'a> {
    graph: &'a super::Graph,
    /// Trees holding, at any depth, a blob to attribute or a tree the walk did not see
    /// ([`Prune::sweep`], once the commits are known).
    dirty: HashSet<u64>,
    /// Clean blobs (by [`super::object_key`]) and their sizes.
    clean: HashMap<u64, u64>,
    /// Every blob the trees of the walked commits hold (by key).
    reached: HashSet<u64>,
}

impl<'a> Prune<'a> {
    /// From a pack walk's graph and its clean blobs (key -> size).
    pub fn new(graph: &'a super::Graph, clean: HashMap<u64, u64>) -> Self {
        Prune {
            graph,
            dirty: HashSet::new(),
            clean,
            reached: HashSet::new(),
        }
    }

    /// Before the walk: the trees the commits reach, the dirty ones among every tree, and the
    /// blobs those reached hold (what the full walk would list), in one pass over the graph.
    fn sweep(&mut self, repo: &Repository, commits: &[Oid]) {
        let t = std::time::Instant::now();
        let (kept, mut reached) = reached_trees(repo, commits, self.graph);
        let clean = &self.clean;
        let sweep = self.graph.sweep(
            |b| !clean.contains_key(&b),
            &kept,
            |b| {
                reached.insert(b);
            },
        );
        // A kept tree whose entries the graph could not derive is read with libgit2 (its
        // subtrees were followed already).
        for id in sweep.unknown {
            if let Ok(tree) = repo.find_tree(id) {
                regular_blobs(&tree, &mut reached);
            }
        }
        if super::timing_enabled() {
            eprintln!(
                "offkey: timing: graph sweep {} ms, {} of {} trees hold a blob to attribute, {} blobs reachable",
                t.elapsed().as_millis(),
                sweep.dirty.len(),
                self.graph.tree_count(),
                reached.len()
            );
        }
        self.dirty = sweep.dirty;
        self.reached = reached;
    }

    fn tree_is_dirty(&self, tree: u64) -> bool {
        self.dirty.contains(&tree) || !self.graph.has_tree(tree)
    }

    fn blob_is_clean(&self, id: Oid) -> bool {
        self.clean.contains_key(&super::object_key(id.as_bytes()))
    }
}

/// Open a repository, or say clearly that it is not one.
pub fn open(path: &Path) -> Result<Repository, GitError> {
    Repository::open(path).map_err(|e| GitError::NotARepo {
        path: path.display().to_string(),
        message: e.message().to_owned(),
    })
}

/// Walk the history: every commit from every ref (or the range), oldest first. Each commit's
/// tree is compared with its first parent's (a missing parent, as in a shallow clone, counts as
/// the empty tree), skipping unchanged subtrees by id, so each blob is attributed to the commit
/// that introduced it at each path. The comparisons run in parallel (one repository handle per
/// thread); the attribution is then made in walk order.
pub fn history(opts: &HistoryOptions) -> Result<History, GitError> {
    history_with(opts, None)
}

/// [`history`], reading only the commits and subtrees that `prune` says hold a blob to
/// attribute, and listing only those blobs; [`History::reachable`] then counts every blob
/// (and the bytes of the clean ones) the full walk would have listed.
pub fn history_with(
    opts: &HistoryOptions,
    mut prune: Option<&mut Prune<'_>>,
) -> Result<History, GitError> {
    // Objects come from the repository's own store: re-hashing each one on read (SHA-1 with
    // collision detection) was a fifth of the walk's time.
    git2::opts::strict_hash_verification(false);
    let repo = open(&opts.repo)?;
    let mut walk = repo.revwalk().map_err(ctx("starting the history walk"))?;
    // The commits every ref points at: where a walk cut short by a missing or corrupt object
    // starts again (`readable_commits`).
    let mut tips = Vec::new();
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(ctx("sorting the history walk"))?;
    match &opts.range {
        Some(range) => {
            if range.contains("..") {
                walk.push_range(range).map_err(|e| GitError::BadRev {
                    what: format!("--range {range}"),
                    message: e.message().to_owned(),
                })?;
            } else {
                let obj = repo.revparse_single(range).map_err(|e| GitError::BadRev {
                    what: format!("--range {range}"),
                    message: e.message().to_owned(),
                })?;
                walk.push(obj.id()).map_err(ctx("pushing the range"))?;
            }
        }
        None => {
            for r in repo.references().map_err(ctx("listing refs"))?.flatten() {
                if let Ok(c) = r.peel_to_commit() {
                    walk.push(c.id()).map_err(ctx("pushing a ref"))?;
                    tips.push(c.id());
                }
            }
            if let Ok(head) = repo.head() {
                if let Ok(c) = head.peel_to_commit() {
                    walk.push(c.id()).map_err(ctx("pushing HEAD"))?;
                    tips.push(c.id());
                }
            }
            if tips.is_empty() {
                return Ok(History {
                    shallow: repo.is_shallow(),
                    ..History::default()
                });
            }
        }
    }
    let mut out = History {
        shallow: repo.is_shallow(),
        ..History::default()
    };
    let mut oids = Vec::new();
    let mut cut = None;
    for oid in walk {
        match oid {
            Ok(o) => oids.push(o),
            Err(e) => {
                cut = Some(e.message().to_owned());
                break;
            }
        }
    }
    if let Some(e) = cut {
        // A sorted walk stops at the first commit it cannot read (a truncated or missing
        // pack), having yielded nothing: walk again from the refs, around what is unreadable.
        out.unreadable += 1;
        if opts.range.is_some() {
            out.warnings
                .push(format!("history walk: {e}; the range was not scanned"));
            oids.clear();
        } else {
            out.warnings.push(format!(
                "history walk: {e}; scanning the commits that can be read"
            ));
            oids = readable_commits(&repo, &tips, &mut out);
        }
    }
    if let Some(p) = prune.as_deref_mut() {
        p.sweep(&repo, &oids);
    }
    let prune = prune.as_deref();
    let repo_path = repo.path().to_path_buf();
    drop(repo);
    let changes: Vec<Changes> = oids
        .par_iter()
        .map_init(
            || Repository::open(&repo_path).ok(),
            |handle, oid| -> Changes {
                if let Some(p) = prune {
                    let root = p.graph.commits.get(&super::object_key(oid.as_bytes()));
                    if root.is_some_and(|&t| !p.tree_is_dirty(t)) {
                        return Ok(None);
                    }
                }
                let repo = handle.as_ref().ok_or("cannot open the repository")?;
                commit_changes(repo, *oid, opts.since, prune)
            },
        )
        .collect();
    let mut index: HashMap<Oid, usize> = HashMap::new();
    let mut seen_at: std::collections::HashSet<(Oid, String)> = std::collections::HashSet::new();
    for (oid, change) in oids.iter().zip(changes) {
        let (info, introduced) = match change {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                out.warnings.push(format!("commit {oid}: {e}, skipped"));
                out.unreadable += 1;
                continue;
            }
        };
        let commit_idx = out.commits.len();
        let mut used = false;
        for (path, id) in introduced {
            if !seen_at.insert((id, path.clone())) {
                continue;
            }
            used = true;
            let slot = *index.entry(id).or_insert_with(|| {
                out.blobs.push(HistoryBlob {
                    id,
                    paths: Vec::new(),
                });
                out.blobs.len() - 1
            });
            out.blobs[slot].paths.push((path, commit_idx));
        }
        if used {
            out.commits.push(info);
        }
    }
    if let Some(p) = prune {
        let listed: HashSet<u64> = out
            .blobs
            .iter()
            .map(|b| super::object_key(b.id.as_bytes()))
            .filter(|k| !p.reached.contains(k))
            .collect();
        let all = p.reached.iter().chain(&listed);
        let bytes = all.filter_map(|b| p.clean.get(b)).sum();
        out.reachable = Some(((p.reached.len() + listed.len()) as u64, bytes));
    }
    Ok(out)
}

/// The trees the trees of `commits` reach (with the modes [`diff_trees`] lists): those the
/// pack walk's graph kept (their blobs come from its sweep) and, read with libgit2, those it
/// did not see (a loose commit's), whose blobs are returned. A tree seen by neither is left
/// out, as the walk leaves it out.
fn reached_trees(
    repo: &Repository,
    commits: &[Oid],
    graph: &super::Graph,
) -> (HashSet<u64>, HashSet<u64>) {
    let mut blobs: HashSet<u64> = HashSet::new();
    let mut trees: HashSet<u64> = HashSet::new();
    let mut kept: HashSet<u64> = HashSet::new();
    // Trees to visit: by key when the graph has them, by id otherwise.
    let mut keyed: Vec<u64> = Vec::new();
    let mut by_id: Vec<Oid> = Vec::new();
    for c in commits {
        match graph.commits.get(&super::object_key(c.as_bytes())) {
            Some(&t) => keyed.push(t),
            None => {
                if let Ok(t) = repo.find_commit(*c).map(|c| c.tree_id()) {
                    by_id.push(t);
                }
            }
        }
    }
    loop {
        if let Some(t) = keyed.pop() {
            if !trees.insert(t) {
                continue;
            }
            if let Some(subs) = graph.subtrees(t) {
                kept.insert(t);
                keyed.extend(subs.iter().map(|&s| s & !1));
            }
        } else if let Some(id) = by_id.pop() {
            let k = super::object_key(id.as_bytes());
            if graph.has_tree(k) {
                keyed.push(k);
                continue;
            }
            if !trees.insert(k) {
                continue;
            }
            let Ok(tree) = repo.find_tree(id) else {
                continue;
            };
            for e in tree.iter() {
                if e.kind() == Some(git2::ObjectType::Tree) {
                    by_id.push(e.id());
                }
            }
            regular_blobs(&tree, &mut blobs);
        } else {
            break;
        }
    }
    (kept, blobs)
}

/// Adds the regular files' blobs of `tree` (the modes [`diff_trees`] lists).
fn regular_blobs(tree: &git2::Tree<'_>, blobs: &mut HashSet<u64>) {
    for e in tree.iter() {
        if e.kind() == Some(git2::ObjectType::Blob) && e.filemode() & 0o170000 == 0o100000 {
            blobs.insert(super::object_key(e.id().as_bytes()));
        }
    }
}

/// The commits reachable from `tips` that can be read, parents before children (as the sorted
/// walk gives them); each commit that cannot be read is a warning, and what lies behind it is
/// left out.
fn readable_commits(repo: &Repository, tips: &[Oid], out: &mut History) -> Vec<Oid> {
    let mut order = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // (commit, its parents are already on the stack): a commit is emitted after its parents.
    let mut stack: Vec<(Oid, bool)> = tips.iter().rev().map(|&t| (t, false)).collect();
    while let Some((oid, expanded)) = stack.pop() {
        if expanded {
            order.push(oid);
            continue;
        }
        if !seen.insert(oid) {
            continue;
        }
        match repo.find_commit(oid) {
            Ok(c) => {
                stack.push((oid, true));
                stack.extend(
                    c.parent_ids()
                        .filter(|p| !seen.contains(p))
                        .map(|p| (p, false)),
                );
            }
            Err(e) => {
                out.warnings.push(format!(
                    "commit {oid}: unreadable ({}); the history behind it is not scanned",
                    e.message()
                ));
                out.unreadable += 1;
            }
        }
    }
    order
}

/// A commit's details and the (path, blob) pairs it introduced; `None` when it is before
/// `--since`; `Err` names what could not be read.
type Changes = Result<Option<(CommitInfo, Vec<(String, Oid)>)>, String>;

/// The blobs a commit adds or changes against its first parent, with the commit's details.
fn commit_changes(
    repo: &Repository,
    oid: Oid,
    since: Option<i64>,
    prune: Option<&Prune<'_>>,
) -> Changes {
    let commit = repo
        .find_commit(oid)
        .map_err(|e| format!("unreadable ({})", e.message()))?;
    if since.is_some_and(|s| commit.time().seconds() < s) {
        return Ok(None);
    }
    let tree = commit
        .tree()
        .map_err(|e| format!("tree unreadable ({})", e.message()))?;
    let parent_tree = commit.parent(0).ok().and_then(|p| p.tree().ok());
    let mut introduced = Vec::new();
    diff_trees(
        repo,
        parent_tree.as_ref(),
        &tree,
        "",
        prune,
        &mut introduced,
    )
    .map_err(|e| format!("tree walk failed ({})", e.message()))?;
    let a = commit.author();
    let t = a.when();
    let info = CommitInfo {
        id: oid.to_string(),
        author: format!("{} <{}>", a.name().unwrap_or("?"), a.email().unwrap_or("?")),
        date: rfc3339(t.seconds(), t.offset_minutes()),
    };
    Ok(Some((info, introduced)))
}

/// Blobs in `new` that are not at the same path with the same id in `old`; subtrees with the
/// same id are skipped whole.
fn diff_trees(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: &git2::Tree<'_>,
    prefix: &str,
    prune: Option<&Prune<'_>>,
    out: &mut Vec<(String, Oid)>,
) -> Result<(), git2::Error> {
    for entry in new.iter() {
        let Some(name) = entry.name() else { continue };
        let before = old.and_then(|o| o.get_name(name));
        if before.as_ref().is_some_and(|b| b.id() == entry.id()) {
            continue;
        }
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                if prune.is_some_and(|p| !p.tree_is_dirty(super::object_key(entry.id().as_bytes())))
                {
                    continue;
                }
                let sub = repo.find_tree(entry.id())?;
                let old_sub = before
                    .filter(|b| b.kind() == Some(git2::ObjectType::Tree))
                    .and_then(|b| repo.find_tree(b.id()).ok());
                diff_trees(repo, old_sub.as_ref(), &sub, &path, prune, out)?;
            }
            Some(git2::ObjectType::Blob)
                if matches!(entry.filemode(), 0o100644 | 0o100755 | 0o100664)
                    && !prune.is_some_and(|p| p.blob_is_clean(entry.id())) =>
            {
                out.push((path, entry.id()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn rfc3339(secs: i64, offset_minutes: i32) -> String {
    let off = chrono::FixedOffset::east_opt(offset_minutes * 60)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset is valid"));
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.with_timezone(&off).to_rfc3339())
        .unwrap_or_default()
}

/// Why a blob was not handed over.
#[derive(Debug, Clone)]
pub enum BlobProblem {
    /// Left out on purpose (over `--max-file-size`): a warning, not an error.
    Skipped(String),
    /// Could not be read (a corrupt or missing object): an error, and the scan goes on.
    Unreadable(String),
}

impl std::fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobProblem::Skipped(m) | BlobProblem::Unreadable(m) => f.write_str(m),
        }
    }
}

/// Read every blob once, in parallel (one repository handle per thread), and hand each to
/// `visit` with its bytes or the reason it was not read, and the thread's own state (made by
/// `init`, once per worker: a scanner and its buffers). A blob's size is read from its header
/// first, so one over `max_size` is never inflated.
pub fn read_blobs<S, I, F>(repo: &Path, blobs: &[HistoryBlob], max_size: usize, init: I, visit: F)
where
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, &HistoryBlob, Result<&[u8], BlobProblem>) + Sync + Send,
{
    blobs.par_iter().for_each_init(
        || (Repository::open(repo).ok(), init()),
        |(handle, state), blob| {
            let Some(repo) = handle.as_ref() else {
                visit(
                    state,
                    blob,
                    Err(BlobProblem::Unreadable("cannot open the repository".into())),
                );
                return;
            };
            let size = repo
                .odb()
                .and_then(|odb| odb.read_header(blob.id))
                .map(|(size, _)| size)
                .unwrap_or(0);
            if size > max_size {
                visit(
                    state,
                    blob,
                    Err(BlobProblem::Skipped(format!(
                        "skipped, {size} bytes is over --max-file-size {max_size}"
                    ))),
                );
                return;
            }
            match repo.find_blob(blob.id) {
                Ok(b) => visit(state, blob, Ok(b.content())),
                Err(e) => visit(
                    state,
                    blob,
                    Err(BlobProblem::Unreadable(format!(
                        "blob {} unreadable ({})",
                        blob.id,
                        e.message()
                    ))),
                ),
            }
        },
    );
}

/// A staged file: its staged bytes and the 1-based line numbers added or changed against HEAD.
#[derive(Debug)]
pub struct StagedFile {
    /// Path in the repository.
    pub path: String,
    /// The staged content.
    pub bytes: Vec<u8>,
    /// Added or changed lines, ascending.
    pub added: Vec<u32>,
}

/// What the index would commit: for each staged file, its blob and its added lines
/// (against the empty tree before the first commit). Reads only staged blobs.
pub fn staged(repo_path: &Path) -> Result<Vec<StagedFile>, GitError> {
    let repo = open(repo_path)?;
    let head_tree = repo.head().ok().and_then(|h| h.peel_to_tree().ok());
    let index = repo.index().map_err(ctx("reading the index"))?;
    let mut dopts = DiffOptions::new();
    dopts
        .context_lines(0)
        .ignore_submodules(true)
        .force_text(true);
    let diff = repo
        .diff_tree_to_index(head_tree.as_ref(), Some(&index), Some(&mut dopts))
        .map_err(ctx("diffing the index against HEAD"))?;
    let mut added: HashMap<String, (Oid, Vec<u32>)> = HashMap::new();
    diff.foreach(
        &mut |_, _| true,
        None,
        None,
        Some(&mut |delta, _hunk, line| {
            if line.origin() == '+' {
                if let (Some(p), Some(n)) = (delta.new_file().path(), line.new_lineno()) {
                    added
                        .entry(p.to_string_lossy().replace('\\', "/"))
                        .or_insert_with(|| (delta.new_file().id(), Vec::new()))
                        .1
                        .push(n);
                }
            }
            true
        }),
    )
    .map_err(ctx("reading staged changes"))?;
    let mut out = Vec::new();
    for (path, (id, mut lines)) in added {
        let blob = repo
            .find_blob(id)
            .map_err(ctx(&format!("reading staged blob of {path}")))?;
        lines.sort_unstable();
        out.push(StagedFile {
            path,
            bytes: blob.content().to_vec(),
            added: lines,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
