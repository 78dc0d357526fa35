//! Service-mesh fingerprints: recognising Istio (sidecar and ambient HBONE)
//! and Linkerd from what a connection shows in clear (wire-facts §5, §7).
//!
//! This module owns three pure, I/O-free readings of already-parsed facts:
//! which mesh a ClientHello (SNI, offered ALPN, server port) or a plaintext
//! HTTP/2 preface on 15009 points to; the identity *hints* a ClientHello
//! carries when TLS 1.3 encrypts the certificates; and the PROXY protocol v2
//! header ztunnel writes after an HBONE tunnel (haproxy proxy-protocol.txt
//! §2.2), whose TLV 0xD0 carries the source SPIFFE identity.
//!
//! A fingerprint is evidence of who the client is, never proof of mTLS: it
//! must not turn a verdict into mTLS, only explain one. Hints are what the
//! client *asked for*, not an identity anyone proved. Invariants: nothing here
//! panics on input (no unwrap, no indexing), nothing allocates from a length
//! field, and every string taken from the wire is printable ASCII bounded to
//! [`MAX_TEXT`] characters.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest string taken from the wire (SNI, ALPN, identity), in characters.
pub const MAX_TEXT: usize = 256;

/// Istio ALPN tokens offered by Envoy sidecars (wire-facts §5).
const ISTIO_ALPN: [&str; 5] = [
    "istio",
    "istio-peer-exchange",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];
/// Linkerd's ALPN for opaque transport to the inbound proxy (port 4143).
const LINKERD_ALPN: &str = "transport.l5d.io/v1";
/// Istio's SNI for sidecar-to-sidecar mTLS: `outbound_.<port>_.<subset>_.<fqdn>`.
const ISTIO_SNI_PREFIX: &str = "outbound_.";
/// The fixed middle of a Linkerd identity SNI.
const LINKERD_SNI_MARK: &str = ".serviceaccount.identity.";
/// Istio ambient: ztunnel's HBONE mTLS port and its unencrypted (h2c) twin.
pub const HBONE_PORT: u16 = 15008;
const HBONE_H2C_PORT: u16 = 15009;

/// Which mesh data plane a connection looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mesh {
    /// Envoy sidecar to Envoy sidecar (Istio ALPN tokens or `outbound_.` SNI).
    IstioSidecar,
    /// ztunnel HBONE: TLS to 15008, ALPN h2, no SNI.
    IstioHbone,
    /// ztunnel HBONE without TLS: HTTP/2 preface on 15009.
    IstioHboneH2c,
    /// ztunnel's delivery to the workload: a PROXY v2 header whose TLV
    /// 0xD0 names the source identity, after HBONE mTLS (wire-facts §5).
    IstioAmbientLocal,
    /// linkerd2-proxy: identity SNI or the `transport.l5d.io/v1` ALPN.
    Linkerd,
}

impl Mesh {
    pub fn as_str(self) -> &'static str {
        match self {
            Mesh::IstioSidecar => "istio-sidecar",
            Mesh::IstioHbone => "istio-hbone",
            Mesh::IstioHboneH2c => "istio-hbone-h2c",
            Mesh::IstioAmbientLocal => "istio-ambient-local",
            Mesh::Linkerd => "linkerd",
        }
    }
}

/// A mesh and the clear-text facts that point to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub mesh: Mesh,
    /// Short human text, e.g. `ALPN istio-peer-exchange` or
    /// `port 15008, ALPN h2, no SNI`. Printable ASCII.
    pub evidence: String,
}

/// What an identity hint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HintKind {
    /// Linkerd's SNI is the identity the client expects the server to prove.
    ServerIdentity,
    /// Istio's `outbound_.` SNI names the destination service, port and subset.
    DestinationService,
}

impl HintKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HintKind::ServerIdentity => "server-identity-hint",
            HintKind::DestinationService => "destination-service-hint",
        }
    }
}

