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

/// The most bytes the graph keeps (48 MiB). A tree that is a delta of another is kept as the
/// delta's copy instructions and the entries it inserts, not as every entry: curl's 205,000
/// trees hold about 25 million entries (large flat directories changed often, 200 MiB at
/// 8 bytes an entry), nearly all copied from their base. A history whose trees still go over
/// keeps the full walk.
pub const GRAPH_BUDGET: u64 = 48 << 20;

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
    /// Bytes the graph took (over [`GRAPH_BUDGET`]: dropped).
    pub graph_bytes: u64,
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

/// One tree of a pack walked whole.
#[derive(Debug, Clone)]
struct TreeRec {
    id: [u8; 20],
    /// The pack (in the order they were merged) and the tree's offset in it: a delta's base
    /// lies before it in the same pack.
    pack: u32,
    offset: u64,
    /// Its subtrees' keys, in `Graph::subs`.
    subs: (u32, u32),
    /// Its blob entries, in `Graph::blob_keys` / `blob_offs`: every one for a tree stored
    /// whole, those the delta inserts for a delta.
    blobs: (u32, u32),
    delta: Option<DeltaRec>,
}

/// A tree stored as a delta of the tree at `base` (a pack offset, same pack).
#[derive(Debug, Clone, Copy)]
struct DeltaRec {
    base: u64,
    /// Its copy instructions of at least an object id's length, in `Graph::copies`.
    copies: (u32, u32),
    /// How many of its blob entries lie wholly inside a copy, and the wrapping sum of their
    /// keys: what the entries derived from the base must match, or the tree counts as unknown.
    copied: u32,
    sum: u64,
}

/// A tree's blob entries while [`Graph::expand`] needs them: key, id offset, whether the
/// entry is new in this tree, and the visitor's flag.
#[derive(Debug, Default, Clone)]
struct Entries {
    keys: Vec<u64>,
    offs: Vec<u32>,
    new: Vec<bool>,
    tags: Vec<bool>,
}

impl Entries {
    fn clear(&mut self) {
        self.keys.clear();
        self.offs.clear();
        self.new.clear();
        self.tags.clear();
    }

    fn push(&mut self, off: u32, key: u64, new: bool, tag: bool) {
        self.offs.push(off);
        self.keys.push(key);
        self.new.push(new);
        self.tags.push(tag);
    }
}

/// A delta's copy instruction: `len` bytes of the base from `src` land at `dst`.
#[derive(Debug, Clone, Copy)]
struct CopyOp {
    src: u32,
    dst: u32,
    len: u32,
}

/// Trees (their blob entries and subtrees, as keys) and commits (their root tree's key), of
/// the packs walked whole. A tree that is a delta of another tree is kept as its delta; its
/// entries are derived from its base's when needed ([`Graph::expand`]).
#[derive(Debug, Default)]
pub struct Graph {
    /// Tree key -> its record (the first, if two packs hold it).
    trees: HashMap<u64, u32>,
    recs: Vec<TreeRec>,
    subs: Vec<u64>,
    blob_keys: Vec<u64>,
    blob_offs: Vec<u32>,
    copies: Vec<CopyOp>,
    /// Commit key -> its root tree's key.
    pub commits: HashMap<u64, u64>,
    packs: u32,
}

fn span(v: (u32, u32)) -> std::ops::Range<usize> {
    v.0 as usize..(v.0 + v.1) as usize
}

impl Graph {
    /// Whether the walk kept this tree.
    pub fn has_tree(&self, tree: u64) -> bool {
        self.trees.contains_key(&tree)
    }

    /// The subtrees of a tree the walk kept (`None`: not in a pack walked whole).
    pub fn subtrees(&self, tree: u64) -> Option<&[u64]> {
        self.trees
            .get(&tree)
            .map(|&i| &self.subs[span(self.recs[i as usize].subs)])
    }

