//! `offkey scan --ai-history` (issue 17): each AI tool's history built at test time under a
//! temporary `$HOME` in its real layout (plus the samples in fixtures/ai/), with keys in message
//! content, tool-call arguments and tool results, and a decoy that must not be reported; and
//! SQLite files in general, cell by cell.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::tree::{Run, assert_no_key_leak, bad_checksum, current_key, sha256};

/// Run `offkey ARGS` with `$HOME` set to `home`, in `home`.
fn offkey_home(home: &Path, args: &[&str]) -> Run {
    let mut cmd = assert_cmd::Command::cargo_bin("offkey").expect("the offkey binary is built");
    cmd.current_dir(home)
        .args(args)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60));
    let out = cmd.output().expect("offkey runs");
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_bytes: out.stdout,
    }
}

fn write(home: &Path, rel: &str, data: impl AsRef<[u8]>) {
    let p = home.join(rel);
    std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// The findings of `key`.
fn of<'a>(findings: &'a [Value], key: &str) -> Vec<&'a Value> {
    let sha = sha256(key);
    findings.iter().filter(|f| f["sha256"] == sha).collect()
}

/// The one location (or the first, for a key seen twice in one message) of `key`.
fn loc<'a>(findings: &'a [Value], key: &str) -> &'a Value {
    let got = of(findings, key);
    assert!(!got.is_empty(), "key not found: {findings:#?}");
    &got[0]["location"]
}

