//! `offkey scan`: folders, files, standard input (and, through the sources, git history, the
//! index, AI chat exports, HAR captures and archives) → a report and an exit code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;

use super::Outcome;
use crate::key::scrub_name;
use crate::report::{self, Format, Summary, TextStyle};
use crate::rules::RuleSet;
use crate::scan::{Baseline, Config, Finding, Matcher, Origin, Policy, Scanner, SourceKind};
use crate::source::{self, Event, WalkOptions};

/// Arguments of `offkey scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files or folders to scan (`-` for standard input).
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Also write a SARIF report to this file (whatever --format is).
    #[arg(long, value_name = "FILE")]
    pub sarif_output: Option<PathBuf>,
    /// Extra rule file (TOML, same format as rules/offset.toml); repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Config file (default: .offkey.toml at the first scan root, if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// An earlier JSON report: its findings (same key, same path) are not reported again.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Skip paths matching this gitignore-style glob; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Skip what git ignores (faster in big build trees; default: scan everything).
    #[arg(long)]
    pub gitignore: bool,
    /// Skip files larger than this many bytes (with a warning).
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub max_file_size: u64,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Do not look inside encodings (base64, percent-encoding, UTF-16, …).
    #[arg(long)]
    pub no_decode: bool,
    /// Scan git history instead of files: every commit of every ref of REPO (default: the
    /// first PATH, or `.`), each distinct blob once.
    #[arg(long, value_name = "REPO", num_args = 0..=1, conflicts_with = "staged")]
    pub git: Option<Option<PathBuf>>,
    /// With --git: only commits in this range (`BASE..HEAD`), e.g. a pull request's commits.
    #[arg(long, value_name = "BASE..HEAD", requires = "git")]
    pub range: Option<String>,
    /// With --git: only commits at or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE", requires = "git")]
    pub since: Option<String>,
    /// Ask the key service whether each key found is active (only hashes are sent).
    #[arg(long)]
    pub verify: bool,
    /// Key service address [default: $OFFKEY_SERVER, else the one `offkey login` saved].
    #[arg(long, env = "OFFKEY_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// With --verify: keep legacy candidates the service does not know (dropped by default:
    /// most are md5 sums or commit hashes).
    #[arg(long)]
    pub keep_unverified: bool,
    /// With --verify: tell the service where each active key was seen (redacted locations).
    #[arg(long)]
    pub report_exposures: bool,
    /// With --verify: rotate every ACTIVE key found, once per key (needs --deliver).
    #[arg(long)]
    pub rotate: bool,
    /// Where --rotate delivers each new key: file:PATH ({id} = old key id) or exec:COMMAND.
    #[arg(long, value_name = "SINK")]
    pub deliver: Option<String>,
    /// What --rotate does with each old key: now, after-first-use[:DURATION], in:DURATION.
    #[arg(long, default_value = "after-first-use", value_name = "WHEN")]
    pub old_key: String,
    /// With --verify: delete every ACTIVE key found, with no replacement.
    #[arg(long)]
    pub revoke_exposed: bool,
    /// Replace an existing file sink.
    #[arg(long)]
    pub force: bool,
    /// Scan what the git index would commit: added and changed lines of staged files (for a
    /// pre-commit hook). The repository is the first PATH, or `.`.
    #[arg(long)]
    pub staged: bool,
    /// Scan what AI assistants keep for you under $HOME instead of PATHs: Claude Code, Codex
    /// CLI and Gemini CLI sessions, and the state.vscdb chats of Cursor, VS Code and Windsurf.
    #[arg(long, conflicts_with_all = ["git", "staged"])]
    pub ai_history: bool,
    /// Also read images met in folders and git history by OCR (PNG, JPEG, WebP, GIF, BMP,
    /// TIFF; needs Tesseract). Images named on the command line or on standard input always are.
    #[arg(long)]
    pub images: bool,
}

