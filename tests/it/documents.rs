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
