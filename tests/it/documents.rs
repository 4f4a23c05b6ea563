//! Documents and email read as documents (issue 17): OOXML and OpenDocument files and email
//! messages built at test time, with keys in the awkward places (split Word runs, character
//! references, a tracked deletion, a header, a comment, shared and inline strings, a formula,
//! a cell comment, slide notes, quoted-printable soft line breaks and `=5F`, base64, HTML
//! entities, an attachment inside an attachment) and decoys that must not be reported.

use std::io::Write;
use std::path::Path;

use crate::tree::{assert_no_key_leak, bad_checksum, current_key, offkey_in, sha256};

/// A zip of `members`, deflated, in order (ODF's `mimetype` first and stored).
pub fn zip_of(members: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        for (name, data) in members {
            let method = if *name == "mimetype" {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            };
            let opts = zip::write::SimpleFileOptions::default().compression_method(method);
            z.start_file(*name, opts).expect("zip member");
            z.write_all(data.as_bytes()).expect("zip write");
        }
        z.finish().expect("zip finish");
    }
    buf.into_inner()
}

/// `key` split after `at` characters into two Word runs (as spell-check leaves it).
fn split_runs(key: &str, at: usize) -> String {
    format!(
        r#"<w:r><w:t>{}</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>{}</w:t></w:r>"#,
        &key[..at],
        &key[at..]
    )
}

/// `key` with its underscores written as character references.
fn entities(key: &str) -> String {
    key.replace('_', "&#95;")
}

const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main""#;

/// A Word document: the body with `body` runs, a header and comments.
pub fn docx(body: &str, header: &str, comment: &str) -> Vec<u8> {
    let ct = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/header1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml"/><Override PartName="/word/comments.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.comments+xml"/></Types>"#;
    let rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;
    let doc_rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/header" Target="header1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/comments" Target="comments.xml"/></Relationships>"#;
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document {W} xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><w:body>{body}<w:sectPr><w:headerReference w:type="default" r:id="rId1"/></w:sectPr></w:body></w:document>"#
    );
    let header = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:hdr {W}><w:p><w:r><w:t>{header}</w:t></w:r></w:p></w:hdr>"#
    );
    let comments = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:comments {W}><w:comment w:id="0" w:author="Dana"><w:p><w:r><w:t>{comment}</w:t></w:r></w:p></w:comment></w:comments>"#
    );
    zip_of(&[
        ("[Content_Types].xml", ct),
        ("_rels/.rels", rels),
        ("word/_rels/document.xml.rels", doc_rels),
        ("word/document.xml", &document),
        ("word/header1.xml", &header),
        ("word/comments.xml", &comments),
    ])
}

/// A paragraph of `runs`.
fn para(runs: &str) -> String {
    format!("<w:p>{runs}</w:p>")
}

/// A plain run.
fn run(text: &str) -> String {
    format!(r#"<w:r><w:t xml:space="preserve">{text}</w:t></w:r>"#)
}

fn by_key<'a>(f: &'a [serde_json::Value], key: &str) -> Vec<&'a serde_json::Value> {
    f.iter().filter(|x| x["sha256"] == sha256(key)).collect()
}

fn scan(dir: &Path) -> crate::tree::Run {
    offkey_in(dir, &["scan", "--format", "json", "."], None)
}

