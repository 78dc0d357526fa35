//! Output that cannot attack a terminal (issue 13 §3): a TLS 1.2 mTLS
//! handshake whose SNI, offered and selected ALPN, and client certificate
//! (subject CN and DNS SAN, hence its id) each carry one code point a
//! terminal or viewer acts on, run through `run_offline`, then printed in
//! every view: the text line, the JSON line, the edges table, TSV and
//! JSON, and the DOT graph. For every such code point (DEL, C1, U+2028,
//! U+2029, the bidi embeddings, overrides and isolates) and every view:
//! the raw code point is not in the output bytes and its escape is, once
//! per field that carried it.
//!
//! The certificate is a real DER (fixtures/pki/server.pem) with
//! `localhost` overwritten in place by a string of the same byte length:
//! x509-parser does not check signatures, and the identity code reads
//! names only.

use mtlsniff::report::edges::EdgeTable;
use mtlsniff::report::graph::to_dot;
use mtlsniff::report::output::{Format, Printer};
use mtlsniff::verdict::{CertSeen, Class, Verdict};

use super::wire::*;
use super::{CLIENT, SERVER, defaults};

/// Every code point no view may write raw.
fn hostile() -> Vec<char> {
    let mut v: Vec<char> = ('\u{7f}'..='\u{9f}').collect();
    v.extend(['\u{2028}', '\u{2029}']);
    v.extend('\u{202a}'..='\u{202e}');
    v.extend('\u{2066}'..='\u{2069}');
    v
}

/// `prefix`, `c`, then `x` up to `len` bytes.
fn padded(prefix: &str, c: char, len: usize) -> String {
    let mut s = format!("{prefix}{c}");
    assert!(s.len() <= len);
    while s.len() < len {
        s.push('x');
    }
    s
}

/// fixtures/pki/server.pem as DER with every `localhost` (the subject CN
/// and the DNS SAN) replaced by `name` (9 bytes), the CN made a
/// UTF8String.
fn certificate_named(name: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/pki/server.pem"
    ))
    .expect("read server.pem");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = base64_decode(&b64);
    assert_eq!(name.len(), 9);
    let needle = b"localhost";
    let mut at = 0;
    let mut hits = 0;
    while let Some(i) = der[at..].windows(9).position(|w| w == needle) {
        let i = at + i;
        if der[i - 2] == 0x13 {
            der[i - 2] = 0x0c; // PrintableString -> UTF8String
        }
        der[i..i + 9].copy_from_slice(name.as_bytes());
        at = i + 9;
        hits += 1;
    }
    assert!(hits >= 2, "CN and DNS SAN expected, found {hits}");
    der
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A ClientHello body offering `sni` and the ALPN protocols `alpn`.
fn client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
    let mut b = 0x0303u16.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x11; 32]);
    b.push(0);
    b.extend_from_slice(&[0, 2, 0xc0, 0x2f, 1, 0]);
    let mut exts = Vec::new();
    let name = sni.as_bytes();
    let mut list = vec![0];
    list.extend_from_slice(&(name.len() as u16).to_be_bytes());
    list.extend_from_slice(name);
    exts.extend(extension(0, &with_len16(&list)));
    let mut protos = Vec::new();
    for p in alpn {
        protos.push(p.len() as u8);
        protos.extend_from_slice(p.as_bytes());
    }
    exts.extend(extension(16, &with_len16(&protos)));
    b.extend(with_len16(&exts));
    b
}

/// A ServerHello body selecting the ALPN protocol `alpn`.
fn server_hello(alpn: &str) -> Vec<u8> {
    let mut b = server_hello_body(0x0303);
    let mut proto = vec![alpn.len() as u8];
    proto.extend_from_slice(alpn.as_bytes());
    b.extend(with_len16(&extension(16, &with_len16(&proto))));
    b
}

fn with_len16(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut v = kind.to_be_bytes().to_vec();
    v.extend(with_len16(body));
    v
}

