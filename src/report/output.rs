//! Views of a verdict: the tcpdump-like text line and the JSON Lines object,
//! and the `Printer` that writes either to any `Write`.
//!
//! This file owns formatting, escaping and stdout buffering. It must not
//! decide anything about a flow (that is the verdict model's job) nor order
//! reports (the pipeline does). The text line is short by default (who,
//! what, how sure) and carries its evidence and reason with `-v`, as
//! tcpdump's lines do; JSON always carries every field. Invariants: one
//! verdict is exactly one line; no byte from the wire reaches the output
//! unescaped (controls, C1, U+2028/U+2029, bidi controls, quotes and
//! backslashes are escaped in text, printable non-ASCII is shown as is;
//! JSON escapes by its own rules plus DEL, C1, U+2028/U+2029 and the bidi
//! controls, `report::escape`); timestamps are UTC and come from
//! `Timestamp`, which never fails to format.

use std::borrow::Cow;
use std::io::{self, BufWriter, Write};

use serde::Serialize;

use crate::capture::segment::{Endpoint, Timestamp};
use crate::report::escape::{is_hostile, write_json};
use crate::report::stats::human_micros;
use crate::report::workloads::{self, JsonMismatch, JsonWorkload};
use crate::tls::identity::Validity;
use crate::verdict::{
    Alert, Basis, CertSeen, Class, ClientCert, FlowClose, Party, Verdict, version_name,
};
use crate::workload::{Placement, Shared};

/// TLS version text: the name, or the raw number when it has none.
fn version_text(v: u16) -> Cow<'static, str> {
    match version_name(v) {
        "?" => format!("0x{v:04x}").into(),
        name => name.into(),
    }
}

/// Whether a text view must escape `c`: the line's own syntax (`\\`,
/// `"`, and `extra`), every control (C0, DEL, C1) and the code points that
/// act on a terminal or an editor (`escape::is_hostile`: U+2028/U+2029,
/// bidi controls). Printable text, `§` or `é` or `東`, is shown as it is.
fn must_escape(c: char, extra: &[char]) -> bool {
    c == '\\' || c == '"' || c.is_control() || is_hostile(c) || extra.contains(&c)
}

/// Append `s` escaped for a text line: `\\`, `\"`, `\n`, `\r`, `\t`,
/// `\xNN` for other ASCII controls and any char in `extra`, `\u{N}` for
/// C1 controls, U+2028/U+2029 and bidi controls. Printable non-ASCII is
/// kept (issue 16 §2).
fn escape_into(out: &mut String, s: &str, extra: &[char]) {
    use std::fmt::Write as _;
    let mut rest = s;
    loop {
        // Copy runs of plain text in one go: reasons and names are almost
        // all plain, and the output thread writes one line per flow.
        let run = rest
            .char_indices()
            .find(|&(_, c)| must_escape(c, extra))
            .map_or(rest.len(), |(i, _)| i);
        let (clean, tail) = rest.split_at(run);
        out.push_str(clean);
        let mut chars = tail.chars();
        let Some(c) = chars.next() else {
            break;
        };
        rest = chars.as_str();
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
}

/// `s` escaped for a line of text (stderr messages that quote the wire).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, &[]);
    out
}

/// Whether `c` may stand in an unquoted value: printable, not a space of
/// any kind, nothing `must_escape` (or `extra`) names.
fn is_bare(c: char, extra: &[char]) -> bool {
    !c.is_whitespace() && !must_escape(c, extra)
}

/// A value for `key=value`: bare when it is printable with no space,
/// quote or backslash, else double-quoted and escaped.
fn value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_value(&mut out, s);
    out
}

/// `value(s)` appended to `out`, with no string of its own.
fn push_value(out: &mut String, s: &str) {
    let bare = !s.is_empty() && s.chars().all(|c| is_bare(c, &[]));
    if bare {
        out.push_str(s);
        return;
    }
    out.push('"');
    escape_into(out, s, &[]);
    out.push('"');
}

/// Comma-joined list; a comma inside an item is escaped (`\x2c`) so the
/// split stays unambiguous.
fn list_value(items: &[String]) -> String {
    let plain = |i: &String| !i.is_empty() && i.chars().all(|c| is_bare(c, &[',']));
    if items.iter().all(plain) {
        return items.join(",");
    }
    let mut out = String::from("\"");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        escape_into(&mut out, item, &[',']);
    }
    out.push('"');
    out
}

/// The server as the text line shows it: the original destination, then
/// ` via=` the iptables REDIRECT target when the connection was redirected
/// (`127.0.0.1:8080 via=127.0.0.1:15001`).
fn server_text(v: &Verdict) -> ServerVia<'_> {
    ServerVia(&v.server, v.redirected_to)
}

/// `server` and, for a redirected connection, ` via=TARGET` (verdict and
/// close lines alike), written straight into the line (`push_endpoints`).
struct ServerVia<'a>(&'a Endpoint, Option<Endpoint>);

/// The Community ID v1 of a TCP flow (seed 0), the flow hash Zeek,
/// Suricata, Arkime and Wireshark print: verdict and close lines join on it
/// with each other and with those tools' logs of the same traffic. The
/// `community-id` crate lives behind this function only.
pub fn community_id(client: &Endpoint, server: &Endpoint) -> Option<String> {
    const TCP: u8 = 6;
    community_id::calculate_community_id(
        0,
        client.ip,
        server.ip,
        Some(client.port),
        Some(server.port),
        TCP,
        false,
    )
    .ok()
}

/// ` IP client > server:`, the one place a line's endpoints are written
/// (verdict and close lines): workload names and a redirect's `via=` go
/// here when they come.
fn push_endpoints(s: &mut String, ipv6: bool, client: &Endpoint, server: ServerVia<'_>) {
    s.push_str(if ipv6 { " IP6 " } else { " IP " });
    push_endpoint(s, client);
    s.push_str(" > ");
    push_endpoint(s, server.0);
    if let Some(target) = server.1 {
        s.push_str(" via=");
        push_endpoint(s, &target);
    }
    s.push(':');
}