fn lines(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

fn scan(home: &Path) -> (Run, Vec<Value>) {
    let run = offkey_home(home, &["scan", "--ai-history", "-f", "json"]);
    assert_eq!(run.status, Some(1), "findings exit 1: {}", run.stderr);
    let f = run.findings();
    (run, f)
}

#[test]
fn claude_code_codex_and_gemini_sessions_name_tool_session_message_and_time() {
    let home = tempfile::tempdir().expect("temp HOME");
    let h = home.path();
    let keys: Vec<String> = (0..7).map(|_| current_key()).collect();
    let decoy = bad_checksum(&current_key());

    // Claude Code: a summary line, a user message, a tool call, its result.
    write(
        h,
        ".claude/projects/-home-dev-shop/5d1e.jsonl",
        lines(&[
            json!({"type": "summary", "summary": "checkout", "leafUuid": "u0"}),
            json!({"type": "user", "sessionId": "cc-session", "timestamp": "2025-07-03T09:14:02.118Z",
                   "uuid": "u1", "message": {"role": "user", "content": format!("my key is {} (old: {decoy})", keys[0])}}),
            json!({"type": "assistant", "sessionId": "cc-session", "timestamp": "2025-07-03T09:14:05.402Z",
                   "uuid": "u2", "message": {"role": "assistant", "content": [
                       {"type": "text", "text": "Checking."},
                       {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                        "input": {"command": format!("curl -H 'Authorization: Bearer {}' https://api", keys[1])}}]}}),
            json!({"type": "user", "sessionId": "cc-session", "timestamp": "2025-07-03T09:14:06.000Z",
                   "uuid": "u3", "message": {"role": "user", "content": [
                       {"type": "tool_result", "tool_use_id": "toolu_1", "content": format!("KEY={}", keys[2])}]}}),
        ]),
    );
    // Codex CLI: session_meta, a message, a function call (arguments are a JSON string), output.
    write(
        h,
        ".codex/sessions/2025/09/12/rollout-2025-09-12T16-40-11-0199.jsonl",
        lines(&[
            json!({"timestamp": "2025-09-12T16:40:11.204Z", "type": "session_meta", "payload": {"id": "codex-session", "cwd": "/w"}}),
            json!({"timestamp": "2025-09-12T16:40:30.552Z", "type": "response_item", "payload": {"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "hello"}]}}),
            json!({"timestamp": "2025-09-12T16:40:35.871Z", "type": "response_item", "payload": {"type": "function_call", "name": "shell",
                   "arguments": json!({"command": ["bash", "-lc", format!("export OFFSET_KEY={}", keys[3])]}).to_string(), "call_id": "c1"}}),
            json!({"timestamp": "2025-09-12T16:40:36.102Z", "type": "response_item", "payload": {"type": "function_call_output", "call_id": "c1",
                   "output": json!({"output": format!("set {}", keys[4])}).to_string()}}),
        ]),
    );
    // Gemini CLI: a chat session with a tool call whose args and result hold keys.
    write(
        h,
        ".gemini/tmp/79b6fa86/chats/session-2025-10-18T14-57-f86f.json",
        json!({"sessionId": "gemini-session", "projectHash": "79b6fa86", "startTime": "2025-10-18T14:57:28.974Z",
               "messages": [
                   {"id": "m0", "timestamp": "2025-10-18T14:57:28.974Z", "type": "user", "content": format!("use {}", keys[5])},
                   {"id": "m1", "timestamp": "2025-10-18T14:57:41.508Z", "type": "gemini", "content": "ok",
                    "toolCalls": [{"id": "t", "name": "replace", "args": {"new_string": "KEY=x"},
                                   "result": [{"functionResponse": {"id": "t", "name": "replace",
                                       "response": {"output": format!("wrote {}", keys[6])}}}]}]}]})
        .to_string(),
    );

    let (run, f) = scan(h);
    let want = [
        (
            0,
            "claude-code",
            "cc-session",
            0,
            "2025-07-03T09:14:02.118Z",
        ),
        (
            1,
            "claude-code",
            "cc-session",
            1,
            "2025-07-03T09:14:05.402Z",
        ),
        (
            2,
            "claude-code",
            "cc-session",
            2,
            "2025-07-03T09:14:06.000Z",
        ),
        (3, "codex", "codex-session", 1, "2025-09-12T16:40:35.871Z"),
        (4, "codex", "codex-session", 2, "2025-09-12T16:40:36.102Z"),
        (
            5,
            "gemini-cli",
            "gemini-session",
            0,
            "2025-10-18T14:57:28.974Z",
        ),
        (
            6,
            "gemini-cli",
            "gemini-session",
            1,
            "2025-10-18T14:57:41.508Z",
        ),
    ];
    for (k, tool, session, message, date) in want {
        let l = loc(&f, &keys[k]);
        assert_eq!(l["source"], "transcript", "key {k}: {l}");
        assert_eq!(l["tool"], tool, "key {k}: {l}");
        assert_eq!(l["session"], session, "key {k}: {l}");
        assert_eq!(l["message"], message, "key {k}: {l}");
        assert_eq!(l["date"], date, "key {k}: {l}");
    }
    assert!(of(&f, &decoy).is_empty(), "the decoy is reported: {f:#?}");
    assert_eq!(f.len(), 7, "{f:#?}");
    for tool in [
        "claude-code",
        "codex",
        "gemini-cli",
        "cursor",
        "vscode",
        "windsurf",
    ] {
        assert!(
            run.stderr.contains(&format!("ai-history: {tool}:")),
            "stderr does not say it looked for {tool}: {}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("claude-code: 1 file(s)"),
        "{}",
        run.stderr
    );
    let text = offkey_home(h, &["scan", "--ai-history"]);
    let mut all = keys.clone();
    all.push(decoy);
    assert_no_key_leak(
        &[&run.stdout, &run.stderr, &text.stdout, &text.stderr],
        &all,
    );
}

/// The `oc_live_` keys in a fixture.
fn keys_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .match_indices("oc_live_")
        .map(|(at, _)| text[at..at + 46].to_owned())
        .collect();
    out.dedup();
    out
}

#[test]
fn samples_of_real_tools_are_read() {
    let home = tempfile::tempdir().expect("temp HOME");
    let h = home.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ai");
    let read = |n: &str| std::fs::read_to_string(fixtures.join(n)).expect("fixture");
    let samples = [
        (
            "claude-code.jsonl",
            ".claude/projects/-home-dev-shop/7b2f4e8a.jsonl",
            "claude-code",
            "7b2f4e8a-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
        ),
        (
            "codex-rollout.jsonl",
            ".codex/sessions/2025/09/12/rollout-2025-09-12T16-40-11.jsonl",
            "codex",
            "0199a1f2-3b4c-7d5e-8f60-7182a3b4c5d6",
        ),
        (
            "gemini-session.json",
            ".gemini/tmp/79b6fa86/chats/session-2025-10-18T14-57.json",
            "gemini-cli",
            "f86f5318-f47b-4433-85f8-ec9d9a417f8e",
        ),
    ];
    let mut all = Vec::new();
    for (name, rel, ..) in samples {
        write(h, rel, read(name));
    }
    let (run, f) = scan(h);
    for (name, _, tool, session) in samples {
        let keys = keys_in(&read(name));
        assert_eq!(keys.len(), 2, "{name} holds two keys");
        for k in &keys {
            let l = loc(&f, k);
            assert_eq!(l["tool"], tool, "{name}: {l}");
            assert_eq!(l["session"], session, "{name}: {l}");
            assert!(
                l["message"].is_u64() && l["date"].is_string(),
                "{name}: {l}"
            );
        }
        all.extend(keys);
    }
    assert_no_key_leak(&[&run.stdout, &run.stderr], &all);
}

fn vscdb(path: &Path, tables: &[(&str, &[(&str, String)])]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let c = rusqlite::Connection::open(path).expect("create state.vscdb");
    for (table, rows) in tables {
        c.execute_batch(&format!(
            "CREATE TABLE {table} (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)"
        ))
        .expect("table");
        for (k, v) in *rows {
            c.execute(
                &format!("INSERT INTO {table} (key, value) VALUES (?1, ?2)"),
                (k, v),
            )
            .expect("row");
        }
    }
}

#[test]
fn editor_state_databases_name_tool_session_message_table_row_and_column() {
    let home = tempfile::tempdir().expect("temp HOME");
    let h = home.path();
    let keys: Vec<String> = (0..4).map(|_| current_key()).collect();
    let decoy = bad_checksum(&current_key());
    // Cursor: a composer with a conversation; the key's underscore behind a JSON escape.
    let escaped = keys[0].replace('_', "\\u005f");
    vscdb(
        &h.join(".config/Cursor/User/globalStorage/state.vscdb"),
        &[
            ("ItemTable", &[("cursorAuth/cachedEmail", "dev@example.com".to_owned())]),
            (
                "cursorDiskKV",
                &[
                    ("composerData:comp-1", format!(
                        r#"{{"composerId":"comp-1","conversation":[{{"type":1,"bubbleId":"b0","text":"hi","createdAt":1730000000000}},{{"type":1,"bubbleId":"b1","text":"key {escaped}","createdAt":1730000001000}}]}}"#
                    )),
                    ("bubbleId:comp-1:b2", json!({"type": 2, "text": format!("echo {}", keys[1]), "toolFormerData": {"result": decoy}}).to_string()),
                ],
            ),
        ],
    );
    // VS Code (macOS path): Copilot chat sessions in a workspace's ItemTable.
    vscdb(
        &h.join("Library/Application Support/Code/User/workspaceStorage/ab12/state.vscdb"),
        &[(
            "ItemTable",
            &[(
                "interactive.sessions",
                json!([{"sessionId": "copilot-1", "requests": [
                    {"message": {"text": "fix"}, "response": [{"value": "ok"}], "timestamp": 1731000000000_u64},
                    {"message": {"text": format!("why is {} rejected", keys[2])}, "response": [{"value": "…"}], "timestamp": 1731000005000_u64}]}])
                .to_string(),
            )],
        )],
    );
    // Windsurf: a plain text value.
    vscdb(
        &h.join(".config/Windsurf/User/globalStorage/state.vscdb"),
        &[("ItemTable", &[("notes", format!("token {}", keys[3]))])],
    );

    // Cursor is running: its latest write is still in the write-ahead log.
    let wal_key = current_key();
    let mut wal = vec![0x37, 0x7f, 0x06, 0x82, 0, 0x2d, 0xe2, 0x18];
    wal.extend_from_slice(&[0; 24]);
    wal.extend_from_slice(format!("{{\"text\":\"{wal_key}\"}}").as_bytes());
    write(h, ".config/Cursor/User/globalStorage/state.vscdb-wal", wal);

    let (run, f) = scan(h);
    let l = loc(&f, &wal_key);
    assert_eq!(l["tool"], "cursor", "{l}");
    assert!(
        l["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("state.vscdb-wal")),
        "{l}"
    );
    let l = loc(&f, &keys[0]);
    assert_eq!(
        (l["tool"].as_str(), l["session"].as_str()),
        (Some("cursor"), Some("comp-1")),
        "{l}"
    );
    assert_eq!(
        (l["source"].as_str(), l["message"].as_u64()),
        (Some("transcript"), Some(1)),
        "{l}"
    );
    assert_eq!(l["date"], "1730000001000", "{l}");
    assert_eq!(
        (
            l["table"].as_str(),
            l["row"].as_i64(),
            l["column_name"].as_str()
        ),
        (Some("cursorDiskKV"), Some(1), Some("value")),
        "{l}"
    );
    let l = loc(&f, &keys[1]);
    assert_eq!(
        (l["tool"].as_str(), l["session"].as_str(), l["row"].as_i64()),
        (Some("cursor"), Some("comp-1"), Some(2)),
        "{l}"
    );
    let l = loc(&f, &keys[2]);
    assert_eq!(
        (
            l["tool"].as_str(),
            l["session"].as_str(),
            l["message"].as_u64()
        ),
        (Some("vscode"), Some("copilot-1"), Some(1)),
        "{l}"
    );
    assert_eq!(l["date"], "1731000005000", "{l}");
    assert_eq!(l["table"], "ItemTable", "{l}");
    let l = loc(&f, &keys[3]);
    assert_eq!(
        (l["tool"].as_str(), l["source"].as_str()),
        (Some("windsurf"), Some("sqlite")),
        "{l}"
    );
    assert_eq!(
        (
            l["table"].as_str(),
            l["row"].as_i64(),
            l["column_name"].as_str()
        ),
        (Some("ItemTable"), Some(1), Some("value")),
        "{l}"
    );
    assert!(of(&f, &decoy).is_empty(), "decoy reported: {f:#?}");
    assert_eq!(f.len(), 5, "{f:#?}");
    assert!(run.stderr.contains("cursor: 2 file(s)"), "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let mut all = keys.clone();
    all.push(wal_key);
    all.push(decoy);
    assert_no_key_leak(&[&run.stdout, &run.stderr], &all);
}

#[test]
fn sqlite_files_are_scanned_cell_by_cell_and_a_broken_one_is_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let keys: Vec<String> = (0..3).map(|_| current_key()).collect();
    // Named without a SQLite extension: recognised by its first 16 bytes.
    let c = rusqlite::Connection::open(d.join("cache.bin")).expect("create");
    c.execute_batch(
        "CREATE TABLE data (id INTEGER PRIMARY KEY, label TEXT, payload BLOB, n INTEGER)",
    )
    .expect("table");
    c.execute("INSERT INTO data VALUES (7, 'nothing', x'00', 1)", [])
        .expect("row");
    c.execute(
        "INSERT INTO data VALUES (9, ?1, ?2, 2)",
        (
            format!("key {}", keys[0]),
            [b"\x00\x01bin ".as_slice(), keys[1].as_bytes()].concat(),
        ),
    )
    .expect("row");
    c.execute_batch("CREATE TABLE kv (key TEXT, value TEXT)")
        .expect("table");
    c.execute(
        "INSERT INTO kv VALUES ('k', ?1)",
        [json!({"a": {"b": keys[2].replace('_', "\\u005f")}})
            .to_string()
            .replace("\\\\", "\\")],
    )
    .expect("row");
    drop(c);
    let mut broken = b"SQLite format 3\0".to_vec();
    broken.extend_from_slice(&[0x5a; 4096]);
    std::fs::write(d.join("broken.db"), broken).expect("write");

    let run = crate::tree::offkey_in(d, &["scan", ".", "-f", "json"], None);
    assert_eq!(run.status, Some(1), "{}", run.stderr);
    let f = run.findings();
    let want = [
        (0, "data", 9, "label"),
        (1, "data", 9, "payload"),
        (2, "kv", 1, "value"),
    ];
    for (k, table, row, column) in want {
        let l = loc(&f, &keys[k]);
        assert_eq!(l["source"], "sqlite", "key {k}: {l}");
        assert_eq!(l["path"], "cache.bin", "key {k}: {l}");
        assert_eq!(
            (
                l["table"].as_str(),
                l["row"].as_i64(),
                l["column_name"].as_str()
            ),
            (Some(table), Some(row), Some(column)),
            "key {k}: {l}"
        );
    }
    assert_eq!(f.len(), 3, "{f:#?}");
    assert!(
        run.stderr.contains("broken.db") && run.stderr.contains("not a readable SQLite database"),
        "no warning for the broken file: {}",
        run.stderr
    );
    assert_no_key_leak(&[&run.stdout, &run.stderr], &keys);
}

#[test]
fn ai_history_without_home_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = assert_cmd::Command::cargo_bin("offkey").expect("built");
    let out = cmd
        .current_dir(dir.path())
        .args(["scan", "--ai-history"])
        .env_remove("HOME")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ai-history needs $HOME"));
}

#[test]
fn sarif_for_ai_history_is_valid_and_names_tool_session_and_table() {
    let home = tempfile::tempdir().expect("temp HOME");
    let h = home.path();
    let keys: Vec<String> = (0..2).map(|_| current_key()).collect();
    write(
        h,
        ".claude/projects/p/s.jsonl",
        lines(&[
            json!({"type": "user", "sessionId": "cc-1", "timestamp": "2025-07-03T09:14:02Z",
                       "message": {"role": "user", "content": format!("key {}", keys[0])}}),
        ]),
    );
    vscdb(
        &h.join(".config/Cursor/User/globalStorage/state.vscdb"),
        &[("ItemTable", &[("note", format!("k {}", keys[1]))])],
    );
    let out = h.join("ai.sarif");
    let run = offkey_home(
        h,
        &[
            "scan",
            "--ai-history",
            "-f",
            "sarif",
            "-o",
            out.to_str().expect("utf8"),
        ],
    );
    assert_eq!(run.status, Some(1), "{}", run.stderr);
    let v = crate::integrations::check_sarif(&out, &keys);
    let results = v["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{results:#?}");
    let props: Vec<&Value> = results.iter().map(|r| &r["properties"]).collect();
    assert!(
        props
            .iter()
            .any(|p| p["tool"] == "claude-code" && p["session"] == "cc-1" && p["message"] == 0),
        "{props:#?}"
    );
    assert!(
        props.iter().any(|p| p["tool"] == "cursor"
            && p["table"] == "ItemTable"
            && p["row"] == 1
            && p["columnName"] == "value"),
        "{props:#?}"
    );
}
