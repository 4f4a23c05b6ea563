//! The text of an XML part as a list of text nodes, each with where it sits in the raw bytes:
//! what the document formats read (their text elements joined, so a key split across Word runs
//! is whole again, and character references such as `&#95;` decoded) and what redaction
//! rewrites (a node's raw bytes replaced by its new text, escaped).

use quick_xml::events::{BytesStart, Event};

use super::DecodeError;

/// One event of an XML part, as the format readers see it.
pub(super) enum Ev<'a, 'x> {
    /// An element opens (`empty` for `<a/>`, which has no close).
    Open {
        /// Its local name (no namespace prefix).
        name: &'a [u8],
        /// The tag, for its attributes.
        tag: &'a BytesStart<'x>,
        /// Self-closing.
        empty: bool,
    },
    /// An element closes.
    Close {
        /// Its local name.
        name: &'a [u8],
    },
    /// Character data, decoded.
    Text {
        /// Decoded text.
        text: &'a str,
        /// Where its raw bytes are in the part.
        raw: (usize, usize),
        /// It held a character or entity reference.
        escaped: bool,
        /// It is a CDATA section (written back unescaped).
        cdata: bool,
    },
}

/// Walk the XML part `data` (named `part` in errors), calling `visit` for each element and text.
pub(super) fn walk(
    data: &[u8],
    part: &str,
    visit: &mut dyn FnMut(Ev<'_, '_>),
) -> Result<(), DecodeError> {
    let mut r = quick_xml::Reader::from_reader(data);
    loop {
        let before = r.buffer_position() as usize;
        let ev = r.read_event().map_err(|e| DecodeError::Xml {
            part: part.to_owned(),
            at: r.error_position() as usize,
            reason: e.to_string(),
        })?;
        let after = r.buffer_position() as usize;
        match ev {
            Event::Start(ref t) => visit(Ev::Open {
                name: t.local_name().into_inner(),
                tag: t,
                empty: false,
            }),
            Event::Empty(ref t) => {
                let name = t.local_name().into_inner();
                visit(Ev::Open {
                    name,
                    tag: t,
                    empty: true,
                });
                visit(Ev::Close { name });
            }
            Event::End(ref t) => visit(Ev::Close {
                name: t.local_name().into_inner(),
            }),
            Event::Text(ref t) => {
                let raw: &[u8] = t;
                let escaped = memchr::memchr(b'&', raw).is_some();
                let text = match t.unescape() {
                    Ok(s) => s,
                    // An unknown entity: the text as it stands.
                    Err(_) => String::from_utf8_lossy(raw),
                };
                visit(Ev::Text {
                    text: &text,
                    raw: (before, after),
                    escaped,
                    cdata: false,
                });
            }
            Event::CData(ref t) => {
                let text = String::from_utf8_lossy(t);
                // `<![CDATA[` and `]]>` are not the text.
                visit(Ev::Text {
                    text: &text,
                    raw: (before + 9, after.saturating_sub(3)),
                    escaped: false,
                    cdata: true,
                });
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// The value of attribute `local` (any prefix) of `tag`, decoded.
pub(super) fn attr(tag: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    tag.attributes().flatten().find_map(|a| {
        (a.key.local_name().into_inner() == local).then(|| {
            a.unescape_value()
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned())
        })
    })
}

/// The value of the relationship id attribute (`r:id`, whatever the prefix) of `tag`: not
/// an unprefixed `id` (a slide's number).
pub(super) fn rel_id(tag: &BytesStart<'_>) -> Option<String> {
    tag.attributes().flatten().find_map(|a| {
        (a.key.prefix().is_some() && a.key.local_name().into_inner() == b"id")
            .then(|| String::from_utf8_lossy(&a.value).into_owned())
    })
}

/// Text being gathered into a piece: the text, and which of its byte ranges came through a
/// character or entity reference.
#[derive(Debug, Default, Clone)]
pub(super) struct Gathered {
    pub text: String,
    pub escaped: Vec<(usize, usize)>,
}

impl Gathered {
    pub fn push(&mut self, s: &str, escaped: bool) {
        let at = self.text.len();
        self.text.push_str(s);
        if escaped {
            self.escaped.push((at, self.text.len()));
        }
    }

    /// A line break, unless the text is empty or already ends in one.
    pub fn newline(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    pub fn take(&mut self) -> Gathered {
        std::mem::take(self)
    }
}

/// Which elements of an XML vocabulary hold text, and which stand for a tab, a line break or
/// a space, or end a block (a paragraph, a cell: a line of the joined text).
pub(crate) struct Dialect {
    /// Elements whose character data (at any depth) is text.
    pub text: &'static [&'static [u8]],
    /// Elements that end a line.
    pub blocks: &'static [&'static [u8]],
    /// Elements that stand for a tab.
    pub tabs: &'static [&'static [u8]],
    /// Elements that stand for a line break.
    pub breaks: &'static [&'static [u8]],
    /// Elements that stand for spaces (ODF `text:s`, with `text:c` of them).
    pub spaces: &'static [&'static [u8]],
}

/// WordprocessingML: body, headers, footers, comments, notes; `delText` is a tracked deletion,
/// `instrText` a field code (a `HYPERLINK` with a key in its URL).
pub(crate) static WORD: Dialect = Dialect {
    text: &[b"t", b"delText", b"instrText"],
    blocks: &[b"p"],
    tabs: &[b"tab"],
    breaks: &[b"br", b"cr"],
    spaces: &[],
};

