//! Keys in screenshots: decode an image (PNG, JPEG, WebP, GIF's first frame, BMP, TIFF), OCR it
//! with Tesseract (twice: upscaled 2x as one uniform block, and at 1x), recover keys from the
//! lines it read ([`recover`]: fuzzy prefix, split tokens joined, checksum-guided correction),
//! and merge the passes into findings with their boxes in pixels; and black those boxes out.
//!
//! Depends on `key` and on `scan` for the finding type; `scan` knows nothing of images (the
//! command line routes image files here).

pub mod recover;
mod tesseract;

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{DynamicImage, GrayImage, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

pub use recover::{Candidate, Outcome, recover};
pub use tesseract::{Engine, INSTALL, Line, Word, parse_tsv};

use crate::key::{KeyKind, Secret};
use crate::rules::Confidence;
use crate::scan::{Encoding, Finding, Location, Origin, Policy, SourceKind};

/// What went wrong with one image. Never holds text read from it.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// No usable Tesseract.
    #[error("no OCR engine ({0}): {INSTALL}")]
    NoEngine(&'static str),
    /// The bytes are not an image this can decode.
    #[error("cannot decode the image: {0}")]
    Decode(String),
    /// Tesseract failed.
    #[error("{0}")]
    Engine(String),
    /// Tesseract ran past the time allowed for the image.
    #[error("OCR took longer than the time allowed per image, stopped")]
    Timeout,
    /// The private temporary folder.
    #[error("temporary file: {0}")]
    Temp(std::io::Error),
    /// Writing the redacted copy.
    #[error("cannot encode the redacted image: {0}")]
    Encode(String),
}

/// A box in the pixels of the image: `location.box` of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl PixelBox {
    fn overlaps(&self, o: &PixelBox) -> bool {
        self.x < o.x + o.width
            && o.x < self.x + self.width
            && self.y < o.y + o.height
            && o.y < self.y + self.height
    }
}

/// Bounds on one image.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall time for all OCR passes of one image.
    pub time: Duration,
    /// Virtual memory of each Tesseract process.
    pub memory_kib: u64,
    /// Largest width or height decoded.
    pub max_side: u32,
    /// Most bytes the decoder may allocate.
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time: Duration::from_secs(60),
            memory_kib: 2 << 20,
            max_side: 16_384,
            max_alloc: 1 << 30,
        }
    }
}

/// Tesseract's automatic page layout (keeps the columns of a chat or an IDE apart).
const PSM_AUTO: u8 = 3;
/// One uniform block of text (reads small screen fonts best, upscaled).
const PSM_BLOCK: u8 = 6;
/// Words this tall (pixels, median) or taller are read well as they are; smaller text (1x
/// screen fonts) is upscaled 2x for the second pass. Retina (2x) screenshots are not.
const TALL_ENOUGH: u32 = 22;

/// Which image format `head` starts like, among those read.
pub fn sniff(head: &[u8]) -> Option<ImageFormat> {
    let f = image::guess_format(head).ok()?;
    matches!(
        f,
        ImageFormat::Png
            | ImageFormat::Jpeg
            | ImageFormat::WebP
            | ImageFormat::Gif
            | ImageFormat::Bmp
            | ImageFormat::Tiff
    )
    .then_some(f)
}

/// A key recovered from an image.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The key.
    pub secret: Secret,
    /// Where, in the image's pixels.
    pub bbox: PixelBox,
    /// Characters the correction changed.
    pub corrections: u8,
}

/// What the passes over one image found.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// Keys recovered (current keys, and legacy candidates when asked for).
    pub keys: Vec<Seen>,
    /// Boxes of text that starts like a key but was not recovered.
    pub unrecovered: Vec<PixelBox>,
    /// Checksum tests spent by the correction search (the chance of a wrong key is this
    /// times 2^-32).
    pub tests: u64,
}

/// Decode an image within `limits` (GIF: its first frame).
pub fn decode(data: &[u8], limits: &Limits) -> Result<DynamicImage, OcrError> {
    let mut r = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|e| OcrError::Decode(e.to_string()))?;
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    r.limits(l);
    r.decode().map_err(|e| OcrError::Decode(e.to_string()))
}