/// An identity hint from a ClientHello: what the client asked for, useful
/// when TLS 1.3 hides the certificates, but never a proven identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub kind: HintKind,
    /// Printable ASCII, at most [`MAX_TEXT`] characters.
    pub value: String,
}

/// Fingerprint a TLS connection from its ClientHello's clear fields and the
/// server port. An empty SNI counts as no SNI. When several rules match, the
/// most specific wins: Istio ALPN or SNI, then Linkerd, then HBONE by port.
pub fn fingerprint_tls(
    sni: Option<&str>,
    alpn_offered: &[String],
    server_port: u16,
) -> Option<Fingerprint> {
    let sni = sni.filter(|s| !s.is_empty());

    // Istio sidecar: Envoy offers istio ALPN tokens and/or the outbound_ SNI.
    // Report both when both are present, since together they are stronger.
    let istio_alpn = alpn_offered
        .iter()
        .find(|a| ISTIO_ALPN.contains(&a.as_str()));
    let istio_sni = sni.filter(|s| is_istio_sni(s));
    if istio_alpn.is_some() || istio_sni.is_some() {
        let parts: Vec<String> = istio_alpn
            .map(|a| format!("ALPN {}", printable(a.as_bytes())))
            .into_iter()
            .chain(istio_sni.map(|s| format!("SNI {}", printable(s.as_bytes()))))
            .collect();
        return Some(Fingerprint {
            mesh: Mesh::IstioSidecar,
            evidence: parts.join(", "),
        });
    }

    if let Some(s) = sni.filter(|s| linkerd_identity(s).is_some()) {
        return Some(Fingerprint {
            mesh: Mesh::Linkerd,
            evidence: format!("SNI {}", printable(s.as_bytes())),
        });
    }
    if alpn_offered.iter().any(|a| a == LINKERD_ALPN) {
        return Some(Fingerprint {
            mesh: Mesh::Linkerd,
            evidence: format!("ALPN {LINKERD_ALPN}"),
        });
    }

    // Ambient ztunnel: rustls to 15008 with ALPN h2 and no SNI at all. An
    // SNI on 15008 means something else is listening there.
    if server_port == HBONE_PORT && sni.is_none() && alpn_offered.iter().any(|a| a == "h2") {
        return Some(Fingerprint {
            mesh: Mesh::IstioHbone,
            evidence: format!("port {HBONE_PORT}, ALPN h2, no SNI"),
        });
    }
    None
}

/// Fingerprint a plaintext connection: the HTTP/2 connection preface on port
/// 15009 is unencrypted HBONE (h2c) between ztunnels.
pub fn fingerprint_plaintext(server_port: u16, h2_preface: bool) -> Option<Fingerprint> {
    (server_port == HBONE_H2C_PORT && h2_preface).then(|| Fingerprint {
        mesh: Mesh::IstioHboneH2c,
        evidence: format!("port {HBONE_H2C_PORT}, HTTP/2 preface in clear"),
    })
}

/// A PROXY v2 header carrying a source identity (TLV 0xD0) is ztunnel
/// handing a connection it received over HBONE mTLS to the workload: the
/// clear text that follows is on that local hop, not across the network.
pub fn fingerprint_proxy_identity(identity: &str) -> Fingerprint {
    Fingerprint {
        mesh: Mesh::IstioAmbientLocal,
        evidence: format!(
            "PROXY v2 TLV 0xD0 source identity {}",
            printable(identity.as_bytes())
        ),
    }
}

/// The identity hint a ClientHello's SNI gives, if it has a mesh shape:
/// Linkerd names the server identity it expects; Istio names the destination
/// service as `<fqdn>:<port>` plus ` subset <name>` when a subset is set.
pub fn identity_hint(sni: Option<&str>) -> Option<Hint> {
    let sni = sni.filter(|s| !s.is_empty())?;
    if let Some(dest) = istio_destination(sni) {
        let mut value = format!("{}:{}", dest.fqdn, dest.port);
        if let Some(subset) = dest.subset {
            value.push_str(" subset ");
            value.push_str(subset);
        }
        return Some(Hint {
            kind: HintKind::DestinationService,
            value: printable(value.as_bytes()),
        });
    }
    linkerd_identity(sni).map(|_| Hint {
        kind: HintKind::ServerIdentity,
        value: printable(sni.as_bytes()),
    })
}

