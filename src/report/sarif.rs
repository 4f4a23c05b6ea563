//! SARIF 2.1.0 for GitHub code scanning (built with serde-sarif): one run, one rule per rule id,
//! results with relative URIs, regions, and fingerprints from the key hash and the path so an
//! alert stays one alert across runs and line moves.

use std::collections::BTreeMap;
use std::io::Write;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::json;
use serde_sarif::sarif::{
    ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation, PropertyBag,
    Region, ReportingConfiguration, ReportingDescriptor, Result as SarifResult, ResultLevel, Run,
    RunAutomationDetails, Sarif, Tool, ToolComponent,
};
use sha2::{Digest, Sha256};

use crate::key::KeyKind;
use crate::rules::{Rule, RuleSet};
use crate::scan::{Finding, VerifyStatus};

/// GitHub code scanning keeps at most this many results per run.
pub const MAX_RESULTS: usize = 25_000;

/// Characters escaped in a relative URI (path separators stay).
const URI_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A finding's path as a SARIF artifact URI: a relative path stays a relative reference (to
/// the scan root, as code scanning expects); an absolute path (an image or file named by its
/// full path) becomes a `file://` URI, because a relative reference may not begin with `/`
/// (SARIF1004, and GitHub would not resolve it).
fn artifact_uri(path: &str) -> String {
    let encoded = utf8_percent_encode(path, URI_ESCAPE).to_string();
    if path.starts_with('/') {
        format!("file://{encoded}")
    } else {
        encoded
    }
}

const HELP_TEXT: &str = "A live Offset Commerce API key acts on the merchant account like a password. \
Rotate it: `offkey rotate KEY_ID` creates the replacement, delivers it, then retires the old key \
(or use Settings → API Keys: create a new key, put it in place, delete the old one). Deleting the \
line is not enough: git history, forks, caches and backups keep the key. Then remove the key from \
the file and load it from the environment or a secret manager. If the value is a deliberate fake, \
add an `offkey:allow` comment on its line.";

const HELP_MARKDOWN: &str = "**A live Offset Commerce API key acts on the merchant account like a password.**\n\n\
1. Rotate it: `offkey rotate KEY_ID` creates the replacement, delivers it where it is needed, and \
only then retires the old key. Or in **Settings → API Keys**: create a new key, put it in place, \
then delete the old one.\n\
2. Remove it from the file and load it from the environment or a secret manager.\n\n\
Deleting the line is **not** enough: git history, forks, CI caches and backups keep the key.\n\n\
A deliberate fake (test fixture, documentation) can be marked with an `offkey:allow` comment on its line.";

fn severity(kind: KeyKind) -> (&'static str, &'static str, ResultLevel, &'static str) {
    match kind {
        KeyKind::Current => ("9.5", "very-high", ResultLevel::Error, "error"),
        KeyKind::Legacy => ("6.5", "medium", ResultLevel::Warning, "warning"),
    }
}

fn rule_descriptor(rule: &Rule) -> ReportingDescriptor {
    let (score, precision, _, level) = severity(rule.kind);
    let mut props = BTreeMap::new();
    props.insert("precision".to_owned(), json!(precision));
    props.insert("security-severity".to_owned(), json!(score));
    props.insert("problem.severity".to_owned(), json!(level));
    let name: String = rule
        .id
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    ReportingDescriptor::builder()
        .id(rule.id.clone())
        .name(name)
        .short_description(
            MultiformatMessageString::builder()
                .text(match rule.kind {
                    KeyKind::Current => "Exposed Offset Commerce API key".to_owned(),
                    KeyKind::Legacy => "Possible exposed Offset Commerce legacy API key".to_owned(),
                })
                .build(),
        )
        .full_description(
            MultiformatMessageString::builder()
                .text(rule.description.clone())
                .build(),
        )
        .help(
            MultiformatMessageString::builder()
                .text(HELP_TEXT.to_owned())
                .markdown(HELP_MARKDOWN.to_owned())
                .build(),
        )
        .default_configuration(
            ReportingConfiguration::builder()
                .level(json!(level))
                .build(),
        )
        .properties(
            PropertyBag::builder()
                .tags(vec!["security".to_owned(), "secret".to_owned()])
                .additional_properties(props)
                .build(),
        )
        .build()
}

fn fingerprint(f: &Finding) -> String {
    let mut h = Sha256::new();
    h.update(f.secret.sha256().as_bytes());
    h.update(b":");
    h.update(f.location.path.as_bytes());
    hex::encode(h.finalize())
}

fn message(f: &Finding) -> String {
    let what = match f.kind {
        KeyKind::Current => "Offset Commerce API key",
        KeyKind::Legacy => "possible Offset Commerce legacy API key",
    };
    let mut m = format!("{} {} found", what, f.secret.redacted());
    if f.encoding != crate::scan::Encoding::Plain {
        m.push_str(&format!(" ({})", f.encoding.as_str()));
    }
    if let Some(b) = &f.location.bbox {
        m.push_str(&format!(
            " in the image at x {}, y {} ({}×{} pixels)",
            b.x, b.y, b.width, b.height
        ));
    }
    if let Some(c) = &f.location.commit {
        m.push_str(&format!(" in commit {}", &c[..c.len().min(12)]));
    }
    if let Some(v) = &f.verification {
        m.push_str(match v.status {
            VerifyStatus::Active => ": the key is ACTIVE",
            VerifyStatus::Revoked => ": the key is revoked",
            VerifyStatus::Unknown => ": unknown to the key service",
            VerifyStatus::Error => ": not verified",
        });
        if v.used_after_exposure {
            m.push_str(" and was used after this exposure");
        }
    }
    m.push_str(". Rotate it; deleting the line is not enough.");
    m
}

