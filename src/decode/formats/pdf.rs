//! PDF: the text of each page, read with `lopdf` (its fonts' encodings applied). Text objects
//! end lines; a key broken across text operators of one object is whole in the text already,
//! and one broken across two lines is found in each page's lines joined in pairs.
//!
//! Bounded work per document: the file at most [`Limits::max_part`] bytes; each page's content
//! streams decompressed here, at most [`Limits::max_part`] bytes a page (a deflate bomb is left
//! out with a problem naming the page, the other pages are read); each page read once however
//! often a cyclic page tree reaches it; at most [`Limits::max_pdf_pages`] pages, and no page
//! begun after [`Limits::max_pdf_time`]. A PDF that does not parse (or that makes the parser
//! panic) is an error for the caller to warn about, and the scan goes on.

use std::collections::HashSet;
use std::io::Read;
use std::time::Instant;

use super::{DecodeError, Document, Limits, Piece};

/// Whether `head` starts a PDF file.
pub fn looks_like_pdf(head: &[u8]) -> bool {
    head.starts_with(b"%PDF-")
}

/// [`pdf_document`]'s pages (its problems dropped).
pub fn pdf_pages(data: &[u8], limits: &Limits) -> Result<Vec<Piece>, DecodeError> {
    pdf_document(data, limits).map(|d| d.pieces)
}

/// One piece per page with text (`page` 1-based), and a second with each of its lines joined
/// to the next, so a key split across two lines is whole; and what was left out, and why.
pub fn pdf_document(data: &[u8], limits: &Limits) -> Result<Document, DecodeError> {
    if data.len() as u64 > limits.max_part {
        return Err(DecodeError::TooBig {
            part: "the PDF".into(),
            limit: limits.max_part,
        });
    }
    let mut problems = Vec::new();
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        page_texts(data, limits, &mut problems)
    }));
    let pages = match read {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Err(e),
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
    Ok(Document {
        kind: None,
        pieces: out,
        problems,
    })
}

/// The text of each page read, by page number.
fn page_texts(
    data: &[u8],
    limits: &Limits,
    problems: &mut Vec<DecodeError>,
) -> Result<Vec<(u32, String)>, DecodeError> {
    let started = Instant::now();
    let mut doc = lopdf::Document::load_mem(data).map_err(|e| DecodeError::Pdf(e.to_string()))?;
    // lopdf's walk of the page tree stops after as many steps as there are objects, so a cycle
    // does not hang it, but it loses the pages after the cycle. The tree is walked here, each
    // node once, and lopdf given the pages found under one flat node (each page keeps its
    // parent, so inherited resources still resolve).
    let (ids, cycle) = page_tree(&doc)?;
    if cycle {
        problems.push(DecodeError::PdfPart(
            "its page tree reaches a node more than once (a cycle); each page read once".into(),
        ));
    }
    let kids: Vec<lopdf::Object> = ids.iter().map(|&id| lopdf::Object::Reference(id)).collect();
    let mut flat = lopdf::Dictionary::new();
    flat.set("Type", "Pages");
    flat.set("Count", ids.len() as i64);
    flat.set("Kids", kids);
    let flat = doc.add_object(flat);
    doc.catalog_mut()
        .map_err(|e| DecodeError::Pdf(e.to_string()))?
        .set("Pages", flat);
    let mut pages: Vec<(u32, lopdf::ObjectId)> = doc.get_pages().into_iter().collect();
    if pages.len() > limits.max_pdf_pages {
        problems.push(DecodeError::PdfPart(format!(
            "{} pages; the first {} read",
            pages.len(),
            limits.max_pdf_pages
        )));
        pages.truncate(limits.max_pdf_pages);
    }
    let mut out = Vec::new();
    for (i, &(n, id)) in pages.iter().enumerate() {
        if started.elapsed() >= limits.max_pdf_time {
            problems.push(DecodeError::PdfPart(format!(
                "reading it took over {} s; {i} of {} pages read",
                limits.max_pdf_time.as_secs_f64(),
                pages.len()
            )));
            break;
        }
        if let Err(e) = plain_contents(&mut doc, id, n, limits) {
            problems.push(e);
            continue;
        }
        let text: String = doc
            .extract_text_chunks(&[n])
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        out.push((n, text));
    }
    Ok(out)
}