/// One mTLS flow whose SNI, ALPN and client certificate carry `c`.
fn hostile_flow(c: char) -> Verdict {
    let cert = certificate_named(&padded("n", c, 9));
    let mut t = tls12(0x0303, Some(&cert));
    t.client_hello = hs_record(
        0x0303,
        1,
        &client_hello(&format!("s{c}.example"), &[&format!("a{c}"), "h2"]),
    );
    let mut server_flight = hs_record(0x0303, 2, &server_hello(&format!("p{c}")));
    // Keep the rest of the server's flight (Certificate, request, done).
    let hello_len = 5 + 4 + server_hello_body(0x0303).len();
    server_flight.extend_from_slice(&t.server_flight[hello_len..]);
    let mut conn = Conn::new(CLIENT, SERVER);
    conn.open()
        .client(&t.client_hello)
        .server(&server_flight)
        .client(&t.client_flight)
        .server(&t.server_finish)
        .close();
    let run = run_frames(&conn.frames, defaults());
    let v = run.only().clone();
    // The wire strings really reached the verdict, raw.
    assert_eq!(v.class, Class::Mtls, "{c:?}: {v:#?}");
    assert!(v.sni.as_deref().is_some_and(|s| s.contains(c)), "{c:?} sni");
    assert!(v.alpn_offered.iter().any(|a| a.contains(c)), "{c:?} alpn");
    assert!(
        v.alpn_selected.as_deref().is_some_and(|a| a.contains(c)),
        "{c:?} alpn_sel"
    );
    let Some(CertSeen::Parsed(id)) = v.client_certificate.as_ref() else {
        panic!("{c:?}: client certificate not parsed: {v:#?}");
    };
    assert!(id.subject.contains(c), "{c:?} subject {}", id.subject);
    assert!(id.sans.iter().any(|s| s.contains(c)), "{c:?} sans");
    v
}

/// Printed in `format`; text with `-v`'s detail (every wire string).
fn printed(v: &Verdict, format: Format) -> String {
    let mut p = Printer::new(Vec::new(), format, false).detailed(true);
    p.print(v).expect("print");
    String::from_utf8(p.into_inner().expect("flush")).expect("utf-8")
}

/// `out` (one view) holds no raw `c` and at least `n` copies of `escape`.
fn assert_escaped(view: &str, out: &str, c: char, escape: &str, n: usize) {
    assert!(
        !out.contains(c),
        "{view}: raw U+{:04X} in {out:?}",
        u32::from(c)
    );
    let got = out.matches(escape).count();
    assert!(
        got >= n,
        "{view}: {got} of {n} {escape} for U+{:04X} in {out}",
        u32::from(c)
    );
}

#[test]
fn hostile_code_points_are_escaped_in_every_view() {
    for c in hostile() {
        let v = hostile_flow(c);
        let cp = u32::from(c);
        let rust = format!("\\u{{{cp:x}}}");
        // Text: sni, alpn (offered), alpn_sel, client_id.
        let text_escape = if c == '\u{7f}' {
            "\\x7f".to_string()
        } else {
            rust.clone()
        };
        assert_escaped("text", &printed(&v, Format::Text), c, &text_escape, 4);
        let mut short = Printer::new(Vec::new(), Format::Text, false);
        short.print(&v).expect("print");
        let short = String::from_utf8(short.into_inner().expect("flush")).expect("utf-8");
        assert_escaped("short text", &short, c, &text_escape, 1);
        // JSON: sni, alpn_offered, alpn_selected, client_id, and the
        // certificate's id, subject and SAN.
        let json = printed(&v, Format::Json);
        assert_escaped("json", &json, c, &format!("\\u{cp:04x}"), 7);
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed["sni"], format!("s{c}.example"), "json round trip");
        let mut edges = EdgeTable::new(16);
        edges.record(&v);
        // Edges: the client peer (its certificate's id).
        assert_escaped("table", &edges.render_table(), c, &rust, 1);
        assert_escaped("tsv", &edges.render_tsv(), c, &rust, 1);
        assert_escaped(
            "edges json",
            &edges.render_json(),
            c,
            &format!("\\u{cp:04x}"),
            1,
        );
        // DOT: the client node's label, shown as `\u{hex}` (DOT's `\\`).
        let dot = to_dot(&edges);
        assert_escaped("dot", &dot, c, &format!("\\\\u{{{cp:x}}}"), 1);
    }
}

#[test]
fn printable_text_and_plain_json_are_unchanged() {
    // The escaping only touches the listed code points: `§` (printable)
    // and ASCII stay as serde_json writes them.
    let v = hostile_flow('\u{2066}');
    let mut plain = v.clone();
    plain.sni = Some("§ ok".into());
    let json = printed(&plain, Format::Json);
    assert!(json.contains("\"sni\":\"§ ok\""), "{json}");
    // Text mode shows printable non-ASCII as it is (issue 16 §2: `§` was
    // `\u{a7}`), quoted because of the space.
    plain.client_certificate = None;
    plain.server_certificate = None;
    let text = printed(&plain, Format::Text);
    assert!(text.contains(" sni=\"§ ok\""), "{text}");
}