#[test]
fn word_keys_split_across_runs_behind_references_in_headers_comments_and_deletions() {
    let dir = tempfile::tempdir().expect("tmp");
    let (split, entity, header, comment, deleted) = (
        current_key(),
        current_key(),
        current_key(),
        current_key(),
        current_key(),
    );
    let decoy = bad_checksum(&current_key());
    let body = [
        para(&format!("{}{}", run("The key is "), split_runs(&split, 11))),
        para(&run(&format!("escaped: {}", entities(&entity)))),
        // A tracked deletion, itself split in two deleted runs.
        para(&format!(
            r#"<w:del w:id="1" w:author="Dana"><w:r><w:delText>{}</w:delText></w:r><w:r><w:delText>{}</w:delText></w:r></w:del>{}"#,
            &deleted[..20],
            &deleted[20..],
            run(" (removed)")
        )),
        // Not a key: its checksum is wrong, split or not.
        para(&split_runs(&decoy, 15)),
        para(&run("Ask ops for the production key.")),
    ]
    .concat();
    let d = docx(&body, &entities(&header), &comment);
    std::fs::write(dir.path().join("handover.docx"), &d).expect("write");
    let macro_enabled = docx(&para(&split_runs(&split, 9)), "none", "none");
    std::fs::write(dir.path().join("macro.docm"), &macro_enabled).expect("write");

    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let f = r.findings();
    let keys = [&split, &entity, &header, &comment, &deleted, &decoy].map(|k| k.to_string());
    assert_no_key_leak(&[&r.stdout, &r.stderr], &keys);
    assert!(
        by_key(&f, &decoy).is_empty(),
        "the decoy was reported: {f:?}"
    );

    let one = |k: &str, path: &str| -> serde_json::Value {
        let g: Vec<_> = by_key(&f, k)
            .into_iter()
            .filter(|x| x["location"]["path"] == path)
            .collect();
        assert_eq!(g.len(), 1, "one finding in {path}: {f:?}");
        g[0].clone()
    };
    let s = one(&split, "handover.docx");
    assert_eq!(s["location"]["source"], "document");
    assert_eq!(s["location"]["part"], "word/document.xml");
    assert_eq!(s["location"]["line"], 1);
    assert_eq!(s["location"]["column"], 12);
    assert_eq!(s["encoding"], "plain");
    let e = one(&entity, "handover.docx");
    assert_eq!(e["location"]["part"], "word/document.xml");
    assert_eq!(e["encoding"], "xml-entity");
    let h = one(&header, "handover.docx");
    assert_eq!(h["location"]["part"], "word/header1.xml");
    assert_eq!(h["encoding"], "xml-entity");
    let c = one(&comment, "handover.docx");
    assert_eq!(c["location"]["part"], "word/comments.xml");
    assert_eq!(c["encoding"], "plain");
    let del = one(&deleted, "handover.docx");
    assert_eq!(del["location"]["part"], "word/document.xml");
    let m = one(&split, "macro.docm");
    assert_eq!(m["location"]["source"], "document");
}

const CT: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/></Types>"#;

fn rels(list: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    );
    for (id, ty, target) in list {
        s.push_str(&format!(
            r#"<Relationship Id="{id}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{ty}" Target="{target}"/>"#
        ));
    }
    s + "</Relationships>"
}

/// A workbook: sheet "Budget" with a shared string key split in rich-text runs (B7), an inline
/// string behind references (C3), a key in a formula (D4) and in a cell comment (E9); sheet
/// "Notes" with a decoy.
pub fn xlsx(shared: &str, inline: &str, formula: &str, comment: &str, decoy: &str) -> Vec<u8> {
    const S: &str = r#"xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main""#;
    let workbook = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><workbook {S} xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Budget" sheetId="1" r:id="rId1"/><sheet name="Notes" sheetId="2" r:id="rId2"/></sheets></workbook>"#
    );
    let sst = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst {S} count="2" uniqueCount="2"><si><t>Label</t></si><si><r><t>{}</t></r><r><rPr><b/></rPr><t>{}</t></r></si></sst>"#,
        &shared[..13],
        &shared[13..]
    );
    let sheet1 = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet {S}><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="3"><c r="C3" t="inlineStr"><is><t>{}</t></is></c></row><row r="4"><c r="D4" t="str"><f>HYPERLINK("https://api.example/?key={formula}")</f><v>link</v></c></row><row r="7"><c r="B7" t="s"><v>1</v></c></row></sheetData></worksheet>"#,
        entities(inline)
    );
    let sheet2 = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet {S}><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>{decoy}</t></is></c></row></sheetData></worksheet>"#
    );
    let comments = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><comments {S}><authors><author>Dana</author></authors><commentList><comment ref="E9" authorId="0"><text><r><t>use {}</t></r><r><t>{}</t></r></text></comment></commentList></comments>"#,
        &comment[..10],
        &comment[10..]
    );
    const XCT: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/><Override PartName="/xl/comments1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml"/></Types>"#;
    zip_of(&[
        ("[Content_Types].xml", XCT),
        (
            "_rels/.rels",
            &rels(&[("rId1", "officeDocument", "xl/workbook.xml")]),
        ),
        ("xl/workbook.xml", &workbook),
        (
            "xl/_rels/workbook.xml.rels",
            &rels(&[
                ("rId1", "worksheet", "worksheets/sheet1.xml"),
                ("rId2", "worksheet", "worksheets/sheet2.xml"),
                ("rId3", "sharedStrings", "sharedStrings.xml"),
            ]),
        ),
        ("xl/sharedStrings.xml", &sst),
        ("xl/worksheets/sheet1.xml", &sheet1),
        (
            "xl/worksheets/_rels/sheet1.xml.rels",
            &rels(&[("rId1", "comments", "../comments1.xml")]),
        ),
        ("xl/worksheets/sheet2.xml", &sheet2),
        ("xl/comments1.xml", &comments),
    ])
}