/// `e` as its `Display` writes it (`a.b.c.d:port`, `[v6]:port`). IPv4,
/// most lines, is written with `itoa`: `Ipv4Addr`'s `Display` was a
/// quarter of the output thread's instructions.
fn push_endpoint(s: &mut String, e: &Endpoint) {
    use std::fmt::Write as _;
    let mut digits = itoa::Buffer::new();
    match e.ip {
        std::net::IpAddr::V4(a) => {
            let [a, b, c, d] = a.octets();
            for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(digits.format(octet));
            }
            s.push(':');
            s.push_str(digits.format(e.port));
        }
        std::net::IpAddr::V6(_) => {
            let _ = write!(s, "{e}");
        }
    }
}

/// `ts` as the text line shows it (`Timestamp::date_time`), pushed from
/// the one RFC 3339 string without a second copy.
fn push_date_time_slow(s: &mut String, ts: Timestamp) {
    let rfc = ts.rfc3339();
    let rfc = rfc.strip_suffix('Z').unwrap_or(&rfc);
    let mut parts = rfc.split('T');
    if let Some(first) = parts.next() {
        s.push_str(first);
    }
    for part in parts {
        s.push(' ');
        s.push_str(part);
    }
}

/// The text line's date and time to the second (`2026-11-22 19:27:20`),
/// kept for the next line: lines come in packet-time order, so most share
/// their second with the line before, and formatting a calendar date was
/// a tenth of the output thread's work.
#[derive(Debug, Default)]
struct SecondText {
    /// The second `text` shows, when it shows one.
    secs: Option<i64>,
    text: String,
}

/// Before the last second `Timestamp::rfc3339` formats without clamping
/// (9999-12-31T23:59:59): below it, a time's text is its second's text
/// then its microseconds.
const CACHED_BELOW: i64 = 253_402_300_799 * 1_000_000;

/// `ts` as `push_date_time_slow` writes it, its second's text from `cache`.
fn push_date_time(s: &mut String, ts: Timestamp, cache: &mut SecondText) {
    if !(0..CACHED_BELOW).contains(&ts.0) {
        // Clamped by the formatter: the slow way says what it shows.
        push_date_time_slow(s, ts);
        return;
    }
    let secs = ts.secs();
    if cache.secs != Some(secs) {
        cache.text.clear();
        push_date_time_slow(&mut cache.text, Timestamp(secs * 1_000_000));
        // `.000000`: the second's own fraction, replaced per line.
        let whole = cache.text.rfind('.').unwrap_or(cache.text.len());
        cache.text.truncate(whole);
        cache.secs = Some(secs);
    }
    s.push_str(&cache.text);
    let mut digits = itoa::Buffer::new();
    let micros = digits.format(ts.subsec_micros());
    s.push('.');
    for _ in micros.len()..6 {
        s.push('0');
    }
    s.push_str(micros);
}

/// `text` then spaces up to `width` chars, as `{:<width}` writes it
/// without the formatting machinery (every line has two of these).
fn push_padded(s: &mut String, text: &str, width: usize) {
    s.push_str(text);
    for _ in text.chars().count()..width {
        s.push(' ');
    }
}

/// Appends ` key=value` tokens to a line.
struct Tokens<'a>(&'a mut String);

impl Tokens<'_> {
    fn add(&mut self, key: &str, val: &str) {
        self.0.push(' ');
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(val);
    }

    /// ` key=` then `val` as `value` shows it, with no string of its own.
    fn add_value(&mut self, key: &str, val: &str) {
        self.0.push(' ');
        self.0.push_str(key);
        self.0.push('=');
        push_value(self.0, val);
    }

    /// ` key` then `rest` (which brings its own `=`): keys made of two
    /// parts with no string of their own.
    fn add_display(&mut self, key: &str, rest: &str) {
        self.0.push(' ');
        self.0.push_str(key);
        self.0.push_str(rest);
    }

    /// ` key=` then whatever `val` displays as.
    fn add_fmt(&mut self, key: &str, val: std::fmt::Arguments<'_>) {
        use std::fmt::Write as _;
        self.0.push(' ');
        self.0.push_str(key);
        self.0.push('=');
        let _ = self.0.write_fmt(val);
    }
}

/// The text view by default: one short tcpdump-like line, no trailing
/// newline. Time, client > server, class, outcome, TLS version, basis,
/// then who: the identities seen in clear, else the SNI; a mesh, a
/// resumption, a plaintext flow's application line. The evidence and the
/// reason are `text_line_detailed`'s (`-v`).
pub fn text_line(v: &Verdict) -> String {
    let mut s = String::with_capacity(160);
    compact_into(&mut s, v, None, &mut SecondText::default());
    s
}

/// The text view of one verdict as the printer writes it: with the
/// flow's workloads (`--k8s-pods`) after its class and outcome, and with
/// the evidence and reason when `detailed` (`-v`).
pub fn text_line_placed(v: &Verdict, placed: Option<&Placement>, detailed: bool) -> String {
    let mut s = String::with_capacity(if detailed { 400 } else { 200 });
    text_line_into(&mut s, v, placed, detailed, &mut SecondText::default());
    s
}

/// `text_line_placed` appended to `s`: the printer reuses one buffer for
/// every line.
fn text_line_into(
    s: &mut String,
    v: &Verdict,
    placed: Option<&Placement>,
    detailed: bool,
    clock: &mut SecondText,
) {
    compact_into(s, v, placed, clock);
    if detailed {
        detail_into(s, v);
    }
}

fn compact_into(s: &mut String, v: &Verdict, placed: Option<&Placement>, clock: &mut SecondText) {
    push_date_time(s, v.ts, clock);
    push_endpoints(s, v.is_ipv6(), &v.client, server_text(v));
    s.push(' ');
    push_padded(s, v.class.as_str(), 9);
    s.push(' ');
    push_padded(s, v.outcome.as_str(), 10);
    if let Some(p) = placed {
        s.push_str(&workloads::text_tokens(p, value));
    }
    let mut t = Tokens(s);
    if let Some(who) = v.rejected_by {
        t.add("rejected_by", who.as_str());
    }
    match (v.tls_version, v.tls_offered) {
        (Some(ver), _) => t.add("tls", &version_text(ver)),
        (None, Some(offer)) => t.add("tls_offered", &version_text(offer)),
        (None, None) => {}
    }
    if v.basis != Basis::None {
        t.add("basis", v.basis.as_str());
    }
    let mut ids = false;
    for (key, cert) in [
        ("client_id", &v.client_certificate),
        ("server_id", &v.server_certificate),
    ] {
        let Some(cert) = cert else { continue };
        ids = true;
        t.add_value(key, &cert.id());
        match cert.validity_at(v.ts) {
            Some(Validity::Expired) => t.add_display(key, "_validity=expired"),
            Some(Validity::NotYetValid) => t.add_display(key, "_validity=not-yet-valid"),
            _ => {}
        }
    }
    if let (false, Some(sni)) = (ids, &v.sni) {
        t.add_value("sni", sni);
    }
    if let Some(m) = &v.mesh {
        t.add("mesh", m.mesh.as_str());
    }
    if v.resumed {
        t.add("resumed", "yes");
    }
    if let (Class::Plaintext, Some(app)) = (v.class, &v.app_proto) {
        t.add_value("app", app);
    }
}

