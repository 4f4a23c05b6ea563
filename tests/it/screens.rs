//! Realistic screenshots rendered at test time (no binary fixtures): a dark terminal in a
//! monospace font, a light IDE with syntax colours, browser devtools request headers and a chat
//! window in a proportional font, at 1x or 2x, with fake keys among ordinary text. Shared by
//! tests/it/images.rs and the OCR benchmark (examples/ocr_bench.rs includes this file).

#![allow(dead_code)]

use ab_glyph::{Font, FontVec, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

/// The four looks of the tests and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Dark terminal, DejaVu Sans Mono.
    Terminal,
    /// Light IDE with syntax colours, Liberation Mono.
    Ide,
    /// Browser devtools, request headers, DejaVu Sans.
    Devtools,
    /// Chat window with bubbles, Liberation Sans.
    Chat,
}

impl Style {
    /// All of them.
    pub const ALL: [Style; 4] = [Style::Terminal, Style::Ide, Style::Devtools, Style::Chat];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Style::Terminal => "terminal",
            Style::Ide => "ide",
            Style::Devtools => "devtools",
            Style::Chat => "chat",
        }
    }

    fn font_file(self) -> &'static str {
        match self {
            Style::Terminal => "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
            Style::Ide => "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
            Style::Devtools => "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            Style::Chat => "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        }
    }

    /// Font size in pixels at 1x.
    fn px(self) -> f32 {
        match self {
            Style::Terminal => 15.0,
            Style::Ide => 14.0,
            Style::Devtools => 13.0,
            Style::Chat => 15.0,
        }
    }
}

/// Load a style's font; a missing font fails naming the package to install.
pub fn font(style: Style) -> FontVec {
    let path = style.font_file();
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{path}: {e}: install the fonts the screenshot tests render with \
             (apt-get install fonts-dejavu-core fonts-liberation)"
        )
    });
    FontVec::try_from_vec(bytes).expect("a TrueType font")
}

/// What a screenshot holds: its keys (and look-alikes) are placed among ordinary lines.
pub struct Content<'a> {
    /// Keys that must be found.
    pub keys: &'a [String],
    /// Checksum-invalid look-alikes that must not be reported.
    pub decoys: &'a [String],
}

type Span = (String, [u8; 3]);

/// Render a `width`×`height` (1x pixels) screenshot of `style` at `scale` (1 or 2).
pub fn render(style: Style, scale: u32, width: u32, height: u32, c: &Content<'_>) -> RgbImage {
    let f = font(style);
    let px = style.px() * scale as f32;
    let (bg, lines) = lines(style, c);
    let mut img = RgbImage::from_pixel(width * scale, height * scale, Rgb(bg));
    let line_h = (px * 1.45).round() as u32;
    let (left, top) = (16 * scale, 14 * scale);
    match style {
        Style::Ide => {
            // Gutter with line numbers, a current-line highlight.
            fill(
                &mut img,
                0,
                0,
                44 * scale,
                height * scale,
                [0xf3, 0xf3, 0xf3],
            );
        }
        Style::Devtools => {
            fill(
                &mut img,
                0,
                0,
                width * scale,
                30 * scale,
                [0xf1, 0xf3, 0xf4],
            );
            draw(
                &mut img,
                &f,
                px,
                12 * scale,
                8 * scale,
                &[(
                    "Elements   Console   Sources   Network   Performance".into(),
                    [0x5f, 0x63, 0x68],
                )],
            );
        }
        _ => {}
    }
    let mut y = top
        + if style == Style::Devtools {
            30 * scale
        } else {
            0
        };
    for (i, spans) in lines.iter().enumerate() {
        if y + line_h > height * scale {
            let hidden = lines[i..]
                .iter()
                .flatten()
                .any(|(t, _)| t.contains("oc_live_"));
            assert!(
                !hidden,
                "{} keys do not fit in {width}x{height}",
                style.name()
            );
            break;
        }
        let mut x = left;
        match style {
            Style::Ide => {
                draw(
                    &mut img,
                    &f,
                    px,
                    8 * scale,
                    y,
                    &[(format!("{:>3}", i + 1), [0x99, 0x99, 0x99])],
                );
                x = 56 * scale;
            }
            Style::Chat => {
                // Alternate bubbles: the user's (blue, white text) right, the assistant's left.
                let text_w = width_of(&f, px, spans);
                let mine = i % 3 == 1;
                let bx = if mine {
                    (width * scale).saturating_sub(text_w + 60 * scale)
                } else {
                    24 * scale
                };
                let colour = if mine {
                    [0x25, 0x63, 0xeb]
                } else {
                    [0xec, 0xee, 0xf1]
                };
                fill(
                    &mut img,
                    bx,
                    y - 4 * scale,
                    text_w + 28 * scale,
                    line_h + 4 * scale,
                    colour,
                );
                x = bx + 14 * scale;
                if mine {
                    let white: Vec<Span> = spans
                        .iter()
                        .map(|(t, _)| (t.clone(), [255, 255, 255]))
                        .collect();
                    draw(&mut img, &f, px, x, y, &white);
                    y += line_h + 12 * scale;
                    continue;
                }
            }
            _ => {}
        }
        draw(&mut img, &f, px, x, y, spans);
        y += line_h + if style == Style::Chat { 12 * scale } else { 0 };
    }
    img
}

