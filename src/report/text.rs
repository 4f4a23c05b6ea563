//! Human output: one line per finding on stdout, the advice and the summary on stderr.

use std::io::Write;

use chrono::{DateTime, Utc};

use super::json::Summary;
use crate::scan::{Finding, VerifyStatus};

/// Colour or not.
#[derive(Debug, Clone, Copy)]
pub struct TextStyle {
    /// ANSI colours (only on a terminal, never with NO_COLOR).
    pub color: bool,
}

fn paint(style: TextStyle, code: &str, s: &str) -> String {
    if style.color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// `path:line:col  rule  oc_live_…q9Zx` per finding (plus the verification line), then on
/// `err` what to do and the summary.
pub fn write_text(
    out: &mut dyn Write,
    err: &mut dyn Write,
    findings: &[Finding],
    summary: Summary,
    style: TextStyle,
) -> std::io::Result<()> {
    for f in findings {
        let mut extra = String::new();
        if f.encoding != crate::scan::Encoding::Plain {
            extra = format!("  ({})", f.encoding.as_str());
        }
        writeln!(
            out,
            "{}  {}  {}{}",
            paint(style, "1", &f.location.display()),
            paint(style, "33", &f.rule),
            paint(style, "1;31", &f.secret.redacted()),
            extra
        )?;
        if let Some(v) = &f.verification {
            writeln!(out, "    {}", verification_line(v, style))?;
        }
        if let Some(id) = &f.rotated_to {
            writeln!(out, "    rotated: replacement key {id}")?;
        }
    }
    let staged = !findings.is_empty()
        && findings
            .iter()
            .all(|f| f.location.source == crate::scan::SourceKind::Staged);
    if staged {
        writeln!(
            err,
            "offkey: commit refused: the staged changes add {} Offset API key(s).\n\
             \x20 - remove the key from the file (load it from the environment or a secret manager) and stage again;\n\
             \x20 - if it was ever pushed or shared, rotate it: `offkey rotate`, or Settings → API Keys;\n\
             \x20 - if it is a deliberate fake, add an `offkey:allow` comment on its line.",
            findings.len()
        )?;
    } else if !findings.is_empty() {
        writeln!(
            err,
            "offkey: {} finding(s). Rotate each exposed key (`offkey rotate`, or Settings → API Keys), \
             then remove it: deleting the line is not enough, git history and copies keep it.",
            findings.len()
        )?;
    }
    writeln!(
        err,
        "offkey: scanned {} file(s), {} bytes in {} ms: {} finding(s)",
        summary.files, summary.bytes, summary.elapsed_ms, summary.findings
    )
}

fn verification_line(v: &crate::scan::Verification, style: TextStyle) -> String {
    match v.status {
        VerifyStatus::Active => {
            let mut s = paint(style, "1;31", "ACTIVE");
            if let Some(m) = &v.memo {
                s.push_str(&format!("  {m:?}"));
            }
            if let Some(c) = &v.created_at {
                s.push_str(&format!(", created {}", &c[..c.len().min(10)]));
                if let Some(by) = &v.created_by {
                    s.push_str(&format!(" by {by}"));
                }
            }
            match &v.last_used_at {
                Some(t) => s.push_str(&format!(", last used {}", relative(t))),
                None => s.push_str(", never used"),
            }
            if v.used_after_exposure {
                s.push_str(&paint(style, "1;31", "  USED AFTER EXPOSURE"));
            }
            s
        }
        VerifyStatus::Revoked => match &v.deleted_at {
            Some(d) => format!("revoked on {}", &d[..d.len().min(10)]),
            None => "revoked".into(),
        },
        VerifyStatus::Unknown => "unknown to this account".into(),
        VerifyStatus::Error => format!(
            "not verified: {}",
            v.error
                .as_deref()
                .unwrap_or("the key service could not be asked")
        ),
    }
}

/// "never", "just now", "5 minutes ago", "3 hours ago", "2 days ago", or the date after 30 days:
/// how every offkey command shows a last use.
pub fn relative_time(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else {
        return "never".to_owned();
    };
    let secs = (now - t).num_seconds().max(0);
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        0..60 => "just now".to_owned(),
        60..3600 => plural(secs / 60, "minute"),
        3600..86_400 => plural(secs / 3600, "hour"),
        86_400..2_592_000 => plural(secs / 86_400, "day"),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// [`relative_time`] of an RFC 3339 time as a report carries it.
fn relative(t: &str) -> String {
    match DateTime::parse_from_rfc3339(t) {
        Ok(d) => relative_time(Some(d.with_timezone(&Utc)), Utc::now()),
        Err(_) => t.to_owned(),
    }
}