/// The text view with `-v`: the default line, then the evidence behind
/// it, the Community ID and the reason.
pub fn text_line_detailed(v: &Verdict) -> String {
    text_line_placed(v, None, true)
}

/// The evidence, Community ID and reason a `-v` line adds.
fn detail_into(s: &mut String, v: &Verdict) {
    let shown_ids = v.client_certificate.is_some() || v.server_certificate.is_some();
    let mut t = Tokens(s);
    if let Some(req) = v.cert_requested {
        t.add("cert_req", if req { "yes" } else { "no" });
    }
    match v.client_cert {
        ClientCert::Sent { count, .. } => t.add_fmt("client_cert", format_args!("sent({count})")),
        ClientCert::SentEncrypted { .. } => t.add("client_cert", "sent(encrypted)"),
        ClientCert::Empty | ClientCert::NotSent => t.add("client_cert", v.client_cert.as_str()),
        ClientCert::Unknown => {}
    }
    if let Some(h) = &v.identity_hint {
        t.add_value(h.kind.as_str(), &h.value);
    }
    if let Some(p) = &v.proxy_identity {
        t.add_value("proxy_id", p);
    }
    if let Some(f) = &v.flight {
        t.add_fmt("flight", format_args!("{}B/{}", f.bytes, f.records.len()));
    }
    if let Some(a) = &v.alert {
        t.add_value("alert", &a.name());
        t.add("from", if a.from_server { "server" } else { "client" });
    }
    if v.renegotiated {
        t.add("renegotiated", "yes");
    }
    if let Some(p) = &v.starttls {
        t.add_value("starttls", p);
    }
    if let (true, Some(sni)) = (shown_ids, &v.sni) {
        t.add_value("sni", sni);
    }
    if !v.alpn_offered.is_empty() {
        t.add("alpn", &list_value(&v.alpn_offered));
    }
    if let Some(a) = &v.alpn_selected {
        t.add_value("alpn_sel", a);
    }
    if let (false, Some(app)) = (v.class == Class::Plaintext, &v.app_proto) {
        t.add_value("app", app);
    }
    if let Some(id) = community_id(&v.client, &v.server) {
        t.add("community_id", &id);
    }
    // Escaped straight into the line: the reason is the longest token.
    t.0.push_str(" reason=\"");
    escape_into(t.0, &v.reason, &[]);
    t.0.push('"');
}

/// The JSON view of one verdict: field names and order are stable for
/// scripts (`jq`), so this is a struct, not a map.
#[derive(Debug, Serialize)]
pub struct JsonVerdict<'a> {
    /// `verdict` (`close` lines and the `summary` object say otherwise).
    pub event: &'static str,
    pub ts: String,
    pub first_seen: String,
    pub client: String,
    pub server: String,
    /// `--k8s-pods`: each end's workload (fields null when unknown) and
    /// the SPIFFE ids that are not their pod's; absent without a pods list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_workload: Option<JsonWorkload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_workload: Option<JsonWorkload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_mismatch: Option<Option<Vec<JsonMismatch<'a>>>>,
    /// The iptables REDIRECT target (`server` is the original
    /// destination); the key is left out when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirected_to: Option<String>,
    pub ip_version: u8,
    /// The flow's Community ID (v1, seed 0), shared with Zeek and Suricata.
    pub community_id: Option<String>,
    pub class: &'static str,
    pub outcome: &'static str,
    pub basis: &'static str,
    /// Basis `decrypted` (TLS 1.3): the class the size rule alone gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inferred_class: Option<&'static str>,
    /// Negotiated (a ServerHello was seen), else null.
    pub tls_version: Option<String>,
    /// The client's highest offer (a ClientHello was seen), else null.
    pub tls_offered: Option<String>,
    pub sni: Option<&'a str>,
    pub alpn_offered: &'a [String],
    pub alpn_selected: Option<&'a str>,
    pub cert_requested: Option<bool>,
    /// `sent`, `empty`, `none`, `unknown`.
    pub client_cert_status: &'static str,
    /// Certificates sent; 0 for an empty or absent Certificate; null unknown.
    pub client_cert_count: Option<u32>,
    pub client_id: Option<String>,
    pub server_id: Option<String>,
    /// The leaf certificates seen in clear (TLS <= 1.2), or null.
    pub client_cert: Option<JsonCert<'a>>,
    pub server_cert: Option<JsonCert<'a>>,
    pub mesh: Option<&'static str>,
    pub mesh_evidence: Option<&'a str>,
    pub identity_hint: Option<JsonHint<'a>>,
    pub proxy_identity: Option<&'a str>,
    pub flight_bytes: Option<u32>,
    pub flight_records: Option<&'a [u16]>,
    pub alert: Option<String>,
    pub alert_from: Option<&'static str>,
    /// Outcome `rejected`: `client` or `server`, who refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<&'static str>,
    pub resumed: bool,
    pub renegotiated: bool,
    pub starttls: Option<&'a str>,
    pub app_proto: Option<&'a str>,
    pub reason: &'a str,
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub packets: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_to_server: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_to_client: Option<&'a str>,
}