fn result(f: &Finding, rules: &RuleSet) -> SarifResult {
    let (_, _, level, _) = severity(f.kind);
    let rule_index = rules.rules.iter().position(|r| r.id == f.rule).unwrap_or(0) as i64;
    let line = f.location.line.max(1) as i64;
    let col = f.location.column.max(1) as i64;
    // An image has no lines: GitHub needs a startLine, so line 1 and no columns (which would
    // claim a text position); the key's box in pixels is in the properties and the message.
    let region = if f.location.bbox.is_some() {
        Region::builder().start_line(1).build()
    } else {
        Region::builder()
            .start_line(line)
            .start_column(col)
            .end_line(line)
            .end_column(col + f.span.max(1) as i64)
            .build()
    };
    let uri = artifact_uri(&f.location.path);
    let mut fps = BTreeMap::new();
    fps.insert("offkeyKeyPath/v1".to_owned(), fingerprint(f));
    let mut props = BTreeMap::new();
    props.insert("sha256".to_owned(), json!(f.secret.sha256()));
    props.insert("encoding".to_owned(), json!(f.encoding.as_str()));
    props.insert("source".to_owned(), json!(f.location.source));
    for (k, v) in [
        ("commit", &f.location.commit),
        ("author", &f.location.author),
        ("date", &f.location.date),
        ("conversation", &f.location.conversation),
        ("part", &f.location.part),
        ("sheet", &f.location.sheet),
        ("cell", &f.location.cell),
        ("messageId", &f.location.message_id),
        ("subject", &f.location.subject),
        ("tool", &f.location.tool),
        ("session", &f.location.session),
        ("table", &f.location.table),
        ("columnName", &f.location.column_name),
    ] {
        if let Some(v) = v {
            props.insert(k.to_owned(), json!(v));
        }
    }
    if let Some(m) = f.location.message {
        props.insert("message".to_owned(), json!(m));
    }
    if let Some(b) = &f.location.bbox {
        props.insert("box".to_owned(), json!(b));
    }
    if let Some(r) = f.location.row {
        props.insert("row".to_owned(), json!(r));
    }
    for (k, v) in [("slide", f.location.slide), ("page", f.location.page)] {
        if let Some(v) = v {
            props.insert(k.to_owned(), json!(v));
        }
    }
    if let Some(v) = &f.verification {
        props.insert("verification".to_owned(), json!(v));
    }
    SarifResult::builder()
        .rule_id(f.rule.clone())
        .rule_index(rule_index)
        .level(level)
        .message(Message::builder().text(message(f)).build())
        .locations(vec![
            Location::builder()
                .physical_location(
                    PhysicalLocation::builder()
                        .artifact_location(ArtifactLocation::builder().uri(uri).build())
                        .region(region)
                        .build(),
                )
                .build(),
        ])
        .partial_fingerprints(fps)
        .properties(PropertyBag::builder().additional_properties(props).build())
        .build()
}

/// Write the findings as one SARIF run. Beyond [`MAX_RESULTS`] the most severe are kept and
/// the rest counted on stderr.
pub fn write_sarif(
    w: &mut dyn Write,
    rules: &RuleSet,
    findings: &[Finding],
) -> std::io::Result<()> {
    let mut ordered: Vec<&Finding> = findings.iter().collect();
    if ordered.len() > MAX_RESULTS {
        ordered.sort_by_key(|f| {
            (
                f.kind != KeyKind::Current,
                f.confidence != crate::rules::Confidence::High,
            )
        });
        eprintln!(
            "offkey: warning: {} findings, but GitHub code scanning takes at most {MAX_RESULTS} per run: \
             the SARIF file keeps the {MAX_RESULTS} most severe; see --format json for all of them",
            ordered.len()
        );
        ordered.truncate(MAX_RESULTS);
    }
    let driver = ToolComponent::builder()
        .name("offkey".to_owned())
        .version(env!("CARGO_PKG_VERSION").to_owned())
        .semantic_version(env!("CARGO_PKG_VERSION").to_owned())
        .information_uri(env!("CARGO_PKG_REPOSITORY").to_owned())
        .rules(rules.rules.iter().map(rule_descriptor).collect::<Vec<_>>())
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .automation_details(
            RunAutomationDetails::builder()
                .id("offkey/".to_owned())
                .build(),
        )
        .column_kind(json!("unicodeCodePoints"))
        .results(
            ordered
                .into_iter()
                .map(|f| result(f, rules))
                .collect::<Vec<_>>(),
        )
        .build();
    let sarif = Sarif::builder()
        .schema(serde_sarif::sarif::SCHEMA_URL.to_owned())
        .version(json!("2.1.0"))
        .runs(vec![run])
        .build();
    serde_json::to_writer_pretty(&mut *w, &sarif)?;
    writeln!(w)
}

#[cfg(test)]
mod tests {
    use super::artifact_uri;

    #[test]
    fn an_absolute_path_is_a_file_uri_and_a_relative_one_stays_relative() {
        assert_eq!(
            artifact_uri("/tmp/shots/my shot.png"),
            "file:///tmp/shots/my%20shot.png"
        );
        assert_eq!(artifact_uri("src/app.env"), "src/app.env");
    }
}
