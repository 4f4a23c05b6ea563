//! Files whose text is not where its bytes are: office documents (OOXML: Word, Excel,
//! PowerPoint and their macro-enabled variants; OpenDocument, RTF, PDF), email (`.eml`,
//! `.mbox`), chat exports (ChatGPT, Claude, chat JSONL) and HAR captures, the AI tools' own
//! history and SQLite databases. One file per format, each turning bytes into text [`Piece`]s that say where they sit (part,
//! sheet and cell, slide); what is whole in the text (a key Word split across runs, one behind
//! `&#95;` or a quoted-printable soft line break) is found by the matcher as plain text.
//!
//! Recognised by first bytes and zip member names only, so plain text never pays for them.

mod ai;
mod chatgpt;
mod claude;
mod har;
pub(crate) mod json_export;
mod jsonl;
mod mime;
mod odf;
mod ooxml;
mod pdf;
mod rtf;
mod sqlite;
mod xml;

use std::io::{Cursor, Read};

pub use crate::decode::{DecodeError, Limits};
pub use json_export::Structured;

pub use ai::{AiMessage, AiTool, ai_messages, strings_of, text_field};
pub use mime::{MailItem, MailText, Transfer, looks_like_email, mail_items};
pub use pdf::{looks_like_pdf, pdf_pages};
pub use rtf::{looks_like_rtf, rtf_text};
pub use sqlite::{SQLITE_MAGIC, SqlCell, SqlCells, looks_like_sqlite, sqlite_cells};

/// Which kind of office document a zip is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// Word (`.docx`, `.docm`).
    Word,
    /// Excel (`.xlsx`, `.xlsm`).
    Excel,
    /// PowerPoint (`.pptx`, `.pptm`).
    PowerPoint,
    /// OpenDocument (`.odt`, `.ods`, `.odp`).
    OpenDocument,
}

/// One text of a document and where it sits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Piece {
    /// The text (runs joined, references decoded).
    pub text: String,
    /// Byte ranges of `text` that came through a character or entity reference.
    pub escaped: Vec<(usize, usize)>,
    /// The part (zip member) it was read from: `word/document.xml`.
    pub part: String,
    /// 1-based slide of a presentation.
    pub slide: Option<usize>,
    /// Sheet name of a spreadsheet.
    pub sheet: Option<String>,
    /// Cell of a spreadsheet (`B7`).
    pub cell: Option<String>,
    /// 1-based page (PDF).
    pub page: Option<usize>,
}

/// What [`document`] read: the texts, and the parts it had to leave out (the rest was read).
#[derive(Debug, Default)]
pub struct Document {
    /// Which kind.
    pub kind: Option<DocKind>,
    /// The texts.
    pub pieces: Vec<Piece>,
    /// Parts left out, and why.
    pub problems: Vec<DecodeError>,
}

/// Gives the byte spans of the keys in a text.
pub type FindKeys<'f> = dyn FnMut(&[u8]) -> Vec<(usize, usize)> + 'f;

/// An open zip held in memory.
pub(crate) type Zip<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Which office document the zip `data` is, from its member names (and ODF's `mimetype`);
/// `None` for any other zip, or bytes that are not a zip.
pub fn document_kind(data: &[u8]) -> Option<DocKind> {
    if !data.starts_with(b"PK\x03\x04") {
        return None;
    }
    let zip = zip::ZipArchive::new(Cursor::new(data)).ok()?;
    kind_of(&zip)
}

fn kind_of(zip: &Zip<'_>) -> Option<DocKind> {
    let has = |n: &str| zip.index_for_name(n).is_some();
    if has("[Content_Types].xml") {
        if has("word/document.xml") {
            return Some(DocKind::Word);
        }
        if has("xl/workbook.xml") {
            return Some(DocKind::Excel);
        }
        if has("ppt/presentation.xml") {
            return Some(DocKind::PowerPoint);
        }
        None
    } else if has("mimetype") && has("content.xml") {
        Some(DocKind::OpenDocument)
    } else {
        None
    }
}

/// The texts of an office document (see [`document_kind`]); `Ok` with `kind: None` for a zip
/// that is not one.
pub fn document(data: &[u8], limits: &Limits) -> Result<Document, DecodeError> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(data)).map_err(|e| DecodeError::Zip(e.to_string()))?;
    let Some(kind) = kind_of(&zip) else {
        return Ok(Document::default());
    };
    let mut doc = Document {
        kind: Some(kind),
        ..Document::default()
    };
    match kind {
        DocKind::Word => ooxml::word(&mut zip, limits, &mut doc),
        DocKind::Excel => ooxml::excel(&mut zip, limits, &mut doc),
        DocKind::PowerPoint => ooxml::powerpoint(&mut zip, limits, &mut doc),
        DocKind::OpenDocument => odf::read(&mut zip, limits, &mut doc),
    }
    Ok(doc)
}

/// The bytes of member `name`, within the limits; `Ok(None)` when there is no such member.
pub(crate) fn member(
    zip: &mut Zip<'_>,
    name: &str,
    limits: &Limits,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let Some(i) = zip.index_for_name(name) else {
        return Ok(None);
    };
    let f = zip.by_index(i).map_err(|e| DecodeError::Read {
        part: name.to_owned(),
        reason: e.to_string(),
    })?;
    let limit = limits.max_part.min(
        f.compressed_size()
            .saturating_mul(limits.max_ratio)
            .max(1 << 20),
    );
    let mut out = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Read {
            part: name.to_owned(),
            reason: e.to_string(),
        })?;
    if out.len() as u64 > limit {
        return Err(DecodeError::TooBig {
            part: name.to_owned(),
            limit,
        });
    }
    Ok(Some(out))
}

