//! Archives as sources: zip members and gzip streams, handed over as they decompress, with
//! limits (bytes per archive, ratio per member, nesting) so that a zip bomb costs neither
//! memory nor more than a bounded amount of time.

use std::io::{Cursor, Read};

/// Limits on what one archive may expand to.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Bytes decompressed per archive, all members together.
    pub max_total: u64,
    /// Decompressed : compressed ratio beyond which a member is skipped.
    pub max_ratio: u64,
    /// Archives inside archives, at most this deep.
    pub max_depth: u8,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_total: 1 << 30,
            max_ratio: 100,
            max_depth: 3,
        }
    }
}

/// Archive kinds recognised by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// PKZIP.
    Zip,
    /// gzip.
    Gzip,
}

/// Which archive `data` is, by its first bytes.
pub fn looks_like_archive(data: &[u8]) -> Option<ArchiveKind> {
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        Some(ArchiveKind::Zip)
    } else if data.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else {
        None
    }
}

/// What the one stream of the gzip file `name` is called: its file name without `.gz`.
pub fn gzip_member(name: &str) -> &str {
    let member = name.strip_suffix(".gz").unwrap_or(name);
    member.rsplit(['/', '!']).next().unwrap_or(member)
}

/// Charges the bytes read through it to the budget as they are read (so an archive nested in
/// a member sees the budget the member has already spent).
struct Counted<'a> {
    inner: &'a mut dyn Read,
    budget: &'a std::cell::Cell<u64>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.budget.set(self.budget.get().saturating_sub(k as u64));
        Ok(k)
    }
}

/// One member of an archive as [`expand_archive`] hands it over, to be read as it is
/// decompressed.
pub struct Member<'a> {
    /// Its name in the archive (for gzip, the file name without `.gz`).
    pub name: &'a str,
    /// How a warning names it (`archive!member`; for gzip, the archive).
    pub what: &'a str,
    /// Its bytes.
    pub reader: &'a mut dyn Read,
    /// How many bytes of it the limits allow; what is read counts against the archive's total.
    pub limit: u64,
}

impl Member<'_> {
    /// Whether the member goes on beyond what has been read of it (reads one byte to know).
    pub fn has_more(&mut self) -> bool {
        self.reader.read(&mut [0u8]).is_ok_and(|k| k > 0)
    }
}

/// Expand one archive: `visit` each member as it is decompressed (for gzip, the one stream),
/// `warn` for each member skipped before it is read. `budget` is what may still be
/// decompressed, shared with the archives nested in this one (each member read counts against
/// it), so nesting cannot multiply [`ArchiveLimits::max_total`].
pub fn expand_archive(
    data: &[u8],
    kind: ArchiveKind,
    name: &str,
    limits: ArchiveLimits,
    budget: &std::cell::Cell<u64>,
    visit: &mut dyn FnMut(Member<'_>),
    warn: &mut dyn FnMut(String),
) {
    let ratio_cap = (data.len() as u64)
        .saturating_mul(limits.max_ratio)
        .max(1 << 20);
    match kind {
        ArchiveKind::Gzip => {
            let mut stream = flate2::read::MultiGzDecoder::new(data);
            let limit = budget.get().min(ratio_cap);
            let mut counted = Counted {
                inner: &mut stream,
                budget,
            };
            visit(Member {
                name: gzip_member(name),
                what: name,
                reader: &mut counted,
                limit,
            });
        }
        ArchiveKind::Zip => {
            let mut zip = match zip::ZipArchive::new(Cursor::new(data)) {
                Ok(z) => z,
                Err(e) => {
                    warn(format!(
                        "{name}: not a readable zip archive ({e}); scanned as bytes"
                    ));
                    return;
                }
            };
            for i in 0..zip.len() {
                let mut f = match zip.by_index(i) {
                    Ok(f) => f,
                    Err(e) => {
                        warn(format!("{name}: member {i} unreadable ({e})"));
                        continue;
                    }
                };
                if f.is_dir() {
                    continue;
                }
                let member = f.name().to_owned();
                let what = format!("{name}!{member}");
                let member_cap = f
                    .compressed_size()
                    .saturating_mul(limits.max_ratio)
                    .max(1 << 20);
                // No check of the size it declares: a member is read only up to its limit,
                // as it is decompressed, whatever it says.
                let limit = budget.get().min(member_cap);
                let mut counted = Counted {
                    inner: &mut f,
                    budget,
                };
                visit(Member {
                    name: &member,
                    what: &what,
                    reader: &mut counted,
                    limit,
                });
            }
        }
    }
}