/// DrawingML text (slides, notes) and PresentationML comments.
pub(crate) static DRAWING: Dialect = Dialect {
    text: &[b"t", b"text"],
    blocks: &[b"p", b"cm"],
    tabs: &[],
    breaks: &[b"br"],
    spaces: &[],
};

/// SpreadsheetML: shared and inline strings, cell values and formulas, comments, headers.
pub(crate) static SHEET: Dialect = Dialect {
    text: &[
        b"t",
        b"f",
        b"v",
        b"text",
        b"oddHeader",
        b"oddFooter",
        b"evenHeader",
        b"evenFooter",
        b"firstHeader",
        b"firstFooter",
    ],
    blocks: &[b"si", b"c", b"f", b"comment", b"threadedComment"],
    tabs: &[],
    breaks: &[],
    spaces: &[],
};

/// OpenDocument: the text of paragraphs and headings, wherever they are (body, cells, slides,
/// notes, annotations, tracked changes, headers and footers in `styles.xml`).
pub(crate) static ODF: Dialect = Dialect {
    text: &[b"p", b"h"],
    blocks: &[b"p", b"h"],
    tabs: &[b"tab"],
    breaks: &[b"line-break"],
    spaces: &[b"s"],
};

/// A text node of the joined text: its raw bytes in the part and its bytes in the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextNode {
    pub raw: (usize, usize),
    pub text: (usize, usize),
    pub cdata: bool,
}

/// Tracks what a [`Dialect`] makes of the events: whether character data is text now, and
/// what an element adds to the text.
#[derive(Default)]
pub(super) struct Flow {
    inside: usize,
}

impl Flow {
    /// Feed one event; text goes to `g` (and its node to `nodes`). True when a block ended.
    pub fn feed(
        &mut self,
        d: &Dialect,
        ev: &Ev<'_, '_>,
        g: &mut Gathered,
        nodes: Option<&mut Vec<TextNode>>,
    ) -> bool {
        match *ev {
            Ev::Open { name, tag, empty } => {
                if self.inside > 0 || d.text.contains(&name) {
                    if d.tabs.contains(&name) {
                        g.text.push('\t');
                    } else if d.breaks.contains(&name) {
                        g.text.push('\n');
                    } else if d.spaces.contains(&name) {
                        let n = attr(tag, b"c")
                            .and_then(|c| c.parse::<usize>().ok())
                            .unwrap_or(1)
                            .min(1000);
                        g.text.extend(std::iter::repeat_n(' ', n));
                    }
                }
                if !empty && d.text.contains(&name) {
                    self.inside += 1;
                }
                false
            }
            Ev::Close { name } => {
                if d.text.contains(&name) {
                    self.inside = self.inside.saturating_sub(1);
                }
                if d.blocks.contains(&name) {
                    g.newline();
                    return true;
                }
                false
            }
            Ev::Text {
                text,
                raw,
                escaped,
                cdata,
            } => {
                if self.inside > 0 {
                    let at = g.text.len();
                    g.push(text, escaped);
                    if let Some(nodes) = nodes {
                        nodes.push(TextNode {
                            raw,
                            text: (at, g.text.len()),
                            cdata,
                        });
                    }
                }
                false
            }
        }
    }
}

/// The joined text of a whole part.
pub(super) fn part_text(data: &[u8], part: &str, d: &Dialect) -> Result<Gathered, DecodeError> {
    let mut g = Gathered::default();
    let mut flow = Flow::default();
    walk(data, part, &mut |ev| {
        flow.feed(d, &ev, &mut g, None);
    })?;
    Ok(g)
}

/// The part with every span that `find` gives in its joined text replaced by `placeholder`:
/// the first text node a span touches gets the placeholder, the others lose their share.
pub(super) fn rewrite(
    data: &[u8],
    part: &str,
    d: &Dialect,
    placeholder: &str,
    find: &mut super::FindKeys<'_>,
) -> Result<(Vec<u8>, usize), DecodeError> {
    let mut g = Gathered::default();
    let mut nodes = Vec::new();
    let mut flow = Flow::default();
    walk(data, part, &mut |ev| {
        flow.feed(d, &ev, &mut g, Some(&mut nodes));
    })?;
    let spans = find(g.text.as_bytes());
    if spans.is_empty() {
        return Ok((data.to_vec(), 0));
    }
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for n in &nodes {
        let touched: Vec<&(usize, usize)> = spans
            .iter()
            .filter(|s| s.0 < n.text.1 && s.1 > n.text.0)
            .collect();
        if touched.is_empty() {
            continue;
        }
        let text = &g.text[n.text.0..n.text.1];
        let mut new = String::new();
        let mut i = n.text.0;
        for s in touched {
            let a = s.0.max(n.text.0);
            new.push_str(&text[i - n.text.0..a - n.text.0]);
            if s.0 >= n.text.0 {
                new.push_str(placeholder);
            }
            i = s.1.min(n.text.1);
        }
        new.push_str(&text[i - n.text.0..]);
        out.extend_from_slice(&data[at..n.raw.0]);
        if n.cdata {
            out.extend_from_slice(new.as_bytes());
        } else {
            out.extend_from_slice(quick_xml::escape::partial_escape(new.as_str()).as_bytes());
        }
        at = n.raw.1;
    }
    out.extend_from_slice(&data[at..]);
    Ok((out, spans.len()))
}
