//! One streaming structural pass over a chat export or HAR capture: where each conversation's
//! messages (or each HAR entry) sit in the file, with the few short strings needed to name them
//! (conversation title and ids, ChatGPT node ids). Nothing else is decoded or kept: inside a
//! message only the bracket depth is followed, a 64-byte block at a time, and the bytes can
//! arrive in chunks (a file read piece by piece never has to be whole in memory). Messages
//! holding a finding are parsed afterwards, from their span alone.

use super::structured::Structured;

/// A byte range `start..end` of the file.
pub type Span = (usize, usize);

/// Where the texts of a structured file sit.
#[derive(Debug, Default)]
pub struct Skeleton {
    /// Conversations in file order (HAR: one, holding the entries as its messages).
    pub convs: Vec<Conv>,
    /// JSONL: the end offset of every line but the last (the offset of its `\n`).
    pub line_ends: Vec<usize>,
    /// JSONL: the file length.
    pub len: usize,
}

/// One conversation of an export.
#[derive(Debug, Default)]
pub struct Conv {
    /// ChatGPT `title`, Claude `name`.
    pub title: Option<String>,
    /// ChatGPT `conversation_id`, Claude `uuid`.
    pub conv_id: Option<String>,
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

/// What a container is, for the format being indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Nothing inside is needed.
    Skip,
    /// The top-level list of conversations.
    ConvList,
    /// A conversation object.
    Conv,
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
enum Key {
    Other,
    Title,
    ConvId,
    Id,
    Mapping,
    ChatMessages,
    Log,
    Entries,
    /// A mapping key: the node id is in `Indexer::key`.
    NodeId,
}

/// Where a captured string goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    None,
    Key,
    Title,
    ConvId,
    Id,
}

/// Where in an object or array the next byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
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
    at: At,
    key: Key,
    start: usize,
}

/// Longest string kept (titles, ids); longer ones are cut.
const CAP_MAX: usize = 16 * 1024;

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
    /// Classify with AVX2 (detected once per file).
    avx2: bool,
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
    cap: Cap,
    /// While a string is captured: where its unread bytes start in the current block.
    cap_from: usize,
    buf: Vec<u8>,
    /// The last mapping key read (a node id).
    key: u64,
    root_done: bool,
    saw_log: bool,
    err: Option<String>,
    skel: Skeleton,
}