#[test]
fn spreadsheet_keys_name_their_sheet_and_cell() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys: Vec<String> = (0..4).map(|_| current_key()).collect();
    let decoy = bad_checksum(&current_key());
    let x = xlsx(&keys[0], &keys[1], &keys[2], &keys[3], &decoy);
    std::fs::write(dir.path().join("budget.xlsx"), &x).expect("write");
    std::fs::write(dir.path().join("budget.xlsm"), &x).expect("write");
    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let mut all = keys.clone();
    all.push(decoy.clone());
    assert_no_key_leak(&[&r.stdout, &r.stderr], &all);
    let f = r.findings();
    assert!(by_key(&f, &decoy).is_empty(), "{f:?}");
    for (k, cell, part, enc) in [
        (&keys[0], "B7", "xl/worksheets/sheet1.xml", "plain"),
        (&keys[1], "C3", "xl/worksheets/sheet1.xml", "xml-entity"),
        (&keys[2], "D4", "xl/worksheets/sheet1.xml", "plain"),
        (&keys[3], "E9", "xl/comments1.xml", "plain"),
    ] {
        for path in ["budget.xlsx", "budget.xlsm"] {
            let g: Vec<_> = by_key(&f, k)
                .into_iter()
                .filter(|x| x["location"]["path"] == path)
                .collect();
            assert_eq!(g.len(), 1, "{cell} in {path}: {f:?}");
            let l = &g[0]["location"];
            assert_eq!(l["source"], "document");
            assert_eq!(l["sheet"], "Budget");
            assert_eq!(l["cell"], cell);
            assert_eq!(l["part"], part);
            assert_eq!(g[0]["encoding"], enc, "{cell}");
        }
    }
}

/// A presentation whose first slide (in the presentation's order) is the file `slide2.xml`;
/// `slide1.xml` (the second slide) holds a key split across runs, the first slide's notes
/// another.
pub fn pptx(on_slide: &str, in_notes: &str) -> Vec<u8> {
    const P: &str = r#"xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;
    let pres = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><p:presentation {P}><p:sldIdLst><p:sldId id="256" r:id="rId3"/><p:sldId id="257" r:id="rId2"/></p:sldIdLst></p:presentation>"#
    );
    let slide = |text: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><p:sld {P}><p:cSld><p:spTree><p:sp><p:txBody><a:p>{text}</a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
        )
    };
    let runs = format!(
        "<a:r><a:t>key: {}</a:t></a:r><a:r><a:rPr b=\"1\"/><a:t>{}</a:t></a:r>",
        &on_slide[..12],
        &on_slide[12..]
    );
    let notes = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><p:notes {P}><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>say {in_notes}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>"#
    );
    zip_of(&[
        ("[Content_Types].xml", CT),
        (
            "_rels/.rels",
            &rels(&[("rId1", "officeDocument", "ppt/presentation.xml")]),
        ),
        ("ppt/presentation.xml", &pres),
        (
            "ppt/_rels/presentation.xml.rels",
            &rels(&[
                ("rId2", "slide", "slides/slide1.xml"),
                ("rId3", "slide", "slides/slide2.xml"),
            ]),
        ),
        ("ppt/slides/slide1.xml", &slide(&runs)),
        (
            "ppt/slides/slide2.xml",
            &slide("<a:r><a:t>Agenda</a:t></a:r>"),
        ),
        (
            "ppt/slides/_rels/slide2.xml.rels",
            &rels(&[("rId1", "notesSlide", "../notesSlides/notesSlide1.xml")]),
        ),
        ("ppt/notesSlides/notesSlide1.xml", &notes),
    ])
}

#[test]
fn presentation_keys_name_their_slide_in_the_presentations_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (current_key(), current_key());
    std::fs::write(dir.path().join("deck.pptx"), pptx(&a, &b)).expect("write");
    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_no_key_leak(&[&r.stdout, &r.stderr], &[a.clone(), b.clone()]);
    let f = r.findings();
    let s = by_key(&f, &a);
    assert_eq!(s.len(), 1, "{f:?}");
    assert_eq!(s[0]["location"]["slide"], 2);
    assert_eq!(s[0]["location"]["part"], "ppt/slides/slide1.xml");
    let n = by_key(&f, &b);
    assert_eq!(n.len(), 1, "{f:?}");
    assert_eq!(n[0]["location"]["slide"], 1);
    assert_eq!(n[0]["location"]["part"], "ppt/notesSlides/notesSlide1.xml");
}

const ODF_NS: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2" office:version="1.3""#;

/// An OpenDocument file of `mime` type whose `office:body` holds `body`.
pub fn odf(mime: &str, body: &str) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}><office:body>{body}</office:body></office:document-content>"#
    );
    let manifest = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#
    );
    zip_of(&[
        ("mimetype", mime),
        ("content.xml", &content),
        ("META-INF/manifest.xml", &manifest),
    ])
}