impl<'a> JsonVerdict<'a> {
    pub fn new(v: &'a Verdict) -> Self {
        JsonVerdict {
            event: "verdict",
            ts: v.ts.rfc3339(),
            first_seen: v.first_seen.rfc3339(),
            client: v.client.to_string(),
            server: v.server.to_string(),
            client_workload: None,
            server_workload: None,
            identity_mismatch: None,
            redirected_to: v.redirected_to.map(|e| e.to_string()),
            ip_version: if v.is_ipv6() { 6 } else { 4 },
            community_id: community_id(&v.client, &v.server),
            class: v.class.as_str(),
            outcome: v.outcome.as_str(),
            basis: v.basis.as_str(),
            inferred_class: v.inferred.map(|c| c.as_str()),
            tls_version: v.tls_version.map(|n| version_text(n).into_owned()),
            tls_offered: v.tls_offered.map(|n| version_text(n).into_owned()),
            sni: v.sni.as_deref(),
            alpn_offered: &v.alpn_offered,
            alpn_selected: v.alpn_selected.as_deref(),
            cert_requested: v.cert_requested,
            client_cert_status: v.client_cert.as_str(),
            client_id: v.client_certificate.as_ref().map(CertSeen::id),
            server_id: v.server_certificate.as_ref().map(CertSeen::id),
            client_cert: v
                .client_certificate
                .as_ref()
                .map(|c| JsonCert::new(c, v.ts)),
            server_cert: v
                .server_certificate
                .as_ref()
                .map(|c| JsonCert::new(c, v.ts)),
            mesh: v.mesh.as_ref().map(|m| m.mesh.as_str()),
            mesh_evidence: v.mesh.as_ref().map(|m| m.evidence.as_str()),
            identity_hint: v.identity_hint.as_ref().map(|h| JsonHint {
                kind: h.kind.as_str(),
                value: &h.value,
            }),
            proxy_identity: v.proxy_identity.as_deref(),
            client_cert_count: match v.client_cert {
                ClientCert::Sent { count, .. } => Some(count),
                ClientCert::Empty | ClientCert::NotSent => Some(0),
                // Encrypted: a certificate was sent, how many is not visible.
                ClientCert::SentEncrypted { .. } | ClientCert::Unknown => None,
            },
            flight_bytes: v.flight.as_ref().map(|f| f.bytes),
            flight_records: v.flight.as_ref().map(|f| f.records.as_slice()),
            alert: v.alert.as_ref().map(Alert::name),
            alert_from: v
                .alert
                .as_ref()
                .map(|a| if a.from_server { "server" } else { "client" }),
            rejected_by: v.rejected_by.map(Party::as_str),
            resumed: v.resumed,
            renegotiated: v.renegotiated,
            starttls: v.starttls.as_deref(),
            app_proto: v.app_proto.as_deref(),
            reason: &v.reason,
            bytes_to_server: v.bytes_to_server,
            bytes_to_client: v.bytes_to_client,
            packets: v.packets,
            preview_to_server: v.preview_to_server.as_deref(),
            preview_to_client: v.preview_to_client.as_deref(),
        }
    }

    /// With the flow's workloads (`--k8s-pods`).
    pub fn placed(mut self, p: &'a Placement) -> Self {
        self.client_workload = Some(JsonWorkload::of(p.client.as_ref()));
        self.server_workload = Some(JsonWorkload::of(p.server.as_ref()));
        self.identity_mismatch = Some(workloads::json_mismatches(p));
        self
    }
}

/// A certificate in the JSON view. `parsed: false` (all else null) for
/// bytes that are not X.509.
#[derive(Debug, Serialize)]
pub struct JsonCert<'a> {
    pub parsed: bool,
    pub id: String,
    pub subject: Option<&'a str>,
    pub sans: Option<&'a [String]>,
    pub issuer: Option<&'a str>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub sha256: Option<&'a str>,
    /// At the verdict's packet time: `valid`, `expired`, `not-yet-valid`.
    pub validity: Option<&'static str>,
}

impl<'a> JsonCert<'a> {
    fn new(c: &'a CertSeen, at: Timestamp) -> Self {
        let validity = c.validity_at(at).map(|v| match v {
            Validity::Valid => "valid",
            Validity::Expired => "expired",
            Validity::NotYetValid => "not-yet-valid",
        });
        let time = |secs: i64| Timestamp(secs.saturating_mul(1_000_000)).rfc3339();
        match c {
            CertSeen::Parsed(p) => JsonCert {
                parsed: true,
                id: p.id(),
                subject: Some(&p.subject),
                sans: Some(&p.sans),
                issuer: Some(&p.issuer),
                not_before: Some(time(p.not_before)),
                not_after: Some(time(p.not_after)),
                sha256: Some(&p.sha256),
                validity,
            },
            CertSeen::Unparsable => JsonCert {
                parsed: false,
                id: c.id(),
                subject: None,
                sans: None,
                issuer: None,
                not_before: None,
                not_after: None,
                sha256: None,
                validity,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct JsonHint<'a> {
    pub kind: &'static str,
    pub value: &'a str,
}

/// Identities seen in clear for a flow, shown on its close line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseIds {
    pub client_id: Option<std::sync::Arc<str>>,
    pub server_id: Option<std::sync::Arc<str>>,
}

/// The text view of a close (`--close`): like a verdict line, with `close`
/// before the class, so `grep ': close '` picks them out.
pub fn close_line(c: &FlowClose, ids: &CloseIds) -> String {
    let mut s = String::with_capacity(160);
    close_line_into(&mut s, c, ids, &mut SecondText::default());
    s
}

/// `close_line` appended to `s` (the printer's reused buffer).
fn close_line_into(s: &mut String, c: &FlowClose, ids: &CloseIds, clock: &mut SecondText) {
    push_date_time(s, c.ts, clock);
    push_endpoints(
        s,
        c.is_ipv6(),
        &c.client,
        ServerVia(&c.server, c.redirected_to),
    );
    s.push_str(" close ");
    push_padded(s, c.decided.class.as_str(), 9);
    s.push(' ');
    push_padded(s, c.decided.outcome.as_str(), 10);
    s.push_str(" ended=");
    s.push_str(c.ending.as_str());
    s.push_str(" duration=");
    s.push_str(&human_micros(c.duration_micros()));
    let mut digits = itoa::Buffer::new();
    for (key, n) in [
        (" bytes_to_server=", c.bytes_to_server),
        (" bytes_to_client=", c.bytes_to_client),
        (" packets=", c.packets),
    ] {
        s.push_str(key);
        s.push_str(digits.format(n));
    }
    if c.decided.basis != Basis::None {
        s.push_str(" basis=");
        s.push_str(c.decided.basis.as_str());
    }
    if let Some(m) = c.decided.mesh {
        s.push_str(" mesh=");
        s.push_str(m.as_str());
    }
    for (key, id) in [("client_id", &ids.client_id), ("server_id", &ids.server_id)] {
        if let Some(id) = id {
            s.push(' ');
            s.push_str(key);
            s.push('=');
            push_value(s, id);
        }
    }
}

/// The JSON view of a close.
#[derive(Debug, Serialize)]
pub struct JsonClose<'a> {
    /// Always `close`.
    pub event: &'static str,
    pub ts: String,
    pub first_seen: String,
    pub client: String,
    pub server: String,
    /// As on the verdict: left out when the connection was not redirected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirected_to: Option<String>,
    pub ip_version: u8,
    pub community_id: Option<String>,
    pub class: &'static str,
    pub outcome: &'static str,
    pub basis: &'static str,
    pub mesh: Option<&'static str>,
    pub ended: &'static str,
    pub duration_us: u64,
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub packets: u64,
    pub client_id: Option<&'a str>,
    pub server_id: Option<&'a str>,
    /// With workloads (`--k8s-pods`, `--k8s`), as on the verdict; left out
    /// without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_workload: Option<JsonWorkload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_workload: Option<JsonWorkload<'a>>,
}

impl<'a> JsonClose<'a> {
    /// With the flow's workloads.
    pub fn placed(mut self, p: &'a Placement) -> Self {
        self.client_workload = Some(JsonWorkload::of(p.client.as_ref()));
        self.server_workload = Some(JsonWorkload::of(p.server.as_ref()));
        self
    }