    /// How many trees the walk kept.
    pub fn tree_count(&self) -> usize {
        self.recs.len()
    }

    fn merge(&mut self, other: Graph) {
        let (subs, blobs, copies) = (
            self.subs.len() as u32,
            self.blob_keys.len() as u32,
            self.copies.len() as u32,
        );
        let first = self.recs.len() as u32;
        self.subs.extend_from_slice(&other.subs);
        self.blob_keys.extend_from_slice(&other.blob_keys);
        self.blob_offs.extend_from_slice(&other.blob_offs);
        self.copies.extend_from_slice(&other.copies);
        for (n, mut r) in other.recs.into_iter().enumerate() {
            r.pack = self.packs;
            r.subs.0 += subs;
            r.blobs.0 += blobs;
            if let Some(d) = &mut r.delta {
                d.copies.0 += copies;
            }
            self.trees.entry(key(&r.id)).or_insert(first + n as u32);
            self.recs.push(r);
        }
        self.packs += 1;
        self.commits.extend(other.commits);
    }

    /// Every tree's blob entries (as keys), each tree after its delta base: `visit` gets the
    /// record's index, its base's (when its entries were derived from it), its entries, whether
    /// each is new (not copied from the base: every entry of a tree stored whole), and a flag
    /// per entry that a copied entry inherits from the base's and `visit` sets for new ones
    /// (so a visitor looks at each new entry once, not at all 25 million of curl's). A delta whose base was not kept, or whose derived
    /// entries do not match what the walk counted, is *unknown*: not visited, `false` in the
    /// answer (such a tree is read again like one the walk did not see).
    fn expand(
        &self,
        mut visit: impl FnMut(usize, Option<usize>, &[u64], &[bool], &mut [bool]),
    ) -> Vec<bool> {
        let n = self.recs.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&i| (self.recs[i as usize].pack, self.recs[i as usize].offset));
        let at: HashMap<(u32, u64), u32> = order
            .iter()
            .map(|&i| {
                (
                    (self.recs[i as usize].pack, self.recs[i as usize].offset),
                    i,
                )
            })
            .collect();
        let base_of: Vec<Option<u32>> = self
            .recs
            .iter()
            .map(|r| r.delta.and_then(|d| at.get(&(r.pack, d.base)).copied()))
            .collect();
        drop(at);
        let mut pending = vec![0u32; n];
        for b in base_of.iter().flatten() {
            pending[*b as usize] += 1;
        }
        let mut live: HashMap<u32, Entries> = HashMap::new();
        let mut known = vec![false; n];
        let mut e = Entries::default();
        for &i in &order {
            let r = &self.recs[i as usize];
            e.clear();
            let mut derived_from = None;
            let ok = match (r.delta, base_of[i as usize]) {
                (None, _) => {
                    e.keys.extend_from_slice(&self.blob_keys[span(r.blobs)]);
                    e.offs.extend_from_slice(&self.blob_offs[span(r.blobs)]);
                    e.new.resize(e.keys.len(), true);
                    e.tags.resize(e.keys.len(), false);
                    true
                }
                (Some(d), Some(b)) if known[b as usize] => {
                    derived_from = Some(b as usize);
                    self.derive(r, d, &live[&b], &mut e)
                }
                _ => false,
            };
            if let Some(b) = base_of[i as usize] {
                pending[b as usize] -= 1;
                if pending[b as usize] == 0 {
                    live.remove(&b);
                }
            }
            known[i as usize] = ok;
            if ok {
                visit(i as usize, derived_from, &e.keys, &e.new, &mut e.tags);
                if pending[i as usize] > 0 {
                    live.insert(i, e.clone());
                }
            }
        }
        known
    }

    /// A delta tree's blob entries, sorted by offset: the base's that its copies carry over
    /// (with their tags), merged with those it inserts. `false` if they do not match what the
    /// walk counted.
    fn derive(&self, r: &TreeRec, d: DeltaRec, base: &Entries, e: &mut Entries) -> bool {
        let mut copied: Vec<(u32, usize)> = Vec::new();
        for c in &self.copies[span(d.copies)] {
            let end = c.src as u64 + c.len as u64;
            let mut j = base.offs.partition_point(|&o| o < c.src);
            while j < base.offs.len() && base.offs[j] as u64 + 20 <= end {
                copied.push((c.dst + (base.offs[j] - c.src), j));
                j += 1;
            }
        }
        let sum = copied
            .iter()
            .fold(0u64, |a, &(_, j)| a.wrapping_add(base.keys[j]));
        if copied.len() != d.copied as usize || sum != d.sum {
            return false;
        }
        let (nk, no) = (
            &self.blob_keys[span(r.blobs)],
            &self.blob_offs[span(r.blobs)],
        );
        let (mut a, mut b) = (0, 0);
        while a < copied.len() || b < nk.len() {
            if b == nk.len() || (a < copied.len() && copied[a].0 < no[b]) {
                let j = copied[a].1;
                e.push(copied[a].0, base.keys[j], false, base.tags[j]);
                a += 1;
            } else {
                e.push(no[b], nk[b], true, false);
                b += 1;
            }
        }
        true
    }

    /// The trees that hold, at any depth, a blob for which `dirty_blob` says yes, or a tree
    /// the walk did not see or whose entries are unknown (what it holds is not known).
    pub fn dirty_trees(&self, dirty_blob: impl Fn(u64) -> bool) -> HashSet<u64> {
        self.sweep(dirty_blob, &HashSet::new(), |_| {}).dirty
    }

    /// One pass over every tree's entries ([`Graph::expand`]) for two answers: the trees that
    /// hold, at any depth, a blob for which `dirty_blob` says yes, or a tree the walk did not
    /// see or whose entries are unknown (what it holds is not known); and the blob entries of
    /// the trees in `listed`, each given to `blob` (a blob may come more than once), with the
    /// ids of those of them whose entries are unknown, to be read another way.
    pub fn sweep(
        &self,
        dirty_blob: impl Fn(u64) -> bool,
        listed: &HashSet<u64>,
        mut blob: impl FnMut(u64),
    ) -> Sweep {
        let n = self.recs.len();
        let mut dirty = vec![false; n];
        // A tree derived from a base that is listed too holds the base's copied entries,
        // given already: only its new ones are.
        let mut was_listed = vec![false; n];
        let known = self.expand(|i, base, keys, new, tags| {
            for j in 0..keys.len() {
                if new[j] {
                    tags[j] = dirty_blob(keys[j]);
                }
            }
            dirty[i] = tags.iter().any(|&t| t);
            if !listed.is_empty() && listed.contains(&key(&self.recs[i].id)) {
                was_listed[i] = true;
                let only_new = base.is_some_and(|b| was_listed[b]);
                for (j, &k) in keys.iter().enumerate() {
                    if !only_new || new[j] {
                        blob(k);
                    }
                }
            }
        });
        let mut unknown: Vec<Oid> = self
            .recs
            .iter()
            .zip(&known)
            .filter(|(r, k)| !**k && listed.contains(&key(&r.id)))
            .filter_map(|(r, _)| Oid::from_bytes(&r.id).ok())
            .collect();
        unknown.sort();
        unknown.dedup();
        for (d, k) in dirty.iter_mut().zip(&known) {
            *d |= !k;
        }
        // Post-order over the subtrees with an explicit stack (trees nest deep); each tree
        // once. A tree is marked when first met (a cycle is impossible in git, but a shared
        // key must not loop).
        let mut met = vec![false; n];
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if met[root] {
                continue;
            }
            met[root] = true;
            stack.push((root, 0));
            while let Some(&mut (t, ref mut next)) = stack.last_mut() {
                let subs = &self.subs[span(self.recs[t].subs)];
                let mut descend = None;
                while *next < subs.len() {
                    let s = subs[*next];
                    *next += 1;
                    match self.trees.get(&s) {
                        None => dirty[t] = true,
                        Some(&si) if !met[si as usize] => {
                            descend = Some(si as usize);
                            break;
                        }
                        Some(&si) => dirty[t] |= dirty[si as usize],
                    }
                }
                match descend {
                    Some(si) => {
                        met[si] = true;
                        stack.push((si, 0));
                    }
                    None => {
                        stack.pop();
                        if let Some(&(parent, _)) = stack.last() {
                            dirty[parent] |= dirty[t];
                        }
                    }
                }
            }
        }
        let dirty = (0..n)
            .filter(|&i| dirty[i])
            .map(|i| key(&self.recs[i].id))
            .collect();
        Sweep { dirty, unknown }
    }
}

