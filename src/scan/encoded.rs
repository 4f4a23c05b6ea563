//! Keys behind an encoding: decode only the neighbourhood of an encoded-literal hit, run the
//! matcher on the decoded text, and map what it finds back to the original bytes.

use super::matcher::{Match, Matcher};
use crate::decode::{self, Encoding, Form};

/// Expand one encoded hit at `p`; returns the offset up to which later hits of encoded
/// literals are inside the same decoded run (and need not be decoded again).
pub(super) fn expand(
    m: &Matcher,
    data: &[u8],
    p: usize,
    form: Form,
    depth: u8,
    out: &mut Vec<Match>,
) -> usize {
    let (decoded, run_end) = match form {
        Form::Base64 { lead } => match decode::base64_token(data, p, lead as usize) {
            Some((d, _, end)) => (d, end),
            None => return p + 1,
        },
        _ => match decode::decode_run(data, p, form) {
            Some(d) => {
                let end = *d.map.last().unwrap_or(&p);
                (d, end)
            }
            None => return p + 1,
        },
    };
    let mut inner = Vec::new();
    m.find_depth(&decoded.text, &mut inner, depth + 1, &mut Vec::new());
    for hit in inner {
        let start = decoded.map[hit.start];
        let end = decoded.map[hit.end.min(decoded.map.len() - 1)];
        let end = if end <= start { run_end } else { end };
        out.push(Match {
            rule: hit.rule,
            start,
            end,
            secret: hit.secret,
            encoding: if hit.encoding == Encoding::Plain {
                form.encoding()
            } else {
                hit.encoding
            },
        });
    }
    run_end.max(p + 1)
}