    pub fn new(c: &FlowClose, ids: &'a CloseIds) -> Self {
        JsonClose {
            event: "close",
            ts: c.ts.rfc3339(),
            first_seen: c.first_seen.rfc3339(),
            client: c.client.to_string(),
            server: c.server.to_string(),
            redirected_to: c.redirected_to.map(|e| e.to_string()),
            ip_version: if c.is_ipv6() { 6 } else { 4 },
            community_id: community_id(&c.client, &c.server),
            class: c.decided.class.as_str(),
            outcome: c.decided.outcome.as_str(),
            basis: c.decided.basis.as_str(),
            mesh: c.decided.mesh.map(|m| m.as_str()),
            ended: c.ending.as_str(),
            duration_us: c.duration_micros(),
            bytes_to_server: c.bytes_to_server,
            bytes_to_client: c.bytes_to_client,
            packets: c.packets,
            client_id: ids.client_id.as_deref(),
            server_id: ids.server_id.as_deref(),
            client_workload: None,
            server_workload: None,
        }
    }
}

/// `-A` lines under a verdict: each line of each direction's preview,
/// indented and marked `>` (client to server) or `<`, escaped like the
/// rest of the text view.
fn preview_into(s: &mut String, v: &Verdict) {
    for (mark, text) in [(">", &v.preview_to_server), ("<", &v.preview_to_client)] {
        let Some(text) = text else { continue };
        for line in text.lines().filter(|l| !l.is_empty()) {
            s.push_str("    ");
            s.push_str(mark);
            s.push(' ');
            escape_into(s, line, &[]);
            s.push('\n');
        }
    }
}

/// Writes verdicts, one per line, in the chosen view.
pub struct Printer<W: Write> {
    out: BufWriter<W>,
    format: Format,
    line_buffered: bool,
    /// `--k8s-pods`, `--k8s`: name each flow's workloads.
    workloads: Option<Shared>,
    /// Text lines with their evidence and reason (`-v`).
    detailed: bool,
    /// The text line being written, kept between lines so printing a
    /// verdict does not allocate one.
    line: String,
    /// The last line's second, formatted (text lines).
    clock: SecondText,
}

impl<W: Write> Printer<W> {
    /// `line_buffered`: flush after every line (`-l`, or stdout is a terminal).
    pub fn new(out: W, format: Format, line_buffered: bool) -> Self {
        Printer {
            out: BufWriter::with_capacity(64 * 1024, out),
            format,
            line_buffered,
            workloads: None,
            detailed: false,
            line: String::with_capacity(512),
            clock: SecondText::default(),
        }
    }

    /// Name each flow's workloads from `dir` (`--k8s-pods`).
    pub fn with_workloads(mut self, dir: Shared) -> Self {
        self.workloads = Some(dir);
        self
    }

    /// Text lines carry their evidence and reason (`-v`); JSON always does.
    #[must_use]
    pub fn detailed(mut self, on: bool) -> Self {
        self.detailed = on;
        self
    }

    pub fn print(&mut self, v: &Verdict) -> io::Result<()> {
        let placed = self.workloads.as_ref().map(|d| Placement::of(&d.read(), v));
        match self.format {
            Format::Text => {
                self.line.clear();
                text_line_into(
                    &mut self.line,
                    v,
                    placed.as_ref(),
                    self.detailed,
                    &mut self.clock,
                );
                if v.preview_to_server.is_some() || v.preview_to_client.is_some() {
                    let start = self.line.len();
                    self.line.push('\n');
                    preview_into(&mut self.line, v);
                    // As many preview lines as there are, without the last
                    // newline; no separator when there are none.
                    let end = if self.line.len() == start + 1 {
                        start
                    } else {
                        self.line.trim_end_matches('\n').len()
                    };
                    self.line.truncate(end);
                }
                self.out.write_all(self.line.as_bytes())?;
            }
            Format::Json => {
                let json = JsonVerdict::new(v);
                match &placed {
                    Some(p) => write_json(&mut self.out, &json.placed(p))?,
                    None => write_json(&mut self.out, &json)?,
                }
            }
        }
        self.out.write_all(b"\n")?;
        if self.line_buffered {
            self.out.flush()?;
        }
        Ok(())
    }

    /// One close line (`--close`), in the chosen view.
    pub fn print_close(&mut self, c: &FlowClose, ids: &CloseIds) -> io::Result<()> {
        // Placed at the flow's first packet, as its verdict was.
        let placed = self
            .workloads
            .as_ref()
            .map(|d| Placement::at(&d.read(), c.client, c.server, c.first_seen));
        match self.format {
            Format::Text => {
                self.line.clear();
                close_line_into(&mut self.line, c, ids, &mut self.clock);
                if let Some(p) = &placed {
                    self.line.push_str(&workloads::text_tokens(p, value));
                }
                if let Some(id) = community_id(&c.client, &c.server).filter(|_| self.detailed) {
                    self.line.push_str(" community_id=");
                    self.line.push_str(&id);
                }
                self.out.write_all(self.line.as_bytes())?;
            }
            Format::Json => {
                let json = JsonClose::new(c, ids);
                match &placed {
                    Some(p) => write_json(&mut self.out, &json.placed(p))?,
                    None => write_json(&mut self.out, &json)?,
                }
            }
        }
        self.out.write_all(b"\n")?;
        if self.line_buffered {
            self.out.flush()?;
        }
        Ok(())
    }

