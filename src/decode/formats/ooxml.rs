//! Office Open XML (Word, Excel, PowerPoint and their macro-enabled variants): the text of the
//! parts a person reads (body, headers, footers, comments, notes, tracked changes; cells with
//! their shared or inline strings and formulas; slides and their notes and comments), each
//! piece named by its part and its sheet and cell or slide.

use std::collections::HashMap;

use super::xml::{self, Ev, Flow, Gathered};
use super::{Document, Limits, Piece, Zip, member, names, rels};

/// Whether a Word part holds text a person reads.
fn word_text_part(name: &str) -> bool {
    let Some(file) = name.strip_prefix("word/") else {
        return false;
    };
    let stem = file.trim_end_matches(".xml");
    file.ends_with(".xml")
        && [
            "document",
            "header",
            "footer",
            "comments",
            "footnotes",
            "endnotes",
            "glossary/document",
        ]
        .iter()
        .any(|p| stem.starts_with(p))
}

/// Read part `name` with `d` into one piece.
fn flow_piece(
    zip: &mut Zip<'_>,
    name: &str,
    d: &xml::Dialect,
    limits: &Limits,
    doc: &mut Document,
) -> Option<Piece> {
    let bytes = match member(zip, name, limits) {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => {
            doc.problems.push(e);
            return None;
        }
    };
    match xml::part_text(&bytes, name, d) {
        Ok(g) => Some(Piece {
            text: g.text,
            escaped: g.escaped,
            part: name.to_owned(),
            ..Piece::default()
        }),
        Err(e) => {
            doc.problems.push(e);
            None
        }
    }
}

pub(super) fn word(zip: &mut Zip<'_>, limits: &Limits, doc: &mut Document) {
    for name in names(zip).into_iter().filter(|n| word_text_part(n)) {
        if let Some(p) = flow_piece(zip, &name, &xml::WORD, limits, doc) {
            doc.pieces.push(p);
        }
    }
}

