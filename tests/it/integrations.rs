//! offkey inside other tools: SARIF that GitHub accepts, the GitHub Action's script, the git
//! pre-commit hook (plain and through the pre-commit framework), completions, man page, init.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// A tree with current and legacy keys, for reports.
fn planted() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2, l) = (key(), key(), legacy());
    std::fs::write(
        dir.path().join(".env"),
        format!("OFFSET_API_KEY={k1}\nX_OFFSET_KEY={l}\n"),
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("my dir")).expect("mkdir");
    std::fs::write(
        dir.path().join("my dir/app.py"),
        format!("KEY = \"{k2}\"\nKEY2 = \"{k1}\"\n"),
    )
    .expect("write");
    (dir, vec![k1, k2, l])
}

fn schema_validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/sarif-schema-2.1.0.json"))
            .expect("schema parses");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn multitool() -> Option<PathBuf> {
    let tools = std::env::var_os("OFFKEY_TEST_TOOLS").map(PathBuf::from)?;
    let exe = tools.join("node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool");
    assert!(
        exe.is_file(),
        "scripts/test.sh should have installed the SARIF Multitool at {}",
        exe.display()
    );
    Some(exe)
}

/// Schema-valid, GitHub-ingestible (per the Multitool's Gh rules), no whole key, unique rules.
pub fn check_sarif(path: &Path, keys: &[String]) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("sarif written");
    assert_no_leak(&text, &keys.iter().map(String::as_str).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_str(&text).expect("sarif is JSON");
    let validator = schema_validator();
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "SARIF schema errors: {errors:#?}");
    let rules = v["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    let mut ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate rule ids");
    for r in rules {
        assert!(
            r["help"]["markdown"]
                .as_str()
                .is_some_and(|m| m.contains("Rotate"))
        );
        assert!(r["properties"]["security-severity"].is_string());
        assert_eq!(
            r["properties"]["tags"],
            serde_json::json!(["security", "secret"])
        );
    }
    if let Some(exe) = multitool() {
        let out = path.with_extension("validation.sarif");
        let status = Command::new(&exe)
            .args(["validate", "--rule-kind", "Sarif;Gh", "-o"])
            .arg(&out)
            .arg(path)
            .env("DOTNET_CLI_TELEMETRY_OPTOUT", "1")
            .output()
            .expect("multitool runs");
        assert!(
            out.is_file(),
            "multitool wrote no output: {}",
            String::from_utf8_lossy(&status.stdout)
        );
        let res: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).expect("read"))
                .expect("multitool output is JSON");
        let errors: Vec<&serde_json::Value> = res["runs"][0]["results"]
            .as_array()
            .map(|a| a.iter().filter(|r| r["level"] == "error").collect())
            .unwrap_or_default();
        assert!(
            errors.is_empty(),
            "Multitool (Sarif;Gh) errors: {errors:#?}"
        );
    }
    v
}