    /// A block of text made elsewhere (the edges summary), written as is,
    /// then flushed: it is the end of a run or an answer to SIGUSR1.
    pub fn print_block(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flush and hand back the writer (tests read what was printed).
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// How verdicts are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// When stdout is flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffering {
    /// After every line (`-l`).
    Line,
    /// Line-buffered on a terminal, block-buffered otherwise; the caller,
    /// which can look at stdout, decides.
    Auto,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::verdict::{Class, Flight, Outcome};
    use serde_json::{Value, json};

    /// The escaping rule, one char at a time, as the doc comment states it.
    fn escape_reference(s: &str, extra: &[char]) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_ascii_control() || (c.is_ascii() && extra.contains(&c)) => {
                    out.push_str(&format!("\\x{:02x}", u32::from(c)))
                }
                c if c.is_control() || crate::report::escape::is_hostile(c) => {
                    out.push_str(&format!("\\u{{{:x}}}", u32::from(c)))
                }
                c => out.push(c),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn endpoints_and_times_are_written_as_their_display_writes_them(
            v4 in proptest::num::u32::ANY,
            v6 in proptest::num::u128::ANY,
            port in proptest::num::u16::ANY,
            micros in proptest::num::i64::ANY,
        ) {
            for ip in [std::net::IpAddr::from(v4.to_be_bytes()), std::net::IpAddr::from(v6.to_be_bytes())] {
                let e = Endpoint { ip, port };
                let mut s = String::new();
                push_endpoint(&mut s, &e);
                proptest::prop_assert_eq!(s, e.to_string());
            }
            let mut s = String::new();
            push_date_time(&mut s, Timestamp(micros), &mut SecondText::default());
            proptest::prop_assert_eq!(s, Timestamp(micros).date_time());
        }

        /// Times in the formatter's range, near each other (as lines are)
        /// and at its ends, through one cache: each as `date_time` says.
        #[test]
        fn cached_seconds_write_what_date_time_writes(
            start in proptest::prop_oneof![
                0..4_000_000_000i64,
                1_700_000_000_000_000..1_800_000_000_000_000i64,
                CACHED_BELOW - 3_000_000..CACHED_BELOW + 3_000_000,
                proptest::num::i64::ANY,
            ],
            steps in proptest::collection::vec(-1_500_000..3_000_000i64, 1..40),
        ) {
            let mut cache = SecondText::default();
            let mut t = start;
            for step in steps {
                t = t.saturating_add(step);
                let mut s = String::from("x");
                push_date_time(&mut s, Timestamp(t), &mut cache);
                proptest::prop_assert_eq!(&s[1..], Timestamp(t).date_time());
            }
        }

        #[test]
        fn escaping_matches_the_rule(s in "(?s).{0,64}", comma in proptest::bool::ANY) {
            let extra: &[char] = if comma { &[','] } else { &[] };
            let mut out = String::new();
            escape_into(&mut out, &s, extra);
            proptest::prop_assert_eq!(&out, &escape_reference(&s, extra));
            proptest::prop_assert!(!out.chars().any(|c| c.is_control() || is_hostile(c)));
        }
    }

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    fn base() -> Verdict {
        Verdict {
            class: Class::Mtls,
            outcome: Outcome::Ok,
            basis: Basis::Inferred,
            tls_version: Some(0x0304),
            sni: Some("foo".into()),
            alpn_offered: vec!["h2".into(), "http/1.1".into()],
            flight: Some(Flight {
                records: vec![1100, 60, 13],
                bytes: 1188,
            }),
            reason: "client flight of 1188B holds a certificate".into(),
            bytes_to_server: 2000,
            bytes_to_client: 5000,
            packets: 12,
            ..Verdict::new(
                ep("10.0.0.1", 40000),
                ep("10.0.0.2", 443),
                Timestamp::from_secs_micros(1_700_000_000, 2),
                Timestamp::from_secs_micros(1_700_000_000, 42),
            )
        }
    }

    #[test]
    fn a_redirected_flow_names_the_original_destination_and_the_target() {
        let v = Verdict {
            redirected_to: Some(ep("127.0.0.1", 15001)),
            ..base()
        };
        let line = text_line(&v);
        assert!(
            line.contains(" 10.0.0.1:40000 > 10.0.0.2:443 via=127.0.0.1:15001: mtls "),
            "{line}"
        );
        let j: serde_json::Value = serde_json::to_value(JsonVerdict::new(&v)).unwrap();
        assert_eq!(j["server"], "10.0.0.2:443");
        assert_eq!(j["redirected_to"], "127.0.0.1:15001");
        // Not redirected: no key at all, so older JSON lines stay the same.
        let j: serde_json::Value = serde_json::to_value(JsonVerdict::new(&base())).unwrap();
        assert!(j.get("redirected_to").is_none());
    }

    #[test]
    fn text_tls13_inferred() {
        assert_eq!(
            text_line(&base()),
            "2023-11-14 22:13:20.000042 IP 10.0.0.1:40000 > 10.0.0.2:443: mtls      ok         \
             tls=1.3 basis=inferred sni=foo"
        );
        assert_eq!(
            text_line_detailed(&base()),
            "2023-11-14 22:13:20.000042 IP 10.0.0.1:40000 > 10.0.0.2:443: mtls      ok         \
             tls=1.3 basis=inferred sni=foo flight=1188B/3 alpn=h2,http/1.1 \
             community_id=1:UWHKJ/x6OQ1YiVv4rIl0t3yhjg8= reason=\"client flight of 1188B holds a certificate\""
        );
    }