/// What [`Graph::sweep`] found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Keys of the trees that hold a blob to attribute, or something unknown, at any depth.
    pub dirty: HashSet<u64>,
    /// Listed trees whose entries are unknown.
    pub unknown: Vec<Oid>,
}

/// A tree's entries as the walk keeps them. Modes as libgit2 reads them: `40000` a tree,
/// `160000` a submodule and `120000` a link (neither kept), anything else a blob. `None` if
/// the tree does not parse.
fn tree_entries(data: &[u8], subs: &mut Vec<u64>, blobs: &mut Vec<(u32, u64)>) -> Option<()> {
    let mut i = 0;
    while i < data.len() {
        let sp = memchr::memchr(b' ', &data[i..])? + i;
        let mut mode = 0u32;
        for &c in &data[i..sp] {
            if !(b'0'..=b'7').contains(&c) || mode > 0o7777777 {
                return None;
            }
            mode = mode * 8 + (c - b'0') as u32;
        }
        let nul = memchr::memchr(0, &data[sp..])? + sp;
        let id_at = nul + 1;
        let id = data.get(id_at..id_at + 20)?;
        match mode & 0o170000 {
            0o040000 => subs.push(key(id)),
            0o160000 | 0o120000 => {}
            _ => blobs.push((u32::try_from(id_at).ok()?, key(id))),
        }
        i = id_at + 20;
    }
    Some(())
}