/// The number in a part's file name (`ppt/slides/slide12.xml` → 12).
fn number_in(name: &str) -> Option<usize> {
    let file = name.rsplit('/').next()?.trim_end_matches(".xml");
    let digits: String = file
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

pub(super) fn powerpoint(zip: &mut Zip<'_>, limits: &Limits, doc: &mut Document) {
    // Slide numbers as the presentation orders them (`sldIdLst`), not as files are named.
    let pres = "ppt/presentation.xml";
    let targets: HashMap<String, String> = rels(zip, pres, limits)
        .into_iter()
        .map(|(id, t, _)| (id, t))
        .collect();
    let mut slide_of: HashMap<String, usize> = HashMap::new();
    if let Ok(Some(bytes)) = member(zip, pres, limits) {
        let mut n = 0;
        let _ = xml::walk(&bytes, pres, &mut |ev| {
            if let Ev::Open {
                name: b"sldId",
                tag,
                ..
            } = ev
            {
                n += 1;
                if let Some(t) = xml::rel_id(tag).and_then(|id| targets.get(&id)) {
                    slide_of.insert(t.clone(), n);
                }
            }
        });
    }
    let all = names(zip);
    let slides: Vec<&String> = all
        .iter()
        .filter(|n| n.starts_with("ppt/slides/slide") && n.ends_with(".xml"))
        .collect();
    for s in &slides {
        let n = slide_of.get(*s).copied().or_else(|| number_in(s));
        if let Some(n) = n {
            slide_of.entry((*s).clone()).or_insert(n);
            // Notes and comments belong to the slide that refers to them.
            for (_, t, _) in rels(zip, s, limits) {
                slide_of.entry(t).or_insert(n);
            }
        }
    }
    for name in all.iter().filter(|n| {
        n.ends_with(".xml")
            && (n.starts_with("ppt/slides/")
                || n.starts_with("ppt/notesSlides/")
                || n.starts_with("ppt/comments/"))
    }) {
        if let Some(mut p) = flow_piece(zip, name, &xml::DRAWING, limits, doc) {
            p.slide = slide_of.get(name).copied();
            doc.pieces.push(p);
        }
    }
}

/// A1-style name of the 0-based column `col`.
pub(super) fn column_name(mut col: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII letters")
}

/// The 0-based column of an A1 reference (`B7` → 1).
fn column_of(cell: &str) -> Option<usize> {
    let letters: Vec<u8> = cell.bytes().take_while(u8::is_ascii_alphabetic).collect();
    if letters.is_empty() {
        return None;
    }
    let mut n = 0usize;
    for b in letters {
        n = n * 26 + (b.to_ascii_uppercase() - b'A' + 1) as usize;
    }
    Some(n - 1)
}

pub(super) fn excel(zip: &mut Zip<'_>, limits: &Limits, doc: &mut Document) {
    let wb = "xl/workbook.xml";
    let wb_rels = rels(zip, wb, limits);
    let targets: HashMap<String, String> = wb_rels
        .iter()
        .map(|(id, t, _)| (id.clone(), t.clone()))
        .collect();
    let mut sheets: Vec<(String, String)> = Vec::new();
    if let Ok(Some(bytes)) = member(zip, wb, limits) {
        let _ = xml::walk(&bytes, wb, &mut |ev| {
            if let Ev::Open {
                name: b"sheet",
                tag,
                ..
            } = ev
            {
                if let (Some(name), Some(t)) = (
                    xml::attr(tag, b"name"),
                    xml::rel_id(tag).and_then(|id| targets.get(&id)),
                ) {
                    sheets.push((name, t.clone()));
                }
            }
        });
    }
    let sst_name = wb_rels
        .iter()
        .find(|(_, _, ty)| ty.ends_with("/sharedStrings"))
        .map_or_else(|| "xl/sharedStrings.xml".to_owned(), |(_, t, _)| t.clone());
    let shared = shared_strings(zip, &sst_name, limits, doc);
    for (sheet, part) in &sheets {
        sheet_cells(zip, sheet, part, &shared, limits, doc);
        for (_, t, ty) in rels(zip, part, limits) {
            if ty.ends_with("/comments") || ty.ends_with("/threadedComment") {
                comments(zip, sheet, &t, limits, doc);
            }
        }
    }
}

/// The shared strings table, one joined text per `si`.
fn shared_strings(
    zip: &mut Zip<'_>,
    name: &str,
    limits: &Limits,
    doc: &mut Document,
) -> Vec<Gathered> {
    let bytes = match member(zip, name, limits) {
        Ok(Some(b)) => b,
        Ok(None) => return Vec::new(),
        Err(e) => {
            doc.problems.push(e);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut cur = Gathered::default();
    let mut inside_t = 0usize;
    let mut phonetic = 0usize;
    let r = xml::walk(&bytes, name, &mut |ev| match ev {
        Ev::Open { name, empty, .. } => {
            if !empty && name == b"t" {
                inside_t += 1;
            }
            if !empty && name == b"rPh" {
                phonetic += 1;
            }
        }
        Ev::Close { name } => match name {
            b"t" => inside_t = inside_t.saturating_sub(1),
            b"rPh" => phonetic = phonetic.saturating_sub(1),
            b"si" => out.push(cur.take()),
            _ => {}
        },
        Ev::Text { text, escaped, .. } if inside_t > 0 && phonetic == 0 => {
            cur.push(text, escaped);
        }
        Ev::Text { .. } => {}
    });
    if let Err(e) = r {
        doc.problems.push(e);
    }
    out
}

/// Which text of a cell the reader is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum In {
    None,
    Formula,
    Value,
    Inline,
    HeaderFooter,
}

/// The cells of one worksheet: one piece per cell (its formula, then its value), and one for
/// the sheet's headers and footers.
fn sheet_cells(
    zip: &mut Zip<'_>,
    sheet: &str,
    part: &str,
    shared: &[Gathered],
    limits: &Limits,
    doc: &mut Document,
) {
    let bytes = match member(zip, part, limits) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            doc.problems.push(e);
            return;
        }
    };
    let mut pieces = Vec::new();
    let (mut row, mut col) = (0usize, 0usize);
    let mut cell: Option<String> = None;
    let mut shared_ref = false;
    let mut at = In::None;
    let (mut formula, mut value, mut inline, mut hf) = (
        Gathered::default(),
        Gathered::default(),
        Gathered::default(),
        Gathered::default(),
    );
    let piece = |g: Gathered, cell: Option<String>| Piece {
        text: g.text,
        escaped: g.escaped,
        part: part.to_owned(),
        sheet: Some(sheet.to_owned()),
        cell,
        ..Piece::default()
    };
    let r = xml::walk(&bytes, part, &mut |ev| match ev {
        Ev::Open { name, tag, empty } => match name {
            b"row" => {
                row = xml::attr(tag, b"r")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(row + 1);
                col = 0;
            }
            b"c" => {
                let r = xml::attr(tag, b"r");
                if let Some(c) = r.as_deref().and_then(column_of) {
                    col = c;
                }
                cell = Some(r.unwrap_or_else(|| format!("{}{}", column_name(col), row)));
                col += 1;
                shared_ref = xml::attr(tag, b"t").as_deref() == Some("s");
            }
            b"f" if !empty => at = In::Formula,
            b"v" if !empty => at = In::Value,
            b"is" if !empty => at = In::Inline,
            b"oddHeader" | b"oddFooter" | b"evenHeader" | b"evenFooter" | b"firstHeader"
            | b"firstFooter"
                if !empty =>
            {
                at = In::HeaderFooter
            }
            _ => {}
        },
        Ev::Close { name } => match name {
            b"f" | b"v" | b"is" => at = In::None,
            b"oddHeader" | b"oddFooter" | b"evenHeader" | b"evenFooter" | b"firstHeader"
            | b"firstFooter" => {
                hf.newline();
                at = In::None;
            }
            b"c" => {
                let mut g = formula.take();
                g.newline();
                if shared_ref {
                    if let Some(s) = value
                        .text
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| shared.get(i))
                    {
                        let base = g.text.len();
                        g.text.push_str(&s.text);
                        g.escaped
                            .extend(s.escaped.iter().map(|(a, b)| (a + base, b + base)));
                    }
                    value.take();
                } else {
                    let v = value.take();
                    let base = g.text.len();
                    g.text.push_str(&v.text);
                    g.escaped
                        .extend(v.escaped.iter().map(|(a, b)| (a + base, b + base)));
                }
                let i = inline.take();
                if !i.text.is_empty() {
                    g.newline();
                    let base = g.text.len();
                    g.text.push_str(&i.text);
                    g.escaped
                        .extend(i.escaped.iter().map(|(a, b)| (a + base, b + base)));
                }
                if !g.is_blank() {
                    pieces.push(piece(g, cell.take()));
                }
            }
            _ => {}
        },
        Ev::Text { text, escaped, .. } => match at {
            In::Formula => formula.push(text, escaped),
            In::Value => value.push(text, escaped),
            In::Inline => inline.push(text, escaped),
            In::HeaderFooter => hf.push(text, escaped),
            In::None => {}
        },
    });
    if let Err(e) = r {
        doc.problems.push(e);
    }
    if !hf.is_blank() {
        pieces.push(piece(hf, None));
    }
    doc.pieces.extend(pieces);
}

