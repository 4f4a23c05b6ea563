//! Bounds on what decoding one file may cost, passed in (tests pass small ones and run the
//! code release builds run).

/// [`Limits::max_message`] by default: 16 MiB.
pub const PART_MAX: usize = 16 << 20;

/// Bounds on what reading one document or message may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of one XML part (or email part) decompressed and parsed at most; a bigger part is
    /// left with a warning.
    pub max_part: u64,
    /// Decompressed : compressed ratio beyond which a part is left (zip bombs).
    pub max_ratio: u64,
    /// Attachments inside attachments (and documents inside email), at most this deep.
    pub max_depth: u8,
    /// Largest message of a chat export or HAR capture (chat message, HAR entry, JSONL line,
    /// ChatGPT mapping node) fetched and parsed to name where a finding sits: parsing holds it
    /// about three times over. A bigger one is left out, listed in `Parsed::skipped`; the
    /// findings in it keep their line and column.
    pub max_message: usize,
    /// Largest ChatGPT `mapping` read in one piece for a conversation with a hit; a bigger one
    /// is read node by node, so one huge conversation is never held whole.
    pub max_mapping_at_once: usize,
    /// Bytes of a large `mapping` (or of a node too big to hold) read at a time.
    pub read_piece: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_part: 64 << 20,
            max_ratio: 100,
            max_depth: 4,
            max_message: PART_MAX,
            max_mapping_at_once: 4 << 20,
            read_piece: 1 << 20,
        }
    }
}
