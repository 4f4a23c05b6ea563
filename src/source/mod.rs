//! Where bytes come from: the file system walk, git history, the git index, standard input,
//! archives. Each source hands blobs (bytes + [`Origin`]) to a visitor; nothing here matches.

mod ai_history;
mod archive;
mod fs;
mod git;
mod origin;
mod pack;

pub use ai_history::{AiFile, Looked, discover as discover_ai_history};
pub use archive::{
    ArchiveKind, ArchiveLimits, Member, expand_archive, gzip_member, looks_like_archive,
};
pub use fs::{Event, Input, LARGE_FROM, WalkOptions, map, walk};
pub use git::{
    BlobProblem, CommitInfo, GitError, History, HistoryBlob, HistoryOptions, Prune, StagedFile,
    history, history_with, open as open_repo, read_blobs, staged,
};
pub use origin::{Origin, SourceKind};
pub use pack::{Graph, PackWalk, WalkTiming, key as object_key, walk_packs};

/// Whether `OFFKEY_TIMING` asks for per-phase timings on stderr (set, not empty, not `0`).
pub fn timing_enabled() -> bool {
    std::env::var_os("OFFKEY_TIMING").is_some_and(|v| !v.is_empty() && v != "0")
}
