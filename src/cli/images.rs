//! Images in `offkey scan` and `offkey redact --image`: which images are read (a named image or
//! one on standard input always; those met in a folder or git walk only with `--images`), the
//! OCR engine looked up once, images read in parallel (one OCR thread a core), and an image
//! that fails costing only itself.

use std::io::{BufRead, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rayon::prelude::*;

use super::Outcome;
use crate::key::scrub_name;
use crate::ocr::{self, Engine, Limits};
use crate::scan::{Finding, Origin, Policy, SourceKind};

/// Largest image file read (bigger ones are scanned as bytes, with a warning).
const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// How a scan treats images, decided once.
pub struct Images {
    engine: Option<Engine>,
    /// Also OCR images met while walking (`--images`).
    walk: bool,
    /// Report legacy candidates (only `--verify` can confirm them).
    legacy: bool,
    limits: Limits,
    threads: usize,
}

/// Whether the file at `p` starts like an image.
fn is_image_file(p: &Path) -> bool {
    let mut head = [0u8; 32];
    std::fs::File::open(p)
        .and_then(|f| f.read_at(&mut head, 0))
        .is_ok_and(|n| ocr::sniff(&head[..n]).is_some())
}

impl Images {
    /// Look the engine up when any named path is an image (an error, exit 2, when it is
    /// missing) or `walk` is asked for (one warning when it is missing).
    pub fn new(
        paths: &[PathBuf],
        walk: bool,
        legacy: bool,
        threads: usize,
    ) -> anyhow::Result<Self> {
        let named = paths.iter().find(|p| p.is_file() && is_image_file(p));
        let stdin = paths.iter().any(|p| p.as_os_str() == "-");
        let engine = if named.is_some() || walk || stdin {
            match Engine::find() {
                Ok(e) => Some(e),
                Err(e) => {
                    if let Some(p) = named {
                        anyhow::bail!(
                            "{}: an image, and reading it needs OCR: {e}",
                            scrub_name(&p.display().to_string())
                        );
                    }
                    if walk {
                        eprintln!(
                            "offkey: warning: --images: {e}; images are scanned as bytes only"
                        );
                    }
                    None
                }
            }
        } else {
            None
        };
        Ok(Images {
            engine,
            walk,
            legacy,
            limits: Limits::default(),
            threads,
        })
    }

    /// Whether a named path is an image this scan reads by OCR (not walked as bytes).
    pub fn claims(&self, p: &Path) -> bool {
        p.is_file() && is_image_file(p)
    }

    /// OCR the named image files in parallel, one OCR thread a core: findings, bytes read,
    /// and how many failed (each named on standard error).
    pub fn scan_named(&self, paths: &[PathBuf], policy: &Policy) -> (Vec<Finding>, u64, u64) {
        let Some(engine) = &self.engine else {
            return (Vec::new(), 0, 0);
        };
        let one = |p: &PathBuf| -> (Vec<Finding>, u64, u64) {
            let shown = p.display().to_string();
            let data = match std::fs::read(p) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("offkey: error: {}", scrub_name(&format!("{shown}: {e}")));
                    return (Vec::new(), 0, 1);
                }
            };
            let origin = Origin {
                source: Some(SourceKind::Image),
                path: shown,
                ..Origin::default()
            };
            match self.read(engine, &data, &origin, policy) {
                Ok(f) => (f, data.len() as u64, 0),
                Err(e) => {
                    eprintln!(
                        "offkey: error: {}",
                        scrub_name(&format!("{}: {e}", origin.path))
                    );
                    (Vec::new(), data.len() as u64, 1)
                }
            }
        };
        let run = || {
            paths.par_iter().map(one).reduce(
                || (Vec::new(), 0, 0),
                |mut a, b| {
                    a.0.extend(b.0);
                    (a.0, a.1 + b.1, a.2 + b.2)
                },
            )
        };
        match rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
        {
            Ok(pool) => pool.install(run),
            Err(_) => run(),
        }
    }

    /// Standard input, when it holds an image: its findings and size, or an error (no
    /// engine: exit 2 saying what to install). `None` when it is not an image: the caller
    /// scans it as text from the same reader.
    pub fn stdin(
        &self,
        input: &mut dyn BufRead,
        policy: &Policy,
    ) -> Option<anyhow::Result<(Vec<Finding>, u64)>> {
        let head = input.fill_buf().ok()?;
        ocr::sniff(head)?;
        Some((|| {
            let mut data = Vec::new();
            input
                .read_to_end(&mut data)
                .context("reading standard input")?;
            let engine = match &self.engine {
                Some(e) => e.clone(),
                None => Engine::find().context("standard input is an image")?,
            };
            let origin = Origin {
                source: Some(SourceKind::Image),
                path: "-".into(),
                ..Origin::default()
            };
            let found = self
                .read(&engine, &data, &origin, policy)
                .context("standard input (an image)")?;
            Ok((found, data.len() as u64))
        })())
    }

    /// The walk's hook: with `--images` and an engine, an image blob is read by OCR and its
    /// findings returned (a failure is a warning: the walk goes on); `None` for anything else,
    /// which the caller scans as bytes.
    pub fn walked(
        &self,
        data: &[u8],
        origin: &Origin,
        policy: &Policy,
        warn: &mut dyn FnMut(String),
    ) -> Option<Vec<Finding>> {
        let engine = self.engine.as_ref().filter(|_| self.walk)?;
        ocr::sniff(data)?;
        let origin = ocr::image_origin(origin);
        Some(
            self.read(engine, data, &origin, policy)
                .unwrap_or_else(|e| {
                    warn(format!("{}: {e}", origin.path));
                    Vec::new()
                }),
        )
    }

    /// [`Images::walked`] for a file the walk hands over open (a large one).
    pub fn walked_file(
        &self,
        file: &std::fs::File,
        len: u64,
        origin: &Origin,
        policy: &Policy,
        warn: &mut dyn FnMut(String),
    ) -> Option<Vec<Finding>> {
        self.engine.as_ref().filter(|_| self.walk)?;
        let mut head = [0u8; 32];
        let n = file.read_at(&mut head, 0).ok()?;
        ocr::sniff(&head[..n])?;
        if len > MAX_IMAGE_BYTES {
            warn(format!(
                "{}: an image of {len} bytes, over {} MiB: scanned as bytes only",
                origin.path,
                MAX_IMAGE_BYTES >> 20
            ));
            return None;
        }
        let mut data = Vec::with_capacity(len as usize);
        if let Err(e) = (&mut &*file).take(len).read_to_end(&mut data) {
            warn(format!("{}: {e}", origin.path));
            return Some(Vec::new());
        }
        self.walked(&data, origin, policy, warn)
    }

    fn read(
        &self,
        engine: &Engine,
        data: &[u8],
        origin: &Origin,
        policy: &Policy,
    ) -> Result<Vec<Finding>, ocr::OcrError> {
        let img = ocr::decode(data, &self.limits)?;
        let reading = ocr::read(engine, &img, &self.limits, self.legacy)?;
        Ok(ocr::findings(&reading, origin, policy))
    }
}