impl ScanArgs {
    /// What `--verify` and its companion flags ask of the key service.
    pub fn verify_options(&self) -> super::verify::VerifyOptions {
        super::verify::VerifyOptions {
            verify: self.verify,
            server: self.server.clone(),
            keep_unverified: self.keep_unverified,
            report_exposures: self.report_exposures,
            rotate: self.rotate,
            deliver: self.deliver.clone(),
            old_key: self.old_key.clone(),
            revoke_exposed: self.revoke_exposed,
            force: self.force,
        }
    }
}

/// Where a scan's warnings go: standard error, scrubbed of anything shaped like a key.
fn warn_stderr(m: String) {
    eprintln!("offkey: warning: {}", scrub_name(&m));
}

/// Everything a scan needs, built once.
pub struct Setup {
    /// The matcher over the rule set.
    pub matcher: Matcher,
    /// Allowlists and baseline.
    pub policy: Policy,
    /// Paths excluded from the walk.
    pub excludes: Vec<String>,
}

/// Load rules, config and baseline. Any failure names its file.
pub fn setup(args: &ScanArgs, root: Option<&Path>) -> anyhow::Result<Setup> {
    let config_path = match &args.config {
        Some(p) => Some(p.clone()),
        None => root
            .map(|r| {
                if r.is_dir() {
                    r.join(".offkey.toml")
                } else {
                    PathBuf::from(".offkey.toml")
                }
            })
            .filter(|p| p.is_file()),
    };
    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let mut rule_files: Vec<PathBuf> = args.rules.clone();
    if let Some(cp) = &config_path {
        let dir = cp.parent().unwrap_or(Path::new("."));
        rule_files.extend(config.rules.iter().map(|r| dir.join(r)));
    }
    let refs: Vec<&Path> = rule_files.iter().map(PathBuf::as_path).collect();
    let rules = RuleSet::load(&refs)?;
    let baseline = match &args.baseline {
        Some(p) => Baseline::load(p)?,
        None => Baseline::default(),
    };
    let policy = Policy::new(&config, baseline)?;
    let mut excludes = args.exclude.clone();
    excludes.extend(config.exclude.iter().cloned());
    Ok(Setup {
        matcher: Matcher::new(Arc::new(rules), !args.no_decode),
        policy,
        excludes,
    })
}

/// What a scan found and how it went.
pub struct Collected {
    /// Findings, sorted.
    pub findings: Vec<Finding>,
    /// Counters.
    pub summary: Summary,
    /// Did any error happen (unreadable file, …)?
    pub errors: bool,
}

/// Run `offkey scan`.
pub fn run(args: ScanArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let first = args.paths.first().cloned();
    let setup = setup(&args, first.as_deref().filter(|p| p.as_os_str() != "-"))?;
    let verify = args.verify_options();
    let rotate_plan = super::verify::plan(&verify)?;
    let mut out = open_output(&args)?;
    let mut collected = collect(&args, &setup, &mut out)?;
    if args.verify {
        collected.errors |=
            super::verify::run(&verify, rotate_plan.as_ref(), &mut collected.findings);
        collected.summary.findings = collected.findings.len() as u64;
    }
    collected.summary.elapsed_ms = started.elapsed().as_millis() as u64;
    finish(&args, &setup, &collected, &mut out)?;
    Ok(outcome(&collected))
}

/// Exit status of a scan: findings beat errors.
pub fn outcome(c: &Collected) -> Outcome {
    if !c.findings.is_empty() {
        Outcome::Findings
    } else if c.errors {
        Outcome::Failed
    } else {
        Outcome::Clean
    }
}