fn is_istio_sni(sni: &str) -> bool {
    sni.get(..ISTIO_SNI_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ISTIO_SNI_PREFIX))
}

/// The parts of an Istio `outbound_.<port>_.<subset>_.<fqdn>` SNI (built by
/// Istio's `BuildDNSSrvSubsetKey`: the `|` of the cluster name becomes `_.`).
struct IstioDestination<'a> {
    port: u16,
    subset: Option<&'a str>,
    fqdn: &'a str,
}

/// With no subset the SNI reads `outbound_.9080_._.reviews...`: the subset
/// is the empty string between two `_.` separators.
fn istio_destination(sni: &str) -> Option<IstioDestination<'_>> {
    if !is_istio_sni(sni) {
        return None;
    }
    let rest = sni.get(ISTIO_SNI_PREFIX.len()..)?;
    let mut parts = rest.splitn(3, "_.");
    let port = parts.next()?.parse::<u16>().ok()?;
    let subset = parts.next()?;
    let fqdn = parts.next()?;
    if fqdn.is_empty() {
        return None;
    }
    let subset = (!subset.is_empty() && subset != "_").then_some(subset);
    Some(IstioDestination { port, subset, fqdn })
}

/// A Linkerd identity SNI
/// `<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`
/// (e.g. `web.emojivoto.serviceaccount.identity.linkerd.cluster.local`)
/// yields the workload's namespace. Every part must be non-empty, so a name
/// that merely contains the marker is not enough. The label after
/// `identity.` is the control plane's namespace, not the workload's.
fn linkerd_identity(sni: &str) -> Option<&str> {
    let lower = sni.to_ascii_lowercase();
    let at = lower.find(LINKERD_SNI_MARK)?;
    let before = sni.get(..at)?;
    let after = sni.get(at + LINKERD_SNI_MARK.len()..)?;
    let (sa, ns) = before.rsplit_once('.')?;
    let (control_ns, trust_domain) = after.split_once('.')?;
    let ok = !sa.is_empty() && !ns.is_empty() && !control_ns.is_empty() && !trust_domain.is_empty();
    ok.then_some(ns)
}

/// Bytes as printable ASCII (others become '.'), at most [`MAX_TEXT`] chars.
fn printable(b: &[u8]) -> String {
    b.iter()
        .take(MAX_TEXT)
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

/// A PROXY protocol v2 header, as ztunnel writes it after an HBONE tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyV2 {
    /// Bytes the header occupies (16 + its length field): the application
    /// stream starts after them.
    pub header_len: usize,
    /// TCP source and destination, for the PROXY command over TCP/IPv4 or
    /// TCP/IPv6 only (LOCAL, UDP, UNIX and UNSPEC leave them out).
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
    /// TLV 0xD0: ztunnel's source SPIFFE identity, printable and bounded.
    pub peer_identity: Option<String>,
}

/// proxy-protocol.txt §2.2: the 12-byte v2 signature.
const PROXY_V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// Signature, version/command, family, 2-byte length.
const PROXY_V2_FIXED: usize = 16;
/// The TLV ztunnel uses for the source workload's SPIFFE identity.
const TLV_PEER_IDENTITY: u8 = 0xD0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyCommand {
    Local,
    Proxy,
}

