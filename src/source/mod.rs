//! Where bytes come from: the file system walk, git history, the git index, standard input,
//! archives. Each source hands blobs (bytes + [`Origin`]) to a visitor; nothing here matches.

mod fs;
mod origin;

pub use fs::{Event, WalkOptions, walk};
pub use origin::{Origin, SourceKind};
