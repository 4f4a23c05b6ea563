//! Classifying 64-byte blocks of JSON into bit masks, as simdjson does: SSE2 (every x86_64 CPU),
//! AVX2 where the CPU has it, plain Rust elsewhere. All of `decode`'s `unsafe` is here.
//!
//! Which instructions may run is carried by a value: [`Avx2`] can only be made by
//! [`Simd::detect`] after the CPU was checked, so code holding one may use AVX2 (and the
//! PCLMULQDQ, POPCNT and BMI1 that come with it); [`Baseline`] is always safe. The indexer is
//! written once over [`Lanes`] and compiled once for each.

/// One 64-byte block, classified: bit `i` stands for byte `i`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Masks {
    pub quote: u64,
    pub backslash: u64,
    /// `{` or `[`.
    pub open: u64,
    /// `}` or `]`.
    pub close: u64,
    /// `:` or `,`.
    pub punct: u64,
    /// Bytes up to 0x20 (JSON whitespace; control bytes are invalid outside strings anyway).
    pub ws: u64,
}

/// An instruction set blocks are classified with.
pub(super) trait Lanes: Copy {
    /// The masks of one block; `punct` and `ws` only when `full` (inside a skipped container
    /// only strings and brackets matter).
    fn classify(self, b: &[u8; 64], full: bool) -> Masks;
    /// Bit `i` is the XOR of bits `0..=i`: set from an opening quote up to (not including) its
    /// closing quote.
    fn prefix_xor(self, x: u64) -> u64;
}

/// SSE2 on x86_64 (part of every x86_64 CPU), plain Rust elsewhere.
#[derive(Debug, Clone, Copy)]
pub(super) struct Baseline;

/// AVX2 with PCLMULQDQ, POPCNT and BMI1: only made by [`Simd::detect`] on a CPU that has them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx2 {
    _detected: (),
}

/// The instruction sets this CPU has, detected once per file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Simd {
    avx2: Option<Avx2>,
}

impl Simd {
    /// What the CPU running this has.
    pub(crate) fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("bmi1");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        Simd {
            avx2: avx2.then_some(Avx2 { _detected: () }),
        }
    }

    /// The baseline only (what a CPU without AVX2 runs; tests compare the two).
    #[cfg(test)]
    pub(crate) fn baseline() -> Simd {
        Simd { avx2: None }
    }
}

/// Something that walks whole 64-byte blocks, compiled for each instruction set.
pub(super) trait BlockWalker {
    /// Walk `data` (a multiple of 64 bytes long) classifying with `lanes`.
    fn walk<L: Lanes>(&mut self, lanes: L, data: &[u8]);
}

/// `w.walk` over `data`, in a loop compiled with AVX2 when `simd` has it.
pub(super) fn walk_blocks<W: BlockWalker>(w: &mut W, simd: Simd, data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = simd.avx2 {
        #[allow(unsafe_code)]
        // SAFETY: an `Avx2` exists only when `Simd::detect` found AVX2, PCLMULQDQ, POPCNT and
        // BMI1, the features `walk_avx2` is compiled with.
        unsafe {
            walk_avx2(w, avx2, data)
        };
        return;
    }
    let _ = simd;
    w.walk(Baseline, data);
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2,pclmulqdq,popcnt,bmi1")]
unsafe fn walk_avx2<W: BlockWalker>(w: &mut W, avx2: Avx2, data: &[u8]) {
    w.walk(avx2, data);
}

impl Lanes for Baseline {
    #[inline(always)]
    fn classify(self, b: &[u8; 64], full: bool) -> Masks {
        #[cfg(target_arch = "x86_64")]
        {
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

    #[inline(always)]
    fn prefix_xor(self, mut x: u64) -> u64 {
        x ^= x << 1;
        x ^= x << 2;
        x ^= x << 4;
        x ^= x << 8;
        x ^= x << 16;
        x ^= x << 32;
        x
    }
}

impl Lanes for Avx2 {
    #[inline(always)]
    fn classify(self, b: &[u8; 64], full: bool) -> Masks {
        #[cfg(target_arch = "x86_64")]
        {
            #[allow(unsafe_code)]
            // SAFETY: `self` proves AVX2 was detected (`Simd::detect`).
            unsafe {
                classify_avx2(b, full)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Baseline.classify(b, full)
        }
    }

    /// One carry-less multiplication by all ones.
    #[inline(always)]
    fn prefix_xor(self, x: u64) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::*;
            #[allow(unsafe_code)]
            // SAFETY: `self` proves PCLMULQDQ was detected (`Simd::detect`); the other
            // intrinsics are SSE2.
            unsafe {
                _mm_cvtsi128_si64(_mm_clmulepi64_si128(
                    _mm_set_epi64x(0, x as i64),
                    _mm_set1_epi8(-1),
                    0,
                )) as u64
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Baseline.prefix_xor(x)
        }
    }
}

/// [`Masks`] of one block with SSE2.
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
unsafe fn classify_avx2(b: &[u8; 64], full: bool) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: this function only runs where AVX2 is enabled (target_feature, and its callers
    // hold an `Avx2`); each load reads 32 bytes inside the 64-byte array (`loadu`: no
    // alignment needed).
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

/// The masks byte by byte: the reference the vector versions are tested against (and what a
/// CPU other than x86_64 runs).
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

/// The bytes escaped by a backslash (simdjson's odd-length run trick); `prev` carries whether
/// the first byte of the next block is escaped.
#[inline(always)]
pub(super) fn find_escaped(backslash: u64, prev: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*prev;
    let follows_escape = (backslash << 1) | *prev;
    let odd_starts = backslash & !EVEN & !follows_escape;
    let (even_starts, overflow) = odd_starts.overflowing_add(backslash);
    *prev = u64::from(overflow);
    let invert = even_starts << 1;
    (EVEN ^ invert) & follows_escape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_portable_classification_agree() {
        let avx2 = Simd::detect().avx2;
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
            let p = classify_portable(&b);
            assert_eq!(Baseline.classify(&b, true), p, "{b:?}");
            let lean = Baseline.classify(&b, false);
            assert_eq!(
                (lean.quote, lean.open, lean.close),
                (p.quote, p.open, p.close)
            );
            if let Some(v) = avx2 {
                assert_eq!(v.classify(&b, true), p, "{b:?}");
                assert_eq!(v.prefix_xor(x), Baseline.prefix_xor(x), "{x:#x}");
            }
        }
        // The prefix XOR itself, on a few hand-checked values.
        assert_eq!(Baseline.prefix_xor(0b1001), 0b0111);
        assert_eq!(Baseline.prefix_xor(1), !0);
    }
}
