//! The folder walk: `ignore`'s parallel walker, every file by default (hidden and gitignored
//! ones too: a gitignored `.env` is still on disk and in backups), never following symlinks,
//! never opening FIFOs, sockets or devices; small files read into a reused buffer, large ones
//! memory-mapped.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ignore::overrides::OverrideBuilder;
use ignore::{WalkBuilder, WalkState};

use super::{Origin, SourceKind};

/// From this size up a file is handed over open, to be read in chunks (or mapped, when it has
/// to be whole: an archive); smaller ones are read whole into a reused buffer. Mapping every
/// file was measured twice as slow, and reading big files whole holds the largest per thread.
pub const LARGE_FROM: u64 = 256 * 1024;

/// How to walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Files or folders as the user named them.
    pub roots: Vec<PathBuf>,
    /// Gitignore-style globs never scanned.
    pub excludes: Vec<String>,
    /// Skip what git ignores (off by default).
    pub gitignore: bool,
    /// Files above this many bytes are skipped with a warning.
    pub max_file_size: u64,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// What the walk hands the visitor.
pub enum Event<'a> {
    /// A file's bytes.
    Blob(&'a [u8], &'a Origin),
    /// A file of at least [`LARGE_FROM`] bytes, open, with its length: read it in chunks.
    Large(&'a File, u64, &'a Origin),
    /// A file or folder that could not be read: the path and why. The walk goes on.
    Error(String),
    /// A file skipped (on purpose, or gone between walk and read): the path and why. A warning.
    Skipped(String),
}

/// Walk every root in parallel; `make_visitor` is called once per worker thread.
pub fn walk<F, V>(opts: &WalkOptions, make_visitor: F) -> Result<(), String>
where
    F: Fn() -> V + Sync,
    V: FnMut(Event<'_>) + Send,
{
    for root in &opts.roots {
        // A root that cannot be read (e.g. a dangling symlink) is one error; the others go on.
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                make_visitor()(Event::Error(format!("{}: {e}", root.display())));
                continue;
            }
        };
        if meta.is_file() {
            let mut visit = make_visitor();
            let mut buf = Vec::new();
            let shown = root.display().to_string();
            read_one(root, &shown, opts, &mut buf, &mut visit);
            continue;
        }
        let mut ov = OverrideBuilder::new(root);
        for g in &opts.excludes {
            ov.add(&format!("!{g}"))
                .map_err(|e| format!("--exclude {g:?}: {e}"))?;
        }
        let overrides = ov.build().map_err(|e| format!("--exclude: {e}"))?;
        let mut wb = WalkBuilder::new(root);
        wb.hidden(false)
            .ignore(false)
            .parents(opts.gitignore)
            .git_ignore(opts.gitignore)
            .git_global(opts.gitignore)
            .git_exclude(opts.gitignore)
            .require_git(false)
            .follow_links(false)
            .overrides(overrides)
            .add_custom_ignore_filename(".offkeyignore")
            .threads(opts.threads)
            .filter_entry(|e| e.file_name() != ".git");
        let root = root.clone();
        wb.build_parallel().run(|| {
            let mut visit = make_visitor();
            let mut buf: Vec<u8> = Vec::new();
            let root = root.clone();
            Box::new(move |entry| {
                let entry = match entry {
                    Ok(e) => e,
                    Err(err) => {
                        visit(walk_failed(&root, &err));
                        return WalkState::Continue;
                    }
                };
                let Some(ft) = entry.file_type() else {
                    return WalkState::Continue;
                };
                // Symlinks are not followed; FIFOs, sockets and devices are never opened.
                if !ft.is_file() {
                    return WalkState::Continue;
                }
                let path = entry.path();
                let shown = display_path(&root, path);
                read_one(path, &shown, opts, &mut buf, &mut visit);
                WalkState::Continue
            })
        });
    }
    Ok(())
}

/// The path relative to the scan root, with `/` separators. The walker's paths are the root
/// joined with names, so the root is cut off as bytes (`Path::strip_prefix` compares component
/// by component, a measurable cost per file); anything else goes the component way.
fn display_path(root: &Path, path: &Path) -> String {
    let sep = |b: u8| b == b'/' || (cfg!(windows) && b == b'\\');
    let (r, p) = (
        root.as_os_str().as_encoded_bytes(),
        path.as_os_str().as_encoded_bytes(),
    );
    let fast = p.strip_prefix(r).and_then(|rest| match rest.first() {
        Some(&b) if sep(b) => Some(&rest[1..]),
        Some(_) if r.last().is_some_and(|&b| sep(b)) => Some(rest),
        _ => None,
    });
    let s = match fast {
        Some(rest) => String::from_utf8_lossy(rest),
        None => path.strip_prefix(root).unwrap_or(path).to_string_lossy(),
    };
    if s.is_empty() {
        path.to_string_lossy().into_owned()
    } else if cfg!(windows) && s.contains('\\') {
        s.replace('\\', "/")
    } else {
        s.into_owned()
    }
}

