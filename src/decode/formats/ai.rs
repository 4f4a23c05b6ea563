//! The history AI coding tools keep on the developer's disk, as messages: Claude Code session
//! transcripts (`~/.claude/projects/*/*.jsonl`, one JSON record a line with `sessionId`,
//! `timestamp` and `message`), OpenAI Codex CLI rollouts (`~/.codex/sessions/**/*.jsonl`:
//! `session_meta`, then `response_item` records; the older layout has the items bare after an
//! `{id, timestamp}` first line) and Gemini CLI chats (`~/.gemini/tmp/<hash>/chats/*.json`: one
//! object with `sessionId` and `messages`, or the `logs.json` array of `{sessionId, messageId,
//! timestamp, message}`). Each message's text is every string in its record (content, tool-call
//! arguments and results), with JSON escapes decoded.

use serde_json::Value;

use super::DecodeError;

/// Which AI tool a history file belongs to (`location.tool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AiTool {
    /// Anthropic's Claude Code.
    ClaudeCode,
    /// OpenAI's Codex CLI.
    Codex,
    /// Google's Gemini CLI.
    GeminiCli,
    /// The Cursor editor.
    Cursor,
    /// Visual Studio Code (Copilot chat).
    VsCode,
    /// The Windsurf editor.
    Windsurf,
}

impl AiTool {
    /// The name `location.tool` gives it.
    pub fn name(self) -> &'static str {
        match self {
            AiTool::ClaudeCode => "claude-code",
            AiTool::Codex => "codex",
            AiTool::GeminiCli => "gemini-cli",
            AiTool::Cursor => "cursor",
            AiTool::VsCode => "vscode",
            AiTool::Windsurf => "windsurf",
        }
    }
}

/// One message of a tool's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AiMessage {
    /// The session (or conversation) id.
    pub session: Option<String>,
    /// 0-based message index in the session; `None` for a record that is not a message (a
    /// summary line, session metadata).
    pub index: Option<usize>,
    /// The message's time, as the tool wrote it.
    pub date: Option<String>,
    /// Who wrote it (`user`, `assistant`, `gemini`, …).
    pub role: Option<String>,
    /// Every string of the record, one a line.
    pub text: String,
}

/// Every string in `v` (object keys left out), one a line, into `out`.
pub fn strings_of(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| strings_of(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings_of(x, out)),
        _ => {}
    }
}

/// A string or number field as text (timestamps are either).
pub fn text_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The JSON records of a JSON-lines file; a line that does not parse is reported by number.
fn records(data: &[u8]) -> (Vec<Value>, Vec<usize>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) => out.push(v),
            Err(_) => bad.push(i + 1),
        }
    }
    (out, bad)
}

fn not_json(tool: AiTool, bad: &[usize]) -> DecodeError {
    DecodeError::History {
        tool: tool.name(),
        reason: format!(
            "{} line(s) are not JSON (first: line {})",
            bad.len(),
            bad.first().copied().unwrap_or(0)
        ),
    }
}

/// The messages of a Claude Code, Codex or Gemini CLI history file, and the lines of it that
/// could not be read (as an error to warn about; the rest is read).
pub fn ai_messages(
    tool: AiTool,
    data: &[u8],
    fallback_session: &str,
) -> (Vec<AiMessage>, Option<DecodeError>) {
    match tool {
        AiTool::ClaudeCode => {
            let (recs, bad) = records(data);
            let mut out = Vec::new();
            let mut n = 0;
            for r in &recs {
                let is_message = r.get("message").is_some();
                let mut text = String::new();
                strings_of(r, &mut text);
                out.push(AiMessage {
                    session: text_field(r, "sessionId")
                        .or_else(|| Some(fallback_session.to_owned())),
                    index: is_message.then(|| {
                        n += 1;
                        n - 1
                    }),
                    date: text_field(r, "timestamp"),
                    role: r
                        .pointer("/message/role")
                        .and_then(Value::as_str)
                        .or_else(|| r.get("type").and_then(Value::as_str))
                        .map(str::to_owned),
                    text,
                });
            }
            (out, (!bad.is_empty()).then(|| not_json(tool, &bad)))
        }
        AiTool::Codex => {
            let (recs, bad) = records(data);
            let mut session = None;
            let mut out = Vec::new();
            let mut n = 0;
            for (i, r) in recs.iter().enumerate() {
                let ty = r.get("type").and_then(Value::as_str).unwrap_or_default();
                let (item, is_message) = match ty {
                    "session_meta" => {
                        session = r.pointer("/payload/id").and_then(Value::as_str);
                        (r, false)
                    }
                    "response_item" => (r.get("payload").unwrap_or(r), true),
                    // The older layout: `{id, timestamp, instructions}` first, then bare items.
                    "" if i == 0 => {
                        session = r.get("id").and_then(Value::as_str);
                        (r, false)
                    }
                    "message"
                    | "function_call"
                    | "function_call_output"
                    | "local_shell_call"
                    | "reasoning" => (r, true),
                    _ => (r, false),
                };
                let mut text = String::new();
                strings_of(r, &mut text);
                out.push(AiMessage {
                    session: Some(session.unwrap_or(fallback_session).to_owned()),
                    index: is_message.then(|| {
                        n += 1;
                        n - 1
                    }),
                    date: text_field(r, "timestamp"),
                    role: item.get("role").and_then(Value::as_str).map(str::to_owned),
                    text,
                });
            }
            (out, (!bad.is_empty()).then(|| not_json(tool, &bad)))
        }
        AiTool::GeminiCli => match serde_json::from_slice::<Value>(data) {
            Ok(v) => (gemini(&v, fallback_session), None),
            Err(e) => (
                Vec::new(),
                Some(DecodeError::History {
                    tool: tool.name(),
                    reason: format!("not JSON ({e})"),
                }),
            ),
        },
        AiTool::Cursor | AiTool::VsCode | AiTool::Windsurf => (
            Vec::new(),
            Some(DecodeError::History {
                tool: tool.name(),
                reason: "kept in SQLite, not JSON lines".into(),
            }),
        ),
    }
}