fn open_output(args: &ScanArgs) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .with_context(|| format!("{}: cannot write the report", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

/// Scan every path of `args`; with JSON lines each finding is written to `out` as soon as it
/// is confirmed.
pub fn collect(
    args: &ScanArgs,
    setup: &Setup,
    out: &mut Box<dyn Write + Send>,
) -> anyhow::Result<Collected> {
    let counters = Arc::new(super::progress::Counters::default());
    let _progress = super::progress::Progress::start(Arc::clone(&counters));
    let files = &counters.files;
    let bytes = &counters.bytes;
    let errors = AtomicU64::new(0);
    let found: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    // With --verify the lines wait for the verification, so each carries it.
    let jsonl = args.format == Format::Jsonl && !args.verify;
    let live: Mutex<&mut Box<dyn Write + Send>> = Mutex::new(out);
    let emit = |batch: Vec<Finding>| {
        if batch.is_empty() {
            return;
        }
        if jsonl {
            let mut w = live.lock().expect("report writer lock");
            for f in &batch {
                let _ = report::write_jsonl_line(&mut **w, f);
            }
            let _ = w.flush();
        }
        found.lock().expect("findings lock").extend(batch);
    };
    let mut dirs = Vec::new();
    let images = super::images::Images::new(&args.paths, args.images, args.verify, args.threads)?;
    let mut named_images = Vec::new();
    if args.git.is_some() || args.staged {
        let repo = match &args.git {
            Some(Some(r)) => r.clone(),
            _ => args
                .paths
                .first()
                .cloned()
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let scan = if args.staged {
            let mut scanner = Scanner::new(&setup.matcher, &setup.policy, Box::new(warn_stderr));
            crate::scan::scan_staged(&mut scanner, &repo)?
        } else {
            scan_history(args, setup, &repo, &images)?
        };
        files.fetch_add(scan.blobs, Ordering::Relaxed);
        bytes.fetch_add(scan.bytes, Ordering::Relaxed);
        errors.fetch_add(scan.errors, Ordering::Relaxed);
        emit(scan.findings);
    }
    if args.ai_history {
        let (batch, n_files, n_bytes, errs) = scan_ai_history(args, setup)?;
        files.fetch_add(n_files, Ordering::Relaxed);
        bytes.fetch_add(n_bytes, Ordering::Relaxed);
        errors.fetch_add(errs, Ordering::Relaxed);
        emit(batch);
    }
    for p in args
        .paths
        .iter()
        .filter(|_| args.git.is_none() && !args.staged && !args.ai_history)
    {
        if p.as_os_str() == "-" {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("offkey: paste the text to scan, then press Ctrl-D");
            }
            let origin = Origin {
                source: Some(SourceKind::Stdin),
                path: "-".into(),
                ..Origin::default()
            };
            let mut batch = Vec::new();
            let mut input = stdin.lock();
            if let Some(read) = images.stdin(&mut input, &setup.policy) {
                let (in_image, n) = read?;
                emit(in_image);
                files.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(n, Ordering::Relaxed);
                continue;
            }
            let read =
                crate::scan::scan_reader(&setup.matcher, &setup.policy, &mut input, &origin, |f| {
                    batch.push(f)
                });
            // What was read before a failing read is scanned and reported; the error counts
            // as one (exit 2 unless there are findings), as for an unreadable file.
            emit(batch);
            files.fetch_add(1, Ordering::Relaxed);
            match read {
                Ok(n) => {
                    bytes.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    eprintln!(
                        "offkey: error: {}",
                        scrub_name(&format!("reading standard input: {e}"))
                    );
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if !p.exists() && std::fs::symlink_metadata(p).is_err() {
            eprintln!(
                "offkey: error: {}: no such file or folder",
                scrub_name(&p.display().to_string())
            );
            errors.fetch_add(1, Ordering::Relaxed);
        } else if images.claims(p) {
            named_images.push(p.clone());
        } else {
            dirs.push(p.clone());
        }
    }
    let (in_images, n_bytes, errs) = images.scan_named(&named_images, &setup.policy);
    files.fetch_add(named_images.len() as u64, Ordering::Relaxed);
    bytes.fetch_add(n_bytes, Ordering::Relaxed);
    errors.fetch_add(errs, Ordering::Relaxed);
    emit(in_images);
    if !dirs.is_empty() {
        let opts = WalkOptions {
            roots: dirs,
            excludes: setup.excludes.clone(),
            gitignore: args.gitignore,
            max_file_size: args.max_file_size,
            threads: args.threads,
        };
        let policy = &setup.policy;
        let matcher = &setup.matcher;
        let images = &images;
        source::walk(&opts, || {
            let mut scanner = Scanner::new(matcher, policy, Box::new(warn_stderr));
            let mut local = Vec::new();
            let (errors, emit) = (&errors, &emit);
            move |ev: Event<'_>| match ev {
                Event::Blob(data, origin) => {
                    files.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if policy.path_allowed(&origin.path) {
                        return;
                    }
                    let mut warn = warn_stderr;
                    if let Some(found) = images.walked(data, origin, policy, &mut warn) {
                        return emit(found);
                    }
                    scanner.scan_any(data, origin, &mut local);
                    if !local.is_empty() {
                        emit(std::mem::take(&mut local));
                    }
                }
                Event::Large(file, len, origin) => {
                    files.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(len, Ordering::Relaxed);
                    if policy.path_allowed(&origin.path) {
                        return;
                    }
                    let mut warn = warn_stderr;
                    if let Some(found) = images.walked_file(file, len, origin, policy, &mut warn) {
                        return emit(found);
                    }
                    let read = scanner.scan_file(file, len, origin, &mut local);
                    if let Err(e) = read {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "offkey: error: {}",
                            scrub_name(&format!("{}: {e}", origin.path))
                        );
                    }
                    if !local.is_empty() {
                        emit(std::mem::take(&mut local));
                    }
                }
                Event::Error(msg) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("offkey: error: {}", scrub_name(&msg));
                }
                Event::Skipped(msg) => eprintln!("offkey: warning: {}", scrub_name(&msg)),
            }
        })
        .map_err(|e| anyhow::anyhow!(e))?;
    }
    let mut findings = found.into_inner().expect("findings lock");
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let summary = Summary {
        files: files.load(Ordering::Relaxed),
        bytes: bytes.load(Ordering::Relaxed),
        findings: findings.len() as u64,
        elapsed_ms: 0,
    };
    Ok(Collected {
        findings,
        summary,
        errors: errors.load(Ordering::Relaxed) > 0,
    })
}

/// Write the report in the chosen format.
pub fn finish(
    args: &ScanArgs,
    setup: &Setup,
    c: &Collected,
    out: &mut Box<dyn Write + Send>,
) -> anyhow::Result<()> {
    let write = |out: &mut Box<dyn Write + Send>| -> std::io::Result<()> {
        match args.format {
            Format::Text => {
                let color = args.output.is_none()
                    && std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
                report::write_text(
                    &mut **out,
                    &mut std::io::stderr(),
                    &c.findings,
                    c.summary,
                    TextStyle { color },
                )
            }
            Format::Json => report::write_json(&mut **out, &c.findings, c.summary),
            Format::Jsonl if args.verify => c
                .findings
                .iter()
                .try_for_each(|f| report::write_jsonl_line(&mut **out, f)),
            Format::Jsonl => Ok(()),
            Format::Sarif => report::write_sarif(&mut **out, setup.matcher.rules(), &c.findings),
        }?;
        out.flush()
    };
    write(out).context("writing the report")?;
    if let Some(p) = &args.sarif_output {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p)
                .with_context(|| format!("{}: cannot write the SARIF report", p.display()))?,
        );
        report::write_sarif(&mut f, setup.matcher.rules(), &c.findings)
            .and_then(|_| f.flush())
            .with_context(|| format!("{}: cannot write the SARIF report", p.display()))?;
    }
    if args.format != Format::Text {
        eprintln!(
            "offkey: scanned {} file(s), {} bytes in {} ms: {} finding(s)",
            c.summary.files, c.summary.bytes, c.summary.elapsed_ms, c.summary.findings
        );
    }
    Ok(())
}