/// Why the walk could not go on somewhere. A folder gone meanwhile (deleted or renamed after
/// its parent was listed) is a warning naming it, like a vanished file: nothing is left there to
/// scan. Anything else (permissions, a symlink loop, I/O) is an error.
fn walk_failed(root: &Path, err: &ignore::Error) -> Event<'static> {
    fn path_of(err: &ignore::Error) -> Option<&Path> {
        match err {
            ignore::Error::WithPath { path, .. } => Some(path),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                path_of(err)
            }
            _ => None,
        }
    }
    let gone = err
        .io_error()
        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound);
    match path_of(err) {
        Some(path) if gone => Event::Skipped(format!(
            "{}: vanished before it was read",
            display_path(root, path)
        )),
        _ => Event::Error(err.to_string()),
    }
}

/// Why a file the walk listed could not be opened. Gone meanwhile (deleted or renamed between
/// walk and read) is a warning naming it: nothing is there to scan, so the scan has not failed.
/// Anything else (permissions, I/O) is an error.
fn open_failed(shown: &str, e: &io::Error) -> Event<'static> {
    if e.kind() == io::ErrorKind::NotFound {
        Event::Skipped(format!("{shown}: vanished before it was read"))
    } else {
        Event::Error(format!("{shown}: {e}"))
    }
}

/// Open, size and read (or map) one regular file. The type comes from the directory entry and
/// the size from the open file (`fstat`), so no file costs a second path lookup.
fn read_one<V: FnMut(Event<'_>)>(
    path: &Path,
    shown: &str,
    opts: &WalkOptions,
    buf: &mut Vec<u8>,
    visit: &mut V,
) {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            visit(open_failed(shown, &e));
            return;
        }
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => {
            visit(Event::Error(format!("{shown}: {e}")));
            return;
        }
    };
    if len > opts.max_file_size {
        visit(Event::Skipped(format!(
            "{shown}: skipped, {len} bytes is over --max-file-size {}",
            opts.max_file_size
        )));
        return;
    }
    let origin = Origin {
        source: Some(SourceKind::File),
        path: shown.to_owned(),
        ..Origin::default()
    };
    if len >= LARGE_FROM {
        visit(Event::Large(&file, len, &origin));
        return;
    }
    buf.clear();
    // The size is known: read that much and stop, without std's own size probing (another
    // fstat and two lseeks per file) or a last read to see the end (a file growing meanwhile
    // is read as it was when opened, like a large one). A size of 0 may be a file system that
    // does not know it (procfs, some FUSE mounts): that one is read up to --max-file-size.
    let limit = if len == 0 {
        opts.max_file_size.saturating_add(1)
    } else {
        len
    };
    let read = if len == 0 {
        (&file).take(limit).read_to_end(buf).map(drop)
    } else {
        Input::File {
            file: &file,
            left: len,
        }
        .fill(buf, len as usize)
        .map(drop)
    };
    if let Err(e) = read {
        visit(Event::Error(format!("{shown}: {e}")));
        return;
    }
    if buf.len() as u64 > opts.max_file_size {
        visit(Event::Skipped(format!(
            "{shown}: skipped, more than --max-file-size {} bytes (its size was given as 0)",
            opts.max_file_size
        )));
        return;
    }
    visit(Event::Blob(buf, &origin));
    if buf.capacity() > 4 * LARGE_FROM as usize {
        *buf = Vec::new();
    }
}

