//! Where AI assistants keep their history for the user running offkey (`--ai-history`): the
//! files each tool writes under `$HOME`, on Linux and macOS. Nothing here reads them.

use std::path::{Path, PathBuf};

use crate::decode::formats::AiTool;

/// One history file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiFile {
    /// The tool that wrote it.
    pub tool: AiTool,
    /// Where it is.
    pub path: PathBuf,
}

/// What was looked for for one tool: where, and how many files were there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looked {
    /// The tool.
    pub tool: AiTool,
    /// The places looked in (patterns, `~` for the home folder).
    pub places: Vec<String>,
    /// Files found.
    pub found: usize,
}

/// Folders deeper than this under a tool's folder are not walked (symlinks are never followed).
const MAX_DEPTH: usize = 8;

/// Files under `dir` (to `depth` levels) whose name satisfies `keep`, in name order.
fn files_under(dir: &Path, depth: usize, keep: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(ty) = e.file_type() else { continue };
        let path = e.path();
        if ty.is_dir() && depth > 0 {
            files_under(&path, depth - 1, keep, out);
        } else if ty.is_file() && keep(&e.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
}

/// The editors' folders under `home`: (tool, its `User` folder), Linux then macOS.
fn editor_users(home: &Path) -> Vec<(AiTool, PathBuf)> {
    let mut out = Vec::new();
    for (tool, name) in [
        (AiTool::Cursor, "Cursor"),
        (AiTool::VsCode, "Code"),
        (AiTool::Windsurf, "Windsurf"),
    ] {
        out.push((tool, home.join(".config").join(name).join("User")));
        out.push((
            tool,
            home.join("Library/Application Support")
                .join(name)
                .join("User"),
        ));
    }
    out
}

/// Every history file of every known tool under `home`, and what was looked for.
pub fn discover(home: &Path) -> (Vec<AiFile>, Vec<Looked>) {
    let mut files = Vec::new();
    let mut looked = Vec::new();
    let mut add = |tool: AiTool, places: Vec<String>, found: Vec<PathBuf>| {
        looked.push(Looked {
            tool,
            places,
            found: found.len(),
        });
        files.extend(found.into_iter().map(|path| AiFile { tool, path }));
    };
    let jsonl = |n: &str| n.ends_with(".jsonl");
    let json = |n: &str| n.ends_with(".json");

    let mut found = Vec::new();
    files_under(&home.join(".claude/projects"), 1, &jsonl, &mut found);
    // `*/*.jsonl`: one folder per project, transcripts directly in it.
    let root = home.join(".claude/projects");
    found.retain(|p| p.parent().and_then(Path::parent) == Some(root.as_path()));
    add(
        AiTool::ClaudeCode,
        vec!["~/.claude/projects/*/*.jsonl".into()],
        found,
    );

    let mut found = Vec::new();
    files_under(&home.join(".codex/sessions"), MAX_DEPTH, &jsonl, &mut found);
    add(
        AiTool::Codex,
        vec!["~/.codex/sessions/**/*.jsonl".into()],
        found,
    );

    let mut found = Vec::new();
    files_under(&home.join(".gemini/tmp"), MAX_DEPTH, &json, &mut found);
    add(
        AiTool::GeminiCli,
        vec!["~/.gemini/tmp/**/*.json".into()],
        found,
    );

    let mut by_tool: Vec<(AiTool, Vec<String>, Vec<PathBuf>)> = Vec::new();
    for (tool, user) in editor_users(home) {
        let rel = user
            .strip_prefix(home)
            .map(|r| format!("~/{}", r.display()))
            .unwrap_or_else(|_| user.display().to_string());
        let mut found = Vec::new();
        let global = user.join("globalStorage/state.vscdb");
        if global.is_file() {
            found.push(global);
        }
        let mut ws = Vec::new();
        files_under(
            &user.join("workspaceStorage"),
            1,
            &|n| n == "state.vscdb",
            &mut ws,
        );
        found.extend(ws);
        // A running editor's latest writes sit in the write-ahead log beside the database,
        // which an immutable open does not read: its bytes are scanned too.
        let wals: Vec<PathBuf> = found
            .iter()
            .map(|p| p.with_file_name("state.vscdb-wal"))
            .filter(|p| p.is_file())
            .collect();
        found.extend(wals);
        let places = vec![
            format!("{rel}/globalStorage/state.vscdb"),
            format!("{rel}/workspaceStorage/*/state.vscdb"),
        ];
        match by_tool.iter_mut().find(|(t, _, _)| *t == tool) {
            Some((_, p, f)) => {
                p.extend(places);
                f.extend(found);
            }
            None => by_tool.push((tool, places, found)),
        }
    }
    for (tool, places, found) in by_tool {
        add(tool, places, found);
    }
    (files, looked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_tool_where_it_keeps_history() {
        let home = tempfile::tempdir().expect("temp dir");
        let h = home.path();
        let touch = |rel: &str| {
            let p = h.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, b"x").expect("write");
        };
        touch(".claude/projects/-home-me-app/s1.jsonl");
        touch(".claude/projects/-home-me-app/deeper/not-this.jsonl");
        touch(".codex/sessions/2025/06/01/rollout-a.jsonl");
        touch(".gemini/tmp/abc/chats/session-1.json");
        touch(".config/Cursor/User/globalStorage/state.vscdb");
        touch("Library/Application Support/Code/User/workspaceStorage/w1/state.vscdb");
        let (files, looked) = discover(h);
        let tools: Vec<_> = files.iter().map(|f| f.tool.name()).collect();
        assert_eq!(
            tools,
            vec!["claude-code", "codex", "gemini-cli", "cursor", "vscode"]
        );
        let windsurf = looked
            .iter()
            .find(|l| l.tool == AiTool::Windsurf)
            .expect("windsurf looked for");
        assert_eq!(windsurf.found, 0);
    }
}