pub fn odt(paragraphs: &[String]) -> Vec<u8> {
    let ps: String = paragraphs
        .iter()
        .map(|p| format!("<text:p>{p}</text:p>"))
        .collect();
    odf(
        "application/vnd.oasis.opendocument.text",
        &format!("<office:text>{ps}</office:text>"),
    )
}

/// A spreadsheet "Keys": C1 (after two repeated empty cells) holds `a` split in spans, A5
/// (after three repeated empty rows) a formula with `b` and an annotation with `c`.
pub fn ods(a: &str, b: &str, c: &str) -> Vec<u8> {
    let body = format!(
        r#"<office:spreadsheet><table:table table:name="Keys"><table:table-row><table:table-cell table:number-columns-repeated="2"/><table:table-cell office:value-type="string"><text:p>{}<text:span>{}</text:span></text:p></table:table-cell></table:table-row><table:table-row table:number-rows-repeated="3"><table:table-cell/></table:table-row><table:table-row><table:table-cell table:formula="of:=HYPERLINK(&quot;https://api.example/?k={b}&quot;)" office:value-type="string"><office:annotation><dc:creator>Dana</dc:creator><text:p>{}</text:p></office:annotation><text:p>link</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet>"#,
        &a[..14],
        &a[14..],
        entities(c)
    );
    odf("application/vnd.oasis.opendocument.spreadsheet", &body)
}