/// OCR `img` and recover the keys it shows; legacy candidates (32 hex next to a context word)
/// only when `legacy`.
pub fn read(
    engine: &Engine,
    img: &DynamicImage,
    limits: &Limits,
    legacy: bool,
) -> Result<Reading, OcrError> {
    let deadline = Instant::now() + limits.time;
    let dir = tempfile::tempdir().map_err(OcrError::Temp)?;
    let mut gray = img.to_luma8();
    // Tesseract reads dark text on a light ground best: turn a dark terminal over.
    let mean = gray.as_raw().iter().map(|&p| u64::from(p)).sum::<u64>()
        / (u64::from(gray.width()) * u64::from(gray.height())).max(1);
    if mean < 128 {
        image::imageops::invert(&mut gray);
    }
    let mut keys: Vec<Seen> = Vec::new();
    let mut unrecovered = Vec::new();
    let mut tests = 0;
    let mut conflicts = Vec::new();
    // First pass at 1x with automatic layout; its word heights choose the second pass's scale.
    let mut passes = vec![(1, PSM_AUTO)];
    let mut i = 0;
    while let Some(&(scale, psm)) = passes.get(i) {
        i += 1;
        let scaled;
        let input: &GrayImage = if scale == 1 {
            &gray
        } else {
            scaled = image::imageops::resize(
                &gray,
                gray.width() * scale,
                gray.height() * scale,
                image::imageops::FilterType::Triangle,
            );
            &scaled
        };
        let lines = engine.read(input, psm, dir.path(), deadline, limits.memory_kib)?;
        if i == 1 {
            let mut heights: Vec<u32> = lines.iter().flatten().map(|w| w.h).collect();
            heights.sort_unstable();
            let median = heights.get(heights.len() / 2).copied().unwrap_or(0);
            passes.push((if median >= TALL_ENOUGH { 1 } else { 2 }, PSM_BLOCK));
        }
        for line in &lines {
            let (found, lost, n) = read_line(line, scale, legacy);
            tests += n;
            unrecovered.extend(lost);
            for s in found {
                merge(&mut keys, &mut conflicts, s);
            }
        }
    }
    // Where the page passes saw a key-like start they could not recover: read just those
    // lines again (see `line_box_pass`).
    let flagged: Vec<PixelBox> = unrecovered
        .iter()
        .filter(|u| !keys.iter().any(|k: &Seen| k.bbox.overlaps(u)))
        .copied()
        .collect();
    if !flagged.is_empty() {
        let lines = line_box_pass(
            engine,
            &gray,
            &flagged,
            dir.path(),
            deadline,
            limits.memory_kib,
        )?;
        for line in &lines {
            let (found, lost, n) = read_line(line, 1, legacy);
            tests += n;
            unrecovered.extend(lost);
            for s in found {
                merge(&mut keys, &mut conflicts, s);
            }
        }
    }
    // Two different keys read at the same place: neither is trusted.
    keys.retain(|k| !conflicts.iter().any(|c: &PixelBox| c.overlaps(&k.bbox)));
    unrecovered.retain(|u| !keys.iter().any(|k| k.bbox.overlaps(u)));
    Ok(Reading {
        keys,
        unrecovered,
        tests,
    })
}

/// The key alphabet and `_`: all the line-box pass may read.
const WHITELIST: &str = "tessedit_char_whitelist=\
0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";
/// Glyph height (pixels) the crops of the line-box pass are upscaled to.
const LINE_PX: u32 = 40;
/// At most this many line boxes per image get the extra pass (bounds its time and the
/// correction search it adds).
const MAX_LINE_BOXES: usize = 24;