/// One 64-byte block, classified: bit `i` stands for byte `i`.
#[derive(Debug, Default, Clone, Copy)]
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{` or `[`.
    open: u64,
    /// `}` or `]`.
    close: u64,
    /// `:` or `,`.
    punct: u64,
    /// Bytes up to 0x20 (JSON whitespace; control bytes are invalid outside strings anyway).
    ws: u64,
}

/// [`Masks`] of one block with SSE2 (every x86_64 CPU has it); `punct` and `ws` only when
/// `full` (inside a skipped container only strings and brackets matter).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn classify_sse2(b: &[u8; 64], full: bool) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: SSE2 is part of every x86_64 CPU; each load reads 16 bytes inside the 64-byte
    // array (`loadu`: no alignment needed).
    unsafe {
        let p = b.as_ptr().cast::<__m128i>();
        for k in 0..4 {
            let v = _mm_loadu_si128(p.add(k));
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16) << (16 * k);
            let eq = |x: __m128i, c: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8));
            // `[` and `{` (and `]`, `}`) differ only in bit 0x20.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            m.quote |= bits(eq(v, b'"'));
            m.backslash |= bits(eq(v, b'\\'));
            m.open |= bits(eq(folded, b'{'));
            m.close |= bits(eq(folded, b'}'));
            if full {
                m.punct |= bits(_mm_or_si128(eq(v, b':'), eq(v, b',')));
                m.ws |= bits(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x20)), v));
            }
        }
    }
    m
}

/// [`classify_sse2`] with AVX2: two 32-byte lanes instead of four 16-byte ones.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2")]
#[inline]
fn classify_avx2(b: &[u8; 64], full: bool) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: this function only runs where AVX2 is enabled (target_feature); each load reads
    // 32 bytes inside the 64-byte array (`loadu`: no alignment needed).
    unsafe {
        let p = b.as_ptr().cast::<__m256i>();
        for k in 0..2 {
            let v = _mm256_loadu_si256(p.add(k));
            let bits = |x: __m256i| u64::from(_mm256_movemask_epi8(x) as u32) << (32 * k);
            let eq = |x: __m256i, c: u8| _mm256_cmpeq_epi8(x, _mm256_set1_epi8(c as i8));
            let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            m.quote |= bits(eq(v, b'"'));
            m.backslash |= bits(eq(v, b'\\'));
            m.open |= bits(eq(folded, b'{'));
            m.close |= bits(eq(folded, b'}'));
            if full {
                m.punct |= bits(_mm256_or_si256(eq(v, b':'), eq(v, b',')));
                m.ws |= bits(_mm256_cmpeq_epi8(
                    _mm256_min_epu8(v, _mm256_set1_epi8(0x20)),
                    v,
                ));
            }
        }
    }
    m
}

/// One block's masks, with AVX2 when `AVX` (only instantiated so inside an AVX2 function).
#[allow(unsafe_code)]
#[inline(always)]
fn classify<const AVX: bool>(b: &[u8; 64], full: bool) -> Masks {
    #[cfg(target_arch = "x86_64")]
    {
        if AVX {
            // SAFETY: `AVX` is true only in `Indexer::blocks_avx2`, entered after AVX2 (with
            // PCLMULQDQ, POPCNT and BMI1) was detected in `Indexer::new`.
            return unsafe { classify_avx2(b, full) };
        }
        classify_sse2(b, full)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut m = classify_portable(b);
        if !full {
            m.punct = 0;
            m.ws = 0;
        }
        m
    }
}

#[cfg(any(test, not(target_arch = "x86_64")))]
fn classify_portable(b: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &x) in b.iter().enumerate() {
        let bit = 1u64 << i;
        match x {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            b':' | b',' => m.punct |= bit,
            0..=0x20 => m.ws |= bit,
            _ => {}
        }
    }
    m
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

/// The bytes escaped by a backslash (simdjson's odd-length run trick); `prev` carries whether
/// the first byte of the next block is escaped.
fn find_escaped(backslash: u64, prev: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*prev;
    let follows_escape = (backslash << 1) | *prev;
    let odd_starts = backslash & !EVEN & !follows_escape;
    let (even_starts, overflow) = odd_starts.overflowing_add(backslash);
    *prev = u64::from(overflow);
    let invert = even_starts << 1;
    (EVEN ^ invert) & follows_escape
}

/// Bit `i` is the XOR of bits `0..=i`: set from an opening quote up to (not including) its
/// closing quote. With AVX2 (where the CPU also has PCLMULQDQ, POPCNT and BMI1, checked with
/// it) one carry-less multiplication by all ones.
#[allow(unsafe_code)]
#[inline(always)]
fn prefix_xor<const AVX: bool>(mut x: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if AVX {
        use std::arch::x86_64::*;
        // SAFETY: `AVX` is true only inside functions entered after AVX2 and PCLMULQDQ were
        // detected (`Indexer::new`).
        return unsafe {
            _mm_cvtsi128_si64(_mm_clmulepi64_si128(
                _mm_set_epi64x(0, x as i64),
                _mm_set1_epi8(-1),
                0,
            )) as u64
        };
    }
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
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
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("bmi1");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        Indexer {
            kind,
            nodes: true,
            avx2,
            frames: Vec::new(),
            pos: 0,
            stage: Vec::with_capacity(64),
            prev_escaped: 0,
            in_string: false,
            prev_other: false,
            skipping: false,
            inner: 0,
            cap: Cap::None,
            cap_from: 0,
            buf: Vec::new(),
            key: 0,
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

    /// Every 64-byte block of `data` (a multiple of 64 bytes long), in one loop compiled with
    /// AVX2 when the CPU has it.
    #[allow(unsafe_code)]
    fn blocks(&mut self, data: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only when the CPU has AVX2, PCLMULQDQ, POPCNT and BMI1,
            // the features `blocks_avx2` is compiled with.
            unsafe { self.blocks_avx2(data) };
            return;
        }
        self.blocks_with::<false>(data);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,pclmulqdq,popcnt,bmi1")]
    fn blocks_avx2(&mut self, data: &[u8]) {
        self.blocks_with::<true>(data);
    }

    #[inline(always)]
    fn blocks_with<const AVX: bool>(&mut self, data: &[u8]) {
        let mut rest = data;
        while self.err.is_none() {
            if self.skipping {
                rest = &rest[self.skip_blocks::<AVX>(rest)..];
            }
            let Some((b, tail)) = rest.split_first_chunk::<64>() else {
                return;
            };
            self.block_with::<AVX>(b, 64);
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
    fn skip_blocks<const AVX: bool>(&mut self, data: &[u8]) -> usize {
        debug_assert!(self.cap == Cap::None);
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
            let m = classify::<AVX>(b, false);
            let mut next_escaped = prev_escaped;
            // Most blocks of prose have no backslash (and none carried in).
            let escaped = if (m.backslash | prev_escaped) == 0 {
                0
            } else {
                find_escaped(m.backslash, &mut next_escaped)
            };
            let inside = prefix_xor::<AVX>(m.quote & !escaped) ^ carry;
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
                    if let Some(c) = self.skel.convs.last_mut() {
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
        self.block_with::<false>(b, len);
    }

    #[inline(always)]
    fn block_with<const AVX: bool>(&mut self, b: &[u8; 64], len: usize) {
        let base = self.pos;
        self.pos += len;
        let real = if len == 64 { !0 } else { (1u64 << len) - 1 };
        let mut full = !self.skipping;
        let mut m = classify::<AVX>(b, full);
        let escaped = find_escaped(m.backslash, &mut self.prev_escaped);
        let quotes = m.quote & !escaped & real;
        let carry = if self.in_string { !0 } else { 0 };
        let inside = prefix_xor::<AVX>(quotes) ^ carry;
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
                m = classify::<AVX>(b, true);
                (events, last_other) = events_of(&m, false);
            }
            let ev = todo
                & if self.skipping {
                    brackets
                } else if self.cap != Cap::None {
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
                    if self.cap != Cap::None {
                        self.keep(&b[self.cap_from..i]);
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
                    Some(f) if f.obj && f.at == At::Colon => f.at = At::Value,
                    _ => self.fail(at, "unexpected ':'"),
                },
                b',' => match self.frames.last_mut() {
                    Some(f) if f.at == At::After => f.at = At::Next,
                    _ => self.fail(at, "unexpected ','"),
                },
                c if c.is_ascii_alphanumeric() || c == b'-' => {
                    self.value_start(at);
                }
                c => self.fail(at, &format!("unexpected byte 0x{c:02x}")),
            }
        }
        self.prev_other = last_other;
        if self.in_string && self.cap != Cap::None {
            self.keep(&b[self.cap_from..len]);
            self.cap_from = 0;
        }
    }

    /// The skeleton, or why the file is not well-formed JSON of its kind.
    pub fn finish(mut self) -> Result<Skeleton, String> {
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
            return Err(format!(
                "not valid JSON: the file ends inside a value ({} bytes)",
                self.pos
            ));
        }
        if self.kind == Structured::Har && !self.saw_log {
            return Err("not a HAR capture: no \"log\" object".into());
        }
        Ok(self.skel)
    }

    fn fail(&mut self, at: usize, what: &str) {
        if self.err.is_none() {
            self.err = Some(format!("not valid JSON at byte {at}: {what}"));
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.cap != Cap::None && self.buf.len() < CAP_MAX {
            let room = CAP_MAX - self.buf.len();
            self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// A value begins at `at`: check the position, and mark the container as past it.
    /// Returns the role the value has (for containers and captured strings).
    fn value_start(&mut self, at: usize) -> (Role, Key) {
        let Some(f) = self.frames.last_mut() else {
            if self.root_done {
                self.fail(at, "more than one top-level value");
            }
            return (Role::Skip, Key::Other);
        };
        let ok = if f.obj {
            f.at == At::Value
        } else {
            matches!(f.at, At::First | At::Next)
        };
        if !ok {
            self.fail(at, "a value where it cannot be");
            return (Role::Skip, Key::Other);
        }
        f.at = At::After;
        (f.role, f.key)
    }

    /// A string opens at `at`; its first byte is at `from` in the current block.
    fn string_start(&mut self, at: usize, from: usize) {
        self.buf.clear();
        self.cap_from = from;
        let Some(f) = self.frames.last_mut() else {
            self.cap = Cap::None;
            self.value_start(at);
            return;
        };
        if f.obj && matches!(f.at, At::First | At::Next) {
            f.at = At::Colon;
            f.key = Key::Other;
            self.cap = Cap::Key;
            return;
        }
        let (role, key) = self.value_start(at);
        self.cap = match (role, key) {
            (Role::Conv, Key::Title) => Cap::Title,
            (Role::Conv, Key::ConvId) => Cap::ConvId,
            (Role::Conv, Key::Id) => Cap::Id,
            _ => Cap::None,
        };
    }

    fn end_string(&mut self) {
        let cap = std::mem::replace(&mut self.cap, Cap::None);
        if cap == Cap::None {
            return;
        }
        let conv = self.skel.convs.last_mut();
        match cap {
            Cap::Key => {
                let Some(f) = self.frames.last_mut() else {
                    return;
                };
                if f.role == Role::Mapping {
                    f.key = Key::NodeId;
                    self.key = id_hash(&self.buf);
                    return;
                }
                let owned;
                let name: &[u8] = if self.buf.contains(&b'\\') {
                    owned = unescape(&self.buf);
                    owned.as_bytes()
                } else {
                    &self.buf
                };
                f.key = match (f.role, name) {
                    (Role::Conv, b"title" | b"name") => Key::Title,
                    (Role::Conv, b"conversation_id" | b"uuid") => Key::ConvId,
                    (Role::Conv, b"id") => Key::Id,
                    (Role::Conv, b"mapping") if self.kind == Structured::ChatGpt => Key::Mapping,
                    (Role::Conv, b"chat_messages") if self.kind == Structured::Claude => {
                        Key::ChatMessages
                    }
                    (Role::HarTop, b"log") => Key::Log,
                    (Role::HarLog, b"entries") => Key::Entries,
                    _ => Key::Other,
                };
            }
            Cap::Title => set(conv.map(|c| &mut c.title), unescape(&self.buf)),
            Cap::ConvId => set(conv.map(|c| &mut c.conv_id), unescape(&self.buf)),
            Cap::Id => set(conv.map(|c| &mut c.id), unescape(&self.buf)),
            Cap::None => {}
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
                (_, false) if gpt_or_claude => Role::ConvList,
                (_, true) if gpt_or_claude => Role::Conv,
                _ => {
                    self.fail(at, "the top-level value is not what this format has");
                    return;
                }
            }
        } else {
            match (parent, key, obj) {
                (Role::ConvList, _, true) => Role::Conv,
                (Role::Conv, Key::Mapping, true) if self.nodes => Role::Mapping,
                (Role::Conv, Key::Mapping, true) => Role::WholeMapping,
                (Role::Conv, Key::ChatMessages, false) => Role::Messages,
                (Role::Mapping, Key::NodeId, true) => Role::Node,
                (Role::Messages, _, true) => Role::Span,
                (Role::HarTop, Key::Log, true) => Role::HarLog,
                (Role::HarLog, Key::Entries, false) => Role::Messages,
                _ => Role::Skip,
            }
        };
        match role {
            Role::Conv => self.skel.convs.push(Conv::default()),
            Role::Mapping | Role::WholeMapping => {
                // A repeated `mapping` key: the last one counts, as in a JSON object.
                if let Some(c) = self.skel.convs.last_mut() {
                    c.nodes.clear();
                    c.mapping = None;
                }
            }
            Role::HarLog => {
                self.saw_log = true;
                self.skel.convs.push(Conv::default());
            }
            _ => {}
        }
        self.frames.push(Frame {
            obj,
            role,
            at: At::First,
            key: Key::Other,
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
        let ok = f.obj == obj && matches!(f.at, At::First | At::After);
        if !ok {
            self.fail(at, "a closing bracket where it cannot be");
            return;
        }
        let span = (f.start, at + 1);
        if let Some(c) = self.skel.convs.last_mut() {
            match f.role {
                Role::Span => c.messages.push(span),
                Role::Node => c.nodes.push(Node { id: self.key, span }),
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
fn id_hash(raw: &[u8]) -> u64 {
    if raw.contains(&b'\\') {
        hash_id(unescape(raw).as_bytes())
    } else {
        hash_id(raw)
    }
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

/// Index a whole document at once.
#[cfg(test)]
pub fn index(data: &[u8], kind: Structured) -> Result<Skeleton, String> {
    let mut ix = Indexer::new(kind);
    ix.feed(data);
    ix.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every split of the document into two chunks gives the same skeleton as one chunk, with
    /// and without AVX2.
    fn chunked_agrees(doc: &[u8], kind: Structured) -> Skeleton {
        let whole = index(doc, kind).expect("indexes");
        let mut sse2 = Indexer::new(kind);
        sse2.avx2 = false;
        sse2.feed(doc);
        let sse2 = sse2.finish().expect("indexes without AVX2");
        assert_eq!(format!("{sse2:?}"), format!("{whole:?}"));
        for cut in 0..=doc.len() {
            let mut ix = Indexer::new(kind);
            ix.feed(&doc[..cut]);
            ix.feed(&doc[cut..]);
            let s = ix.finish().expect("indexes in two chunks");
            assert_eq!(format!("{s:?}"), format!("{whole:?}"), "cut at {cut}");
        }
        whole
    }

    #[test]
    fn chatgpt_nodes_messages_and_escaped_titles() {
        let doc = br#"[{"title":"De\"ploy \u00e9","id":"c1","mapping":{"a":{"id":"a","message":null,"parent":null,"children":["b"]},"b":{"message":{"author":{"role":"user"},"content":{"parts":["x [ } \\"]}},"parent":"a","children":[]}}}, {"title":"","conversation_id":"c2","mapping":{}}]"#;
        let s = chunked_agrees(doc, Structured::ChatGpt);
        assert_eq!(s.convs.len(), 2);
        let c = &s.convs[0];
        assert_eq!(c.title.as_deref(), Some("De\"ploy é"));
        assert_eq!(c.id.as_deref(), Some("c1"));
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[0].id, hash_id(b"a"));
        assert_eq!(c.nodes[1].id, hash_id(b"b"));
        let (a, b) = c.nodes[1].span;
        let n: serde_json::Value = serde_json::from_slice(&doc[a..b]).expect("span is the node");
        assert_eq!(n["message"]["author"]["role"], "user");
        let (a, b) = c.mapping.expect("mapping span");
        let m: serde_json::Value = serde_json::from_slice(&doc[a..b]).expect("the mapping");
        assert_eq!(m.as_object().map(|o| o.len()), Some(2));
        assert_eq!(id_hash(br"\u0061"), hash_id(b"a"));
        assert_eq!(id_hash(br"a\\b"), hash_id(br"a\b"));
        assert_eq!(s.convs[1].conv_id.as_deref(), Some("c2"));
        // Without nodes: the same mapping span and titles, no nodes, in any two pieces.
        let mut lean = Indexer::without_nodes(Structured::ChatGpt);
        lean.feed(doc);
        let lean = lean.finish().expect("indexes");
        assert!(lean.convs.iter().all(|c| c.nodes.is_empty()));
        assert_eq!(lean.convs[0].mapping, c.mapping);
        assert_eq!(lean.convs[0].title, c.title);
        for cut in 0..=doc.len() {
            let mut ix = Indexer::without_nodes(Structured::ChatGpt);
            ix.feed(&doc[..cut]);
            ix.feed(&doc[cut..]);
            let again = ix.finish().expect("indexes in two chunks");
            assert_eq!(format!("{again:?}"), format!("{lean:?}"), "cut at {cut}");
        }
    }

    #[test]
    fn claude_and_har_spans() {
        let doc = br#"{"summary":"a long string that is not kept, running past one block of 64 bytes","uuid":"u","name":"N","chat_messages":[{"text":"a"},{"text":"b]"}]}"#;
        let s = chunked_agrees(doc, Structured::Claude);
        assert_eq!(s.convs[0].title.as_deref(), Some("N"));
        // Strings that are not kept, crossing a block boundary from anywhere in a block.
        for pad in 0..64 {
            let doc = format!(
                r#"{{{}"summary":"{}","name":"T{pad}","chat_messages":[]}}"#,
                " ".repeat(pad),
                "s".repeat(70)
            );
            let s = index(doc.as_bytes(), Structured::Claude).expect("indexes");
            assert_eq!(s.convs[0].title, Some(format!("T{pad}")));
        }
        assert_eq!(s.convs[0].messages.len(), 2);
        let (a, b) = s.convs[0].messages[1];
        assert_eq!(&doc[a..b], br#"{"text":"b]"}"#);

        let har = b"{\n \"log\": {\"version\": \"1.2\", \"entries\": [\n  {\"request\": {\"url\": \"u\"}},\n  {\"x\": [1, 2.5e3, true, null]}\n ]}\n}\n";
        let s = chunked_agrees(har, Structured::Har);
        assert_eq!(s.convs[0].messages.len(), 2);
        let (a, b) = s.convs[0].messages[0];
        assert_eq!(&har[a..b], br#"{"request": {"url": "u"}}"#);
    }

    #[test]
    fn malformed_documents_are_errors() {
        for (doc, kind) in [
            (&br#"[{"title":"x","mapping":{"#[..], Structured::ChatGpt),
            (br#"[{"title":"x"]"#, Structured::ChatGpt),
            (br#"[{"title" "x"}]"#, Structured::ChatGpt),
            (br#"[{"title":"x"}] ]"#, Structured::ChatGpt),
            (br#"[{"title":"x",}"#, Structured::Claude),
            (br#"{"nolog":{}}"#, Structured::Har),
            (br#"["unterminated]"#, Structured::Claude),
        ] {
            assert!(
                index(doc, kind).is_err(),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn escapes_and_brackets_in_strings_at_every_block_offset() {
        // Messages whose text holds backslash runs, escaped quotes and brackets, shifted by one
        // byte each time so every pattern crosses a 64-byte block boundary somewhere.
        let tricky = ["\\", "\"", "\\\"", "\\\\", "{[", "]}", "\\\\\"]\\"];
        let mut msgs = Vec::new();
        for pad in 0..130 {
            let text = format!("{}{}", "x".repeat(pad), tricky.concat().repeat(1 + pad % 3));
            // Nesting within a message: deep, and many brackets closing in one block.
            let deep: serde_json::Value = serde_json::from_str(&format!(
                "{}{pad}{}",
                "[".repeat(pad % 70),
                "]".repeat(pad % 70)
            ))
            .expect("nested arrays");
            let empties = vec![serde_json::json!({}); pad % 9];
            msgs.push(serde_json::json!({
                "text": text, "n": [pad, { "k": null }], "deep": deep, "e": empties
            }));
        }
        let doc = serde_json::to_vec(&serde_json::json!([
            { "uuid": "u\\\"1", "name": "t", "chat_messages": msgs }
        ]))
        .expect("json");
        let s = index(&doc, Structured::Claude).expect("indexes");
        assert_eq!(s.convs[0].conv_id.as_deref(), Some("u\\\"1"));
        assert_eq!(s.convs[0].messages.len(), msgs.len());
        for (span, want) in s.convs[0].messages.iter().zip(&msgs) {
            let got: serde_json::Value =
                serde_json::from_slice(&doc[span.0..span.1]).expect("a whole message");
            assert_eq!(&got, want);
        }
        // Fed in odd-sized pieces, and without AVX2, the same.
        let mut ix = Indexer::new(Structured::Claude);
        ix.avx2 = false;
        for piece in doc.chunks(37) {
            ix.feed(piece);
        }
        let again = ix.finish().expect("indexes in pieces");
        assert_eq!(again.convs[0].messages, s.convs[0].messages);
    }

    #[test]
    fn an_escaped_quote_right_after_a_block_edge() {
        // The backslash is the last byte of a block, its quote the first of the next, and that
        // next block holds no other backslash: the escape must be carried across.
        let head = r#"[{"uuid":"u","chat_messages":[{"text":""#;
        for extra in 0..3 {
            let pad = (63 - head.len() % 64) % 64 + 64 * extra;
            let (x, y) = ("x".repeat(pad), "y".repeat(100));
            let doc = format!(r#"{head}{x}\"{y}"}},{{"text":"b"}}]}}]"#);
            assert_eq!((head.len() + pad) % 64, 63);
            assert_eq!(doc.as_bytes()[head.len() + pad], b'\\');
            let s = chunked_agrees(doc.as_bytes(), Structured::Claude);
            let texts: Vec<String> = s.convs[0]
                .messages
                .iter()
                .map(|&(a, b)| {
                    let v: serde_json::Value = serde_json::from_str(&doc[a..b]).expect("a message");
                    v["text"].as_str().expect("text").to_owned()
                })
                .collect();
            assert_eq!(texts.len(), 2, "{doc}");
            assert_eq!(texts[0], format!("{x}\"{y}"));
            assert_eq!(texts[1], "b");
        }
    }

    #[test]
    fn back_to_back_messages_in_one_block() {
        // Tiny messages and whitespace of every kind between them, so many messages end and
        // begin in one 64-byte block and the separators cross block boundaries everywhere.
        let msgs = [
            r#"{}"#,
            r#"{"t":"},{"}"#,
            r#"{"a":[{}],"b":{}}"#,
            r#"{"x":"\"}\\"}"#,
            r#"{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
        ];
        let seps = [
            ",",
            " ,\n  ",
            ",\t",
            "\r\n,\r\n",
            "                                ,  ",
        ];
        for shift in 0..70 {
            let mut doc = format!(r#"[{{"uuid":"{}","chat_messages":["#, "u".repeat(shift));
            let mut want = Vec::new();
            for k in 0..60 {
                if k > 0 {
                    doc.push_str(seps[(k + shift) % seps.len()]);
                }
                let m = msgs[(k * 7 + shift) % msgs.len()];
                want.push((doc.len(), doc.len() + m.len()));
                doc.push_str(m);
            }
            doc.push_str("]}]");
            let s = index(doc.as_bytes(), Structured::Claude).expect("indexes");
            assert_eq!(s.convs[0].messages, want, "shift {shift}");
            if shift % 9 == 0 {
                let again = chunked_agrees(doc.as_bytes(), Structured::Claude);
                assert_eq!(again.convs[0].messages, want, "shift {shift}, in pieces");
            }
        }
    }

    #[test]
    fn simd_and_portable_classification_agree() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut b = [0u8; 64];
            for byte in &mut b {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly the bytes that matter, some anything.
                *byte = b"\"\\{}[]:, \t\n\ra0-\x1f\x7f\xff"[(x % 18) as usize];
                if x % 7 == 0 {
                    *byte = (x >> 8) as u8;
                }
            }
            let (a, p) = (classify::<false>(&b, true), classify_portable(&b));
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("pclmulqdq") {
                assert_eq!(prefix_xor::<true>(x), prefix_xor::<false>(x), "{x:#x}");
            }
            assert_eq!(format!("{a:?}"), format!("{p:?}"), "{b:?}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                #[allow(unsafe_code)]
                // SAFETY: AVX2 was detected.
                let v = unsafe { classify_avx2(&b, true) };
                assert_eq!(format!("{v:?}"), format!("{p:?}"), "{b:?}");
            }
        }
    }

    #[test]
    fn jsonl_line_ends() {
        let s = chunked_agrees(b"{\"a\":1}\n{\"b\":2}\n", Structured::ChatJsonl);
        assert_eq!(s.line_ends, vec![7, 15]);
        assert_eq!(s.len, 16);
    }
}
