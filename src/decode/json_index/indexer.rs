//! The indexer's state machine: which container the next byte is in, what it is for, and
//! where each conversation, message and node starts and ends.

use super::simd::{self, Baseline, BlockWalker, Lanes, Masks, Simd, find_escaped};
use super::{Conversation, Node, Skeleton, Span, hash_id};
use crate::decode::DecodeError;
use crate::decode::formats::Structured;

/// What a container is, for the format being indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Nothing inside is needed.
    Skip,
    /// The top-level list of conversations.
    ConversationList,
    /// A conversation object.
    Conversation,
    /// ChatGPT `mapping`.
    Mapping,
    /// ChatGPT `mapping` skipped whole (an index without nodes): its span recorded.
    WholeMapping,
    /// A ChatGPT mapping node: skipped, its span recorded.
    Node,
    /// Claude `chat_messages`, HAR `entries`.
    Messages,
    /// The HAR document.
    HarTop,
    /// HAR `log`.
    HarLog,
    /// A message or entry: its span is recorded when it closes.
    Span,
}

/// What the current key of an object names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Other,
    Title,
    ConversationId,
    Id,
    Mapping,
    ChatMessages,
    Log,
    Entries,
    /// A mapping key: the node id is in `Indexer::node_id`.
    NodeId,
}

/// Where a captured string goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    /// Not kept.
    None,
    /// An object key.
    FieldName,
    /// A conversation's title.
    Title,
    /// A conversation's id.
    ConversationId,
    /// ChatGPT `id`.
    Id,
}

/// Where in an object or array the next byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Object: a key or `}` (right after `{`); array: a value or `]` (right after `[`).
    First,
    /// Object: a key (after `,`); array: a value (after `,`).
    Next,
    /// Object: `:` after a key.
    Colon,
    /// Object: the value after `:`.
    Value,
    /// After a value: `,` or the closing bracket.
    After,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    obj: bool,
    role: Role,
    expect: Expect,
    field: Field,
    start: usize,
}

/// Longest string kept (titles, ids); longer ones are cut.
const CAPTURE_MAX: usize = 16 * 1024;

/// Feed the file's bytes in order with [`Indexer::feed`], then [`Indexer::finish`].
///
/// The bytes are classified 64 at a time into bit masks (quotes, backslashes, brackets, `:` `,`,
/// whitespace), as simdjson does: escaped quotes are found from runs of backslashes, and which
/// bytes are inside strings from a prefix XOR of the real quotes. Inside a message (or any part
/// of the document nothing is needed from) only brackets outside strings are looked at, one bit
/// at a time; elsewhere every structural byte is.
#[derive(Debug)]
pub struct Indexer {
    kind: Structured,
    /// Record ChatGPT mapping nodes (else a mapping is skipped whole, like a message).
    nodes: bool,
    /// The instruction sets blocks are classified with (detected once per file).
    simd: Simd,
    frames: Vec<Frame>,
    /// Offset of the next byte fed.
    pos: usize,
    /// Bytes waiting for a whole 64-byte block.
    stage: Vec<u8>,
    /// Carries between blocks: the first byte of the next block is escaped; the last byte was
    /// inside a string; the last byte was part of a scalar (number, `true`, ...).
    prev_escaped: u64,
    in_string: bool,
    prev_other: bool,
    /// Inside a container nothing is needed from, and how deep in it (brackets opened in it and
    /// not yet closed). Only the depth is kept there: a closing bracket of the wrong kind inside
    /// a skipped message is left to the parse of that message, if it is ever read.
    skipping: bool,
    inner: u32,
    capture: Capture,
    /// While a string is captured: where its unread bytes start in the current block.
    capture_from: usize,
    buf: Vec<u8>,
    /// The last mapping key read (a node id).
    node_id: u64,
    root_done: bool,
    saw_log: bool,
    err: Option<DecodeError>,
    skel: Skeleton,
}

/// After a message's closing `}` at `from - 1` in a block: where the next message's `{` is,
/// when only JSON whitespace and one `,` come between, all in this block.
fn next_message(b: &[u8; 64], from: usize) -> Option<usize> {
    let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let mut i = from;
    while i < 64 && ws(b[i]) {
        i += 1;
    }
    if b.get(i) != Some(&b',') {
        return None;
    }
    i += 1;
    while i < 64 && ws(b[i]) {
        i += 1;
    }
    (b.get(i) == Some(&b'{')).then_some(i)
}