#[test]
fn opendocument_text_spreadsheet_and_presentation() {
    let dir = tempfile::tempdir().expect("tmp");
    let k: Vec<String> = (0..6).map(|_| current_key()).collect();
    let decoy = bad_checksum(&current_key());
    let text = odt(&[
        format!(
            "The key<text:s text:c=\"2\"/>is {}<text:span text:style-name=\"T1\">{}</text:span>.",
            &k[0][..10],
            &k[0][10..]
        ),
        format!("decoy {decoy}"),
    ]);
    std::fs::write(dir.path().join("notes.odt"), text).expect("write");
    std::fs::write(dir.path().join("keys.ods"), ods(&k[1], &k[2], &k[3])).expect("write");
    let deck = odf(
        "application/vnd.oasis.opendocument.presentation",
        &format!(
            r#"<office:presentation><draw:page draw:name="one"><draw:frame><draw:text-box><text:p>Hello</text:p></draw:text-box></draw:frame></draw:page><draw:page draw:name="two"><draw:frame><draw:text-box><text:p>{}</text:p></draw:text-box></draw:frame><presentation:notes><draw:frame><draw:text-box><text:p>{}</text:p></draw:text-box></draw:frame></presentation:notes></draw:page></office:presentation>"#,
            k[4], k[5]
        ),
    );
    std::fs::write(dir.path().join("deck.odp"), deck).expect("write");
    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let mut all = k.clone();
    all.push(decoy.clone());
    assert_no_key_leak(&[&r.stdout, &r.stderr], &all);
    let f = r.findings();
    assert!(by_key(&f, &decoy).is_empty(), "{f:?}");
    let one = |key: &str| {
        let g = by_key(&f, key);
        assert_eq!(g.len(), 1, "{f:?}");
        g[0]["location"].clone()
    };
    let t = one(&k[0]);
    assert_eq!(t["source"], "document");
    assert_eq!(t["part"], "content.xml");
    assert_eq!(t["column"], 13);
    let c = one(&k[1]);
    assert_eq!(
        (c["sheet"].as_str(), c["cell"].as_str()),
        (Some("Keys"), Some("C1"))
    );
    let fm = one(&k[2]);
    assert_eq!(fm["cell"], "A5");
    let an = one(&k[3]);
    assert_eq!(an["cell"], "A5");
    assert_eq!(by_key(&f, &k[3])[0]["encoding"], "xml-entity");
    assert_eq!(one(&k[4])["slide"], 2);
    assert_eq!(one(&k[5])["slide"], 2);
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    // 76-character lines, as mail is written.
    s.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// `key` quoted-printable as a mail client writes it: `_` as `=5F`, a soft line break after
/// `at` characters of it.
fn qp(key: &str, at: usize) -> String {
    format!("{}=\r\n{}", &key[..at], &key[at..]).replace('_', "=5F")
}

#[test]
fn email_parts_attachments_and_forwarded_messages() {
    let dir = tempfile::tempdir().expect("tmp");
    let k: Vec<String> = (0..6).map(|_| current_key()).collect();
    let decoy = bad_checksum(&current_key());
    let workbook = xlsx(&k[4], "none", "none", "none to see", "none");
    let inner = format!(
        "From: Ops <ops@example.com>\r\nTo: dana@example.com\r\nSubject: the old one\r\n\
         Date: Fri, 20 Nov 2026 14:00:00 +0000\r\nMessage-ID: <inner-7@example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"IN\"\r\n\r\n\
         --IN\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --IN\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n\
         Content-Disposition: attachment; filename=\"budget.xlsx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --IN--\r\n",
        b64(format!("the old key was {}\n", k[3]).as_bytes()),
        b64(&workbook)
    );
    let html = format!("<p>Key: <b>{}</b></p>", entities(&k[1]));
    let word = docx(&para(&split_runs(&k[2], 17)), "Invoice", "none");
    let outer = format!(
        "Return-Path: <dana@example.com>\r\nFrom: Dana <dana@example.com>\r\nTo: ops@example.com\r\n\
         Subject: prod credentials\r\nDate: Tue, 01 Dec 2026 09:30:00 +0000\r\n\
         Message-ID: <abc123@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"OUTER\"\r\n\r\n\
         --OUTER\r\nContent-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n\
         --ALT\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         Here is the key: {}=\r\n and a typo: {}\r\n\
         --ALT\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --ALT--\r\n\
         --OUTER\r\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; name=\"invoice.docx\"\r\n\
         Content-Disposition: attachment; filename=\"invoice.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --OUTER\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n\r\n{inner}\r\n\
         --OUTER--\r\n",
        qp(&k[0], 20),
        qp(&decoy, 25),
        b64(html.as_bytes()),
        b64(&word),
    );
    std::fs::write(dir.path().join("credentials.eml"), &outer).expect("write");
    // A mailbox of two messages, the key in the second (a plain text body).
    let mbox = format!(
        "From dana@example.com Mon Nov 30 08:00:00 2026\nFrom: dana@example.com\nSubject: hello\n\
         Date: Mon, 30 Nov 2026 08:00:00 +0000\nMessage-ID: <m1@example.com>\n\nnothing here\n\n\
         From ops@example.com Mon Nov 30 09:00:00 2026\nFrom: ops@example.com\nSubject: the key\n\
         Date: Mon, 30 Nov 2026 09:00:00 +0000\nMessage-ID: <m2@example.com>\n\
         Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n{}\n",
        qp(&k[5], 30)
    );
    std::fs::write(dir.path().join("Inbox.mbox"), &mbox).expect("write");

    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let mut all = k.clone();
    all.push(decoy.clone());
    assert_no_key_leak(&[&r.stdout, &r.stderr], &all);
    let f = r.findings();
    assert!(by_key(&f, &decoy).is_empty(), "{f:?}");
    let one = |key: &str| {
        let g = by_key(&f, key);
        assert_eq!(g.len(), 1, "{f:#?}");
        g[0].clone()
    };
    let q = one(&k[0]);
    let l = &q["location"];
    assert_eq!(l["source"], "email");
    assert_eq!(l["path"], "credentials.eml");
    assert_eq!(l["message_id"], "abc123@example.com");
    assert_eq!(l["subject"], "prod credentials");
    assert!(
        l["date"]
            .as_str()
            .is_some_and(|d| d.starts_with("2026-12-01T09:30:00")),
        "{l}"
    );
    assert!(
        l["part"].as_str().is_some_and(|p| p.contains("text/plain")),
        "{l}"
    );
    assert_eq!(q["encoding"], "quoted-printable");
    let h = one(&k[1]);
    assert_eq!(h["encoding"], "xml-entity");
    assert!(
        h["location"]["part"]
            .as_str()
            .is_some_and(|p| p.contains("text/html")),
        "{h}"
    );
    let w = one(&k[2]);
    assert_eq!(w["location"]["source"], "email");
    assert_eq!(w["location"]["part"], "invoice.docx!word/document.xml");
    assert_eq!(w["location"]["message_id"], "abc123@example.com");
    let fwd = one(&k[3]);
    assert_eq!(fwd["location"]["message_id"], "inner-7@example.com");
    assert!(
        fwd["location"]["date"]
            .as_str()
            .is_some_and(|d| d.starts_with("2026-11-20T14:00:00")),
        "{fwd}"
    );
    assert!(
        fwd["location"]["part"]
            .as_str()
            .is_some_and(|p| p.starts_with("fwd.eml!")),
        "{fwd}"
    );
    let x = one(&k[4]);
    assert_eq!(
        x["location"]["part"],
        "fwd.eml!budget.xlsx!xl/worksheets/sheet1.xml"
    );
    assert_eq!(x["location"]["sheet"], "Budget");
    assert_eq!(x["location"]["cell"], "B7");
    assert_eq!(x["location"]["message_id"], "inner-7@example.com");
    let m = one(&k[5]);
    assert_eq!(m["location"]["path"], "Inbox.mbox");
    assert_eq!(m["location"]["message_id"], "m2@example.com");
    assert_eq!(m["encoding"], "quoted-printable");
}

#[test]
fn a_large_mbox_is_read_message_by_message() {
    // 20 000 messages (about 30 MB): keys in message 7 000 (a text body) and in the last one
    // (a base64 attachment), each named by its own Message-ID, subject and date.
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (current_key(), current_key());
    let filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit\n".repeat(20);
    let mut mbox = String::with_capacity(32 << 20);
    let n = 20_000;
    for i in 0..n {
        let (day, hour, min) = (1 + i / 1440 % 28, i / 60 % 24, i % 60);
        mbox.push_str(&format!(
            "From ops@example.com Mon Nov 30 08:00:00 2026\nFrom: ops@example.com\n\
             Subject: note {i}\nDate: Mon, {day:02} Nov 2026 {hour:02}:{min:02}:00 +0000\n\
             Message-ID: <n{i}@example.com>\n"
        ));
        if i == n - 1 {
            let attached = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("OFFSET_API_KEY={b}\n"),
            );
            mbox.push_str(&format!(
                "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n\
                 --B\nContent-Type: text/plain\n\n{filler}\n\
                 --B\nContent-Type: text/plain; name=\"prod.env\"\n\
                 Content-Disposition: attachment; filename=\"prod.env\"\n\
                 Content-Transfer-Encoding: base64\n\n{attached}\n--B--\n\n"
            ));
        } else if i == 7_000 {
            mbox.push_str(&format!("\n{filler}the key: {a}\n\n"));
        } else {
            mbox.push_str(&format!("\n{filler}\n"));
        }
    }
    std::fs::write(dir.path().join("Archive.mbox"), &mbox).expect("write");
    drop(mbox);
    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_no_key_leak(&[&r.stdout, &r.stderr], &[a.clone(), b.clone()]);
    let f = r.findings();
    assert_eq!(f.len(), 2, "{f:#?}");
    let l = &by_key(&f, &a)[0]["location"];
    assert_eq!(l["source"], "email");
    assert_eq!(l["message_id"], "n7000@example.com");
    assert_eq!(l["subject"], "note 7000");
    assert!(
        l["date"]
            .as_str()
            .is_some_and(|d| d.starts_with("2026-11-05T20:40:00")),
        "{l}"
    );
    let l = &by_key(&f, &b)[0]["location"];
    assert_eq!(l["message_id"], format!("n{}@example.com", n - 1));
    assert_eq!(l["part"], "prod.env");
}