    #[test]
    fn text_tls12_rejected_ipv6_all_tokens() {
        let v = Verdict {
            client: ep("2001:db8::1", 50000),
            server: ep("2001:db8::2", 8443),
            class: Class::Tls,
            outcome: Outcome::Rejected,
            basis: Basis::Observed,
            tls_version: Some(0x0303),
            cert_requested: Some(true),
            client_cert: ClientCert::Empty,
            flight: None,
            alert: Some(Alert {
                level: 2,
                description: 116,
                from_server: true,
            }),
            resumed: true,
            starttls: Some("smtp".into()),
            alpn_selected: Some("h2".into()),
            app_proto: Some("http GET /x host=a".into()),
            reason: "server asked, client declined".into(),
            ..base()
        };
        assert_eq!(
            text_line(&v),
            "2023-11-14 22:13:20.000042 IP6 [2001:db8::1]:50000 > [2001:db8::2]:8443: tls       rejected   \
             tls=1.2 basis=observed sni=foo resumed=yes"
        );
        assert_eq!(
            text_line_detailed(&v),
            "2023-11-14 22:13:20.000042 IP6 [2001:db8::1]:50000 > [2001:db8::2]:8443: tls       rejected   \
             tls=1.2 basis=observed sni=foo resumed=yes cert_req=yes client_cert=empty \
             alert=certificate_required from=server starttls=smtp alpn=h2,http/1.1 alpn_sel=h2 \
             app=\"http GET /x host=a\" \
             community_id=1:iLmQ1l0ylGy5UkJI7y4NT/jWvWc= reason=\"server asked, client declined\""
        );
    }

    #[test]
    fn text_minimal_unknown() {
        let v = Verdict {
            class: Class::Unknown,
            outcome: Outcome::Unknown,
            basis: Basis::None,
            tls_version: Some(0x7a7a),
            sni: None,
            alpn_offered: vec![],
            flight: None,
            client_cert: ClientCert::Sent {
                count: 2,
                bytes: 900,
            },
            reason: "midstream".into(),
            ..base()
        };
        assert_eq!(
            text_line_detailed(&v),
            "2023-11-14 22:13:20.000042 IP 10.0.0.1:40000 > 10.0.0.2:443: unknown   unknown    \
             tls=0x7a7a client_cert=sent(2) community_id=1:UWHKJ/x6OQ1YiVv4rIl0t3yhjg8= reason=\"midstream\""
        );
    }