/// The line-box pass: each box where the page passes saw a key-like start they could not
/// recover is cropped from the image (the rest of the line to the right included), made dark
/// on light (a crop whose ground is darker than its text, such as white on a blue chat bubble,
/// is turned over) and binarized, upscaled, and the crops are stacked into one image that
/// Tesseract reads with a whitelist of the key alphabet and `_`. Returns lines with words in
/// the original image's pixels.
fn line_box_pass(
    engine: &Engine,
    gray: &GrayImage,
    boxes: &[PixelBox],
    dir: &std::path::Path,
    deadline: Instant,
    memory_kib: u64,
) -> Result<Vec<Line>, OcrError> {
    // One crop per line: boxes on the same line merged.
    let mut crops: Vec<PixelBox> = Vec::new();
    for b in boxes.iter().filter(|b| b.width > 0 && b.height > 0) {
        let pad = b.height / 2 + 2;
        let x0 = b.x.saturating_sub(2 * pad);
        let y0 = b.y.saturating_sub(pad);
        // A partial read: the key may run on to the right of what was read.
        let x1 = (b.x + b.width + b.width / 2 + 4 * pad).min(gray.width());
        let y1 = (b.y + b.height + pad).min(gray.height());
        let c = PixelBox {
            x: x0,
            y: y0,
            width: x1.saturating_sub(x0),
            height: y1.saturating_sub(y0),
        };
        if c.width == 0 || c.height == 0 {
            continue;
        }
        match crops.iter_mut().find(|o| o.overlaps(&c)) {
            Some(o) => {
                let (ox1, oy1) = (o.x + o.width, o.y + o.height);
                o.x = o.x.min(c.x);
                o.y = o.y.min(c.y);
                o.width = ox1.max(c.x + c.width) - o.x;
                o.height = oy1.max(c.y + c.height) - o.y;
            }
            None => crops.push(c),
        }
        if crops.len() >= MAX_LINE_BOXES {
            break;
        }
    }
    if crops.is_empty() {
        return Ok(Vec::new());
    }
    let mut heights: Vec<u32> = boxes.iter().map(|b| b.height).filter(|&h| h > 0).collect();
    heights.sort_unstable();
    let h = heights[heights.len() / 2].max(1);
    let scale = LINE_PX.div_ceil(h).clamp(1, 4);
    let gap = LINE_PX;
    let width = crops.iter().map(|c| c.width).max().unwrap_or(0) * scale + 2 * gap;
    let height: u32 = crops.iter().map(|c| c.height * scale + gap).sum::<u32>() + gap;
    let mut sheet = GrayImage::from_pixel(width, height, image::Luma([255]));
    // Where each crop landed: its top in the sheet.
    let mut tops = Vec::with_capacity(crops.len());
    let mut top = gap;
    for c in &crops {
        let crop = image::imageops::crop_imm(gray, c.x, c.y, c.width, c.height).to_image();
        let up = image::imageops::resize(
            &crop,
            c.width * scale,
            c.height * scale,
            image::imageops::FilterType::Triangle,
        );
        let t = otsu(&up);
        // The ground is what most pixels are: dark ground, light text gets turned over.
        let dark = up.as_raw().iter().filter(|&&p| p <= t).count();
        let invert = dark * 2 > up.as_raw().len();
        for (x, y, p) in up.enumerate_pixels() {
            let ink = (p.0[0] <= t) != invert;
            sheet.put_pixel(gap + x, top + y, image::Luma([if ink { 0 } else { 255 }]));
        }
        tops.push(top);
        top += c.height * scale + gap;
    }
    let lines = engine.read_with(
        &sheet,
        PSM_BLOCK,
        &["-c", WHITELIST],
        dir,
        deadline,
        memory_kib,
    )?;
    // Back to the image's pixels: by the crop the word's middle falls in.
    let mut out = Vec::new();
    for line in lines {
        let mut mapped = Vec::new();
        for w in line {
            let mid = w.y + w.h / 2;
            let Some(i) = tops
                .iter()
                .zip(&crops)
                .position(|(&t, c)| mid >= t && mid < t + c.height * scale)
            else {
                continue;
            };
            let (t, c) = (tops[i], crops[i]);
            let x = w.x.saturating_sub(gap) / scale;
            let y = w.y.saturating_sub(t) / scale;
            mapped.push(Word {
                x: c.x + x.min(c.width),
                y: c.y + y.min(c.height),
                w: w.w.div_ceil(scale),
                h: w.h.div_ceil(scale),
                text: w.text,
            });
        }
        if !mapped.is_empty() {
            out.push(mapped);
        }
    }
    Ok(out)
}

