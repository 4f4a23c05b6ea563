//! The OCR figures of bench/OCR.md: renders screenshots of each style (1920×1080 pixels, 1x
//! and 2x, PNG and JPEG at quality 70) with fresh fake keys and look-alikes, reads each with
//! `offkey::ocr` on one core, and prints per style the keys recovered exactly, the wrong keys
//! reported (must be 0), the CPU time per image (this process and the Tesseract it ran, from
//! /proc/self/stat: one core's worth whatever else the machine runs), the wall time and the
//! correction search spent. `OCR_DUMP=DIR` also writes each screenshot there, to try Tesseract's
//! settings on them by hand.
//!
//! `cargo run --release --example ocr_bench -- [IMAGES_PER_CASE [SEED]]` (see bench/ocr.sh).

#[path = "../tests/it/screens.rs"]
mod screens;

use std::collections::HashSet;
use std::time::Instant;

use image::ImageFormat;
use screens::{Content, Style};

fn main() {
    let per_case: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("IMAGES_PER_CASE: a number"))
        .unwrap_or(2);
    // Seeded keys (screens::Seeded), one seed per image, so two builds compare on the same
    // screenshots.
    let mut seed: u64 = std::env::args()
        .nth(2)
        .map(|a| a.parse().expect("SEED: a number"))
        .unwrap_or(0);
    let engine = offkey::ocr::Engine::find().unwrap_or_else(|e| panic!("{e}"));
    let limits = offkey::ocr::Limits::default();
    println!(
        "| style | images | keys | recovered exactly | wrong keys | unrecovered starts | median CPU s/image | max CPU s/image | median wall s/image | search tests/image |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (mut all_keys, mut all_found, mut all_wrong, mut all_times, mut all_cpu) =
        (0, 0, 0, Vec::new(), Vec::new());
    for style in Style::ALL {
        let (mut keys, mut found, mut wrong, mut lost, mut tests) = (0, 0, 0, 0, 0u64);
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        for scale in [1u32, 2] {
            for format in [ImageFormat::Png, ImageFormat::Jpeg] {
                for _ in 0..per_case {
                    let (nk, nd) = if scale == 1 { (3, 2) } else { (2, 1) };
                    seed += 1;
                    let mut g = screens::Seeded::new(seed);
                    let ks: Vec<String> = (0..nk).map(|_| g.key()).collect();
                    let ds: Vec<String> = (0..nd).map(|_| g.decoy()).collect();
                    let img = screens::render(
                        style,
                        scale,
                        1920 / scale,
                        1080 / scale,
                        &Content {
                            keys: &ks,
                            decoys: &ds,
                        },
                    );
                    let bytes = encode(&img, format);
                    if let Some(dir) = std::env::var_os("OCR_DUMP") {
                        let ext = if format == ImageFormat::Png {
                            "png"
                        } else {
                            "jpg"
                        };
                        let name = format!("{}-{scale}x-{seed}.{ext}", style.name());
                        std::fs::write(std::path::Path::new(&dir).join(name), &bytes)
                            .expect("OCR_DUMP: a writable folder");
                    }
                    let want: HashSet<String> = ks
                        .iter()
                        .map(|k| offkey::key::sha256_hex(k.as_bytes()))
                        .collect();
                    let t = Instant::now();
                    let c = cpu_seconds();
                    let decoded = offkey::ocr::decode(&bytes, &limits).expect("decode");
                    let r = offkey::ocr::read(&engine, &decoded, &limits, false)
                        .unwrap_or_else(|e| panic!("{e}"));
                    times.push(t.elapsed().as_secs_f64());
                    cpu.push(cpu_seconds() - c);
                    let got: HashSet<String> = r.keys.iter().map(|k| k.secret.sha256()).collect();
                    keys += want.len();
                    found += got.intersection(&want).count();
                    wrong += got.difference(&want).count();
                    lost += r.unrecovered.len();
                    tests += r.tests;
                }
            }
        }
        let n = times.len();
        times.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        println!(
            "| {} | {n} | {keys} | {found} ({:.0} %) | {wrong} | {lost} | {:.2} | {:.2} | {:.2} | {} |",
            style.name(),
            100.0 * found as f64 / keys as f64,
            cpu[n / 2],
            cpu[n - 1],
            times[n / 2],
            tests / n as u64
        );
        all_keys += keys;
        all_found += found;
        all_wrong += wrong;
        all_times.extend(times);
        all_cpu.extend(cpu);
    }
    all_times.sort_by(f64::total_cmp);
    all_cpu.sort_by(f64::total_cmp);
    let n = all_times.len();
    println!(
        "| **all** | {n} | {all_keys} | {all_found} ({:.0} %) | {all_wrong} | | {:.2} | {:.2} | {:.2} | |",
        100.0 * all_found as f64 / all_keys as f64,
        all_cpu[n / 2],
        all_cpu[n - 1],
        all_times[n / 2],
    );
}

/// CPU seconds spent so far by this process and the children it waited for (Tesseract):
/// utime, stime, cutime and cstime of /proc/self/stat, in clock ticks of 1/100 s (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux)");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, so index 11.
    f[11..15]
        .iter()
        .map(|v| v.parse::<f64>().expect("clock ticks"))
        .sum::<f64>()
        / 100.0
}

fn encode(img: &image::RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    match format {
        ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70)
                .encode_image(img)
                .expect("jpeg");
        }
        f => img.write_to(&mut out, f).expect("encode"),
    }
    out.into_inner()
}
