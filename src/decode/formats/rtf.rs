//! RTF: the text a reader sees. Control words and groups are interpreted just enough: `\par`
//! and `\line` end lines, `\'hh` and `\uN` are characters, line breaks in the source are not
//! text (so a key an editor wrapped is whole again), and destinations that hold no text (font
//! and colour tables, pictures, embedded objects, `{\*\…}`) are skipped.

/// Whether `head` starts an RTF document.
pub fn looks_like_rtf(head: &[u8]) -> bool {
    head.starts_with(b"{\\rtf")
}

/// Destinations whose content is not text.
const SKIPPED: [&[u8]; 10] = [
    b"fonttbl",
    b"colortbl",
    b"stylesheet",
    b"pict",
    b"objdata",
    b"themedata",
    b"datastore",
    b"latentstyles",
    b"listtable",
    b"listoverridetable",
];

/// The text of the RTF document `data`, its bytes `\'hh`-escaped read as Windows-1252 for
/// ASCII and as Latin-1 otherwise (keys are ASCII).
pub fn rtf_text(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() / 2);
    // Per group: skipped, and how many characters follow a `\uN` (`\ucN`).
    let mut stack: Vec<(bool, usize)> = vec![(false, 1)];
    let mut skip_chars = 0usize;
    let mut i = 0;
    let top = |s: &Vec<(bool, usize)>| *s.last().unwrap_or(&(false, 1));
    while i < data.len() {
        let b = data[i];
        let (skipping, uc) = top(&stack);
        match b {
            b'{' => {
                stack.push((skipping, uc));
                i += 1;
                // `{\*\dest …}`: an optional destination, never text.
                if data[i..].starts_with(b"\\*") {
                    if let Some(t) = stack.last_mut() {
                        t.0 = true;
                    }
                }
            }
            b'}' => {
                if stack.len() > 1 {
                    stack.pop();
                }
                i += 1;
            }
            b'\r' | b'\n' => i += 1,
            b'\\' => {
                i += 1;
                let Some(&c) = data.get(i) else { break };
                if c.is_ascii_alphabetic() {
                    let start = i;
                    while i < data.len() && data[i].is_ascii_alphabetic() {
                        i += 1;
                    }
                    let word = &data[start..i];
                    let nstart = i;
                    if i < data.len() && (data[i] == b'-' || data[i].is_ascii_digit()) {
                        i += 1;
                        while i < data.len() && data[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                    let num: Option<i64> = std::str::from_utf8(&data[nstart..i])
                        .ok()
                        .and_then(|n| n.parse().ok());
                    if data.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    if word == b"bin" {
                        // Binary data of the given length.
                        i = i.saturating_add(num.unwrap_or(0).max(0) as usize);
                        continue;
                    }
                    if SKIPPED.contains(&word) {
                        if let Some(t) = stack.last_mut() {
                            t.0 = true;
                        }
                        continue;
                    }
                    if skipping {
                        continue;
                    }
                    match word {
                        b"par" | b"line" | b"row" | b"sect" | b"page" => out.push('\n'),
                        b"tab" | b"cell" => out.push('\t'),
                        b"uc" => {
                            if let Some(t) = stack.last_mut() {
                                t.1 = num.unwrap_or(1).clamp(0, 8) as usize;
                            }
                        }
                        b"u" => {
                            let n = num.unwrap_or(0);
                            let n = if n < 0 { n + 65536 } else { n };
                            out.push(
                                char::from_u32(n as u32).unwrap_or(char::REPLACEMENT_CHARACTER),
                            );
                            skip_chars = uc;
                        }
                        _ => {}
                    }
                } else if c == b'\'' {
                    let hex = data.get(i + 1..i + 3).and_then(|h| {
                        std::str::from_utf8(h)
                            .ok()
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    });
                    i += 3;
                    if let Some(h) = hex {
                        if skip_chars > 0 {
                            skip_chars -= 1;
                        } else if !skipping {
                            out.push(char::from(h));
                        }
                    }
                } else {
                    i += 1;
                    if skipping {
                        continue;
                    }
                    match c {
                        b'\\' | b'{' | b'}' => out.push(char::from(c)),
                        b'~' => out.push(' '),
                        b'-' | b'_' => out.push(if c == b'_' { '-' } else { '\u{AD}' }),
                        b'\r' | b'\n' => out.push('\n'),
                        _ => {}
                    }
                }
            }
            _ => {
                i += 1;
                if skip_chars > 0 {
                    skip_chars -= 1;
                } else if !skipping {
                    out.push(char::from(b));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_control_words_tables_or_source_line_breaks() {
        let rtf = br"{\rtf1\ansi{\fonttbl{\f0 Arial;}}{\*\generator Word;}\f0 Key: oc\'5flive\'5fab
cd\par next\u8364?line}";
        assert_eq!(rtf_text(rtf), "Key: oc_live_abcd\nnext\u{20AC}line");
    }
}