/// Otsu's threshold of a gray image: the level that best splits it into two classes.
fn otsu(img: &GrayImage) -> u8 {
    let mut hist = [0u64; 256];
    for &p in img.as_raw() {
        hist[usize::from(p)] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut level) = (0u64, 0f64, -1f64, 127u8);
    for (t, &n) in hist.iter().enumerate() {
        w0 += n;
        if w0 == 0 {
            continue;
        }
        let w1 = total - w0;
        if w1 == 0 {
            break;
        }
        sum0 += t as f64 * n as f64;
        let (m0, m1) = (sum0 / w0 as f64, (sum - sum0) / w1 as f64);
        let between = w0 as f64 * w1 as f64 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            level = t as u8;
        }
    }
    level
}

/// Add `s` to what earlier lines or passes found: the same key at the same place once (with
/// the fewest corrections), a different key at the same place a conflict.
fn merge(keys: &mut Vec<Seen>, conflicts: &mut Vec<PixelBox>, s: Seen) {
    for k in keys.iter_mut() {
        if k.bbox.overlaps(&s.bbox) {
            if k.secret == s.secret {
                if s.corrections < k.corrections {
                    *k = s;
                }
            } else {
                conflicts.push(s.bbox);
            }
            return;
        }
    }
    keys.push(s);
}

/// One line of one pass: keys recovered, boxes of key-like starts not recovered, tests spent.
fn read_line(line: &Line, scale: u32, legacy: bool) -> (Vec<Seen>, Vec<PixelBox>, u64) {
    // The line's text, words joined by one space, and where each word's characters start.
    let mut text = String::new();
    let mut starts = Vec::with_capacity(line.len());
    let mut n = 0;
    for (i, w) in line.iter().enumerate() {
        if i > 0 {
            text.push(' ');
            n += 1;
        }
        starts.push(n);
        text.push_str(&w.text);
        n += w.text.chars().count();
    }
    let bbox = |a: usize, b: usize| span_box(line, &starts, a, b, scale);
    let (mut found, mut lost, mut tests) = (Vec::new(), Vec::new(), 0);
    for c in recover(&text) {
        tests += c.tests;
        match c.outcome {
            Outcome::Key {
                secret,
                corrections,
            } => found.push(Seen {
                secret,
                bbox: bbox(c.span.start, c.span.end),
                corrections,
            }),
            Outcome::Ambiguous | Outcome::Unrecovered => lost.push(whole_key(
                bbox(c.span.start, c.span.end),
                c.span.end - c.span.start,
            )),
        }
    }
    if legacy {
        for (a, b, secret) in legacy_candidates(&text) {
            found.push(Seen {
                secret,
                bbox: bbox(a, b),
                corrections: 0,
            });
        }
    }
    (found, lost, tests)
}

/// Legacy key shapes as OCR reads them: 32 characters of hex (with `o`/`O` for 0 and `l`/`I` for
/// 1) after a context word on the same line. Char spans and the key.
fn legacy_candidates(text: &str) -> Vec<(usize, usize, Secret)> {
    const WORDS: [&str; 6] = [
        "offset",
        "oc_key",
        "oc-key",
        "oc_api",
        "oc-api",
        "x-offset-key",
    ];
    let lower = text.to_ascii_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let s = i;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i - s != crate::key::LEGACY_LEN {
            continue;
        }
        let hex: String = chars[s..i]
            .iter()
            .map(|&c| match c {
                'o' => '0',
                'l' | 'i' => '1',
                c => c,
            })
            .collect();
        let before: String = chars[s.saturating_sub(80)..s].iter().collect();
        if WORDS.iter().any(|w| before.contains(w)) {
            if let Ok(secret) = Secret::parse(&hex) {
                if secret.kind() == KeyKind::Legacy {
                    out.push((s, i, secret));
                }
            }
        }
    }
    out
}