#[test]
fn sarif_for_a_dir_scan_is_valid_and_one_alert_per_key_per_file() {
    let (dir, keys) = planted();
    let out = dir
        .path()
        .join("..")
        .join(format!("dir-{}.sarif", std::process::id()));
    let o = offkey(
        dir.path(),
        &[
            "scan",
            "--format",
            "sarif",
            "-o",
            out.to_str().expect("utf8"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let v = check_sarif(&out, &keys);
    let results = v["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 4);
    let uris: Vec<&str> = results
        .iter()
        .filter_map(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str())
        .collect();
    assert!(
        uris.contains(&"my%20dir/app.py") && uris.contains(&".env"),
        "{uris:?}"
    );
    let legacy = results
        .iter()
        .find(|r| r["ruleId"] == "offset-legacy-key")
        .expect("legacy result");
    assert_eq!(legacy["level"], "warning");
    let fps: Vec<&serde_json::Value> = results.iter().map(|r| &r["partialFingerprints"]).collect();
    let mut uniq = fps.clone();
    uniq.dedup();
    assert_eq!(uniq.len(), fps.len());
    assert!(v["runs"][0]["automationDetails"]["id"].is_string());
    let region = &results[0]["locations"][0]["physicalLocation"]["region"];
    assert!(region["startLine"].as_i64().is_some_and(|n| n >= 1));
    assert!(region["endColumn"].as_i64() > region["startColumn"].as_i64());
    // Stable across line moves: prepend lines, fingerprints stay.
    let env = std::fs::read_to_string(dir.path().join(".env")).expect("read");
    std::fs::write(dir.path().join(".env"), format!("# moved\n\n{env}")).expect("write");
    let o = offkey(
        dir.path(),
        &[
            "scan",
            "--format",
            "sarif",
            "-o",
            out.to_str().expect("utf8"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let v2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("json");
    let fps2: Vec<&serde_json::Value> = v2["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| &r["partialFingerprints"])
        .collect();
    for f in &fps {
        assert!(fps2.contains(f), "fingerprint changed after a line move");
    }
    std::fs::remove_file(&out).ok();
}

#[test]
fn sarif_for_git_and_empty_scans_is_valid() {
    let r = repo();
    let k = key();
    let c = commit_file(r.path(), "deploy/prod.env", &format!("K={k}\n"), "add");
    let out = r
        .path()
        .join("..")
        .join(format!("git-{}.sarif", std::process::id()));
    let o = offkey(
        r.path(),
        &[
            "scan",
            "--git",
            ".",
            "--format",
            "sarif",
            "-o",
            out.to_str().expect("utf8"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let v = check_sarif(&out, std::slice::from_ref(&k));
    assert_eq!(
        v["runs"][0]["results"][0]["properties"]["commit"],
        c.as_str()
    );
    let empty = tempfile::tempdir().expect("tmp");
    std::fs::write(empty.path().join("a.txt"), "nothing here\n").expect("write");
    let o = offkey(
        empty.path(),
        &[
            "scan",
            "--format",
            "sarif",
            "-o",
            out.to_str().expect("utf8"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let v = check_sarif(&out, &[]);
    assert_eq!(v["runs"][0]["results"], serde_json::json!([]));
    std::fs::remove_file(&out).ok();
}

struct ActionRun {
    outputs: String,
    summary: String,
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn run_action(repo: &Path, event_name: &str, event: serde_json::Value, mode: &str) -> ActionRun {
    let tmp = tempfile::tempdir().expect("tmp");
    let ev = tmp.path().join("event.json");
    std::fs::write(&ev, event.to_string()).expect("write");
    let out = tmp.path().join("output");
    let sum = tmp.path().join("summary");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/action/run.sh");
    let sarif = tmp.path().join("offkey.sarif");
    let o = Command::new("bash")
        .arg(script)
        .current_dir(repo)
        .env("OFFKEY", offkey_bin())
        .env("GITHUB_EVENT_NAME", event_name)
        .env("GITHUB_EVENT_PATH", &ev)
        .env("GITHUB_OUTPUT", &out)
        .env("GITHUB_STEP_SUMMARY", &sum)
        .env("RUNNER_TEMP", tmp.path())
        .env("INPUT_PATH", ".")
        .env("INPUT_MODE", mode)
        .env("INPUT_SARIF_FILE", &sarif)
        .output()
        .expect("script runs");
    if o.status.code() == Some(0) {
        assert!(sarif.is_file(), "no SARIF file written");
    }
    ActionRun {
        outputs: std::fs::read_to_string(&out).unwrap_or_default(),
        summary: std::fs::read_to_string(&sum).unwrap_or_default(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code(),
    }
}

#[test]
fn action_script_works_out_the_range_for_each_event() {
    let r = repo();
    let d = r.path();
    let (old, new) = (key(), key());
    let first = commit_file(d, "old.env", &format!("K={old}\n"), "old");
    let before = commit_file(d, "readme.md", "hi\n", "docs");
    let after = commit_file(d, "src/new.py", &format!("\n\nKEY = '{new}'\n"), "new");

    // push: only the pushed commits.
    let run = run_action(
        d,
        "push",
        serde_json::json!({"before": before, "after": after}),
        "git",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.outputs.contains("findings=1"), "{}", run.outputs);
    assert!(run.outputs.contains("sarif-file="));
    assert!(
        run.stdout.contains("::error file=src/new.py,line=3,"),
        "{}",
        run.stdout
    );
    assert!(run.summary.contains("| `oc_live_…"), "{}", run.summary);
    assert_no_leak(
        &format!("{}{}{}{}", run.stdout, run.stderr, run.summary, run.outputs),
        &[&old, &new],
    );

    // First push of a branch: before is all zeros; everything reachable is scanned.
    let zeros = "0".repeat(40);
    let run = run_action(
        d,
        "push",
        serde_json::json!({"before": zeros, "after": after}),
        "git",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.outputs.contains("findings=2"), "{}", run.outputs);

    // A push that moved nothing, and a before the clone lacks: no failure, all history.
    let run = run_action(
        d,
        "push",
        serde_json::json!({"before": after, "after": after}),
        "git",
    );
    assert!(
        run.outputs.contains("findings=2"),
        "{} {}",
        run.outputs,
        run.stderr
    );
    let run = run_action(
        d,
        "push",
        serde_json::json!({"before": "1".repeat(40), "after": after}),
        "git",
    );
    assert!(
        run.outputs.contains("findings=2"),
        "{} {}",
        run.outputs,
        run.stderr
    );

    // pull_request: base..head.
    let run = run_action(
        d,
        "pull_request",
        serde_json::json!({"pull_request": {"base": {"sha": first}, "head": {"sha": before}}}),
        "git",
    );
    assert!(
        run.outputs.contains("findings=0"),
        "{} {}",
        run.outputs,
        run.stderr
    );
    let run = run_action(
        d,
        "pull_request",
        serde_json::json!({"pull_request": {"base": {"sha": before}, "head": {"sha": after}}}),
        "git",
    );
    assert!(
        run.outputs.contains("findings=1"),
        "{} {}",
        run.outputs,
        run.stderr
    );

    // workflow_dispatch: the whole history; dir mode: the files.
    let run = run_action(d, "workflow_dispatch", serde_json::json!({}), "git");
    assert!(run.outputs.contains("findings=2"));
    let run = run_action(d, "workflow_dispatch", serde_json::json!({}), "dir");
    assert!(
        run.outputs.contains("findings=2"),
        "{} {}",
        run.outputs,
        run.stderr
    );
    assert!(
        run.stdout.contains("::error file=old.env,line=1,"),
        "{}",
        run.stdout
    );
}

#[test]
fn action_yml_declares_the_inputs_and_outputs() {
    let yml = include_str!("../../action.yml");
    for input in [
        "path:",
        "mode:",
        "verify:",
        "server:",
        "token:",
        "rotate:",
        "fail-on-findings:",
        "sarif-file:",
        "upload-sarif:",
    ] {
        assert!(yml.contains(&format!("  {input}")), "missing input {input}");
    }
    assert!(yml.contains("scripts/action/install.sh\" install"));
    assert!(
        include_str!("../../scripts/action/install.sh")
            .contains("cargo install --locked --force --path \"$src\" --root \"$root\"")
    );
    assert!(yml.contains("category: offkey"));
}

fn git_commit(dir: &Path, msg: &str) -> std::process::Output {
    Command::new("git")
        .current_dir(dir)
        .args(["commit", "-q", "-m", msg])
        .env("GIT_AUTHOR_NAME", "Ana")
        .env("GIT_AUTHOR_EMAIL", "ana@example.com")
        .env("GIT_COMMITTER_NAME", "Ana")
        .env("GIT_COMMITTER_EMAIL", "ana@example.com")
        .env("NO_COLOR", "1")
        .output()
        .expect("git commit runs")
}

#[test]
fn installed_hook_refuses_a_staged_key_and_passes_clean_commits() {
    let r = repo();
    let d = r.path();
    commit_file(d, "README.md", "hello\n", "init");
    let o = offkey(d, &["hook", "install"], None);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let k = key();
    std::fs::write(d.join("config.env"), format!("A=1\nOFFSET_API_KEY={k}\n")).expect("write");
    git(d, &["add", "config.env"]);
    let c = git_commit(d, "add config");
    assert_eq!(c.status.code(), Some(1));
    let text = all_output(&c);
    assert!(text.contains("config.env:2:"), "{text}");
    assert!(
        text.contains("oc_live_…") && text.contains("commit refused"),
        "{text}"
    );
    assert!(
        text.contains("rotate") && text.contains("offkey:allow"),
        "{text}"
    );
    assert_no_leak(&text, &[&k]);
    // A clean commit passes; a key in an unstaged edit does not block it.
    std::fs::write(d.join("config.env"), "A=1\n").expect("write");
    git(d, &["add", "config.env"]);
    std::fs::write(d.join("config.env"), format!("A=1\nLATER={k}\n")).expect("write");
    let c = git_commit(d, "clean");
    assert_eq!(c.status.code(), Some(0), "{}", all_output(&c));
    // An existing foreign hook is kept unless asked.
    let hook = d.join(".git/hooks/pre-commit");
    std::fs::write(&hook, "#!/bin/sh\necho other\n").expect("write");
    assert_eq!(offkey(d, &["hook", "install"], None).status.code(), Some(2));
    assert_eq!(
        offkey(d, &["hook", "install", "--append"], None)
            .status
            .code(),
        Some(0)
    );
    let text = std::fs::read_to_string(&hook).expect("read");
    assert!(text.contains("echo other") && text.contains("scan --staged"));
}

#[test]
fn pre_commit_framework_runs_the_system_hook() {
    let pc = which("pre-commit").unwrap_or_else(|| {
        panic!(
            "`pre-commit` is not on PATH: run the tests with scripts/test.sh, which installs it \
             (or `pip install pre-commit`)"
        )
    });
    let r = repo();
    let d = r.path();
    commit_file(d, "README.md", "hello\n", "init");
    let k = key();
    std::fs::write(d.join("app.env"), format!("KEY={k}\n")).expect("write");
    git(d, &["add", "app.env"]);
    let bin_dir = offkey_bin().parent().expect("bin dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let this_repo = env!("CARGO_MANIFEST_DIR");
    let run = |dir: &Path| {
        Command::new(&pc)
            .current_dir(dir)
            .args(["try-repo", this_repo, "offkey-system"])
            .env("PATH", &path)
            .env("PRE_COMMIT_HOME", dir.join(".pc-cache"))
            .env("NO_COLOR", "1")
            .output()
            .expect("pre-commit runs")
    };
    let o = run(d);
    let text = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("app.env:1:") && text.contains("oc_live_…"),
        "{text}"
    );
    assert_no_leak(&text, &[&k]);
    std::fs::write(d.join("app.env"), "KEY=from-the-environment\n").expect("write");
    git(d, &["add", "app.env"]);
    let o = run(d);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|p| Path::new(p).join(name))
        .find(|p| p.is_file())
}

#[test]
fn completions_man_and_init() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = offkey(dir.path(), &["completions", "bash"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("offkey"));
    let o = offkey(dir.path(), &["man"], None);
    assert!(String::from_utf8_lossy(&o.stdout).contains(".TH"));
    assert_eq!(offkey(dir.path(), &["init"], None).status.code(), Some(0));
    let cfg = std::fs::read_to_string(dir.path().join(".offkey.toml")).expect("written");
    assert!(cfg.contains("[allowlist]"));
    assert_eq!(
        offkey(dir.path(), &["init"], None).status.code(),
        Some(2),
        "refuses to overwrite"
    );
    // The starter config is valid: a scan with it works.
    assert_eq!(offkey(dir.path(), &["scan"], None).status.code(), Some(0));
}

#[test]
fn this_repository_scans_clean() {
    let root = env!("CARGO_MANIFEST_DIR");
    let o = offkey(Path::new(root), &["scan", "."], None);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
}