#[test]
fn rtf_keys_wrapped_in_the_source_or_written_with_hex_escapes() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (current_key(), current_key());
    let decoy = bad_checksum(&current_key());
    let rtf = format!(
        "{{\\rtf1\\ansi{{\\fonttbl{{\\f0 Arial;}}}}{{\\*\\generator Word}}\\f0 Key: {}\r\n{}\\par\r\n\
         {{\\b {}}}\\par decoy {}}}",
        &a[..16],
        &a[16..],
        b.replace('_', "\\'5f"),
        decoy
    );
    std::fs::write(dir.path().join("memo.rtf"), rtf).expect("write");
    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_no_key_leak(
        &[&r.stdout, &r.stderr],
        &[a.clone(), b.clone(), decoy.clone()],
    );
    let f = r.findings();
    assert!(by_key(&f, &decoy).is_empty(), "{f:?}");
    for (k, line) in [(&a, 1), (&b, 2)] {
        let g = by_key(&f, k);
        assert_eq!(g.len(), 1, "{f:?}");
        assert_eq!(g[0]["location"]["source"], "document");
        assert_eq!(g[0]["location"]["line"], line);
    }
}

/// A PDF whose pages have the given content streams (Helvetica as `/F1`), with a correct
/// cross-reference table.
pub fn pdf(pages: &[String]) -> Vec<u8> {
    let n = pages.len();
    // Objects: 1 catalog, 2 pages, 3 font, then per page: page, contents.
    let mut objs: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            (0..n)
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    ];
    for (i, content) in pages.iter().enumerate() {
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objs.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
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

#[test]
fn pdf_keys_by_page_split_across_operators_and_lines_and_a_broken_pdf_warns() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (current_key(), current_key());
    let decoy = bad_checksum(&current_key());
    let page1 = format!("BT /F1 12 Tf 72 700 Td (Decoy: {decoy}) Tj ET");
    let page2 = format!(
        "BT /F1 12 Tf 72 700 Td (Key: {}) Tj ({}) Tj ET\nBT /F1 12 Tf 72 680 Td ({}) Tj ET\nBT /F1 12 Tf 72 660 Td ({}) Tj ET",
        &a[..12],
        &a[12..],
        &b[..20],
        &b[20..]
    );
    std::fs::write(dir.path().join("report.pdf"), pdf(&[page1, page2])).expect("write");
    let other = current_key();
    std::fs::write(
        dir.path().join("broken.pdf"),
        b"%PDF-1.7\n1 0 obj << /Type".as_slice(),
    )
    .expect("write");
    std::fs::write(dir.path().join("after.txt"), format!("k={other}\n")).expect("write");
    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_no_key_leak(
        &[&r.stdout, &r.stderr],
        &[a.clone(), b.clone(), decoy.clone(), other.clone()],
    );
    let f = r.findings();
    assert!(by_key(&f, &decoy).is_empty(), "{f:?}");
    for k in [&a, &b] {
        let g = by_key(&f, k);
        assert_eq!(g.len(), 1, "{f:?}");
        assert_eq!(g[0]["location"]["source"], "document");
        assert_eq!(g[0]["location"]["page"], 2);
    }
    assert_eq!(by_key(&f, &other).len(), 1, "the scan went on");
    assert!(
        r.stderr.contains("broken.pdf: not a readable PDF"),
        "{}",
        r.stderr
    );
}

