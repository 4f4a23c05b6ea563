//! Tesseract 5 through its command line: one subprocess per pass, one OCR thread each
//! (`OMP_THREAD_LIMIT=1`), a virtual-memory limit (`ulimit -v` in the `sh` that execs it) and a
//! deadline after which it is killed. Its TSV output gives each word with its box.
//!
//! Why the command line and not a binding: a crash, a hang or a runaway allocation in
//! Tesseract or Leptonica then costs one image, never the scan; and the only system
//! dependency is Debian's `tesseract-ocr` package, not its development headers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::GrayImage;

use super::OcrError;

/// What to install when Tesseract is missing.
pub const INSTALL: &str = "install Tesseract 5 with English data (Debian/Ubuntu: apt-get install \
                           tesseract-ocr tesseract-ocr-eng)";

/// A word as Tesseract read it, with its box in the pixels of the image it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The text.
    pub text: String,
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// The words of one text line, left to right.
pub type Line = Vec<Word>;

/// The Tesseract program, checked to have English data.
#[derive(Debug, Clone)]
pub struct Engine {
    program: PathBuf,
}

impl Engine {
    /// Find `tesseract` on `PATH` and check that it has the `eng` language; else say what to
    /// install.
    pub fn find() -> Result<Engine, OcrError> {
        let program = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join("tesseract"))
            .find(|p| p.is_file())
            .ok_or(OcrError::NoEngine("tesseract is not on PATH"))?;
        let out = Command::new(&program)
            .arg("--list-langs")
            .stdin(Stdio::null())
            .output()
            .map_err(|_| OcrError::NoEngine("tesseract does not run"))?;
        let langs = String::from_utf8_lossy(&out.stdout);
        if !langs.lines().any(|l| l.trim() == "eng") {
            return Err(OcrError::NoEngine("tesseract has no English data (eng)"));
        }
        Ok(Engine { program })
    }

    /// OCR `img` with page segmentation mode `psm`, within `limits`; the lines read. `dir` is
    /// a private temporary folder for the image and Tesseract's output.
    pub fn read(
        &self,
        img: &GrayImage,
        psm: u8,
        dir: &Path,
        deadline: Instant,
        memory_kib: u64,
    ) -> Result<Vec<Line>, OcrError> {
        self.read_with(img, psm, &[], dir, deadline, memory_kib)
    }

    /// [`Engine::read`] with more Tesseract arguments (`-c name=value` settings).
    pub fn read_with(
        &self,
        img: &GrayImage,
        psm: u8,
        extra: &[&str],
        dir: &Path,
        deadline: Instant,
        memory_kib: u64,
    ) -> Result<Vec<Line>, OcrError> {
        let input = dir.join(format!("in{psm}-{}.pgm", img.width()));
        let base = dir.join(format!("out{psm}-{}", img.width()));
        write_pgm(img, &input).map_err(OcrError::Temp)?;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"ulimit -v "$0" && exec "$@""#)
            .arg(memory_kib.to_string())
            .arg(&self.program)
            .arg(&input)
            .arg(&base)
            .args(["--psm", &psm.to_string(), "-l", "eng", "--oem", "1"])
            // Keep the spaces Tesseract sees inside a line, so split keys join as written.
            .args(["-c", "preserve_interword_spaces=1"])
            .args(extra)
            .arg("tsv")
            .env("OMP_THREAD_LIMIT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| OcrError::Engine(format!("cannot start tesseract: {e}")))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(OcrError::Timeout);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(OcrError::Engine(format!("waiting for tesseract: {e}"))),
            }
        };
        let _ = std::fs::remove_file(&input);
        if !status.success() {
            return Err(OcrError::Engine(format!(
                "tesseract failed ({status}; over the memory limit of {} MiB?)",
                memory_kib / 1024
            )));
        }
        let tsv = std::fs::read_to_string(base.with_extension("tsv"))
            .map_err(|e| OcrError::Engine(format!("tesseract wrote no TSV: {e}")))?;
        Ok(parse_tsv(&tsv))
    }
}

/// Binary PGM: what Leptonica reads fastest (no compression on either side).
fn write_pgm(img: &GrayImage, path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(f, "P5\n{} {}\n255\n", img.width(), img.height())?;
    f.write_all(img.as_raw())?;
    f.flush()
}

/// Tesseract's TSV (`level page block par line word left top width height conf text`) → the
/// words of each line, in reading order.
pub fn parse_tsv(tsv: &str) -> Vec<Line> {
    let mut lines: Vec<((u32, u32, u32), Line)> = Vec::new();
    for row in tsv.lines().skip(1) {
        let f: Vec<&str> = row.splitn(12, '\t').collect();
        if f.len() < 12 || f[0] != "5" {
            continue;
        }
        let n = |i: usize| f[i].trim().parse::<u32>().unwrap_or(0);
        let text = f[11].trim();
        if text.is_empty() {
            continue;
        }
        let id = (n(2), n(3), n(4));
        let word = Word {
            text: text.to_owned(),
            x: n(6),
            y: n(7),
            w: n(8),
            h: n(9),
        };
        match lines.last_mut() {
            Some((last, words)) if *last == id => words.push(word),
            _ => lines.push((id, vec![word])),
        }
    }
    lines.into_iter().map(|(_, l)| l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_rows_become_lines_of_words() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   1\t1\t0\t0\t0\t0\t0\t0\t100\t50\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t10\t5\t40\t12\t96.1\tKEY=\n\
                   5\t1\t1\t1\t1\t2\t55\t5\t80\t12\t91.0\tabc def\n\
                   5\t1\t1\t1\t2\t1\t10\t25\t30\t12\t90.0\tnext\n\
                   5\t1\t1\t1\t2\t2\t45\t25\t30\t12\t90.0\t \n";
        let lines = parse_tsv(tsv);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), 2);
        assert_eq!(lines[0][1].text, "abc def");
        assert_eq!((lines[0][1].x, lines[0][1].w), (55, 80));
        assert_eq!(lines[1].len(), 1);
    }
}
