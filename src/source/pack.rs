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
use std::sync::atomic::AtomicBool;

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
}

impl<S, I: Fn() -> S, F> Clone for Worker<'_, S, I, F> {
    fn clone(&self) -> Self {
        Worker {
            init: self.init,
            visit: self.visit,
            state: (self.init)(),
            max_size: self.max_size,
            found: self.found,
        }
    }
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
    for idx in pack_indexes(objects) {
        let found = Mutex::new(Vec::new());
        let worker = Worker {
            init: &init,
            visit: &visit,
            state: init(),
            max_size,
            found: &found,
        };
        match walk_pack(&idx, threads, worker) {
            Ok(()) => {
                for (id, size, wanted) in found.into_inner().expect("pack walk lock") {
                    out.seen.insert(id, size);
                    if wanted {
                        out.wanted.insert(id);
                    }
                }
            }
            Err(e) => out.warnings.push(format!(
                "{}: cannot be walked in delta order ({e}); its blobs are read one by one",
                idx.with_extension("pack").display()
            )),
        }
    }
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
                if kind == gix_object::Kind::Blob {
                    let id = Oid::from_bytes(entry.oid.as_slice()).expect("a SHA-1 id");
                    let wanted =
                        data.len() > worker.max_size || (worker.visit)(&mut worker.state, data);
                    worker.found.lock().expect("pack walk lock").push((
                        id,
                        data.len() as u64,
                        wanted,
                    ));
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