/// A git delta's copy instructions of at least 20 bytes (an object id); `None` if it does not
/// parse or does not produce `result_len` bytes.
fn delta_copies(d: &[u8], result_len: usize, out: &mut Vec<CopyOp>) -> Option<()> {
    fn varint(d: &[u8], i: &mut usize) -> Option<u64> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = *d.get(*i)?;
            *i += 1;
            v |= ((b & 0x7f) as u64).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }
    let mut i = 0;
    let _base_len = varint(d, &mut i)?;
    if varint(d, &mut i)? != result_len as u64 {
        return None;
    }
    let mut dst = 0u64;
    while i < d.len() {
        let cmd = d[i];
        i += 1;
        if cmd & 0x80 != 0 {
            let (mut off, mut size) = (0u64, 0u64);
            for b in 0..4 {
                if cmd & (1 << b) != 0 {
                    off |= (*d.get(i)? as u64) << (8 * b);
                    i += 1;
                }
            }
            for b in 0..3 {
                if cmd & (0x10 << b) != 0 {
                    size |= (*d.get(i)? as u64) << (8 * b);
                    i += 1;
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            if size >= 20 {
                out.push(CopyOp {
                    src: u32::try_from(off).ok()?,
                    dst: u32::try_from(dst).ok()?,
                    len: u32::try_from(size).ok()?,
                });
            }
            dst += size;
        } else if cmd != 0 {
            i += cmd as usize;
            dst += cmd as u64;
        } else {
            return None;
        }
    }
    (i == d.len() && dst == result_len as u64).then_some(())
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
    graph: &'w Mutex<Graph>,
    visit_ns: &'w AtomicU64,
    graph_ns: &'w AtomicU64,
    /// Graph bytes recorded so far, over every thread (past [`GRAPH_BUDGET`]: no more).
    recorded: &'w AtomicU64,
    scratch: TreeScratch,
}

/// One thread's buffers for recording a tree.
#[derive(Default)]
struct TreeScratch {
    inflate: gix_zlib::Inflate,
    delta: Vec<u8>,
    subs: Vec<u64>,
    blobs: Vec<(u32, u64)>,
    copies: Vec<CopyOp>,
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
            scratch: TreeScratch::default(),
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
        let graph = Mutex::new(Graph::default());
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
            scratch: TreeScratch::default(),
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
                out.timing.trees += graph.recs.len() as u64;
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
    out.timing.graph_bytes = recorded.into_inner();
    out.graph_complete = out.timing.graph_bytes <= GRAPH_BUDGET;
    if !out.graph_complete {
        out.graph = Graph::default();
    }
    out.timing.wall = start.elapsed();
    out.timing.visit = std::time::Duration::from_nanos(visit_ns.into_inner());
    out.timing.graph = std::time::Duration::from_nanos(graph_ns.into_inner());
    out
}

/// Keep one tree in the pack's graph: its subtrees, and its blob entries, or for a tree stored
/// as an offset delta of another (nearly all but the newest version of each directory) the
/// delta's copies and only the entries it inserts. A tree that does not parse is not kept:
/// the history walk reads it again (and names it), as a tree the walk did not see.
fn record_tree<S, I, F>(
    pack: &gix_pack::data::File,
    entry: &gix_pack::index::Entry,
    data: &[u8],
    worker: &mut Worker<'_, S, I, F>,
) {
    let sc = &mut worker.scratch;
    sc.subs.clear();
    sc.blobs.clear();
    sc.copies.clear();
    if tree_entries(data, &mut sc.subs, &mut sc.blobs).is_none() {
        return;
    }
    // An offset delta (its base earlier in this pack): its instructions.
    let delta = pack.entry(entry.pack_offset).ok().and_then(|e| {
        let gix_pack::data::entry::Header::OfsDelta { base_distance } = e.header else {
            return None;
        };
        let base = e.checked_base_pack_offset(base_distance)?;
        let size = usize::try_from(e.decompressed_size).ok()?;
        if size > (16 << 20) {
            return None;
        }
        sc.delta.resize(size, 0);
        pack.decompress_entry(&e, &mut sc.inflate, &mut sc.delta)
            .ok()?;
        delta_copies(&sc.delta, data.len(), &mut sc.copies)?;
        Some(base)
    });
    if delta.is_none() {
        sc.copies.clear();
    }
    let (mut copied, mut sum) = (0u32, 0u64);
    if delta.is_some() {
        // Entries whose id lies wholly inside one copy come from the base; the rest are new.
        let copies = &sc.copies;
        sc.blobs.retain(|&(at, k)| {
            let j = copies.partition_point(|c| c.dst <= at);
            let inside = j > 0 && {
                let c = copies[j - 1];
                at as u64 + 20 <= c.dst as u64 + c.len as u64
            };
            if inside {
                copied += 1;
                sum = sum.wrapping_add(k);
            }
            !inside
        });
    }
    let bytes = (sc.blobs.len() * 12 + sc.subs.len() * 8 + sc.copies.len() * 12) as u64
        + std::mem::size_of::<TreeRec>() as u64;
    if worker.recorded.fetch_add(bytes, Ordering::Relaxed) + bytes > GRAPH_BUDGET {
        // Over the budget: the graph is dropped, this tree is not kept.
        return;
    }
    let mut g = worker.graph.lock().expect("pack walk lock");
    let g = &mut *g;
    let subs = (g.subs.len() as u32, sc.subs.len() as u32);
    g.subs.extend_from_slice(&sc.subs);
    let blobs = (g.blob_keys.len() as u32, sc.blobs.len() as u32);
    g.blob_keys.extend(sc.blobs.iter().map(|&(_, k)| k));
    g.blob_offs.extend(sc.blobs.iter().map(|&(at, _)| at));
    let delta = delta.map(|base| {
        let copies = (g.copies.len() as u32, sc.copies.len() as u32);
        g.copies.extend_from_slice(&sc.copies);
        DeltaRec {
            base,
            copies,
            copied,
            sum,
        }
    });
    let mut id = [0u8; 20];
    id.copy_from_slice(entry.oid.as_slice());
    g.recs.push(TreeRec {
        id,
        pack: 0,
        offset: entry.pack_offset,
        subs,
        blobs,
        delta,
    });
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
    let pack_ref = &pack;
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
                        record_tree(pack_ref, entry, data, worker);
                        worker.graph_ns.fetch_add(nanos(t), Ordering::Relaxed);
                    }
                    gix_object::Kind::Commit => {
                        let mut it =
                            gix_object::CommitRefIter::from_bytes(data, gix_hash::Kind::Sha1);
                        if let Ok(tree) = it.tree_id() {
                            let c = (key(entry.oid.as_slice()), key(tree.as_slice()));
                            worker
                                .graph
                                .lock()
                                .expect("pack walk lock")
                                .commits
                                .insert(c.0, c.1);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, name: &str, id: u8) -> Vec<u8> {
        let mut e = format!("{mode} {name}\0").into_bytes();
        e.extend_from_slice(&[id; 20]);
        e
    }

    #[test]
    fn tree_entries_sorts_blobs_subtrees_and_skips_links_and_submodules() {
        let mut t = entry("100644", "a.env", 1);
        t.extend(entry("40000", "dir", 2));
        t.extend(entry("120000", "link", 3));
        t.extend(entry("160000", "sub", 4));
        t.extend(entry("100755", "run.sh", 5));
        let (mut subs, mut blobs) = (Vec::new(), Vec::new());
        tree_entries(&t, &mut subs, &mut blobs).expect("parses");
        assert_eq!(subs, vec![key(&[2; 20])]);
        let ids: Vec<u64> = blobs.iter().map(|b| b.1).collect();
        assert_eq!(ids, vec![key(&[1; 20]), key(&[5; 20])]);
        // Each offset is where the id starts.
        assert_eq!(&t[blobs[0].0 as usize..][..20], &[1; 20]);
        assert_eq!(&t[blobs[1].0 as usize..][..20], &[5; 20]);
        assert!(tree_entries(&t[..t.len() - 1], &mut subs, &mut blobs).is_none());
        assert!(tree_entries(b"10x644 a\0", &mut subs, &mut blobs).is_none());
    }

    #[test]
    fn delta_copies_keeps_copies_an_id_long_and_checks_the_length() {
        // base 100 bytes, result 60: copy 40 from offset 10, insert 5, copy 15 from 0.
        let d = [
            100u8,
            60,
            0x80 | 0x01 | 0x10,
            10,
            40,
            5,
            b'a',
            b'b',
            b'c',
            b'd',
            b'e',
            0x80 | 0x10,
            15,
        ];
        let mut out = Vec::new();
        delta_copies(&d, 60, &mut out).expect("parses");
        assert_eq!(out.len(), 1, "the 15-byte copy cannot hold an id");
        assert_eq!((out[0].src, out[0].dst, out[0].len), (10, 0, 40));
        out.clear();
        assert!(delta_copies(&d, 61, &mut out).is_none(), "wrong length");
        assert!(
            delta_copies(&d[..d.len() - 1], 60, &mut out).is_none(),
            "cut short"
        );
        assert!(
            delta_copies(&[100, 1, 0], 1, &mut out).is_none(),
            "opcode 0"
        );
    }
}
