//! `offkey scan --verify` (and `--report-exposures`, `--rotate`): ask the key service about every
//! finding by its hash only, fill each finding's `verification`, and act on active keys.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};

use super::login::ServerArgs;
use crate::client::{ClientError, ExposureReport, LookupResult, LookupStatus};
use crate::key::KeyKind;
use crate::rotate::{OldKeyPolicy, Sink};
use crate::rules::Confidence;
use crate::scan::{Finding, Verification, VerifyStatus};

/// What to ask the key service and what to do with the answers (`scan --verify` and the flags
/// that go with it).
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Verify at all.
    pub verify: bool,
    /// Key service address (else `$OFFKEY_SERVER`, else the saved one).
    pub server: Option<String>,
    /// Keep legacy candidates the service does not know.
    pub keep_unverified: bool,
    /// Tell the service where each active key was seen.
    pub report_exposures: bool,
    /// Rotate every active key found.
    pub rotate: bool,
    /// Where a rotation delivers the new key.
    pub deliver: Option<String>,
    /// What a rotation does with the old key.
    pub old_key: String,
    /// Delete every active key found, with no replacement.
    pub revoke_exposed: bool,
    /// Replace an existing file sink.
    pub force: bool,
}

/// What `--rotate` will do, checked before the scan starts.
pub struct RotatePlan {
    /// The sink, or `None` with `--revoke-exposed`.
    pub sink: Option<Sink>,
    /// The old-key policy.
    pub policy: OldKeyPolicy,
}

/// Check `--rotate` and friends before scanning, so a bad flag costs nothing.
pub fn plan(args: &VerifyOptions) -> Result<Option<RotatePlan>> {
    if !args.rotate && !args.revoke_exposed {
        return Ok(None);
    }
    if !args.verify {
        bail!(
            "--rotate and --revoke-exposed need --verify: only keys the service confirms ACTIVE are rotated"
        );
    }
    let sink = match (&args.deliver, args.revoke_exposed) {
        (Some(d), _) => Some(d.parse::<Sink>()?),
        (None, true) => None,
        (None, false) => bail!(
            "--rotate needs --deliver file:PATH|exec:COMMAND: the new key must go where the old one is used \
             before the old one is retired. To delete exposed keys without a replacement, use --revoke-exposed."
        ),
    };
    if let Some(s) = &sink {
        if matches!(s, Sink::Stdout) {
            bail!(
                "--deliver stdout would mix the new key into the scan report; use file: or exec:"
            );
        }
    }
    Ok(Some(RotatePlan {
        sink,
        policy: args.old_key.parse()?,
    }))
}

fn why(e: &ClientError) -> String {
    match e.status() {
        Some(401) => format!(
            "{e}. Sign in with `offkey login --server URL` (or set OFFKEY_TOKEN to an admin's session token)"
        ),
        Some(403) => format!("{e}. Verification needs an admin's session: sign in as an admin"),
        _ => format!("{e}"),
    }
}

fn verification(r: &LookupResult, exposed_at: Option<&str>) -> Verification {
    let status = match r.status {
        LookupStatus::Active => VerifyStatus::Active,
        LookupStatus::Revoked => VerifyStatus::Revoked,
        LookupStatus::Unknown => VerifyStatus::Unknown,
    };
    let k = r.key.as_ref();
    let last_used = k.and_then(|k| k.last_used_at);
    let used_after_exposure = match (
        exposed_at.and_then(|d| DateTime::parse_from_rfc3339(d).ok()),
        last_used,
    ) {
        (Some(exp), Some(used)) => used > exp.with_timezone(&Utc),
        _ => false,
    };
    Verification {
        status,
        key_id: k.map(|k| k.id.clone()),
        memo: k.map(|k| k.memo.clone()),
        created_at: k.map(|k| k.created_at.to_rfc3339()),
        created_by: k.and_then(|k| k.created_by.as_ref().map(|c| c.email.clone())),
        last_used_at: last_used.map(|t| t.to_rfc3339()),
        deleted_at: r.deleted_at.map(|t| t.to_rfc3339()),
        used_after_exposure,
        error: None,
    }
}

fn mark_error(findings: &mut [Finding], message: &str) {
    for f in findings {
        f.verification = Some(Verification {
            status: VerifyStatus::Error,
            key_id: None,
            memo: None,
            created_at: None,
            created_by: None,
            last_used_at: None,
            deleted_at: None,
            used_after_exposure: false,
            error: Some(message.to_owned()),
        });
    }
}

/// `location` as the service's exposure list shows it: `path:line @ commit`, never the key.
fn exposure_where(f: &Finding) -> String {
    let mut w = format!("{}:{}", f.location.path, f.location.line);
    if let Some(c) = &f.location.commit {
        w.push_str(&format!(" @ {}", &c[..c.len().min(12)]));
    }
    if let Some(conv) = &f.location.conversation {
        w.push_str(&format!(" ({conv}"));
        if let Some(m) = f.location.message {
            w.push_str(&format!(", message {m}"));
        }
        w.push(')');
    }
    w
}