/// The member names of the zip, in order.
pub(crate) fn names(zip: &Zip<'_>) -> Vec<String> {
    zip.file_names().map(str::to_owned).collect::<Vec<_>>()
}

/// Rewrite an office document with every key replaced: `find` gives the byte spans of keys in
/// a text, and each is replaced by `placeholder` (in the joined text of a part, so a key split
/// across runs goes whole; then in the part's raw XML, for keys in attributes). Members that
/// are not XML are copied as they are. Returns the new file and how many keys were replaced.
pub fn redact_document(
    data: &[u8],
    limits: &Limits,
    placeholder: &str,
    find: &mut FindKeys<'_>,
) -> Result<(Vec<u8>, usize), DecodeError> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(data)).map_err(|e| DecodeError::Zip(e.to_string()))?;
    let kind = kind_of(&zip).ok_or(DecodeError::Zip(
        "not an office document (no word/, xl/, ppt/ or OpenDocument content)".into(),
    ))?;
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut replaced = 0;
    for name in names(&zip) {
        let dialect = if name.ends_with(".xml") {
            xml_dialect(kind, &name)
        } else {
            None
        };
        let zerr = |e: zip::result::ZipError| DecodeError::Zip(e.to_string());
        match dialect {
            None => {
                let f = zip.by_name(&name).map_err(zerr)?;
                if name.ends_with(".xml") || name.ends_with(".rels") {
                    // XML outside the text parts (relationships, settings): keys as they stand.
                    let opts = zip::write::SimpleFileOptions::default()
                        .compression_method(zip::CompressionMethod::Deflated);
                    drop(f);
                    let bytes = member(&mut zip, &name, limits)?.unwrap_or_default();
                    let (bytes, n) = replace_spans(&bytes, &find(&bytes), placeholder);
                    replaced += n;
                    out.start_file(name.as_str(), opts).map_err(zerr)?;
                    std::io::Write::write_all(&mut out, &bytes).map_err(|e| DecodeError::Read {
                        part: name.clone(),
                        reason: e.to_string(),
                    })?;
                } else {
                    out.raw_copy_file(f).map_err(zerr)?;
                }
            }
            Some(d) => {
                let bytes = member(&mut zip, &name, limits)?.unwrap_or_default();
                let (bytes, n) = xml::rewrite(&bytes, &name, d, placeholder, find)?;
                let (bytes, m) = replace_spans(&bytes, &find(&bytes), placeholder);
                replaced += n + m;
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated);
                out.start_file(name.as_str(), opts).map_err(zerr)?;
                std::io::Write::write_all(&mut out, &bytes).map_err(|e| DecodeError::Read {
                    part: name.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
    }
    let buf = out
        .finish()
        .map_err(|e| DecodeError::Zip(e.to_string()))?
        .into_inner();
    Ok((buf, replaced))
}

/// Which text elements the XML part `name` of a `kind` document has.
fn xml_dialect(kind: DocKind, name: &str) -> Option<&'static xml::Dialect> {
    match kind {
        DocKind::Word if name.starts_with("word/") => Some(&xml::WORD),
        DocKind::PowerPoint if name.starts_with("ppt/") => Some(&xml::DRAWING),
        DocKind::Excel if name.starts_with("xl/") => Some(&xml::SHEET),
        DocKind::OpenDocument => Some(&xml::ODF),
        _ => None,
    }
}

/// `data` with each span replaced by `placeholder`; and how many.
fn replace_spans(data: &[u8], spans: &[(usize, usize)], placeholder: &str) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    let mut n = 0;
    for &(a, b) in spans {
        if a < at || b > data.len() {
            continue;
        }
        out.extend_from_slice(&data[at..a]);
        out.extend_from_slice(placeholder.as_bytes());
        at = b;
        n += 1;
    }
    out.extend_from_slice(&data[at..]);
    (out, n)
}

/// `base`'s folder joined with the relationship target `target` (`../comments1.xml`, or
/// absolute `/xl/…`).
pub(crate) fn resolve(base: &str, target: &str) -> String {
    if let Some(abs) = target.strip_prefix('/') {
        return abs.to_owned();
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for seg in target.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The relationships part of `part` (`xl/_rels/workbook.xml.rels` for `xl/workbook.xml`):
/// id → (resolved target, type).
pub(crate) fn rels(
    zip: &mut Zip<'_>,
    part: &str,
    limits: &Limits,
) -> Vec<(String, String, String)> {
    let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
    let name = if dir.is_empty() {
        format!("_rels/{file}.rels")
    } else {
        format!("{dir}/_rels/{file}.rels")
    };
    let Ok(Some(bytes)) = member(zip, &name, limits) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let _ = xml::walk(&bytes, &name, &mut |ev| {
        if let xml::Ev::Open { name, tag, .. } = ev {
            if name == b"Relationship" {
                if let (Some(id), Some(t)) = (xml::attr(tag, b"Id"), xml::attr(tag, b"Target")) {
                    let ty = xml::attr(tag, b"Type").unwrap_or_default();
                    if xml::attr(tag, b"TargetMode").as_deref() != Some("External") {
                        out.push((id, resolve(part, &t), ty));
                    }
                }
            }
        }
    });
    out
}