    #[test]
    fn hostile_bytes_are_escaped_in_text() {
        let v = Verdict {
            sni: Some("evil\n2023-01-01 fake line\u{1b}[31m\"x\\\u{202e}\u{0}".into()),
            alpn_offered: vec!["h2,fake".into(), "a b".into()],
            reason: "quote \" and\r\nnewline".into(),
            ..base()
        };
        let line = text_line_detailed(&v);
        assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line:?}");
        assert!(
            line.contains(r#"sni="evil\n2023-01-01 fake line\x1b[31m\"x\\\u{202e}\x00""#),
            "{line}"
        );
        assert!(line.contains(r#"alpn="h2\x2cfake,a b""#), "{line}");
        assert!(
            line.ends_with(r#"reason="quote \" and\r\nnewline""#),
            "{line}"
        );
    }

    #[test]
    fn printable_non_ascii_is_shown_and_harmful_code_points_escaped() {
        // Issue 16 §2: `§` printed as `\u{a7}` before.
        let v = Verdict {
            sni: Some("caf\u{e9}-\u{a7}.example".into()),
            reason: "n\u{e9}e \u{9b}x \u{2028} \u{202e}".into(),
            ..base()
        };
        let line = text_line_detailed(&v);
        assert!(line.contains(" sni=caf\u{e9}-\u{a7}.example "), "{line}");
        assert!(
            line.ends_with("reason=\"n\u{e9}e \\u{9b}x \\u{2028} \\u{202e}\""),
            "{line}"
        );
        let spaced = Verdict {
            sni: Some("a\u{a0}b".into()),
            ..base()
        };
        assert!(
            text_line(&spaced).ends_with(" sni=\"a\u{a0}b\""),
            "a no-break space is quoted"
        );
    }

    #[test]
    fn community_id_follows_the_spec_and_joins_both_directions() {
        // The spec's TCP vector (community-id-spec, baseline tcp.pcap):
        // 128.232.110.120:34855 -> 66.35.250.204:80.
        let a = ep("128.232.110.120", 34855);
        let b = ep("66.35.250.204", 80);
        let id = community_id(&a, &b).unwrap();
        assert_eq!(id, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        assert_eq!(community_id(&b, &a).unwrap(), id, "direction-free");
        let v = base();
        let j: Value = serde_json::to_value(JsonVerdict::new(&v)).unwrap();
        let want = community_id(&v.client, &v.server).unwrap();
        assert_eq!(j["community_id"], want.as_str());
        assert!(text_line_detailed(&v).contains(&format!(" community_id={want} ")));
        assert!(!text_line(&v).contains("community_id"));
    }

    #[test]
    fn json_fields() {
        let v = Verdict {
            client: ep("::1", 50000),
            sni: Some("a\u{0}\n\"b".into()),
            alert: Some(Alert {
                level: 2,
                description: 42,
                from_server: false,
            }),
            ..base()
        };
        let line = serde_json::to_string(&JsonVerdict::new(&v)).unwrap();
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(
                r#"{"event":"verdict","ts":"2023-11-14T22:13:20.000042Z","first_seen":"#
            ),
            "{line}"
        );
        let j: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(j["ts"], "2023-11-14T22:13:20.000042Z");
        assert_eq!(j["first_seen"], "2023-11-14T22:13:20.000002Z");
        assert_eq!(j["client"], "[::1]:50000");
        assert_eq!(j["server"], "10.0.0.2:443");
        assert_eq!(j["ip_version"], 6);
        assert_eq!(j["class"], "mtls");
        assert_eq!(j["outcome"], "ok");
        assert_eq!(j["basis"], "inferred");
        assert_eq!(j["tls_version"], "1.3");
        assert_eq!(j["tls_offered"], Value::Null);
        assert_eq!(j["sni"], "a\u{0}\n\"b");
        assert_eq!(j["alpn_offered"], json!(["h2", "http/1.1"]));
        assert_eq!(j["alpn_selected"], Value::Null);
        assert_eq!(j["cert_requested"], Value::Null);
        assert_eq!(j["client_cert_status"], "unknown");
        assert_eq!(j["client_cert"], Value::Null);
        assert_eq!(j["client_cert_count"], Value::Null);
        assert_eq!(j["flight_bytes"], 1188);
        assert_eq!(j["flight_records"], json!([1100, 60, 13]));
        assert_eq!(j["alert"], "bad_certificate");
        assert_eq!(j["alert_from"], "client");
        assert_eq!(j["resumed"], false);
        assert_eq!(j["starttls"], Value::Null);
        assert_eq!(j["packets"], 12);
        assert_eq!(j["bytes_to_client"], 5000);
    }

    #[test]
    fn offered_version_only_when_none_negotiated() {
        let offered = Verdict {
            class: Class::Unknown,
            outcome: Outcome::Incomplete,
            basis: Basis::None,
            tls_version: None,
            tls_offered: Some(0x0304),
            flight: None,
            alpn_offered: vec![],
            sni: None,
            reason: "no ServerHello".into(),
            ..base()
        };
        assert_eq!(
            text_line_detailed(&offered),
            "2023-11-14 22:13:20.000042 IP 10.0.0.1:40000 > 10.0.0.2:443: unknown   incomplete \
             tls_offered=1.3 community_id=1:UWHKJ/x6OQ1YiVv4rIl0t3yhjg8= reason=\"no ServerHello\""
        );
        let j: Value = serde_json::to_value(JsonVerdict::new(&offered)).unwrap();
        assert_eq!(j["tls_version"], Value::Null);
        assert_eq!(j["tls_offered"], "1.3");
        // Negotiated: the text line shows only tls=, JSON carries both.
        let both = Verdict {
            tls_version: Some(0x0303),
            ..offered.clone()
        };
        assert!(
            text_line_detailed(&both).contains(" tls=1.2 "),
            "{}",
            text_line(&both)
        );
        assert!(!text_line(&both).contains("tls_offered"));
        let j: Value = serde_json::to_value(JsonVerdict::new(&both)).unwrap();
        assert_eq!(
            (&j["tls_version"], &j["tls_offered"]),
            (&json!("1.2"), &json!("1.3"))
        );
        // Plaintext: neither, and JSON still has both keys.
        let plain = Verdict {
            tls_offered: None,
            ..offered
        };
        assert!(!text_line(&plain).contains("tls"));
        let j: Value = serde_json::to_value(JsonVerdict::new(&plain)).unwrap();
        let o = j.as_object().unwrap();
        assert_eq!(
            (o.get("tls_version"), o.get("tls_offered")),
            (Some(&Value::Null), Some(&Value::Null))
        );
    }

    #[test]
    fn identities_mesh_and_hints_in_both_views() {
        use crate::classify::mesh::{Fingerprint, Hint, HintKind, Mesh};
        use crate::tls::identity::CertIdentity;
        let cert = CertIdentity {
            subject: String::new(),
            common_name: None,
            issuer: "O=cluster.local".into(),
            sans: vec!["URI:spiffe://cluster.local/ns/default/sa/productpage".into()],
            spiffe: Some("spiffe://cluster.local/ns/default/sa/productpage".into()),
            not_before: 1_600_000_000,
            not_after: 1_650_000_000, // before the verdict's time: expired
            sha256: "ab".repeat(32),
        };
        let v = Verdict {
            client_certificate: Some(CertSeen::Parsed(cert)),
            server_certificate: Some(CertSeen::Unparsable),
            mesh: Some(Fingerprint {
                mesh: Mesh::IstioSidecar,
                evidence: "ALPN istio".into(),
            }),
            identity_hint: Some(Hint {
                kind: HintKind::DestinationService,
                value: "reviews.default.svc.cluster.local:9080".into(),
            }),
            ..base()
        };
        let line = text_line_detailed(&v);
        assert!(line.contains(" client_id=spiffe://cluster.local/ns/default/sa/productpage client_id_validity=expired server_id=? "), "{line}");
        assert!(line.contains(" mesh=istio-sidecar destination-service-hint=reviews.default.svc.cluster.local:9080 "), "{line}");
        assert!(
            text_line(&v).ends_with(" server_id=? mesh=istio-sidecar"),
            "{line}"
        );
        let j: Value = serde_json::to_value(JsonVerdict::new(&v)).unwrap();
        assert_eq!(
            j["client_id"],
            "spiffe://cluster.local/ns/default/sa/productpage"
        );
        assert_eq!(j["client_cert"]["validity"], "expired");
        assert_eq!(j["client_cert"]["subject"], "");
        assert_eq!(j["client_cert"]["not_after"], "2022-04-15T05:20:00.000000Z");
        assert_eq!(j["server_cert"]["parsed"], false);
        assert_eq!(j["server_id"], "?");
        assert_eq!(j["mesh"], "istio-sidecar");
        assert_eq!(j["mesh_evidence"], "ALPN istio");
        assert_eq!(j["identity_hint"]["kind"], "destination-service-hint");
    }

    #[test]
    fn close_lines_escape_hostile_identities_in_both_views() {
        // Issue 13 §3: the ids of a close line come from certificates.
        let ep = |port| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        let close = FlowClose {
            ts: Timestamp(5),
            first_seen: Timestamp(0),
            client: ep(1),
            server: ep(2),
            redirected_to: None,
            ending: crate::verdict::Ending::Fin,
            decided: crate::verdict::Decided {
                class: Class::Mtls,
                outcome: Outcome::Ok,
                basis: Basis::Observed,
                mesh: None,
            },
            bytes_to_server: 0,
            bytes_to_client: 0,
            packets: 0,
        };
        for c in ['\u{7f}', '\u{9b}', '\u{2028}', '\u{202e}', '\u{2069}'] {
            let ids = CloseIds {
                client_id: Some(format!("c{c}").into()),
                server_id: Some(format!("s{c}").into()),
            };
            for (format, escape) in [
                (Format::Json, format!("\\u{:04x}", u32::from(c))),
                (Format::Text, escape_text(&c.to_string())),
            ] {
                let mut p = Printer::new(Vec::new(), format, false);
                p.print_close(&close, &ids).unwrap();
                let out = String::from_utf8(p.into_inner().unwrap()).unwrap();
                assert!(!out.contains(c), "{format:?}: raw {c:?} in {out}");
                assert_eq!(out.matches(&escape).count(), 2, "{format:?}: {out}");
            }
        }
    }

    #[test]
    fn printer_writes_one_line_per_verdict() {
        for (format, line_buffered) in [(Format::Text, false), (Format::Json, true)] {
            let mut p = Printer::new(Vec::new(), format, line_buffered);
            p.print(&base()).unwrap();
            p.print(&base()).unwrap();
            let out = String::from_utf8(p.into_inner().unwrap()).unwrap();
            assert_eq!(out.lines().count(), 2, "{out}");
            assert!(out.ends_with('\n'));
        }
    }
}