impl Indexer {
    /// Start indexing a file sniffed as `kind`, with no ChatGPT mapping nodes: only the span
    /// of each conversation's `mapping` is kept, and its nodes are indexed later with
    /// [`Indexer::new`] for the conversations holding a hit (a mapping is most of a ChatGPT
    /// export, and each node's key would leave the fast skip loop).
    pub fn without_nodes(kind: Structured) -> Self {
        Indexer {
            nodes: false,
            ..Indexer::new(kind)
        }
    }

    /// The first byte fed is at `pos` in its file (a part of a file indexed on its own).
    pub fn starting_at(mut self, pos: usize) -> Self {
        self.pos = pos;
        self
    }

    /// Start indexing a file sniffed as `kind`.
    pub fn new(kind: Structured) -> Self {
        Indexer {
            kind,
            nodes: true,
            simd: Simd::detect(),
            frames: Vec::new(),
            pos: 0,
            stage: Vec::with_capacity(64),
            prev_escaped: 0,
            in_string: false,
            prev_other: false,
            skipping: false,
            inner: 0,
            capture: Capture::None,
            capture_from: 0,
            buf: Vec::new(),
            node_id: 0,
            root_done: false,
            saw_log: false,
            err: None,
            skel: Skeleton::default(),
        }
    }

