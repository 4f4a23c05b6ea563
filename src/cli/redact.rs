//! `offkey redact`: standard input to standard output with every key replaced, streaming; or,
//! with `--document IN -o OUT`, an office document rewritten with every key in its text
//! replaced (a key split across Word runs too), still a document its application opens; or,
//! with `--image IN -o OUT`, a screenshot with every key it shows blacked out.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;

use super::Outcome;
use crate::decode::formats::{self, Limits};
use crate::rules::RuleSet;
use crate::scan::{Match, Matcher, redact_stream};

/// Arguments of `offkey redact`.
#[derive(Debug, clap::Args)]
pub struct RedactArgs {
    /// What replaces each key.
    #[arg(long, default_value = "YOUR_API_KEY")]
    pub placeholder: String,
    /// Extra rule file; repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<std::path::PathBuf>,
    /// An office document to redact (.docx, .xlsx, .pptx and their macro variants, .odt,
    /// .ods, .odp) instead of standard input; needs `-o`.
    #[arg(long, value_name = "IN", requires = "output", conflicts_with = "image")]
    pub document: Option<std::path::PathBuf>,
    /// An image to redact (PNG, JPEG, WebP, GIF, BMP, TIFF): each key read in it by OCR is
    /// covered by a solid box; same format and size. Needs `-o` or `--in-place`. Exits 1 when
    /// some text that starts like a key could not be read exactly (check it by eye).
    #[arg(long, value_name = "IN")]
    pub image: Option<std::path::PathBuf>,
    /// With --image: write the redacted image over IN.
    #[arg(long, requires = "image", conflicts_with = "output")]
    pub in_place: bool,
    /// Where the redacted document or image goes (written only when redaction succeeded).
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: Option<std::path::PathBuf>,
}

/// Run `offkey redact`.
pub fn run(args: RedactArgs) -> anyhow::Result<Outcome> {
    let refs: Vec<&std::path::Path> = args.rules.iter().map(|p| p.as_path()).collect();
    let matcher = Matcher::new(Arc::new(RuleSet::load(&refs)?), true);
    if let Some(input) = &args.image {
        let output = match (&args.output, args.in_place) {
            (Some(o), _) if same_file(input, o) => anyhow::bail!(
                "{}: -o names the input image; pass --in-place to overwrite it",
                o.display()
            ),
            (Some(o), _) => o,
            (None, true) => input,
            (None, false) => anyhow::bail!("--image needs -o OUT (or --in-place)"),
        };
        return super::images::redact(input, output);
    }
    if args.output.is_some() && args.document.is_none() {
        anyhow::bail!("-o is for --document or --image; plain redact writes standard output");
    }
    if let (Some(input), Some(output)) = (&args.document, &args.output) {
        return document(&matcher, input, output, &args.placeholder);
    }
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let n = redact_stream(&matcher, &mut stdin.lock(), &mut w, &args.placeholder)
        .context("redacting standard input")?;
    w.flush().context("writing standard output")?;
    eprintln!("offkey: redacted {n} key(s)");
    Ok(Outcome::Clean)
}

/// Whether `a` and `b` name the same file (or `b` does not exist yet: then not).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// `--document IN -o OUT`.
fn document(
    matcher: &Matcher,
    input: &std::path::Path,
    output: &std::path::Path,
    placeholder: &str,
) -> anyhow::Result<Outcome> {
    let data = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    if formats::document_kind(&data).is_none() {
        anyhow::bail!(
            "{}: not an office document offkey can redact (.docx, .xlsx, .pptx, .odt, .ods, .odp)",
            input.display()
        );
    }
    let mut scratch: Vec<Match> = Vec::new();
    let mut find = |text: &[u8]| -> Vec<(usize, usize)> {
        matcher.find(text, &mut scratch);
        let mut spans: Vec<(usize, usize)> = scratch.iter().map(|m| (m.start, m.end)).collect();
        spans.sort_unstable();
        let mut end = 0;
        spans.retain(|&(a, b)| {
            let keep = a >= end;
            if keep {
                end = b;
            }
            keep
        });
        spans
    };
    let (bytes, n) = formats::redact_document(&data, &Limits::default(), placeholder, &mut find)
        .with_context(|| format!("redacting {}", input.display()))?;
    std::fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    eprintln!("offkey: redacted {n} key(s) into {}", output.display());
    Ok(Outcome::Clean)
}
