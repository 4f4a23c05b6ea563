//! Every blob a repository's packs hold, read in delta order (`gix-pack`'s delta-tree
//! traversal, as `git index-pack` resolves a pack): each object is reconstructed once from its
//! base, never by re-applying a delta chain, on every core. libgit2 has no such API: reading
//! blob by blob re-applies each delta chain (see bench/GIT.md for the figures).
//!
//! The walk only says which blobs may matter: a pack that cannot be read whole (truncated,
//! corrupt, missing its index) counts as not walked at all, so each of its blobs is read the
//! way it was before (libgit2, blob by blob), with the same warnings. Loose objects are not
//! walked here: they are few, and read that way too.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use git2::Oid;

/// What the pack walk saw.
#[derive(Debug, Default)]
pub struct PackWalk {
    /// Every blob reconstructed from a pack that was read whole, with its size in bytes.
    pub seen: HashMap<Oid, u64>,
    /// Of those, the ones the visitor asked to see again (or over the size limit, never
    /// handed to it).
    pub wanted: HashSet<Oid>,
    /// Packs that could not be walked, each named with the reason; their blobs are not in
    /// `seen`.
    pub warnings: Vec<String>,
    /// The trees and commits of the packs walked whole, as a graph of [`key`]s: what lets the
    /// history walk skip every commit and subtree that holds no blob it must attribute.
    pub graph: Graph,
    /// Whether `graph` holds every tree and commit of the packs walked: it is dropped when the
    /// trees hold more than [`GRAPH_BUDGET`] entries.
    pub graph_complete: bool,
    /// Where the walk's time went.
    pub timing: WalkTiming,
}

/// The most tree entries the graph keeps (8 bytes each: 32 MiB). rust-lang/cargo's 129,000
/// trees hold about 2.5 million; curl's 205,000 trees hold about 25 million (large flat
/// directories changed often), which would cost 200 MiB: such a history keeps the full walk.
pub const GRAPH_BUDGET: u64 = 4 << 20;

/// Time spent in the pack walk, summed over its threads.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalkTiming {
    /// Wall-clock time of the whole walk.
    pub wall: std::time::Duration,
    /// Thread time in the visitor (scanning blobs).
    pub visit: std::time::Duration,
    /// Thread time parsing trees and commits into the graph.
    pub graph: std::time::Duration,
    /// Trees and commits parsed.
    pub trees: u64,
    /// Commits parsed.
    pub commits: u64,
}

/// The compact key of an object id: its first 64 bits, the lowest one cleared (tree edges use
/// it to say "a tree"). Two of the objects of one repository share a key with a probability
/// of about n² / 2⁶⁴ (10⁻⁹ for 200,000 objects); a shared key can only make a subtree look as
/// if it held a blob to attribute (read for nothing), or a missing blob look present.
pub fn key(id: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[..8]);
    u64::from_le_bytes(b) & !1
}

/// Trees (their entries that are blobs or trees, as keys; a tree's key has its lowest bit
/// set in an edge) and commits (their root tree's key), of the packs walked whole.
#[derive(Debug, Default)]
pub struct Graph {
    /// Tree key -> its range in `edges`.
    pub trees: HashMap<u64, (u32, u32)>,
    /// Entries of every tree, back to back: a key, `| 1` for a subtree.
    pub edges: Vec<u64>,
    /// Commit key -> its root tree's key.
    pub commits: HashMap<u64, u64>,
}

impl Graph {
    /// The entries of a tree the walk saw (`None`: not in a pack walked whole).
    pub fn entries(&self, tree: u64) -> Option<&[u64]> {
        self.trees
            .get(&tree)
            .map(|&(at, n)| &self.edges[at as usize..(at + n) as usize])
    }

    fn merge(&mut self, other: PackGraph) {
        for (tree, entries) in other.trees {
            if self.trees.contains_key(&tree) {
                continue;
            }
            let at = self.edges.len() as u32;
            self.edges.extend_from_slice(&entries);
            self.trees.insert(tree, (at, entries.len() as u32));
        }
        self.commits.extend(other.commits);
    }

