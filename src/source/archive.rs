//! Archives as sources: zip members and gzip streams, opened in memory with limits so that a
//! zip bomb cannot exhaust memory or disk.

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

/// Read at most `limit` bytes; `Err` with a reason if there is more or reading fails.
fn read_limited(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what}: cannot decompress ({e})"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "{what}: skipped, expands beyond the archive limits ({limit} bytes at most here: 1 GiB per archive and 100:1)"
        ));
    }
    Ok(out)
}

/// What the one stream of the gzip file `name` is called: its file name without `.gz`.
pub fn gzip_member(name: &str) -> &str {
    let member = name.strip_suffix(".gz").unwrap_or(name);
    member.rsplit(['/', '!']).next().unwrap_or(member)
}

/// Expand one archive: `visit(member name, bytes)` for each member (for gzip, the one stream,
/// named after `name` without `.gz`), `warn` for each member skipped.
pub fn expand_archive(
    data: &[u8],
    kind: ArchiveKind,
    name: &str,
    limits: ArchiveLimits,
    visit: &mut dyn FnMut(&str, &[u8]),
    warn: &mut dyn FnMut(String),
) {
    let ratio_cap = (data.len() as u64)
        .saturating_mul(limits.max_ratio)
        .max(1 << 20);
    match kind {
        ArchiveKind::Gzip => {
            let member = gzip_member(name);
            let limit = limits.max_total.min(ratio_cap);
            match read_limited(flate2::read::MultiGzDecoder::new(data), limit, name) {
                Ok(bytes) => visit(member, &bytes),
                Err(e) => warn(e),
            }
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
            let mut budget = limits.max_total;
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
                if f.size() > budget || f.size() > member_cap {
                    warn(format!(
                        "{what}: skipped, declares {} bytes, beyond the archive limits (1 GiB per archive, 100:1)",
                        f.size()
                    ));
                    continue;
                }
                match read_limited(&mut f, budget.min(member_cap), &what) {
                    Ok(bytes) => {
                        budget -= bytes.len() as u64;
                        visit(&member, &bytes);
                    }
                    Err(e) => warn(e),
                }
            }
        }
    }
}