/// Parse a PROXY protocol v2 header at the start of `b`. `None` when it is
/// not one, is truncated, or its length cannot hold the addresses its family
/// declares. TLVs that overrun the header make the identity untrusted (None)
/// while the header itself, whose length is known, still parses.
pub fn parse_proxy_v2(b: &[u8]) -> Option<ProxyV2> {
    if b.get(..PROXY_V2_SIGNATURE.len())? != PROXY_V2_SIGNATURE {
        return None;
    }
    let ver_cmd = *b.get(12)?;
    let family = *b.get(13)?;
    let len = usize::from(u16::from_be_bytes([*b.get(14)?, *b.get(15)?]));

    // High nibble: version, must be 2. Low nibble: 0 LOCAL, 1 PROXY.
    if ver_cmd >> 4 != 2 {
        return None;
    }
    let command = match ver_cmd & 0x0F {
        0 => ProxyCommand::Local,
        1 => ProxyCommand::Proxy,
        _ => return None,
    };
    // High nibble: address family (UNSPEC, INET, INET6, UNIX) fixes the
    // address block size; low nibble: UNSPEC, STREAM, DGRAM.
    let addr_len = match family >> 4 {
        0x0 => 0,
        0x1 => 12,
        0x2 => 36,
        0x3 => 216,
        _ => return None,
    };
    if family & 0x0F > 2 {
        return None;
    }

    let header_len = PROXY_V2_FIXED + len;
    // Borrow only what the buffer holds: a lying length fails here.
    let block = b.get(PROXY_V2_FIXED..header_len)?;
    let mut out = ProxyV2 {
        header_len,
        source: None,
        destination: None,
        peer_identity: None,
    };

    let Some((addrs, tlvs)) = block.split_at_checked(addr_len) else {
        // LOCAL must be accepted whatever its address block (§2.2: the
        // receiver discards it); PROXY without room for its addresses lies.
        return match command {
            ProxyCommand::Local => Some(out),
            ProxyCommand::Proxy => None,
        };
    };
    if command == ProxyCommand::Proxy {
        let (src, dst) = match family {
            0x11 => inet4(addrs)?,
            0x21 => inet6(addrs)?,
            _ => (None, None),
        };
        out.source = src;
        out.destination = dst;
    }
    out.peer_identity = tlv_value(tlvs, TLV_PEER_IDENTITY).map(printable);
    Some(out)
}

type AddrPair = (Option<SocketAddr>, Option<SocketAddr>);

/// TCP/IPv4: src addr (4), dst addr (4), src port (2), dst port (2).
fn inet4(a: &[u8]) -> Option<AddrPair> {
    let src: [u8; 4] = a.get(0..4)?.try_into().ok()?;
    let dst: [u8; 4] = a.get(4..8)?.try_into().ok()?;
    let sport = u16::from_be_bytes(a.get(8..10)?.try_into().ok()?);
    let dport = u16::from_be_bytes(a.get(10..12)?.try_into().ok()?);
    Some((
        Some(SocketAddr::from((Ipv4Addr::from(src), sport))),
        Some(SocketAddr::from((Ipv4Addr::from(dst), dport))),
    ))
}

/// TCP/IPv6: src addr (16), dst addr (16), src port (2), dst port (2).
fn inet6(a: &[u8]) -> Option<AddrPair> {
    let src: [u8; 16] = a.get(0..16)?.try_into().ok()?;
    let dst: [u8; 16] = a.get(16..32)?.try_into().ok()?;
    let sport = u16::from_be_bytes(a.get(32..34)?.try_into().ok()?);
    let dport = u16::from_be_bytes(a.get(34..36)?.try_into().ok()?);
    Some((
        Some(SocketAddr::from((Ipv6Addr::from(src), sport))),
        Some(SocketAddr::from((Ipv6Addr::from(dst), dport))),
    ))
}