/// What [`Input::fill`] reads from.
pub enum Input<'a> {
    /// A file, up to `left` more bytes (its size when it was opened: a log still being
    /// written to is not chased). Read straight into the buffer's spare capacity.
    File { file: &'a File, left: u64 },
    /// Any other reader (standard input).
    Stream(&'a mut dyn Read),
}

impl Input<'_> {
    /// Append to `buf` until it holds `want` more bytes or the input ends. True at the end.
    ///
    /// Each read asks for all that is still wanted (`read_to_end` would start at 8 KiB and
    /// double: four system calls for every 64 KiB piece of a large file), and a file is read
    /// without zeroing the buffer first (that cost as much as the calls it saved).
    pub fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
        match self {
            Input::File { file, left } => {
                let want = want.min(usize::try_from(*left).unwrap_or(usize::MAX));
                let mut got = 0;
                while got < want {
                    let n = read_spare(file, buf, want - got)?;
                    if n == 0 {
                        *left = 0;
                        return Ok(true);
                    }
                    got += n;
                }
                *left -= got as u64;
                Ok(*left == 0)
            }
            Input::Stream(r) => {
                let start = buf.len();
                buf.resize(start + want, 0);
                let mut got = 0;
                let end = loop {
                    if got == want {
                        break Ok(false);
                    }
                    match r.read(&mut buf[start + got..]) {
                        Ok(0) => break Ok(true),
                        Ok(n) => got += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(start + got);
                end
            }
        }
    }
}

/// One read of at most `want` bytes from `file`, appended to `buf` without zeroing its spare
/// capacity first. Returns the count, 0 at the end.
#[cfg(unix)]
#[allow(unsafe_code)]
fn read_spare(file: &File, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    buf.reserve(want);
    let len = buf.len();
    loop {
        match rustix::io::read(file, &mut buf.spare_capacity_mut()[..want]) {
            Ok((filled, _)) => {
                let n = filled.len();
                // SAFETY: `read` initialized the first `n` bytes of the spare capacity, and
                // `n <= want <= capacity - len`.
                unsafe { buf.set_len(len + n) };
                return Ok(n);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(not(unix))]
fn read_spare(mut file: &File, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    let len = buf.len();
    buf.resize(len + want, 0);
    let n = loop {
        match file.read(&mut buf[len..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    buf.truncate(len + *n.as_ref().unwrap_or(&0));
    n
}

/// Map a file read-only.
#[allow(unsafe_code)]
pub fn map(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and lives only while one blob is scanned. Another process
    // truncating the file meanwhile could raise SIGBUS; secret scanners accept this for speed
    // (reading every large file into memory was measured slower), as ripgrep does.
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_reads_a_file_up_to_its_size_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let file = File::open(&path).expect("open");
        // The size given at open is 150,000: the bytes after it are not read.
        let mut input = Input::File {
            file: &file,
            left: 150_000,
        };
        let mut buf = b"kept".to_vec();
        assert!(!input.fill(&mut buf, 65_536).expect("fill"));
        assert_eq!(buf.len(), 4 + 65_536);
        assert!(!input.fill(&mut buf, 65_536).expect("fill"));
        // The last piece is short and ends the input without another read.
        assert!(input.fill(&mut buf, 65_536).expect("fill"));
        assert_eq!(&buf[..4], b"kept");
        assert_eq!(&buf[4..], &data[..150_000]);
        // A file shorter than its size at open (truncated meanwhile) ends where it ends.
        let file = File::open(&path).expect("open");
        let mut input = Input::File {
            file: &file,
            left: 300_000,
        };
        let mut buf = Vec::new();
        assert!(!input.fill(&mut buf, 150_000).expect("fill"));
        assert!(input.fill(&mut buf, 150_000).expect("fill"));
        assert_eq!(buf, data);
    }

    #[test]
    fn fill_gathers_short_reads_of_a_stream() {
        /// Hands out one byte per read, as a pipe may.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                out[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut r = Trickle(b"0123456789");
        let mut input = Input::Stream(&mut r);
        let mut buf = Vec::new();
        assert!(!input.fill(&mut buf, 4).expect("fill"));
        assert_eq!(buf, b"0123");
        assert!(input.fill(&mut buf, 100).expect("fill"));
        assert_eq!(buf, b"0123456789");
    }

    #[test]
    fn display_paths_are_relative_to_the_root() {
        let d = |r: &str, p: &str| display_path(Path::new(r), Path::new(p));
        assert_eq!(d(".", "./src/main.rs"), "src/main.rs");
        assert_eq!(d("repo", "repo/a/b.env"), "a/b.env");
        assert_eq!(d("repo/", "repo/a/b.env"), "a/b.env");
        assert_eq!(d("/tmp/x", "/tmp/x/.env"), ".env");
        // Not a byte prefix at a separator: the component way.
        assert_eq!(d("repo", "repository/a"), "repository/a");
        assert_eq!(d("./repo", "repo/a"), "repo/a");
        if !cfg!(windows) {
            // A backslash is an ordinary byte of a Unix file name.
            assert_eq!(d("r", "r/a\\b"), "a\\b");
        }
    }
}