fn fill(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, c: [u8; 3]) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, Rgb(c));
        }
    }
}

fn width_of(f: &FontVec, px: f32, spans: &[Span]) -> u32 {
    let sf = f.as_scaled(PxScale::from(px));
    spans
        .iter()
        .flat_map(|(t, _)| t.chars())
        .map(|ch| sf.h_advance(sf.glyph_id(ch)))
        .sum::<f32>()
        .ceil() as u32
}

/// Draw spans of coloured text from (x, y) (top of the line), blending coverage.
fn draw(img: &mut RgbImage, f: &FontVec, px: f32, x: u32, y: u32, spans: &[Span]) {
    let sf = f.as_scaled(PxScale::from(px));
    let mut pen = x as f32;
    let base = y as f32 + sf.ascent();
    let mut prev = None;
    for (text, colour) in spans {
        for ch in text.chars() {
            let id = sf.glyph_id(ch);
            if let Some(p) = prev {
                pen += sf.kern(p, id);
            }
            let g = id.with_scale_and_position(PxScale::from(px), ab_glyph::point(pen, base));
            if let Some(o) = f.outline_glyph(g) {
                let b = o.px_bounds();
                o.draw(|gx, gy, cov| {
                    let (xx, yy) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                    if xx < 0 || yy < 0 || xx as u32 >= img.width() || yy as u32 >= img.height() {
                        return;
                    }
                    let p = img.get_pixel_mut(xx as u32, yy as u32);
                    for (c, &want) in p.0.iter_mut().zip(colour) {
                        let v = f32::from(*c) * (1.0 - cov) + f32::from(want) * cov;
                        *c = v.round().clamp(0.0, 255.0) as u8;
                    }
                });
            }
            pen += sf.h_advance(id);
            prev = Some(id);
        }
    }
}

fn s(t: &str, c: [u8; 3]) -> Span {
    (t.to_owned(), c)
}

