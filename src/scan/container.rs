//! Documents and email read as what a person sees: the texts `decode::formats` gives (Word runs
//! joined, cells with their sheet and name, slides, email parts decoded) are scanned and their
//! findings, which name the part, sheet and cell, slide or message, replace those the bytes gave
//! for the same key. A key the bytes alone show (in an attribute, a relationship) stays.

use super::dispatch::prefer_view;
use super::finding::{Encoding, Finding, Origin, SourceKind};
use super::scanner::{Nest, Scanner};
use crate::decode::formats::{self, Limits, MailText, Transfer};

/// Whether any of `ranges` overlaps the bytes of `key` in `text`.
fn behind_reference(text: &str, key: &str, ranges: &[(usize, usize)]) -> bool {
    memchr::memmem::find_iter(text.as_bytes(), key.as_bytes())
        .any(|at| ranges.iter().any(|&(a, b)| a < at + key.len() && b > at))
}

/// The part name under the container the blob already sits in (an email attachment).
fn under(origin: &Origin, part: &str) -> String {
    match &origin.part {
        Some(p) => format!("{p}!{part}"),
        None => part.to_owned(),
    }
}

impl Scanner<'_> {
    /// The document view of an office document whose bytes were scanned into `out[start..]`.
    /// False when `data` is not an office document.
    pub(super) fn document_view(
        &mut self,
        data: &[u8],
        origin: &Origin,
        out: &mut Vec<Finding>,
        start: usize,
    ) -> bool {
        let doc = match formats::document(data, &Limits::default()) {
            Ok(d) if d.kind.is_some() => d,
            Ok(_) => return false,
            Err(e) => {
                self.warn(crate::key::scrub(&format!(
                    "{}: {e}; scanned as an archive",
                    origin.path
                )));
                return false;
            }
        };
        for e in &doc.problems {
            self.warn(crate::key::scrub(&format!("{}: {e}", origin.path)));
        }
        let mut view = Vec::new();
        for piece in doc.pieces {
            let o = Origin {
                source: Some(if origin.source == Some(SourceKind::Email) {
                    SourceKind::Email
                } else {
                    SourceKind::Document
                }),
                // Member names come from the file: one named after a key must not carry it.
                part: Some(crate::key::scrub_name(&under(origin, &piece.part)).into_owned()),
                sheet: piece.sheet.as_deref().map(crate::key::scrub),
                cell: piece.cell,
                slide: piece.slide,
                page: piece.page,
                ..origin.clone()
            };
            let from = view.len();
            self.scan_blob(piece.text.as_bytes(), &o, &mut view);
            for f in &mut view[from..] {
                if f.encoding == Encoding::Plain
                    && behind_reference(&piece.text, f.secret.expose(), &piece.escaped)
                {
                    f.encoding = Encoding::XmlEntity;
                }
            }
        }
        prefer_view(out, start, view, None, &|_| false);
        true
    }

    /// The email view of a message or mailbox whose bytes were scanned into `out[start..]`.
    /// False when it does not parse as one.
    pub(super) fn email_view(
        &mut self,
        data: &[u8],
        origin: &Origin,
        out: &mut Vec<Finding>,
        start: usize,
        nest: Nest<'_>,
    ) -> bool {
        let limits = Limits::default();
        let items = match formats::mail_items(data, &limits) {
            Ok(items) => items,
            Err(e) => {
                self.warn(format!(
                    "{}: looks like email but {e}; scanned as plain text",
                    origin.path
                ));
                return false;
            }
        };
        let mut view = Vec::new();
        for item in items {
            let o = Origin {
                source: Some(SourceKind::Email),
                part: Some(under(origin, &item.part)),
                message_id: item.message_id.as_deref().map(crate::key::scrub),
                subject: item.subject.as_deref().map(crate::key::scrub),
                date: item.date.or_else(|| origin.date.clone()),
                ..origin.clone()
            };
            match item.content {
                MailText::Text {
                    text,
                    html,
                    transfer,
                } => {
                    let from = view.len();
                    self.scan_blob(text.as_bytes(), &o, &mut view);
                    for f in &mut view[from..] {
                        if f.encoding != Encoding::Plain {
                            continue;
                        }
                        let key = f.secret.expose().as_bytes();
                        let literal = |hay: &[u8]| memchr::memmem::find(hay, key).is_some();
                        f.encoding = if html.as_deref().is_some_and(|h| !literal(h.as_bytes())) {
                            Encoding::XmlEntity
                        } else if literal(data) {
                            Encoding::Plain
                        } else {
                            match transfer {
                                Transfer::QuotedPrintable => Encoding::QuotedPrintable,
                                Transfer::Base64 => Encoding::Base64,
                                Transfer::Plain => Encoding::Plain,
                            }
                        };
                    }
                }
                MailText::Attachment(bytes) => {
                    self.scan_nested(&bytes, &o, &mut view, nest.deeper());
                }
            }
        }
        prefer_view(out, start, view, None, &|_| false);
        true
    }

    /// The text view of an RTF document whose bytes were scanned into `out[start..]`.
    pub(super) fn rtf_view(
        &mut self,
        data: &[u8],
        origin: &Origin,
        out: &mut Vec<Finding>,
        start: usize,
    ) {
        let text = formats::rtf_text(data);
        let o = Origin {
            source: Some(SourceKind::Document),
            ..origin.clone()
        };
        let mut view = Vec::new();
        self.scan_blob(text.as_bytes(), &o, &mut view);
        prefer_view(out, start, view, None, &|_| false);
    }

    /// The page texts of a PDF whose bytes were scanned into `out[start..]`; a PDF that does not
    /// parse keeps its byte findings, with a warning.
    pub(super) fn pdf_view(
        &mut self,
        data: &[u8],
        origin: &Origin,
        out: &mut Vec<Finding>,
        start: usize,
    ) {
        let pages = match formats::pdf_pages(data, &Limits::default()) {
            Ok(p) => p,
            Err(e) => {
                self.warn(format!("{}: {e}; scanned as bytes", origin.path));
                return;
            }
        };
        let mut view: Vec<Finding> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for page in pages {
            let o = Origin {
                source: Some(SourceKind::Document),
                page: page.page,
                ..origin.clone()
            };
            let from = view.len();
            self.scan_blob(page.text.as_bytes(), &o, &mut view);
            // A key whole in the page's lines is also whole with them joined: once per page.
            let mut i = from;
            while i < view.len() {
                if seen.insert((view[i].secret.sha256(), page.page)) {
                    i += 1;
                } else {
                    view.remove(i);
                }
            }
        }
        prefer_view(out, start, view, None, &|_| false);
    }
}