/// `--git`: scan each distinct blob of the history once (see [`crate::scan::scan_history`]),
/// after a note when the clone is shallow.
fn scan_history(
    args: &ScanArgs,
    setup: &Setup,
    repo: &Path,
    images: &super::images::Images,
) -> anyhow::Result<crate::scan::GitScan> {
    let since = match &args.since {
        Some(s) => Some(parse_since(s)?),
        None => None,
    };
    let opts = source::HistoryOptions {
        repo: repo.to_path_buf(),
        range: args.range.clone(),
        since,
    };
    // Under `--images`, image blobs are read by OCR instead of scanned as bytes.
    let ocr = |data: &[u8], origin: &crate::scan::Origin, warn: &mut dyn FnMut(String)| {
        images.walked(data, origin, &crate::scan::Policy::default(), warn)
    };
    let hook: Option<crate::scan::BlobHook<'_>> = if args.images { Some(&ocr) } else { None };
    let scan = crate::scan::scan_history(
        &setup.matcher,
        &setup.policy,
        &opts,
        args.max_file_size as usize,
        &warn_stderr,
        hook,
    )?;
    if scan.shallow {
        eprintln!(
            "offkey: note: {} is a shallow clone: history is incomplete, scanned as far as it goes \
             (fetch with --unshallow or fetch-depth: 0 to scan all of it)",
            scrub_name(&repo.display().to_string())
        );
    }
    Ok(scan)
}

