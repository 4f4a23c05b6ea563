//! Looking through an escape that ends right before a key: the key-format boundary rule applies
//! to the decoded text, so a key after a JSON `\n`, a `%3D` or an ANSI colour code is a key.

use super::Encoding;

/// If `prefix` ends with an escape sequence, the byte it stands for and the encoding.
pub fn escape_before(prefix: &[u8]) -> Option<(u8, Encoding)> {
    let n = prefix.len();
    // JSON \uXXXX
    if n >= 6
        && prefix[n - 6] == b'\\'
        && prefix[n - 5] == b'u'
        && odd_backslashes(&prefix[..n - 5])
    {
        let hex = std::str::from_utf8(&prefix[n - 4..]).ok()?;
        let cp = u32::from_str_radix(hex, 16).ok()?;
        let byte = if cp < 0x80 { cp as u8 } else { b' ' };
        return Some((byte, Encoding::JsonEscaped));
    }
    // JSON \n \t \r \b \f \/ \" \\
    if n >= 2 && prefix[n - 2] == b'\\' && odd_backslashes(&prefix[..n - 1]) {
        let byte = match prefix[n - 1] {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 8,
            b'f' => 12,
            b'/' => b'/',
            b'"' => b'"',
            _ => return None,
        };
        return Some((byte, Encoding::JsonEscaped));
    }
    // %XX
    if n >= 3 && prefix[n - 3] == b'%' {
        let hex = std::str::from_utf8(&prefix[n - 2..]).ok()?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        return Some((byte, Encoding::UrlEncoded));
    }
    // ANSI CSI: ESC [ params final
    if n >= 3 && (0x40..=0x7e).contains(&prefix[n - 1]) {
        let lo = n.saturating_sub(24);
        if let Some(esc) = prefix[lo..n - 1].iter().rposition(|&b| b == 0x1b) {
            let esc = lo + esc;
            let params = &prefix[esc + 1..n - 1];
            if params.first() == Some(&b'[')
                && params[1..].iter().all(|b| b.is_ascii_digit() || *b == b';')
            {
                return Some((0x1b, Encoding::Ansi));
            }
        }
    }
    None
}

/// True when `s` ends with an odd number of backslashes (so the last one starts an escape).
fn odd_backslashes(s: &[u8]) -> bool {
    s.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_before(b"x\\n"), Some((b'\n', Encoding::JsonEscaped)));
        assert_eq!(escape_before(b"x\\\\n"), None);
        assert_eq!(
            escape_before(b"\\u201c"),
            Some((b' ', Encoding::JsonEscaped))
        );
        assert_eq!(
            escape_before(b"\\u0041"),
            Some((b'A', Encoding::JsonEscaped))
        );
        assert_eq!(escape_before(b"key%3D"), Some((b'=', Encoding::UrlEncoded)));
        assert_eq!(escape_before(b"\x1b[1;31m"), Some((0x1b, Encoding::Ansi)));
        assert_eq!(escape_before(b"plain"), None);
    }
}