fn gemini(v: &Value, fallback: &str) -> Vec<AiMessage> {
    let mut out = Vec::new();
    let message = |m: &Value, session: Option<String>, index: usize| {
        let mut text = String::new();
        strings_of(m, &mut text);
        AiMessage {
            session: session.or_else(|| Some(fallback.to_owned())),
            index: Some(index),
            date: text_field(m, "timestamp"),
            role: m.get("type").and_then(Value::as_str).map(str::to_owned),
            text,
        }
    };
    match v {
        // logs.json: every user message of every session, with its index in the session.
        Value::Array(items) => {
            for (i, m) in items.iter().enumerate() {
                let index = m
                    .get("messageId")
                    .and_then(Value::as_u64)
                    .map_or(i, |n| n as usize);
                out.push(message(m, text_field(m, "sessionId"), index));
            }
        }
        Value::Object(o) => {
            let session = text_field(v, "sessionId");
            if let Some(Value::Array(msgs)) = o.get("messages") {
                for (i, m) in msgs.iter().enumerate() {
                    out.push(message(m, session.clone(), i));
                }
            }
            // The rest of the file (a checkpoint's history, a summary): not a message.
            let mut text = String::new();
            for (k, x) in o {
                if k != "messages" {
                    strings_of(x, &mut text);
                }
            }
            out.push(AiMessage {
                session: session.or_else(|| Some(fallback.to_owned())),
                text,
                ..AiMessage::default()
            });
        }
        other => {
            let mut text = String::new();
            strings_of(other, &mut text);
            out.push(AiMessage {
                session: Some(fallback.to_owned()),
                text,
                ..AiMessage::default()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_code_counts_messages_not_summaries() {
        let data = concat!(
            r#"{"type":"summary","summary":"s","leafUuid":"u"}"#,
            "\n",
            r#"{"type":"user","sessionId":"S1","timestamp":"2025-06-01T10:00:00Z","message":{"role":"user","content":"hi"}}"#,
            "\n",
            r#"{"type":"assistant","sessionId":"S1","timestamp":"2025-06-01T10:00:05Z","message":{"role":"assistant","content":[{"type":"tool_use","input":{"command":"echo \u006fk"}}]}}"#,
            "\n",
            "not json\n"
        );
        let (msgs, err) = ai_messages(AiTool::ClaudeCode, data.as_bytes(), "f");
        assert!(err.is_some());
        let idx: Vec<_> = msgs.iter().map(|m| m.index).collect();
        assert_eq!(idx, vec![None, Some(0), Some(1)]);
        assert!(msgs[2].text.contains("echo ok"));
        assert_eq!(msgs[2].date.as_deref(), Some("2025-06-01T10:00:05Z"));
    }

    #[test]
    fn gemini_session_file() {
        let data = r#"{"sessionId":"G","messages":[{"type":"user","timestamp":"t0","content":"a"},{"type":"gemini","timestamp":"t1","content":"b","toolCalls":[{"args":{"x":"y"}}]}]}"#;
        let (msgs, err) = ai_messages(AiTool::GeminiCli, data.as_bytes(), "f");
        assert!(err.is_none());
        assert_eq!(msgs[1].index, Some(1));
        assert!(msgs[1].text.contains('y'));
        assert_eq!(msgs[1].session.as_deref(), Some("G"));
    }
}