/// The pages of the document in order, each node of the tree visited once; and whether a node
/// was reached again (a cycle, or a node shared by two parents).
fn page_tree(doc: &lopdf::Document) -> Result<(Vec<lopdf::ObjectId>, bool), DecodeError> {
    let root = doc
        .catalog()
        .and_then(|c| c.get(b"Pages"))
        .and_then(lopdf::Object::as_reference)
        .map_err(|e| DecodeError::Pdf(format!("no page tree ({e})")))?;
    let mut seen = HashSet::from([root]);
    let mut cycle = false;
    let mut pages = Vec::new();
    let kids = |id| -> Vec<lopdf::ObjectId> {
        doc.get_dictionary(id)
            .and_then(|d| d.get_deref(b"Kids", doc))
            .and_then(lopdf::Object::as_array)
            .map(|k| k.iter().filter_map(|o| o.as_reference().ok()).collect())
            .unwrap_or_default()
    };
    // Depth first, in order: a stack of the kids still to visit, reversed.
    let mut stack: Vec<lopdf::ObjectId> = kids(root).into_iter().rev().collect();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            cycle = true;
            continue;
        }
        match doc.get_dictionary(id).and_then(lopdf::Dictionary::get_type) {
            Ok(b"Page") => pages.push(id),
            Ok(b"Pages") => stack.extend(kids(id).into_iter().rev()),
            _ => {}
        }
    }
    Ok((pages, cycle))
}

