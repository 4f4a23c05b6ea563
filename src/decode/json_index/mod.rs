//! One streaming structural pass over a chat export or HAR capture: where each conversation's
//! messages (or each HAR entry) sit in the file, with the few short strings needed to name them
//! (conversation title and ids, ChatGPT node ids). Nothing else is decoded or kept: inside a
//! message only the bracket depth is followed, a 64-byte block at a time, and the bytes can
//! arrive in chunks (a file read piece by piece never has to be whole in memory). Messages
//! holding a finding are parsed afterwards, from their span alone.

mod indexer;
mod simd;
#[cfg(test)]
mod tests;

pub use indexer::Indexer;
#[cfg(test)]
use simd::Simd;

use super::DecodeError;
use super::formats::Structured;

/// A byte range `start..end` of the file.
pub type Span = (usize, usize);

/// Where the texts of a structured file sit.
#[derive(Debug, Default)]
pub struct Skeleton {
    /// Conversations in file order (HAR: one, holding the entries as its messages).
    pub conversations: Vec<Conversation>,
    /// JSONL: the end offset of every line but the last (the offset of its `\n`).
    pub line_ends: Vec<usize>,
    /// JSONL: the file length.
    pub len: usize,
}

/// One conversation of an export.
#[derive(Debug, Default)]
pub struct Conversation {
    /// ChatGPT `title`, Claude `name`.
    pub title: Option<String>,
    /// ChatGPT `conversation_id`, Claude `uuid`.
    pub conversation_id: Option<String>,
    /// ChatGPT `id`.
    pub id: Option<String>,
    /// Claude `chat_messages[]`, HAR `log.entries[]`: each item's span, in order.
    pub messages: Vec<Span>,
    /// ChatGPT `mapping`: its nodes, in file order.
    pub nodes: Vec<Node>,
    /// ChatGPT: the span of the `mapping` object.
    pub mapping: Option<Span>,
}

/// A ChatGPT `mapping` node: its id (as a 64-bit hash of its text: ids are only compared) and
/// the span of its object. Its links and message are read only for a conversation holding a
/// hit, so the index skips nodes like messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct Node {
    /// Its key in `mapping`.
    pub id: u64,
    /// The node object.
    pub span: Span,
}

/// A node id's 64-bit hash, of its decoded text: FxHash-style, eight bytes a step.
pub fn hash_id(text: &[u8]) -> u64 {
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    let mut words = text.chunks_exact(8);
    let mut h = (&mut words).fold(text.len() as u64, |h, w| {
        step(h, u64::from_le_bytes(w.try_into().expect("8 bytes")))
    });
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(last));
    }
    h
}

/// Index a whole document at once.
pub fn index(data: &[u8], kind: Structured) -> Result<Skeleton, DecodeError> {
    let mut ix = Indexer::new(kind);
    ix.feed(data);
    ix.finish()
}
