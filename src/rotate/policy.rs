//! What happens to the old key: `now`, `after-first-use` (bounded, default 24 h) or `in:DURATION`,
//! mapped onto the API's `grace_seconds` and `until_first_use`.

use std::str::FromStr;

/// The upper bound of `after-first-use` when none is given.
pub const DEFAULT_BOUND: u64 = 24 * 3600;

/// When the old key stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKeyPolicy {
    /// Deleted right after the new key is delivered.
    Now,
    /// When the new key is first used, or after `bound` seconds at the latest.
    AfterFirstUse {
        /// Seconds.
        bound: u64,
    },
    /// After this many seconds.
    In(u64),
}

/// A policy string that does not parse. Names what was given.
#[derive(Debug, thiserror::Error)]
#[error(
    "--old-key {0:?}: expected now, after-first-use, after-first-use:DURATION or in:DURATION (e.g. in:2h, in:30m, in:7d)"
)]
pub struct PolicyError(pub String);

/// `90s`, `30m`, `2h`, `7d` → seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

impl FromStr for OldKeyPolicy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PolicyError(s.to_owned());
        match s {
            "now" => Ok(OldKeyPolicy::Now),
            "after-first-use" => Ok(OldKeyPolicy::AfterFirstUse {
                bound: DEFAULT_BOUND,
            }),
            _ => {
                if let Some(d) = s.strip_prefix("after-first-use:") {
                    Ok(OldKeyPolicy::AfterFirstUse {
                        bound: parse_duration(d).ok_or_else(err)?,
                    })
                } else if let Some(d) = s.strip_prefix("in:") {
                    Ok(OldKeyPolicy::In(parse_duration(d).ok_or_else(err)?))
                } else {
                    Err(err())
                }
            }
        }
    }
}

impl std::fmt::Display for OldKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OldKeyPolicy::Now => f.write_str("now"),
            OldKeyPolicy::AfterFirstUse { bound } => write!(f, "after-first-use:{bound}s"),
            OldKeyPolicy::In(s) => write!(f, "in:{s}s"),
        }
    }
}

impl OldKeyPolicy {
    /// `grace_seconds` of the rotate request. `now` keeps the old key working (bounded) until
    /// the new one is delivered; the assistant deletes it right after.
    pub fn grace_seconds(self) -> u64 {
        match self {
            OldKeyPolicy::Now => DEFAULT_BOUND,
            OldKeyPolicy::AfterFirstUse { bound } => bound,
            OldKeyPolicy::In(s) => s,
        }
    }

    /// `until_first_use` of the rotate request.
    pub fn until_first_use(self) -> bool {
        !matches!(self, OldKeyPolicy::In(_))
    }

    /// What happens to the old key, in words.
    pub fn describe(self, expires_at: Option<&str>) -> String {
        let at = expires_at
            .map(|t| t.to_owned())
            .unwrap_or_else(|| "its deadline".into());
        match self {
            OldKeyPolicy::Now => "deleted now".to_owned(),
            OldKeyPolicy::AfterFirstUse { .. } => {
                format!("works until the new key is first used, or until {at} at the latest")
            }
            OldKeyPolicy::In(_) => format!("works until {at}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse() {
        assert_eq!("now".parse::<OldKeyPolicy>().ok(), Some(OldKeyPolicy::Now));
        assert_eq!(
            "after-first-use".parse::<OldKeyPolicy>().ok(),
            Some(OldKeyPolicy::AfterFirstUse {
                bound: DEFAULT_BOUND
            })
        );
        assert_eq!(
            "in:2h".parse::<OldKeyPolicy>().ok(),
            Some(OldKeyPolicy::In(7200))
        );
        assert_eq!(
            "after-first-use:30m".parse::<OldKeyPolicy>().ok(),
            Some(OldKeyPolicy::AfterFirstUse { bound: 1800 })
        );
        assert!("later".parse::<OldKeyPolicy>().is_err());
        assert!("in:2x".parse::<OldKeyPolicy>().is_err());
        let p: OldKeyPolicy = "in:90s".parse().expect("parses");
        assert_eq!(p.to_string().parse::<OldKeyPolicy>().ok(), Some(p));
    }
}