/// Decompress the content streams of page `n` (object `id`) here, within
/// [`Limits::max_part`] for the page, so that lopdf reads them as they are; an error when the
/// page's content is bigger.
fn plain_contents(
    doc: &mut lopdf::Document,
    id: lopdf::ObjectId,
    n: u32,
    limits: &Limits,
) -> Result<(), DecodeError> {
    let mut left = limits.max_part;
    let too_big = || DecodeError::TooBig {
        part: format!("page {n} of the PDF"),
        limit: limits.max_part,
    };
    for sid in doc.get_page_contents(id) {
        let Ok(stream) = doc.get_object_mut(sid).and_then(|o| o.as_stream_mut()) else {
            continue;
        };
        let filters: Vec<Vec<u8>> = stream
            .filters()
            .map(|f| f.into_iter().map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        let plain = match filters.as_slice() {
            [] => stream.content.len() as u64,
            [f] if f.as_slice() == b"FlateDecode" && stream.dict.get(b"DecodeParms").is_err() => {
                let mut bytes = Vec::new();
                // A broken stream keeps what inflated before the error, as lopdf would.
                let _ = flate2::read::ZlibDecoder::new(stream.content.as_slice())
                    .take(left + 1)
                    .read_to_end(&mut bytes);
                let len = bytes.len() as u64;
                if len <= left {
                    stream.set_plain_content(bytes);
                }
                len
            }
            // Other filters (LZW, ASCII85, predictors) are lopdf's; their output is measured.
            _ => stream.decompressed_content().map_or(0, |b| b.len() as u64),
        };
        if plain > left {
            return Err(too_big());
        }
        left -= plain;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A PDF from its objects (numbered from 1, the first the catalog), with a correct
    /// cross-reference table.
    fn pdf(objs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objs.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(o);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes(),
        );
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objs.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    const FONT: &[u8] =
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";

    fn page(contents: usize) -> Vec<u8> {
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {contents} 0 R >>"
        )
        .into_bytes()
    }

    fn stream(content: &[u8], flate: bool) -> Vec<u8> {
        let (body, filter) = if flate {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(content).expect("deflate");
            (z.finish().expect("deflate"), " /Filter /FlateDecode")
        } else {
            (content.to_vec(), "")
        };
        let mut s = format!("<< /Length {}{filter} >>\nstream\n", body.len()).into_bytes();
        s.extend_from_slice(&body);
        s.extend_from_slice(b"\nendstream");
        s
    }

    fn texts(d: &Document) -> Vec<(Option<usize>, &str)> {
        d.pieces
            .iter()
            .step_by(2)
            .map(|p| (p.page, p.text.trim()))
            .collect()
    }

    #[test]
    fn a_cyclic_page_tree_reads_each_page_once() {
        // The root's kids: itself twice, then the page; lopdf's walk meets the page again
        // each time round.
        let doc = pdf(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [2 0 R 4 0 R 2 0 R] /Count 1 >>".to_vec(),
            FONT.to_vec(),
            page(5),
            stream(b"BT /F1 12 Tf 72 700 Td (hello) Tj ET", true),
        ]);
        let d = pdf_document(&doc, &Limits::default()).expect("reads");
        assert_eq!(texts(&d), vec![(Some(1), "hello")]);
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        assert!(
            d.problems[0].to_string().contains("a cycle"),
            "{}",
            d.problems[0]
        );
    }

    #[test]
    fn a_page_whose_content_inflates_past_the_limit_is_left_out() {
        let limits = Limits {
            max_part: 1 << 20,
            ..Limits::default()
        };
        let mut bomb = b"BT /F1 12 Tf 72 700 Td (".to_vec();
        bomb.resize(4 << 20, b' ');
        bomb.extend_from_slice(b"big) Tj ET");
        let doc = pdf(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [4 0 R 6 0 R] /Count 2 >>".to_vec(),
            FONT.to_vec(),
            page(5),
            stream(&bomb, true),
            page(7),
            stream(b"BT /F1 12 Tf 72 700 Td (small) Tj ET", false),
        ]);
        assert!(doc.len() < 64 << 10, "the bomb is small: {}", doc.len());
        let d = pdf_document(&doc, &limits).expect("reads");
        assert_eq!(texts(&d), vec![(Some(2), "small")]);
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        assert_eq!(
            d.problems[0].to_string(),
            "page 1 of the PDF: expands beyond 1048576 bytes; left out"
        );
        // Within the default limits the same page is read.
        let d = pdf_document(&doc, &Limits::default()).expect("reads");
        assert_eq!(d.pieces.len() / 2, 2);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
    }

    #[test]
    fn page_and_time_bounds_stop_with_a_problem() {
        let doc = pdf(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [4 0 R 6 0 R] /Count 2 >>".to_vec(),
            FONT.to_vec(),
            page(5),
            stream(b"BT /F1 12 Tf 72 700 Td (one) Tj ET", false),
            page(7),
            stream(b"BT /F1 12 Tf 72 700 Td (two) Tj ET", true),
        ]);
        let d = pdf_document(&doc, &Limits::default()).expect("reads");
        assert_eq!(texts(&d), vec![(Some(1), "one"), (Some(2), "two")]);
        let one_page = Limits {
            max_pdf_pages: 1,
            ..Limits::default()
        };
        let d = pdf_document(&doc, &one_page).expect("reads");
        assert_eq!(texts(&d), vec![(Some(1), "one")]);
        assert_eq!(d.problems[0].to_string(), "2 pages; the first 1 read");
        let no_time = Limits {
            max_pdf_time: std::time::Duration::ZERO,
            ..Limits::default()
        };
        let d = pdf_document(&doc, &no_time).expect("reads");
        assert!(d.pieces.is_empty());
        assert!(
            d.problems[0].to_string().contains("0 of 2 pages read"),
            "{}",
            d.problems[0]
        );
    }
}
