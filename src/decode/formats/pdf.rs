//! PDF: the text of each page, read with `lopdf` (its fonts' encodings applied). Text objects
//! end lines; a key broken across text operators of one object is whole in the text already,
//! and one broken across two lines is found in each page's lines joined in pairs.
//! Bounded by [`Limits::max_part`] on the file; a PDF that does not parse (or that makes the
//! parser panic) is an error for the caller to warn about, and the scan goes on.

use super::{DecodeError, Limits, Piece};

/// Whether `head` starts a PDF file.
pub fn looks_like_pdf(head: &[u8]) -> bool {
    head.starts_with(b"%PDF-")
}

/// One piece per page with text (`page` 1-based), and a second with each of its lines joined
/// to the next, so a key split across two lines is whole.
pub fn pdf_pages(data: &[u8], limits: &Limits) -> Result<Vec<Piece>, DecodeError> {
    if data.len() as u64 > limits.max_part {
        return Err(DecodeError::TooBig {
            part: "the PDF".into(),
            limit: limits.max_part,
        });
    }
    let read = std::panic::catch_unwind(|| -> Result<Vec<(u32, String)>, String> {
        let doc = lopdf::Document::load_mem(data).map_err(|e| e.to_string())?;
        let mut pages = Vec::new();
        for n in doc.get_pages().keys() {
            let text: String = doc
                .extract_text_chunks(&[*n])
                .into_iter()
                .filter_map(Result::ok)
                .collect();
            pages.push((*n, text));
        }
        Ok(pages)
    });
    let pages = match read {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Err(DecodeError::Pdf(e)),
        Err(_) => return Err(DecodeError::Pdf("the PDF reader failed on it".into())),
    };
    let mut out = Vec::new();
    for (n, text) in pages {
        if text.trim().is_empty() {
            continue;
        }
        // Each line joined to the next, one pair a line (joining all would run keys on
        // neighbouring lines together).
        let lines: Vec<&str> = text.lines().collect();
        let joined: String = lines
            .windows(2)
            .map(|w| format!("{}{}\n", w[0], w[1]))
            .collect();
        for t in [text, joined] {
            out.push(Piece {
                text: t,
                page: Some(n as usize),
                ..Piece::default()
            });
        }
    }
    Ok(out)
}
