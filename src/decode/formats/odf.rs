//! OpenDocument (`.odt`, `.ods`, `.odp`): the text of `content.xml` (body, cells, slides and
//! their notes, annotations, tracked changes) and `styles.xml` (headers and footers), one
//! piece per cell of a spreadsheet (with its formula) and per page of a presentation.

use super::ooxml::column_name;
use super::xml::{self, Ev, Flow, Gathered};
use super::{Document, Limits, Piece, Zip, member};

pub(super) fn read(zip: &mut Zip<'_>, limits: &Limits, doc: &mut Document) {
    for part in ["content.xml", "styles.xml"] {
        let bytes = match member(zip, part, limits) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                doc.problems.push(e);
                continue;
            }
        };
        if let Err(e) = read_part(&bytes, part, doc) {
            doc.problems.push(e);
        }
    }
}

fn read_part(bytes: &[u8], part: &str, doc: &mut Document) -> Result<(), super::DecodeError> {
    let mut flow = Flow::default();
    let mut g = Gathered::default();
    let mut sheet: Option<String> = None;
    let (mut row, mut col) = (0usize, 0usize);
    let mut row_repeat = 1usize;
    let mut cell_depth = 0usize;
    let mut cell: Option<String> = None;
    let mut slide = 0usize;
    let mut in_page = false;
    let mut pieces = Vec::new();
    let piece = |g: Gathered, sheet: &Option<String>, cell, slide| Piece {
        text: g.text,
        escaped: g.escaped,
        part: part.to_owned(),
        sheet: sheet.clone(),
        cell,
        slide,
        ..Piece::default()
    };
    xml::walk(bytes, part, &mut |ev| {
        match &ev {
            Ev::Open { name, tag, empty } => match *name {
                b"table" => {
                    sheet = xml::attr(tag, b"name");
                    row = 0;
                }
                b"table-row" => {
                    row += 1;
                    col = 0;
                }
                b"table-cell" | b"covered-table-cell" if sheet.is_some() => {
                    let repeat = xml::attr(tag, b"number-columns-repeated")
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or(1);
                    if !*empty {
                        if cell_depth == 0 {
                            // What came before the cell (a table name, say) is its own piece.
                            if !g.is_blank() {
                                pieces.push(piece(g.take(), &sheet, None, None));
                            }
                            g.take();
                            cell = Some(format!("{}{}", column_name(col), row));
                            if let Some(f) = xml::attr(tag, b"formula") {
                                g.push(&f, false);
                                g.newline();
                            }
                        }
                        cell_depth += 1;
                    }
                    col += repeat.min(1 << 14);
                }
                b"page" if !*empty => {
                    if !g.is_blank() {
                        pieces.push(piece(g.take(), &sheet, None, None));
                    }
                    g.take();
                    slide += 1;
                    in_page = true;
                }
                _ => {}
            },
            Ev::Close { name } => match *name {
                b"table-row" => {
                    // A repeated row names the rows after it.
                    row += row_repeat - 1;
                    row_repeat = 1;
                }
                b"table-cell" | b"covered-table-cell" if cell_depth > 0 => {
                    cell_depth -= 1;
                    if cell_depth == 0 {
                        let text = g.take();
                        if !text.is_blank() {
                            pieces.push(piece(text, &sheet, cell.take(), None));
                        }
                    }
                }
                b"table" if cell_depth == 0 => {
                    // Repeated rows add no text; the row count only names later cells.
                    sheet = None;
                }
                _ => {}
            },
            Ev::Text { .. } => {}
        }
        if let Ev::Open { name, tag, .. } = &ev {
            if *name == b"table-row" {
                row_repeat = xml::attr(tag, b"number-rows-repeated")
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(1)
                    .clamp(1, 1 << 20);
            }
        }
        flow.feed(&xml::ODF, &ev, &mut g, None);
        if let Ev::Close { name: b"page" } = &ev {
            if in_page {
                let text = g.take();
                if !text.is_blank() {
                    pieces.push(piece(text, &sheet, None, Some(slide)));
                }
                in_page = false;
            }
        }
    })?;
    if !g.is_blank() {
        pieces.push(piece(g, &sheet, None, None));
    }
    doc.pieces.extend(pieces);
    Ok(())
}