/// The background and the lines of a style, keys and decoys placed among them.
fn lines(style: Style, c: &Content<'_>) -> ([u8; 3], Vec<Vec<Span>>) {
    let mut secrets: Vec<&String> = Vec::new();
    for i in 0..c.keys.len().max(c.decoys.len()) {
        secrets.extend(c.keys.get(i));
        secrets.extend(c.decoys.get(i));
    }
    let mut out: Vec<Vec<Span>> = Vec::new();
    match style {
        Style::Terminal => {
            let (fg, green, blue, grey) = (
                [0xd4, 0xd4, 0xd4],
                [0x6a, 0xd8, 0x6a],
                [0x61, 0xaf, 0xef],
                [0x8a, 0x8a, 0x8a],
            );
            let filler = [
                "total 48 drwxr-xr-x 5 dev staff 160 Mar 3 10:12 .",
                "Compiling payments v0.4.2 (/home/dev/shop/payments)",
                "Finished release profile [optimized] target(s) in 41.07s",
                "INFO server listening on 0.0.0.0:8080 (workers=4)",
                "GET /v1/orders?limit=20 200 OK 12ms",
            ];
            for (i, k) in secrets.iter().enumerate() {
                out.push(vec![
                    s("dev@shop", green),
                    s(":", fg),
                    s("~/payments", blue),
                    s("$ ", fg),
                    s(
                        filler[i % filler.len()].split(' ').next().unwrap_or("ls"),
                        fg,
                    ),
                ]);
                out.push(vec![s(filler[(i + 1) % filler.len()], grey)]);
                out.push(vec![
                    s("dev@shop", green),
                    s(":", fg),
                    s("~/payments", blue),
                    s(&format!("$ export OFFSET_API_KEY={k}"), fg),
                ]);
                out.push(vec![s(filler[(i + 3) % filler.len()], fg)]);
            }
            ([0x1e, 0x1e, 0x1e], out)
        }
        Style::Ide => {
            let (kw, string, ident, comment) = (
                [0x00, 0x00, 0xff],
                [0xa3, 0x15, 0x15],
                [0x00, 0x10, 0x80],
                [0x00, 0x80, 0x00],
            );
            for (i, k) in secrets.iter().enumerate() {
                out.push(vec![s(
                    "// Offset Commerce client, see docs/payments.md",
                    comment,
                )]);
                out.push(vec![
                    s("import", kw),
                    s(" { Client } ", ident),
                    s("from", kw),
                    s(" \"@offset/commerce\";", string),
                ]);
                out.push(vec![
                    s("const", kw),
                    s(&format!(" client{i} = "), ident),
                    s("new", kw),
                    s(" Client({ apiKey: ", ident),
                    s(&format!("\"{k}\""), string),
                    s(" });", ident),
                ]);
                out.push(vec![
                    s("export", kw),
                    s(" default ", kw),
                    s(&format!("client{i};"), ident),
                ]);
            }
            ([0xff, 0xff, 0xff], out)
        }
        Style::Devtools => {
            let (name, value, head) = ([0x88, 0x1e, 0x8c], [0x20, 0x21, 0x24], [0x5f, 0x63, 0x68]);
            for (i, k) in secrets.iter().enumerate() {
                out.push(vec![s("▼ Request Headers", head)]);
                out.push(vec![
                    s(":authority: ", name),
                    s("api.offset-commerce.com", value),
                ]);
                out.push(vec![
                    s(":path: ", name),
                    s(&format!("/v1/charges?page={i}"), value),
                ]);
                out.push(vec![s("accept: ", name), s("application/json", value)]);
                out.push(vec![
                    s("authorization: ", name),
                    s(&format!("Bearer {k}"), value),
                ]);
                out.push(vec![
                    s("user-agent: ", name),
                    s("Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0", value),
                ]);
            }
            ([0xff, 0xff, 0xff], out)
        }
        Style::Chat => {
            let text = [0x11, 0x18, 0x27];
            for k in &secrets {
                out.push(vec![s(
                    "Sure! Can you paste the exact request you are sending?",
                    text,
                )]);
                out.push(vec![s(
                    &format!("Here it is, with my key {k} in the header"),
                    text,
                )]);
                out.push(vec![s(
                    "Thanks. Please rotate that key now, it is in this chat.",
                    text,
                )]);
            }
            ([0xff, 0xff, 0xff], out)
        }
    }
}

/// A fake current key from the key generator (a fresh random body and its checksum).
pub fn fake_key() -> String {
    offkey::key::generate().expose().to_owned()
}

/// Fake keys and look-alikes derived from a fixed seed (splitmix64 over the base62 alphabet,
/// the checksum computed): the same seed gives the same keys, so an OCR failure reproduces.
pub struct Seeded(u64);

impl Seeded {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Seeded(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next fake key: a seeded body and its checksum.
    pub fn key(&mut self) -> String {
        let body: Vec<u8> = (0..offkey::key::BODY_LEN)
            .map(|_| offkey::key::ALPHABET[(self.next() % 62) as usize])
            .collect();
        let csum = offkey::key::checksum(&body);
        let k = format!(
            "{}{}{}",
            offkey::key::PREFIX,
            std::str::from_utf8(&body).expect("base62 is ASCII"),
            std::str::from_utf8(&csum).expect("base62 is ASCII")
        );
        assert!(offkey::key::is_current(k.as_bytes()));
        k
    }

    /// The next look-alike (see [`decoy`]).
    pub fn decoy(&mut self) -> String {
        loop {
            let d = reversed(&self.key());
            if !offkey::key::is_current(d.as_bytes()) {
                return d;
            }
        }
    }
}

/// A look-alike: the shape of a key with a made-up body and a checksum that does not match.
pub fn decoy() -> String {
    let d = reversed(&fake_key());
    if offkey::key::is_current(d.as_bytes()) {
        decoy()
    } else {
        d
    }
}

/// Key `k` with its body reversed: still base62, and the old checksum no longer fits (mostly).
fn reversed(k: &str) -> String {
    let body = &k[8..40];
    let rev: String = body.chars().rev().collect();
    format!("oc_live_{rev}{}", &k[40..])
}