/// Rounds of [`redact`]: the copy is read again after each, until it reads nothing key-like.
const REDACT_ROUNDS: usize = 3;

/// `offkey redact --image IN (-o OUT | --in-place)`: each recovered key covered by a solid
/// box, and each key-like start that could not be recovered too (exit 1: check by eye).
///
/// OCR of an image depends on all of it: covering one key can let Tesseract read another it
/// had missed (a different layout, another line split). So the encoded copy is read again,
/// exactly as a scan of OUT would read it, and what that finds is covered too, until a read
/// of the copy finds nothing key-like (at most [`REDACT_ROUNDS`] rounds; past that, exit 1).
/// Exit 0 thus means a scan of OUT finds nothing.
pub fn redact(input: &Path, output: &Path) -> anyhow::Result<Outcome> {
    let shown = input.display().to_string();
    let data = std::fs::read(input).with_context(|| format!("reading {shown}"))?;
    let format = ocr::sniff(&data).with_context(|| {
        format!("{shown}: not an image offkey can redact (PNG, JPEG, WebP, GIF, BMP, TIFF)")
    })?;
    let engine = Engine::find().with_context(|| format!("{shown}: redacting an image"))?;
    let limits = Limits::default();
    let img = ocr::decode(&data, &limits).with_context(|| shown.clone())?;
    let mut boxes: Vec<ocr::PixelBox> = Vec::new();
    let (mut keys, mut flagged) = (0, 0);
    let mut current = img.clone();
    let mut bytes = Vec::new();
    let mut clean = false;
    for round in 0..=REDACT_ROUNDS {
        let reading = ocr::read(&engine, &current, &limits, false).with_context(|| {
            if round == 0 {
                shown.clone()
            } else {
                format!("{shown}: reading the redacted copy again")
            }
        })?;
        if round > 0 && reading.keys.is_empty() && reading.unrecovered.is_empty() {
            clean = true;
            break;
        }
        if round == REDACT_ROUNDS {
            // Covered too, but not read again: a person has to look.
            flagged += reading.keys.len() + reading.unrecovered.len();
        } else {
            keys += reading.keys.len();
            flagged += reading.unrecovered.len();
        }
        boxes.extend(reading.keys.iter().map(|k| k.bbox));
        boxes.extend(&reading.unrecovered);
        bytes = ocr::redact(&img, &boxes, format).with_context(|| shown.clone())?;
        current = ocr::decode(&bytes, &limits)
            .with_context(|| format!("{shown}: decoding the redacted copy"))?;
    }
    // Written beside OUT and renamed over it, so a failed write leaves no half image.
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty());
    let mut tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))
        .with_context(|| format!("writing {}", output.display()))?;
    std::io::Write::write_all(&mut tmp, &bytes)
        .with_context(|| format!("writing {}", output.display()))?;
    tmp.persist(output)
        .with_context(|| format!("writing {}", output.display()))?;
    eprintln!("offkey: covered {keys} key(s) in {}", output.display());
    if !clean {
        eprintln!(
            "offkey: the redacted copy still read like a key after {REDACT_ROUNDS} rounds; \
             what it read is covered too, but check the image by eye"
        );
        return Ok(Outcome::Findings);
    }
    if flagged == 0 {
        return Ok(Outcome::Clean);
    }
    eprintln!(
        "offkey: {flagged} place(s) look like the start of a key but could not be read exactly; \
         they are covered too, but check the image by eye"
    );
    Ok(Outcome::Findings)
}