/// A PDF from raw objects (numbered from 1, the first the catalog), with a correct
/// cross-reference table.
fn pdf_of(objs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
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

#[test]
fn a_cyclic_page_tree_and_a_deflate_bomb_page_do_not_stop_a_pdf() {
    // cyclic.pdf: the page tree lists itself among its kids (lopdf alone loses the page after
    // it). bomb.pdf: page 1's content inflates to 80 MiB (over the 64 MiB a page may), page 2
    // holds a key. Both are read, with a warning naming the file.
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (current_key(), current_key());
    let font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec();
    let page = |contents: usize| {
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {contents} 0 R >>"
        )
        .into_bytes()
    };
    let stream = |body: &[u8], filter: &str| {
        let mut s = format!("<< /Length {}{filter} >>\nstream\n", body.len()).into_bytes();
        s.extend_from_slice(body);
        s.extend_from_slice(b"\nendstream");
        s
    };
    let text = |k: &str| format!("BT /F1 12 Tf 72 700 Td (Key: {k}) Tj ET");
    let cyclic = pdf_of(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [2 0 R 2 0 R 4 0 R] /Count 1 >>".to_vec(),
        font.clone(),
        page(5),
        stream(text(&a).as_bytes(), ""),
    ]);
    std::fs::write(dir.path().join("cyclic.pdf"), cyclic).expect("write");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(b"BT /F1 12 Tf 72 700 Td (").expect("deflate");
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..80 {
        z.write_all(&spaces).expect("deflate");
    }
    z.write_all(b") Tj ET").expect("deflate");
    let bomb = z.finish().expect("deflate");
    let doc = pdf_of(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [4 0 R 6 0 R] /Count 2 >>".to_vec(),
        font,
        page(5),
        stream(&bomb, " /Filter /FlateDecode"),
        page(7),
        stream(text(&b).as_bytes(), ""),
    ]);
    assert!(doc.len() < 1 << 20, "the bomb is small: {}", doc.len());
    std::fs::write(dir.path().join("bomb.pdf"), doc).expect("write");
    let r = scan(dir.path());
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert_no_key_leak(&[&r.stdout, &r.stderr], &[a.clone(), b.clone()]);
    let f = r.findings();
    for (k, page) in [(&a, 1), (&b, 2)] {
        let g = by_key(&f, k);
        assert_eq!(g.len(), 1, "{f:?}");
        assert_eq!(g[0]["location"]["source"], "document");
        assert_eq!(g[0]["location"]["page"], page);
    }
    assert!(
        r.stderr
            .contains("cyclic.pdf: its page tree reaches a node more than once"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("bomb.pdf: page 1 of the PDF: expands beyond 67108864 bytes; left out"),
        "{}",
        r.stderr
    );
}

/// LibreOffice's `soffice`, which the redaction test converts documents with.
fn soffice() -> std::path::PathBuf {
    for name in ["soffice", "libreoffice"] {
        if let Some(p) = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return p;
        }
    }
    panic!(
        "LibreOffice is needed to check that redacted documents still open: install it \
         (Debian: apt-get install libreoffice-writer-nogui libreoffice-calc-nogui), or run \
         scripts/test.sh, which does"
    );
}