/// The first TLV of type `wanted` in `tlvs` (type 1 byte, length 2 bytes
/// big-endian, value). `None` if absent or if any TLV is malformed (a header
/// cut short or a value overrunning the block): a corrupt TLV area is not
/// trusted for any value in it.
fn tlv_value(mut tlvs: &[u8], wanted: u8) -> Option<&[u8]> {
    let mut found = None;
    while !tlvs.is_empty() {
        let (&kind, rest) = tlvs.split_first()?;
        let (len, rest) = rest.split_at_checked(2)?;
        let len = usize::from(u16::from_be_bytes(len.try_into().ok()?));
        let (value, rest) = rest.split_at_checked(len)?;
        if kind == wanted && found.is_none() {
            found = Some(value);
        }
        tlvs = rest;
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn alpn(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mesh_names() {
        let table = [
            (Mesh::IstioSidecar, "istio-sidecar"),
            (Mesh::IstioHbone, "istio-hbone"),
            (Mesh::IstioHboneH2c, "istio-hbone-h2c"),
            (Mesh::IstioAmbientLocal, "istio-ambient-local"),
            (Mesh::Linkerd, "linkerd"),
        ];
        for (mesh, name) in table {
            assert_eq!(mesh.as_str(), name);
        }
        assert_eq!(HintKind::ServerIdentity.as_str(), "server-identity-hint");
        assert_eq!(
            HintKind::DestinationService.as_str(),
            "destination-service-hint"
        );
    }

    #[test]
    fn tls_fingerprints() {
        use Mesh::*;
        let istio_sni = "outbound_.9080_._.reviews.default.svc.cluster.local";
        // Linkerd's real form: the control plane's namespace after `identity.`.
        let l5d_sni = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";
        // (sni, alpn, port, expected mesh, expected evidence)
        type Case<'a> = (Option<&'a str>, &'a [&'a str], u16, Option<Mesh>, &'a str);
        let table: &[Case] = &[
            // Istio ALPN tokens, each on its own.
            (None, &["istio"], 8080, Some(IstioSidecar), "ALPN istio"),
            (
                None,
                &["h2", "istio-peer-exchange"],
                9080,
                Some(IstioSidecar),
                "ALPN istio-peer-exchange",
            ),
            (
                None,
                &["istio-http/1.0"],
                80,
                Some(IstioSidecar),
                "ALPN istio-http/1.0",
            ),
            (
                None,
                &["istio-http/1.1"],
                80,
                Some(IstioSidecar),
                "ALPN istio-http/1.1",
            ),
            (None, &["istio-h2"], 80, Some(IstioSidecar), "ALPN istio-h2"),
            // Istio SNI alone, and together with ALPN.
            (
                Some(istio_sni),
                &[],
                9080,
                Some(IstioSidecar),
                "SNI outbound_.9080_._.reviews.default.svc.cluster.local",
            ),
            (
                Some(istio_sni),
                &["istio-peer-exchange", "istio"],
                9080,
                Some(IstioSidecar),
                "ALPN istio-peer-exchange, SNI outbound_.9080_._.reviews.default.svc.cluster.local",
            ),
            // Istio ALPN wins over HBONE port rules.
            (
                None,
                &["h2", "istio"],
                15008,
                Some(IstioSidecar),
                "ALPN istio",
            ),
            // HBONE.
            (
                None,
                &["h2"],
                15008,
                Some(IstioHbone),
                "port 15008, ALPN h2, no SNI",
            ),
            (
                Some(""),
                &["h2"],
                15008,
                Some(IstioHbone),
                "port 15008, ALPN h2, no SNI",
            ),
            // Linkerd by SNI and by ALPN.
            (
                Some(l5d_sni),
                &[],
                4143,
                Some(Linkerd),
                &*format!("SNI {l5d_sni}"),
            ),
            (
                None,
                &["transport.l5d.io/v1"],
                4143,
                Some(Linkerd),
                "ALPN transport.l5d.io/v1",
            ),
            (
                Some("WEB.Emojivoto.ServiceAccount.Identity.emojivoto.cluster.local"),
                &[],
                443,
                Some(Linkerd),
                "SNI WEB.Emojivoto.ServiceAccount.Identity.emojivoto.cluster.local",
            ),
            // Non-matches.
            (Some("outbound.example.com"), &["h2"], 443, None, ""),
            (Some("outbound_example.com"), &[], 443, None, ""),
            (None, &["h2"], 443, None, ""),
            (None, &["h2", "http/1.1"], 443, None, ""),
            (Some("ztunnel.istio-system"), &["h2"], 15008, None, ""),
            (None, &["http/1.1"], 15008, None, ""),
            (None, &[], 15008, None, ""),
            (None, &["h2"], 15009, None, ""),
            (None, &["Istio", "istio-h3", "istio-"], 443, None, ""),
            (None, &["transport.l5d.io/v2"], 4143, None, ""),
            // The marker alone is not Linkerd: parts missing.
            (
                Some(".serviceaccount.identity.ns.cluster.local"),
                &[],
                443,
                None,
                "",
            ),
            (Some("sa.ns.serviceaccount.identity.ns"), &[], 443, None, ""),
            (
                Some("ns.serviceaccount.identity.ns.cluster.local"),
                &[],
                443,
                None,
                "",
            ),
            (None, &[], 443, None, ""),
        ];
        for (sni, offered, port, mesh, evidence) in table {
            let got = fingerprint_tls(*sni, &alpn(offered), *port);
            assert_eq!(
                got.as_ref().map(|f| f.mesh),
                *mesh,
                "{sni:?} {offered:?} {port}"
            );
            if mesh.is_some() {
                assert_eq!(got.unwrap().evidence, *evidence, "{sni:?} {offered:?}");
            }
        }
    }

    #[test]
    fn tls_evidence_is_printable_and_bounded() {
        let long = format!("outbound_.1_._.{}\u{7}\n", "a".repeat(1000));
        let f = fingerprint_tls(Some(&long), &[], 1).unwrap();
        assert!(f.evidence.len() <= "SNI ".len() + MAX_TEXT);
        assert!(f.evidence.bytes().all(|c| (0x20..0x7f).contains(&c)));
    }

    #[test]
    fn plaintext_fingerprints() {
        let table = [
            (15009, true, Some(Mesh::IstioHboneH2c)),
            (15009, false, None),
            (15008, true, None),
            (80, true, None),
        ];
        for (port, preface, mesh) in table {
            let got = fingerprint_plaintext(port, preface);
            assert_eq!(got.as_ref().map(|f| f.mesh), mesh, "{port} {preface}");
        }
        assert_eq!(
            fingerprint_plaintext(15009, true).unwrap().evidence,
            "port 15009, HTTP/2 preface in clear"
        );
    }

    #[test]
    fn hints() {
        use HintKind::*;
        type Case<'a> = (Option<&'a str>, Option<(HintKind, &'a str)>);
        let table: &[Case] = &[
            (
                Some("outbound_.9080_._.reviews.default.svc.cluster.local"),
                Some((DestinationService, "reviews.default.svc.cluster.local:9080")),
            ),
            (
                Some("outbound_.9080_.v2_.reviews.default.svc.cluster.local"),
                Some((
                    DestinationService,
                    "reviews.default.svc.cluster.local:9080 subset v2",
                )),
            ),
            (
                Some("outbound_.8000_._.httpbin.default.svc.cluster.local"),
                Some((DestinationService, "httpbin.default.svc.cluster.local:8000")),
            ),
            (
                Some("web.emojivoto.serviceaccount.identity.emojivoto.cluster.local"),
                Some((
                    ServerIdentity,
                    "web.emojivoto.serviceaccount.identity.emojivoto.cluster.local",
                )),
            ),
            // Istio-shaped but unparseable: fingerprint yes, hint no.
            (Some("outbound_.notaport_._.reviews.default"), None),
            (Some("outbound_.99999_._.reviews.default"), None),
            (Some("outbound_.9080_._."), None),
            (Some("outbound_.9080"), None),
            (Some("outbound.example.com"), None),
            (Some("example.com"), None),
            (Some(""), None),
            (None, None),
        ];
        for (sni, want) in table {
            let got = identity_hint(*sni).map(|h| (h.kind, h.value));
            let want = want.map(|(k, v)| (k, v.to_string()));
            assert_eq!(got, want, "{sni:?}");
        }
    }

    const SIG: [u8; 12] = PROXY_V2_SIGNATURE;
    const SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/sleep";

    /// A v2 header: version/command, family, address block, TLVs.
    fn header(ver_cmd: u8, family: u8, addrs: &[u8], tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut body = addrs.to_vec();
        for (kind, value) in tlvs {
            body.push(*kind);
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
        }
        let mut b = SIG.to_vec();
        b.push(ver_cmd);
        b.push(family);
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(&body);
        b
    }

    fn v4_addrs() -> Vec<u8> {
        let mut a = vec![10, 244, 0, 5, 10, 244, 1, 7];
        a.extend_from_slice(&40000u16.to_be_bytes());
        a.extend_from_slice(&9080u16.to_be_bytes());
        a
    }

    #[test]
    fn proxy_v2_ipv4_with_identity() {
        let mut b = header(
            0x21,
            0x11,
            &v4_addrs(),
            &[(0x04, b"\0\0\0\0"), (0xD0, SPIFFE.as_bytes())],
        );
        let header_len = b.len();
        b.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let p = parse_proxy_v2(&b).unwrap();
        assert_eq!(p.header_len, header_len);
        assert_eq!(p.source, Some("10.244.0.5:40000".parse().unwrap()));
        assert_eq!(p.destination, Some("10.244.1.7:9080".parse().unwrap()));
        assert_eq!(p.peer_identity.as_deref(), Some(SPIFFE));
    }

    #[test]
    fn proxy_v2_ipv6_with_identity() {
        let src: std::net::Ipv6Addr = "fd00::5".parse().unwrap();
        let dst: std::net::Ipv6Addr = "fd00:1::7".parse().unwrap();
        let mut a = src.octets().to_vec();
        a.extend_from_slice(&dst.octets());
        a.extend_from_slice(&15008u16.to_be_bytes());
        a.extend_from_slice(&8080u16.to_be_bytes());
        let b = header(0x21, 0x21, &a, &[(0xD0, SPIFFE.as_bytes())]);
        let p = parse_proxy_v2(&b).unwrap();
        assert_eq!(p.header_len, 16 + 36 + 3 + SPIFFE.len());
        assert_eq!(p.source, Some("[fd00::5]:15008".parse().unwrap()));
        assert_eq!(p.destination, Some("[fd00:1::7]:8080".parse().unwrap()));
        assert_eq!(p.peer_identity.as_deref(), Some(SPIFFE));
    }

    #[test]
    fn proxy_v2_without_identity_and_local() {
        let p = parse_proxy_v2(&header(0x21, 0x11, &v4_addrs(), &[])).unwrap();
        assert_eq!(p.header_len, 28);
        assert_eq!(p.peer_identity, None);

        // LOCAL: addresses ignored, even with an INET family; TLVs still read.
        let p = parse_proxy_v2(&header(0x20, 0x11, &v4_addrs(), &[(0xD0, b"x")])).unwrap();
        assert_eq!((p.source, p.destination), (None, None));
        assert_eq!(p.peer_identity.as_deref(), Some("x"));
        let p = parse_proxy_v2(&header(0x20, 0x00, &[], &[])).unwrap();
        assert_eq!(p.header_len, 16);
        // LOCAL with a family whose addresses do not fit: accepted, nothing read.
        let p = parse_proxy_v2(&header(0x20, 0x21, &[0; 4], &[])).unwrap();
        assert_eq!(p.header_len, 20);
    }

    #[test]
    fn proxy_v2_identity_is_sanitised_and_bounded() {
        let mut value = b"spiffe://td/ns/a\0\xff\n".to_vec();
        value.extend(std::iter::repeat_n(b'z', 1000));
        let b = header(0x21, 0x11, &v4_addrs(), &[(0xD0, &value)]);
        let id = parse_proxy_v2(&b).unwrap().peer_identity.unwrap();
        assert_eq!(id.len(), MAX_TEXT);
        assert!(id.starts_with("spiffe://td/ns/a...zz"));
    }

    #[test]
    fn proxy_v2_rejects() {
        let good = header(0x21, 0x11, &v4_addrs(), &[(0xD0, SPIFFE.as_bytes())]);
        // Truncated at every length short of the whole header.
        for n in 0..good.len() {
            assert_eq!(parse_proxy_v2(&good[..n]), None, "cut at {n}");
        }
        let mut bad_sig = good.clone();
        bad_sig[11] = 0x0B;
        let mut v1 = good.clone();
        v1[12] = 0x11;
        let mut bad_cmd = good.clone();
        bad_cmd[12] = 0x22;
        let mut bad_family = good.clone();
        bad_family[13] = 0x41;
        let mut bad_proto = good.clone();
        bad_proto[13] = 0x13;
        // Lying length: claims 64 KiB, buffer holds far less.
        let mut lying = good.clone();
        lying[14] = 0xFF;
        lying[15] = 0xFF;
        // PROXY over IPv6 whose block cannot hold 36 address bytes.
        let short_v6 = header(0x21, 0x21, &[0; 12], &[]);
        for (name, b) in [
            ("signature", bad_sig),
            ("version", v1),
            ("command", bad_cmd),
            ("family", bad_family),
            ("protocol", bad_proto),
            ("lying length", lying),
            ("short v6", short_v6),
            ("v1 text", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec()),
        ] {
            assert_eq!(parse_proxy_v2(&b), None, "{name}");
        }
    }

    #[test]
    fn proxy_v2_lying_tlv_length() {
        // A TLV claiming more bytes than the header holds: the header still
        // parses (its length is sound) but no identity is trusted from it.
        let mut b = header(0x21, 0x11, &v4_addrs(), &[(0xD0, SPIFFE.as_bytes())]);
        b[16 + 12 + 1] = 0xFF;
        b.extend_from_slice(&[b'A'; 300]); // bytes after the header: app data
        let p = parse_proxy_v2(&b).unwrap();
        assert_eq!(p.header_len, 16 + 12 + 3 + SPIFFE.len());
        assert_eq!(p.peer_identity, None);
        assert!(p.source.is_some());

        // A TLV header cut short (one stray byte after a good TLV).
        let mut b = header(0x21, 0x11, &v4_addrs(), &[(0xD0, b"id"), (0x01, b"")]);
        b.truncate(b.len() - 2);
        b[15] -= 2;
        let p = parse_proxy_v2(&b).unwrap();
        assert_eq!(p.peer_identity, None);
    }

    fn deterministic() -> Config {
        Config {
            rng_seed: RngSeed::Fixed(0x6d65_7368),
            failure_persistence: None,
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(deterministic())]

        #[test]
        fn proxy_v2_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Some(p) = parse_proxy_v2(&bytes) {
                prop_assert!(p.header_len <= bytes.len());
                prop_assert!(p.peer_identity.is_none_or(|s| s.len() <= MAX_TEXT));
            }
        }

        #[test]
        fn proxy_v2_with_signature_never_panics(
            head in proptest::collection::vec(any::<u8>(), 4),
            tail in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            // Arbitrary bytes rarely start with the signature; force it so the
            // parser past the signature is exercised too.
            let mut b = SIG.to_vec();
            b.extend_from_slice(&head);
            b.extend_from_slice(&tail);
            if let Some(p) = parse_proxy_v2(&b) {
                prop_assert!(p.header_len <= b.len());
                prop_assert!(p.header_len >= 16);
            }
        }

        #[test]
        fn fingerprint_never_panics(
            sni in proptest::option::of(".{0,80}"),
            offered in proptest::collection::vec(".{0,20}", 0..4),
            port in any::<u16>(),
        ) {
            let _ = fingerprint_tls(sni.as_deref(), &offered, port);
            if let Some(h) = identity_hint(sni.as_deref()) {
                prop_assert!(h.value.len() <= MAX_TEXT);
            }
        }
    }
}