/// The box of chars `a..b` of a line, in the original image's pixels: whole words between,
/// and the part of the first and last word the span covers, by the share of their characters.
/// The box a whole key would take, from the box of the `chars` characters OCR read of its start:
/// a start read only in part (a key cut short, or split by a lost word) is widened to the
/// right to `KEY_LEN` characters of the same width, so that a redaction of it leaves none of
/// the key's body readable. Widening past the image is clipped where the box is painted.
fn whole_key(b: PixelBox, chars: usize) -> PixelBox {
    let chars = chars.max(1) as u64;
    let full = crate::key::KEY_LEN as u64;
    if chars >= full {
        return b;
    }
    let width = (u64::from(b.width) * full).div_ceil(chars);
    PixelBox {
        width: u32::try_from(width)
            .unwrap_or(u32::MAX - b.x)
            .min(u32::MAX - b.x),
        ..b
    }
}

fn span_box(line: &Line, starts: &[usize], a: usize, b: usize, scale: u32) -> PixelBox {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
    for (w, &s) in line.iter().zip(starts) {
        let len = w.text.chars().count().max(1);
        let e = s + len;
        if e <= a || s >= b {
            continue;
        }
        let from = a.saturating_sub(s).min(len) as u64;
        let to = (b.min(e) - s) as u64;
        let left = w.x + (u64::from(w.w) * from / len as u64) as u32;
        let right = w.x + (u64::from(w.w) * to).div_ceil(len as u64) as u32;
        x0 = x0.min(left);
        x1 = x1.max(right);
        y0 = y0.min(w.y);
        y1 = y1.max(w.y + w.h);
    }
    if x0 > x1 {
        return PixelBox {
            x: 0,
            y: 0,
            width: 0,
            height: 0,
        };
    }
    PixelBox {
        x: x0 / scale,
        y: y0 / scale,
        width: (x1 - x0).div_ceil(scale),
        height: (y1 - y0).div_ceil(scale),
    }
}

/// Findings for what an image showed: `encoding: "ocr"`, `confidence: "medium"` (legacy:
/// low), the corrections made and the box; the allowlists and baseline of `policy` applied.
pub fn findings(reading: &Reading, origin: &Origin, policy: &Policy) -> Vec<Finding> {
    reading
        .keys
        .iter()
        .filter(|s| policy.keeps(&origin.path, &s.secret.sha256()))
        .map(|s| {
            let kind = s.secret.kind();
            Finding {
                rule: match kind {
                    KeyKind::Current => "offset-api-key",
                    KeyKind::Legacy => "offset-legacy-key",
                }
                .into(),
                kind,
                confidence: match kind {
                    KeyKind::Current => Confidence::Medium,
                    KeyKind::Legacy => Confidence::Low,
                },
                secret: s.secret.clone(),
                location: Location::image(origin, s.bbox),
                encoding: Encoding::Ocr,
                verification: None,
                rotated_to: None,
                span: 0,
                corrections: Some(s.corrections),
            }
        })
        .collect()
}

/// `origin` of an image file: its source becomes `image`, unless it came from git history.
pub fn image_origin(origin: &Origin) -> Origin {
    Origin {
        source: Some(match origin.source {
            Some(SourceKind::Git) => SourceKind::Git,
            _ => SourceKind::Image,
        }),
        ..origin.clone()
    }
}

/// A margin around each box, so antialiased edges of the glyphs are covered too.
const PAD: u32 = 3;