/// `--ai-history`: every history file of every known AI tool under `$HOME`, after saying on
/// standard error where each tool was looked for and what was found.
fn scan_ai_history(
    args: &ScanArgs,
    setup: &Setup,
) -> anyhow::Result<(Vec<Finding>, u64, u64, u64)> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("--ai-history needs $HOME (the folder the AI tools keep their history under)")?;
    let (found, looked) = source::discover_ai_history(&home);
    for l in &looked {
        eprintln!(
            "offkey: ai-history: {}: {} file(s) in {}",
            l.tool.name(),
            l.found,
            l.places.join(", ")
        );
    }
    let shown = |p: &Path| match p.strip_prefix(&home) {
        Ok(rel) => format!("~/{}", rel.display()),
        Err(_) => p.display().to_string(),
    };
    let mut out = Vec::new();
    let (mut n_files, mut n_bytes, mut errs) = (0, 0, 0);
    let mut scanner = Scanner::new(&setup.matcher, &setup.policy, Box::new(warn_stderr));
    for f in &found {
        let path = shown(&f.path);
        let len = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        if len > args.max_file_size {
            warn_stderr(format!(
                "{path}: {len} bytes, over --max-file-size {}; skipped",
                args.max_file_size
            ));
            continue;
        }
        let data = match std::fs::read(&f.path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("offkey: error: {}", scrub_name(&format!("{path}: {e}")));
                errs += 1;
                continue;
            }
        };
        n_files += 1;
        n_bytes += data.len() as u64;
        if setup.policy.path_allowed(&path) {
            continue;
        }
        let origin = Origin {
            source: Some(SourceKind::Transcript),
            path,
            ..Origin::default()
        };
        scanner.scan_ai_file(f.tool, &data, &f.path, &origin, &mut out);
    }
    let total: usize = looked.iter().map(|l| l.found).sum();
    eprintln!(
        "offkey: ai-history: {total} file(s) scanned, {} finding(s)",
        out.len()
    );
    Ok((out, n_files, n_bytes, errs))
}

/// `--since`: a date (midnight UTC) or an RFC 3339 time → Unix seconds.
fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("--since {s:?}: expected a date like 2026-01-31 or an RFC 3339 time")
    })?;
    Ok(d.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp())
}