/// `file` converted by LibreOffice to `to` (`txt:Text`, `csv`), as text.
fn convert(file: &Path, to: &str) -> String {
    let out = file.parent().expect("a folder").join("converted");
    let profile = file.parent().expect("a folder").join("lo-profile");
    let o = std::process::Command::new(soffice())
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        .args(["--headless", "--convert-to", to, "--outdir"])
        .arg(&out)
        .arg(file)
        .output()
        .expect("soffice runs");
    assert!(
        o.status.success(),
        "soffice failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stem = file
        .file_stem()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    let ext = to.split(':').next().expect("an extension");
    let converted = out.join(format!("{stem}.{ext}"));
    std::fs::read_to_string(&converted).unwrap_or_else(|e| {
        panic!(
            "LibreOffice did not convert {} ({e}): {}{}",
            file.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn redacted_documents_still_open_with_every_key_replaced() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let k: Vec<String> = (0..8).map(|_| current_key()).collect();
    let word = docx(
        &[
            para(&format!(
                "{}{}{}",
                run("Use "),
                split_runs(&k[0], 11),
                run(" for prod.")
            )),
            para(&run(&format!("Backup: {} (old)", entities(&k[1])))),
        ]
        .concat(),
        "Header text",
        &format!("see {}", k[2]),
    );
    let sheet = xlsx(&k[3], &k[4], &k[5], &k[6], "plain words");
    let text = odt(&[format!(
        "Key {}<text:span>{}</text:span> here.",
        &k[7][..10],
        &k[7][10..]
    )]);
    let spread = ods(&k[0], &k[1], &k[2]);
    let cases: [(&str, &[u8], &str, &[&str]); 4] = [
        (
            "handover.docx",
            &word,
            "txt:Text",
            &["Use YOUR_API_KEY for prod.", "Backup: YOUR_API_KEY (old)"],
        ),
        ("budget.xlsx", &sheet, "csv", &["Label", "YOUR_API_KEY"]),
        ("notes.odt", &text, "txt:Text", &["Key YOUR_API_KEY here."]),
        (
            "keys.ods",
            &spread,
            "csv",
            &[",,YOUR_API_KEY", "https://api.example/?k=YOUR_API_KEY"],
        ),
    ];
    for (name, bytes, to, expect) in cases {
        let input = d.join(name);
        std::fs::write(&input, bytes).expect("write");
        let out_name = format!("clean-{name}");
        let r = offkey_in(d, &["redact", "--document", name, "-o", &out_name], None);
        assert_eq!(r.status, Some(0), "{name}: {}", r.stderr);
        assert_no_key_leak(&[&r.stdout, &r.stderr], &k);
        let clean = d.join(&out_name);
        // Nothing left for the scanner, in the text or the bytes.
        let s = offkey_in(d, &["scan", "--format", "json", &out_name], None);
        assert_eq!(s.status, Some(0), "{name}: {}", s.stdout);
        // And the application still reads it, with the rest of the text kept.
        let shown = convert(&clean, to);
        assert_no_key_leak(&[&shown], &k);
        for e in expect {
            assert!(
                shown.contains(e),
                "{name}: {e:?} not in what LibreOffice shows:\n{shown}"
            );
        }
    }
    // A presentation (LibreOffice Impress is not installed for the tests: scanned only).
    std::fs::write(d.join("deck.pptx"), pptx(&k[3], &k[4])).expect("write");
    let r = offkey_in(
        d,
        &["redact", "--document", "deck.pptx", "-o", "clean.pptx"],
        None,
    );
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("redacted 2 key(s)"), "{}", r.stderr);
    let s = offkey_in(d, &["scan", "--format", "json", "clean.pptx"], None);
    assert_eq!(s.status, Some(0), "{}", s.stdout);
    // Not a document: a clear error, nothing written.
    std::fs::write(d.join("plain.txt"), "hello").expect("write");
    let r = offkey_in(
        d,
        &["redact", "--document", "plain.txt", "-o", "out.txt"],
        None,
    );
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("plain.txt: not an office document"),
        "{}",
        r.stderr
    );
    assert!(!d.join("out.txt").exists());
}

#[test]
fn sarif_for_documents_is_valid_and_names_sheet_and_cell() {
    let dir = tempfile::tempdir().expect("tmp");
    let k: Vec<String> = (0..4).map(|_| current_key()).collect();
    std::fs::write(
        dir.path().join("budget.xlsx"),
        xlsx(&k[0], &k[1], &k[2], &k[3], "plain"),
    )
    .expect("write");
    let out = dir.path().join("docs.sarif");
    let r = offkey_in(
        dir.path(),
        &[
            "scan",
            "--format",
            "sarif",
            "-o",
            out.to_str().expect("utf8"),
            "budget.xlsx",
        ],
        None,
    );
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let v = crate::integrations::check_sarif(&out, &k);
    let results = v["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 4, "{results:#?}");
    let cells: std::collections::BTreeSet<&str> = results
        .iter()
        .filter_map(|r| r["properties"]["cell"].as_str())
        .collect();
    assert_eq!(cells, ["B7", "C3", "D4", "E9"].into_iter().collect());
    assert!(results.iter().all(|r| r["properties"]["sheet"] == "Budget"));
}