/// Cover each box of `boxes` with a solid black rectangle and encode the image as `format`,
/// the format it came in (GIF: its first frame only).
pub fn redact(
    img: &DynamicImage,
    boxes: &[PixelBox],
    format: ImageFormat,
) -> Result<Vec<u8>, OcrError> {
    let mut img = img.clone();
    let (w, h) = (img.width(), img.height());
    {
        let mut paint = |x: u32, y: u32| match &mut img {
            DynamicImage::ImageRgba8(i) => i.put_pixel(x, y, image::Rgba([0, 0, 0, 255])),
            other => {
                let mut px = image::GenericImageView::get_pixel(other, x, y);
                px.0 = [0, 0, 0, 255];
                image::GenericImage::put_pixel(other, x, y, px);
            }
        };
        for b in boxes {
            let (x0, y0) = (b.x.saturating_sub(PAD), b.y.saturating_sub(PAD));
            let x1 = (b.x + b.width + PAD).min(w);
            let y1 = (b.y + b.height + PAD).min(h);
            for y in y0..y1 {
                for x in x0..x1 {
                    paint(x, y);
                }
            }
        }
    }
    // JPEG has no alpha channel; the others keep what the image had.
    let img = if format == ImageFormat::Jpeg && img.color().has_alpha() {
        DynamicImage::ImageRgb8(img.to_rgb8())
    } else {
        img
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .map_err(|e| OcrError::Encode(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, x: u32, w: u32) -> Word {
        Word {
            text: text.into(),
            x,
            y: 10,
            w,
            h: 20,
        }
    }

    #[test]
    fn a_start_read_only_in_part_is_flagged_with_the_width_of_a_whole_key() {
        // The prefix and 12 body characters, then OCR lost the rest: 20 characters in 200 px.
        let line = vec![word("oc_live_AbCdEfGhIjKl", 100, 200)];
        let (found, lost, _) = read_line(&line, 1, false);
        assert!(found.is_empty());
        assert_eq!(lost.len(), 1, "{lost:?}");
        // 46 characters of 10 px: the box reaches where the key's last character would end.
        assert_eq!((lost[0].x, lost[0].width), (100, 460), "{lost:?}");
    }

    #[test]
    fn a_key_inside_a_word_gets_the_box_of_its_characters() {
        // "KEY=" + key: 4 + 46 characters over 500 pixels, read at 2x.
        let k = "oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL";
        let line = vec![word(&format!("KEY={k}"), 100, 500), word("#", 620, 10)];
        let (found, lost, _) = read_line(&line, 2, false);
        assert!(lost.is_empty());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].bbox,
            PixelBox {
                x: 70,
                y: 5,
                width: 230,
                height: 10
            }
        );
    }

    #[test]
    fn otsu_splits_text_from_its_ground_either_way_round() {
        // White text (200) on a blue bubble's gray (96), and dark text (20) on white (250).
        for (ground, ink) in [(96u8, 200u8), (250, 20)] {
            let img = GrayImage::from_fn(40, 10, |x, _| {
                image::Luma([if x % 5 == 0 { ink } else { ground }])
            });
            let t = otsu(&img);
            assert!(t >= ground.min(ink) && t < ground.max(ink), "{t}");
        }
    }

    #[test]
    fn legacy_shapes_need_a_context_word() {
        let hex = "0123456789abcdef0123456789abcdef";
        assert_eq!(legacy_candidates(&format!("X-Offset-Key: {hex}")).len(), 1);
        assert!(legacy_candidates(&format!("md5: {hex}")).is_empty());
        let misread = "0l23456789abcdef0123456789abcdeO";
        assert_eq!(legacy_candidates(&format!("offset {misread}")).len(), 1);
    }

    #[test]
    fn redaction_keeps_format_and_size() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            40,
            30,
            image::Rgb([255, 255, 255]),
        ));
        let b = PixelBox {
            x: 10,
            y: 10,
            width: 5,
            height: 5,
        };
        for f in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Bmp] {
            let bytes = redact(&img, &[b], f).expect("encode");
            assert_eq!(sniff(&bytes), Some(f));
            let back = decode(&bytes, &Limits::default())
                .expect("decode")
                .to_rgb8();
            assert_eq!(back.dimensions(), (40, 30));
            assert!(back.get_pixel(12, 12).0.iter().all(|&c| c < 40));
            assert!(back.get_pixel(30, 25).0.iter().all(|&c| c > 200));
        }
    }
}