    /// The trees that hold, at any depth, a blob for which `dirty_blob` says yes, or a tree
    /// the walk did not see (a loose or missing one: what it holds is not known).
    pub fn dirty_trees(&self, dirty_blob: impl Fn(u64) -> bool) -> HashSet<u64> {
        // Post-order over the graph with an explicit stack (trees nest deep); each tree once.
        let mut state: HashMap<u64, bool> = HashMap::with_capacity(self.trees.len());
        let mut stack: Vec<(u64, usize)> = Vec::new();
        for &root in self.trees.keys() {
            if state.contains_key(&root) {
                continue;
            }
            stack.push((root, 0));
            while let Some(&mut (tree, ref mut next)) = stack.last_mut() {
                let entries = self.entries(tree).unwrap_or(&[]);
                let mut descend = None;
                while *next < entries.len() {
                    let e = entries[*next];
                    *next += 1;
                    if e & 1 == 1 {
                        let sub = e & !1;
                        if !self.trees.contains_key(&sub) {
                            state.insert(tree, true);
                        } else if !state.contains_key(&sub) {
                            descend = Some(sub);
                            break;
                        } else if state[&sub] {
                            state.insert(tree, true);
                        }
                    } else if dirty_blob(e) {
                        state.insert(tree, true);
                    }
                }
                match descend {
                    Some(sub) => {
                        // Marks it as on the way (a cycle is impossible in git, but a shared
                        // key must not loop).
                        state.insert(sub, false);
                        stack.push((sub, 0));
                    }
                    None => {
                        state.entry(tree).or_insert(false);
                        stack.pop();
                        if let Some(&(parent, _)) = stack.last() {
                            if state[&tree] {
                                state.insert(parent, true);
                            }
                        }
                    }
                }
            }
        }
        state
            .into_iter()
            .filter(|&(_, d)| d)
            .map(|(t, _)| t)
            .collect()
    }
}

/// One pack's trees and commits, merged into the [`Graph`] only if the whole pack was walked.
#[derive(Default)]
struct PackGraph {
    trees: Vec<(u64, Vec<u64>)>,
    commits: Vec<(u64, u64)>,
}

/// The pack indexes of an objects directory and of its alternates (`objects/info/alternates`,
/// one directory a line, relative ones from the objects directory), sorted, each once.
fn pack_indexes(objects: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![objects.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() && dirs.len() < 16 {
        let alternates = dirs[i].join("info/alternates");
        if let Ok(text) = std::fs::read_to_string(&alternates) {
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let dir = dirs[i].join(line);
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
        i += 1;
    }
    let mut idxs = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir.join("pack")) else {
            continue;
        };
        idxs.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "idx")),
        );
    }
    idxs.sort();
    idxs.dedup();
    idxs
}

/// One traversal thread's state: made by `init` for each thread the traversal starts (the
/// traversal clones its processor once per thread).
struct Worker<'w, S, I, F> {
    init: &'w I,
    visit: &'w F,
    state: S,
    max_size: usize,
    found: &'w Mutex<Vec<(Oid, u64, bool)>>,
    graph: &'w Mutex<PackGraph>,
    visit_ns: &'w AtomicU64,
    graph_ns: &'w AtomicU64,
    /// Tree entries recorded so far, over every thread (past [`GRAPH_BUDGET`]: no more).
    recorded: &'w AtomicU64,
    edges: Vec<u64>,
}

impl<S, I: Fn() -> S, F> Clone for Worker<'_, S, I, F> {
    fn clone(&self) -> Self {
        Worker {
            init: self.init,
            visit: self.visit,
            state: (self.init)(),
            max_size: self.max_size,
            found: self.found,
            graph: self.graph,
            visit_ns: self.visit_ns,
            graph_ns: self.graph_ns,
            recorded: self.recorded,
            edges: Vec::new(),
        }
    }
}

fn nanos(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

/// Walk every pack of the repository whose objects directory is `objects` (and of its
/// alternates) in delta order on `threads` threads, handing each blob of at most `max_size`
/// bytes to `visit` with the thread's own state (made by `init`); `visit` says whether the blob
/// is wanted.
pub fn walk_packs<S, I, F>(
    objects: &Path,
    max_size: usize,
    threads: usize,
    init: I,
    visit: F,
) -> PackWalk
where
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, &[u8]) -> bool + Sync + Send,
{
    let mut out = PackWalk::default();
    let start = Instant::now();
    let (visit_ns, graph_ns, recorded) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    for idx in pack_indexes(objects) {
        let found = Mutex::new(Vec::new());
        let graph = Mutex::new(PackGraph::default());
        let worker = Worker {
            init: &init,
            visit: &visit,
            state: init(),
            max_size,
            found: &found,
            graph: &graph,
            visit_ns: &visit_ns,
            graph_ns: &graph_ns,
            recorded: &recorded,
            edges: Vec::new(),
        };
        match walk_pack(&idx, threads, worker) {
            Ok(()) => {
                for (id, size, wanted) in found.into_inner().expect("pack walk lock") {
                    out.seen.insert(id, size);
                    if wanted {
                        out.wanted.insert(id);
                    }
                }
                let graph = graph.into_inner().expect("pack walk lock");
                out.timing.trees += graph.trees.len() as u64;
                out.timing.commits += graph.commits.len() as u64;
                if recorded.load(Ordering::Relaxed) <= GRAPH_BUDGET {
                    out.graph.merge(graph);
                }
            }
            Err(e) => out.warnings.push(format!(
                "{}: cannot be walked in delta order ({e}); its blobs are read one by one",
                idx.with_extension("pack").display()
            )),
        }
    }
    out.graph_complete = recorded.into_inner() <= GRAPH_BUDGET;
    if !out.graph_complete {
        out.graph = Graph::default();
    }
    out.timing.wall = start.elapsed();
    out.timing.visit = std::time::Duration::from_nanos(visit_ns.into_inner());
    out.timing.graph = std::time::Duration::from_nanos(graph_ns.into_inner());
    out
}