/// A sheet's comments (legacy notes, or threaded comments): one piece per comment, at its cell.
fn comments(zip: &mut Zip<'_>, sheet: &str, part: &str, limits: &Limits, doc: &mut Document) {
    let bytes = match member(zip, part, limits) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            doc.problems.push(e);
            return;
        }
    };
    let mut pieces = Vec::new();
    let mut cell = None;
    let mut g = Gathered::default();
    let mut flow = Flow::default();
    let r = xml::walk(&bytes, part, &mut |ev| {
        if let Ev::Open { name, tag, .. } = &ev {
            if *name == b"comment" || *name == b"threadedComment" {
                cell = xml::attr(tag, b"ref");
            }
        }
        let closes =
            matches!(&ev, Ev::Close { name } if *name == b"comment" || *name == b"threadedComment");
        flow.feed(&xml::SHEET, &ev, &mut g, None);
        if closes {
            let text = g.take();
            if !text.is_blank() {
                pieces.push(Piece {
                    text: text.text,
                    escaped: text.escaped,
                    part: part.to_owned(),
                    sheet: Some(sheet.to_owned()),
                    cell: cell.take(),
                    ..Piece::default()
                });
            }
        }
    });
    if let Err(e) = r {
        doc.problems.push(e);
    }
    doc.pieces.extend(pieces);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        for (i, n) in [
            (0, "A"),
            (1, "B"),
            (25, "Z"),
            (26, "AA"),
            (701, "ZZ"),
            (702, "AAA"),
        ] {
            assert_eq!(column_name(i), n);
            assert_eq!(column_of(&format!("{n}7")), Some(i));
        }
    }
}