    /// The next bytes of the file.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if self.kind == Structured::ChatJsonl {
            let base = self.pos;
            self.skel
                .line_ends
                .extend(memchr::memchr_iter(b'\n', chunk).map(|i| base + i));
            self.pos += chunk.len();
            return;
        }
        if !self.stage.is_empty() {
            let take = chunk.len().min(64 - self.stage.len());
            self.stage.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.stage.len() < 64 {
                return;
            }
            let mut block = [0u8; 64];
            block.copy_from_slice(&self.stage);
            self.stage.clear();
            self.block(&block, 64);
        }
        let whole = chunk.len() / 64 * 64;
        self.blocks(&chunk[..whole]);
        self.stage.extend_from_slice(&chunk[whole..]);
    }

    /// Classify with `simd` only (tests compare the instruction sets).
    #[cfg(test)]
    pub(crate) fn with_simd(mut self, simd: Simd) -> Self {
        self.simd = simd;
        self
    }

    /// Every 64-byte block of `data` (a multiple of 64 bytes long), in one loop compiled with
    /// AVX2 when the CPU has it.
    fn blocks(&mut self, data: &[u8]) {
        let simd = self.simd;
        simd::walk_blocks(self, simd, data);
    }

    #[inline(always)]
    fn blocks_with<L: Lanes>(&mut self, lanes: L, data: &[u8]) {
        let mut rest = data;
        while self.err.is_none() {
            if self.skipping {
                rest = &rest[self.skip_blocks(lanes, rest)..];
            }
            let Some((b, tail)) = rest.split_first_chunk::<64>() else {
                return;
            };
            self.block_with(lanes, b, 64);
            rest = tail;
        }
    }

    /// Inside a skipped container, the whole blocks of `data` that do not end it: a block with
    /// no more closing brackets outside strings than the depth reached only changes the depth;
    /// in another one the brackets are followed in order. Where a message of a message list
    /// ends and the next one begins in the same block (`}`, `,` and `{` with only whitespace
    /// between), the span is recorded and skipping goes on. Returns the bytes consumed (a
    /// multiple of 64); a block holding anything else that ends the container is left, as it
    /// was, to [`Self::block_with`].
    #[inline(always)]
    fn skip_blocks<L: Lanes>(&mut self, lanes: L, data: &[u8]) -> usize {
        debug_assert!(self.capture == Capture::None);
        // Messages of a list (Claude `chat_messages`, HAR `entries`) follow one another.
        let n = self.frames.len();
        let in_list = n >= 2
            && self.frames[n - 1].role == Role::Span
            && self.frames[n - 2].role == Role::Messages;
        let mut span_start = self.frames.last().map_or(0, |f| f.start);
        let mut prev_escaped = self.prev_escaped;
        let mut carry = if self.in_string { !0u64 } else { 0 };
        let mut depth = self.inner;
        let mut done = 0;
        for b in data.chunks_exact(64) {
            let b: &[u8; 64] = b.try_into().expect("64 bytes");
            let m = lanes.classify(b, false);
            let mut next_escaped = prev_escaped;
            // Most blocks of prose have no backslash (and none carried in).
            let escaped = if (m.backslash | prev_escaped) == 0 {
                0
            } else {
                find_escaped(m.backslash, &mut next_escaped)
            };
            let inside = lanes.prefix_xor(m.quote & !escaped) ^ carry;
            let outside = !inside;
            let (open, close) = (m.open & outside, m.close & outside);
            let n_close = close.count_ones();
            if n_close <= depth {
                depth = depth + open.count_ones() - n_close;
            } else {
                // Maybe the end (or just `[]`): follow the brackets in order. Spans ended
                // here are kept aside until the whole block is known to be handled.
                let base = self.pos + done;
                let mut ended: [Span; 4] = [(0, 0); 4];
                let (mut n_ended, mut start) = (0, span_start);
                let mut brackets = open | close;
                let mut d = depth;
                while brackets != 0 {
                    let i = brackets.trailing_zeros() as usize;
                    brackets &= brackets - 1;
                    if (close >> i) & 1 == 0 {
                        d += 1;
                    } else if d > 0 {
                        d -= 1;
                    } else {
                        let next = if in_list && n_ended < ended.len() && b[i] == b'}' {
                            next_message(b, i + 1)
                        } else {
                            None
                        };
                        let Some(j) = next else {
                            brackets = !0;
                            break;
                        };
                        ended[n_ended] = (start, base + i + 1);
                        n_ended += 1;
                        start = base + j;
                        // The next message's `{` opens the container being skipped.
                        brackets &= !1u64 << j;
                    }
                }
                if brackets != 0 {
                    break;
                }
                depth = d;
                if n_ended > 0 {
                    if let Some(c) = self.skel.conversations.last_mut() {
                        c.messages.extend_from_slice(&ended[..n_ended]);
                    }
                    span_start = start;
                }
            }
            prev_escaped = next_escaped;
            carry = ((inside as i64) >> 63) as u64;
            done += 64;
        }
        if done > 0 {
            self.pos += done;
            self.prev_escaped = prev_escaped;
            self.in_string = carry != 0;
            self.inner = depth;
            self.prev_other = false;
            if let Some(f) = self.frames.last_mut() {
                f.start = span_start;
            }
        }
        done
    }

    /// One block (the last, short one: only its first `len` bytes are real).
    fn block(&mut self, b: &[u8; 64], len: usize) {
        self.block_with(Baseline, b, len);
    }

    #[inline(always)]
    fn block_with<L: Lanes>(&mut self, lanes: L, b: &[u8; 64], len: usize) {
        let base = self.pos;
        self.pos += len;
        let real = if len == 64 { !0 } else { (1u64 << len) - 1 };
        let mut full = !self.skipping;
        let mut m = lanes.classify(b, full);
        let escaped = find_escaped(m.backslash, &mut self.prev_escaped);
        let quotes = m.quote & !escaped & real;
        let carry = if self.in_string { !0 } else { 0 };
        let inside = lanes.prefix_xor(quotes) ^ carry;
        self.in_string = (inside >> (len - 1)) & 1 == 1;
        let outside = !inside & real;
        let brackets = (m.open | m.close) & outside;
        // Scalar starts and events need `punct` and `ws`: computed when not skipping, or once
        // skipping ends inside this block.
        // A closing quote matters only when its string is kept (`cap`); the others are left out
        // of the events (fewer unpredictable branches).
        let closing = quotes & !inside;
        let events_of = |m: &Masks, prev_other: bool| {
            let other = !(m.quote | m.open | m.close | m.punct | m.ws) & outside;
            let scalar_starts = other & !((other << 1) | u64::from(prev_other));
            let events =
                ((m.open | m.close | m.punct) & outside) | (quotes & inside) | scalar_starts;
            (events, (other >> (len - 1)) & 1 == 1)
        };
        let (mut events, mut last_other) = if full {
            events_of(&m, self.prev_other)
        } else {
            (0, false)
        };
        let mut todo = real;
        loop {
            if !self.skipping && !full {
                full = true;
                m = lanes.classify(b, true);
                (events, last_other) = events_of(&m, false);
            }
            let ev = todo
                & if self.skipping {
                    brackets
                } else if self.capture != Capture::None {
                    events | closing
                } else {
                    events
                };
            if ev == 0 || self.err.is_some() {
                break;
            }
            let i = ev.trailing_zeros() as usize;
            todo &= (!1u64).checked_shl(i as u32).unwrap_or(0);
            let at = base + i;
            match b[i] {
                b'"' if (inside >> i) & 1 == 1 => self.string_start(at, i + 1),
                b'"' => {
                    if self.capture != Capture::None {
                        self.keep(&b[self.capture_from..i]);
                    }
                    self.end_string();
                }
                b'{' | b'[' if self.skipping => self.inner += 1,
                c @ (b'}' | b']') if self.skipping => {
                    if self.inner == 0 {
                        self.skipping = false;
                        self.close(c == b'}', at);
                    } else {
                        self.inner -= 1;
                    }
                }
                c @ (b'{' | b'[') => self.open(c == b'{', at),
                c @ (b'}' | b']') => self.close(c == b'}', at),
                b':' => match self.frames.last_mut() {
                    Some(f) if f.obj && f.expect == Expect::Colon => f.expect = Expect::Value,
                    _ => self.fail(at, "unexpected ':'"),
                },
                b',' => match self.frames.last_mut() {
                    Some(f) if f.expect == Expect::After => f.expect = Expect::Next,
                    _ => self.fail(at, "unexpected ','"),
                },
                c if c.is_ascii_alphanumeric() || c == b'-' => {
                    self.value_start(at);
                }
                c => self.fail(at, &format!("unexpected byte 0x{c:02x}")),
            }
        }
        self.prev_other = last_other;
        if self.in_string && self.capture != Capture::None {
            self.keep(&b[self.capture_from..len]);
            self.capture_from = 0;
        }
    }

    /// The skeleton, or why the file is not well-formed JSON of its kind.
    pub fn finish(mut self) -> Result<Skeleton, DecodeError> {
        if !self.stage.is_empty() && self.err.is_none() {
            let len = self.stage.len();
            let mut block = [b' '; 64];
            block[..len].copy_from_slice(&self.stage);
            self.stage.clear();
            self.block(&block, len);
        }
        if let Some(e) = self.err {
            return Err(e);
        }
        self.skel.len = self.pos;
        if self.kind == Structured::ChatJsonl {
            return Ok(self.skel);
        }
        if self.in_string || !self.frames.is_empty() || !self.root_done {
            return Err(DecodeError::JsonEnds { len: self.pos });
        }
        if self.kind == Structured::Har && !self.saw_log {
            return Err(DecodeError::NotHar);
        }
        Ok(self.skel)
    }

    fn fail(&mut self, at: usize, what: &str) {
        if self.err.is_none() {
            self.err = Some(DecodeError::Json {
                at,
                what: what.to_owned(),
            });
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.capture != Capture::None && self.buf.len() < CAPTURE_MAX {
            let room = CAPTURE_MAX - self.buf.len();
            self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// A value begins at `at`: check the position, and mark the container as past it.
    /// Returns the role the value has (for containers and captured strings).
    fn value_start(&mut self, at: usize) -> (Role, Field) {
        let Some(f) = self.frames.last_mut() else {
            if self.root_done {
                self.fail(at, "more than one top-level value");
            }
            return (Role::Skip, Field::Other);
        };
        let ok = if f.obj {
            f.expect == Expect::Value
        } else {
            matches!(f.expect, Expect::First | Expect::Next)
        };
        if !ok {
            self.fail(at, "a value where it cannot be");
            return (Role::Skip, Field::Other);
        }
        f.expect = Expect::After;
        (f.role, f.field)
    }

    /// A string opens at `at`; its first byte is at `from` in the current block.
    fn string_start(&mut self, at: usize, from: usize) {
        self.buf.clear();
        self.capture_from = from;
        let Some(f) = self.frames.last_mut() else {
            self.capture = Capture::None;
            self.value_start(at);
            return;
        };
        if f.obj && matches!(f.expect, Expect::First | Expect::Next) {
            f.expect = Expect::Colon;
            f.field = Field::Other;
            self.capture = Capture::FieldName;
            return;
        }
        let (role, key) = self.value_start(at);
        self.capture = match (role, key) {
            (Role::Conversation, Field::Title) => Capture::Title,
            (Role::Conversation, Field::ConversationId) => Capture::ConversationId,
            (Role::Conversation, Field::Id) => Capture::Id,
            _ => Capture::None,
        };
    }

    fn end_string(&mut self) {
        let capture = std::mem::replace(&mut self.capture, Capture::None);
        if capture == Capture::None {
            return;
        }
        let conv = self.skel.conversations.last_mut();
        match capture {
            Capture::FieldName => {
                let Some(f) = self.frames.last_mut() else {
                    return;
                };
                if f.role == Role::Mapping {
                    f.field = Field::NodeId;
                    self.node_id = id_hash(&self.buf);
                    return;
                }
                let owned;
                let name: &[u8] = if self.buf.contains(&b'\\') {
                    owned = unescape(&self.buf);
                    owned.as_bytes()
                } else {
                    &self.buf
                };
                f.field = match (f.role, name) {
                    (Role::Conversation, b"title" | b"name") => Field::Title,
                    (Role::Conversation, b"conversation_id" | b"uuid") => Field::ConversationId,
                    (Role::Conversation, b"id") => Field::Id,
                    (Role::Conversation, b"mapping") if self.kind == Structured::ChatGpt => {
                        Field::Mapping
                    }
                    (Role::Conversation, b"chat_messages") if self.kind == Structured::Claude => {
                        Field::ChatMessages
                    }
                    (Role::HarTop, b"log") => Field::Log,
                    (Role::HarLog, b"entries") => Field::Entries,
                    _ => Field::Other,
                };
            }
            Capture::Title => set(conv.map(|c| &mut c.title), unescape(&self.buf)),
            Capture::ConversationId => {
                set(conv.map(|c| &mut c.conversation_id), unescape(&self.buf))
            }
            Capture::Id => set(conv.map(|c| &mut c.id), unescape(&self.buf)),
            Capture::None => {}
        }
    }

    fn open(&mut self, obj: bool, at: usize) {
        let top = self.frames.is_empty();
        let (parent, key) = self.value_start(at);
        if self.err.is_some() {
            return;
        }
        let gpt_or_claude = matches!(self.kind, Structured::ChatGpt | Structured::Claude);
        let role = if top {
            match (self.kind, obj) {
                (Structured::Har, true) => Role::HarTop,
                (_, false) if gpt_or_claude => Role::ConversationList,
                (_, true) if gpt_or_claude => Role::Conversation,
                _ => {
                    self.fail(at, "the top-level value is not what this format has");
                    return;
                }
            }
        } else {
            match (parent, key, obj) {
                (Role::ConversationList, _, true) => Role::Conversation,
                (Role::Conversation, Field::Mapping, true) if self.nodes => Role::Mapping,
                (Role::Conversation, Field::Mapping, true) => Role::WholeMapping,
                (Role::Conversation, Field::ChatMessages, false) => Role::Messages,
                (Role::Mapping, Field::NodeId, true) => Role::Node,
                (Role::Messages, _, true) => Role::Span,
                (Role::HarTop, Field::Log, true) => Role::HarLog,
                (Role::HarLog, Field::Entries, false) => Role::Messages,
                _ => Role::Skip,
            }
        };
        match role {
            Role::Conversation => self.skel.conversations.push(Conversation::default()),
            Role::Mapping | Role::WholeMapping => {
                // A repeated `mapping` key: the last one counts, as in a JSON object.
                if let Some(c) = self.skel.conversations.last_mut() {
                    c.nodes.clear();
                    c.mapping = None;
                }
            }
            Role::HarLog => {
                self.saw_log = true;
                self.skel.conversations.push(Conversation::default());
            }
            _ => {}
        }
        self.frames.push(Frame {
            obj,
            role,
            expect: Expect::First,
            field: Field::Other,
            start: at,
        });
        if matches!(
            role,
            Role::Skip | Role::Span | Role::Node | Role::WholeMapping
        ) {
            self.skipping = true;
            self.inner = 0;
        }
    }

    fn close(&mut self, obj: bool, at: usize) {
        let Some(f) = self.frames.pop() else {
            self.fail(at, "a closing bracket with nothing open");
            return;
        };
        let ok = f.obj == obj && matches!(f.expect, Expect::First | Expect::After);
        if !ok {
            self.fail(at, "a closing bracket where it cannot be");
            return;
        }
        let span = (f.start, at + 1);
        if let Some(c) = self.skel.conversations.last_mut() {
            match f.role {
                Role::Span => c.messages.push(span),
                Role::Node => c.nodes.push(Node {
                    id: self.node_id,
                    span,
                }),
                Role::Mapping | Role::WholeMapping => c.mapping = Some(span),
                _ => {}
            }
        }
        if self.frames.is_empty() {
            self.root_done = true;
        }
    }
}

fn set(slot: Option<&mut Option<String>>, text: String) {
    if let Some(s) = slot {
        *s = Some(text);
    }
}

/// A node id's 64-bit hash, from the raw contents of its JSON string (escapes decoded first).
pub(super) fn id_hash(raw: &[u8]) -> u64 {
    if raw.contains(&b'\\') {
        hash_id(unescape(raw).as_bytes())
    } else {
        hash_id(raw)
    }
}

/// A JSON string's raw contents (between the quotes) as text.
fn unescape(raw: &[u8]) -> String {
    if !raw.contains(&b'\\') {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted)
        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned())
}

impl BlockWalker for Indexer {
    #[inline(always)]
    fn walk<L: Lanes>(&mut self, lanes: L, data: &[u8]) {
        self.blocks_with(lanes, data);
    }
}