fn walk_pack<S, I, F>(
    idx: &Path,
    threads: usize,
    mut worker: Worker<'_, S, I, F>,
) -> Result<(), String>
where
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, &[u8]) -> bool + Sync + Send,
{
    let index = gix_pack::index::File::at(idx, gix_hash::Kind::Sha1).map_err(|e| e.to_string())?;
    let pack = gix_pack::data::File::at(idx.with_extension("pack"), gix_hash::Kind::Sha1)
        .map_err(|e| e.to_string())?;
    // An entry's header says how big it inflates, and the traversal reserves (and zeroes) that
    // much first: without a limit a few bytes of pack claiming petabytes take all memory. An
    // object over the size limit is never scanned from the walk anyway.
    let alloc_limit = worker.max_size;
    index
        .traverse_with_index(
            &pack,
            move |kind,
                  data: &[u8],
                  entry: &gix_pack::index::Entry,
                  _: &dyn gix_utils::progress::Progress| {
                // The whole worker, not its fields, is the closure's: cloning the closure
                // clones the worker (a fresh state per thread).
                let worker = &mut worker;
                match kind {
                    gix_object::Kind::Blob => {
                        let id = Oid::from_bytes(entry.oid.as_slice()).expect("a SHA-1 id");
                        let t = Instant::now();
                        let wanted =
                            data.len() > worker.max_size || (worker.visit)(&mut worker.state, data);
                        worker.visit_ns.fetch_add(nanos(t), Ordering::Relaxed);
                        worker.found.lock().expect("pack walk lock").push((
                            id,
                            data.len() as u64,
                            wanted,
                        ));
                    }
                    gix_object::Kind::Tree
                        if worker.recorded.load(Ordering::Relaxed) <= GRAPH_BUDGET =>
                    {
                        let t = Instant::now();
                        worker.edges.clear();
                        for e in gix_object::TreeRefIter::from_bytes(data, gix_hash::Kind::Sha1) {
                            // A tree that does not parse is read again by the history walk
                            // (which names it): as a tree the walk did not see.
                            let Ok(e) = e else { return Ok(()) };
                            if e.mode.is_tree() {
                                worker.edges.push(key(e.oid.as_bytes()) | 1);
                            } else if !e.mode.is_commit() && !e.mode.is_link() {
                                // What libgit2 calls a blob (any other mode).
                                worker.edges.push(key(e.oid.as_bytes()));
                            }
                        }
                        let n = worker.edges.len() as u64;
                        if worker.recorded.fetch_add(n, Ordering::Relaxed) + n > GRAPH_BUDGET {
                            // Over the budget: the graph is dropped, this tree is not kept.
                            worker.graph_ns.fetch_add(nanos(t), Ordering::Relaxed);
                            return Ok(());
                        }
                        let tree = (key(entry.oid.as_slice()), worker.edges.clone());
                        worker
                            .graph
                            .lock()
                            .expect("pack walk lock")
                            .trees
                            .push(tree);
                        worker.graph_ns.fetch_add(nanos(t), Ordering::Relaxed);
                    }
                    gix_object::Kind::Commit => {
                        let mut it =
                            gix_object::CommitRefIter::from_bytes(data, gix_hash::Kind::Sha1);
                        if let Ok(tree) = it.tree_id() {
                            let c = (key(entry.oid.as_slice()), key(tree.as_slice()));
                            worker.graph.lock().expect("pack walk lock").commits.push(c);
                        }
                    }
                    gix_object::Kind::Tree | gix_object::Kind::Tag => {}
                }
                Ok(())
            },
            &mut gix_utils::progress::Discard,
            &AtomicBool::new(false),
            gix_pack::index::traverse::with_index::Options {
                thread_limit: Some(threads),
                // Objects come from the repository's own store (as with libgit2's reads, whose
                // hash verification is off too); a damaged object still fails to inflate.
                check:
                    gix_pack::index::traverse::SafetyCheck::SkipFileAndObjectChecksumVerification,
                alloc_limit_bytes: Some(alloc_limit),
            },
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}