/// Verify `findings`, record exposures and rotate, as `args` asks: each finding gets its
/// verification, legacy candidates the service does not know are dropped (unless kept), rotated
/// keys name their successor. Problems with the service are reported once and make the answer
/// true (the run fails: exit 2 unless findings make it 1).
pub fn run(args: &VerifyOptions, plan: Option<&RotatePlan>, findings: &mut Vec<Finding>) -> bool {
    let mut errors = false;
    verify_all(args, plan, findings, &mut errors);
    errors
}

fn verify_all(
    args: &VerifyOptions,
    plan: Option<&RotatePlan>,
    findings: &mut Vec<Finding>,
    errors: &mut bool,
) {
    if findings.is_empty() {
        return;
    }
    let server = ServerArgs {
        server: args.server.clone(),
    };
    let client = match server.client() {
        Ok(cl) => cl,
        Err(e) => {
            let msg = format!("cannot verify: {e:#}");
            eprintln!("offkey: error: {msg}");
            mark_error(findings, &msg);
            *errors = true;
            return;
        }
    };
    let mut hashes: Vec<String> = findings.iter().map(|f| f.secret.sha256()).collect();
    hashes.sort();
    hashes.dedup();
    let results = match client.lookup(&hashes) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("cannot verify: {}", why(&e));
            eprintln!("offkey: error: {msg}");
            mark_error(findings, &msg);
            *errors = true;
            return;
        }
    };
    let by_hash: HashMap<&str, &LookupResult> =
        results.iter().map(|r| (r.sha256.as_str(), r)).collect();
    let mut kept = Vec::with_capacity(findings.len());
    for mut f in findings.drain(..) {
        let sha = f.secret.sha256();
        let Some(r) = by_hash.get(sha.as_str()) else {
            kept.push(f);
            continue;
        };
        let v = verification(r, f.location.date.as_deref());
        if f.kind == KeyKind::Legacy {
            if v.status == VerifyStatus::Unknown && !args.keep_unverified {
                continue; // most likely an md5 or a commit hash
            }
            if v.status != VerifyStatus::Unknown {
                f.confidence = Confidence::High;
            }
        }
        f.verification = Some(v);
        kept.push(f);
    }
    *findings = kept;

    if args.report_exposures {
        let now = Utc::now();
        let reports: Vec<ExposureReport> = findings
            .iter()
            .filter(|f| {
                f.verification
                    .as_ref()
                    .is_some_and(|v| v.status == VerifyStatus::Active)
            })
            .map(|f| ExposureReport {
                sha256: f.secret.sha256(),
                source: serde_json::to_value(f.location.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "file".into()),
                location: exposure_where(f),
                seen_at: f
                    .location
                    .date
                    .as_deref()
                    .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                    .map_or(now, |d| d.with_timezone(&Utc)),
            })
            .collect();
        if !reports.is_empty() {
            match client.record_exposures(&reports) {
                Ok(n) => eprintln!("offkey: recorded {n} new exposure(s) with the key service"),
                Err(e) => {
                    eprintln!("offkey: error: recording exposures: {}", why(&e));
                    *errors = true;
                }
            }
        }
    }

    let Some(plan) = plan else { return };
    // Once per key, however many places it was found in.
    let mut active: BTreeMap<String, String> = BTreeMap::new();
    for f in findings.iter() {
        if let Some(v) = &f.verification {
            if let (VerifyStatus::Active, Some(id)) = (v.status, &v.key_id) {
                active.insert(f.secret.sha256(), id.clone());
            }
        }
    }
    if active.is_empty() {
        return;
    }
    let keys = match client.list_keys() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("offkey: error: cannot rotate: {}", why(&e));
            *errors = true;
            return;
        }
    };
    if let Some(sink) = &plan.sink {
        if active.len() > 1 && !sink.takes_many() {
            eprintln!(
                "offkey: error: {} active keys but one file sink: put {{id}} in the path (file:secrets/{{id}}.key); nothing rotated",
                active.len()
            );
            *errors = true;
            return;
        }
    }
    let mut done: HashMap<String, String> = HashMap::new();
    for (sha, id) in &active {
        let Some(old) = keys.iter().find(|k| &k.id == id) else {
            continue;
        };
        match &plan.sink {
            Some(sink) => {
                match super::rotate::rotate_key(&client, old, plan.policy, sink, args.force) {
                    Ok(r) => {
                        super::rotate::print_rotated(&r);
                        done.insert(sha.clone(), r.new_id);
                    }
                    Err(e) => {
                        eprintln!("offkey: error: rotating {} (…{}): {e:#}", old.id, old.last4);
                        *errors = true;
                    }
                }
            }
            None => match client.delete_key(&old.id) {
                Ok(()) => {
                    eprintln!(
                        "offkey: revoked {} (…{}) with no replacement",
                        old.id, old.last4
                    );
                    done.insert(sha.clone(), String::new());
                }
                Err(e) => {
                    eprintln!("offkey: error: revoking {}: {}", old.id, why(&e));
                    *errors = true;
                }
            },
        }
    }
    for f in findings.iter_mut() {
        if let Some(new_id) = done.get(&f.secret.sha256()) {
            if !new_id.is_empty() {
                f.rotated_to = Some(new_id.clone());
            }
            if let Some(v) = &mut f.verification {
                v.status = VerifyStatus::Revoked;
            }
        }
    }
}
