//! Service-mesh fingerprints: recognising Istio (sidecar and ambient HBONE)
//! and Linkerd from what a connection shows in clear (wire-facts §5, §7).
//!
//! This module owns three pure, I/O-free readings of already-parsed facts:
//! which mesh a ClientHello (SNI, offered ALPN, server port) or a plaintext
//! HTTP/2 preface on 15009 points to; the identity *hints* a ClientHello
//! carries when TLS 1.3 encrypts the certificates; and what the source
//! SPIFFE identity in ztunnel's PROXY v2 header (TLV 0xD0, parsed in
//! `plaintext.rs`, the one PROXY parser) says about the mesh.
//!
//! A fingerprint is evidence of who the client is, never proof of mTLS: it
//! must not turn a verdict into mTLS, only explain one. Hints are what the
//! client *asked for*, not an identity anyone proved. Invariants: nothing here
//! panics on input (no unwrap, no indexing), nothing allocates from a length
//! field, and every string taken from the wire is printable ASCII bounded to
//! [`MAX_TEXT`] characters.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

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
/// The ports meshes redirect to with iptables inside a pod (wire-facts §7):
/// Istio sidecar outbound 15001 and inbound 15006, ambient in-pod 15001,
/// 15006 and `HBONE_PORT`, Linkerd outbound 4140 and inbound 4143. On `lo`
/// a redirected connection's SYN half goes to one of them
/// (`flow/redirect.rs` joins it to its reply half), so `--ports` keeps them.
pub const REDIRECT_PORTS: [u16; 5] = [15001, 15006, HBONE_PORT, 4140, 4143];

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
            .map(|a| ["ALPN ", &printable(a.as_bytes())].concat())
            .into_iter()
            .chain(istio_sni.map(|s| ["SNI ", &printable(s.as_bytes())].concat()))
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
    // Case-insensitive (the mark is lower case), without lower-casing a
    // copy or building a substring searcher: this runs on every TLS flow.
    let mark = LINKERD_SNI_MARK.as_bytes();
    let at = sni
        .as_bytes()
        .windows(mark.len())
        .position(|w| w.first() == mark.first() && w.eq_ignore_ascii_case(mark))?;
    let before = sni.get(..at)?;
    let after = sni.get(at + LINKERD_SNI_MARK.len()..)?;
    let (sa, ns) = before.rsplit_once('.')?;
    let (control_ns, trust_domain) = after.split_once('.')?;
    let ok = !sa.is_empty() && !ns.is_empty() && !control_ns.is_empty() && !trust_domain.is_empty();
    ok.then_some(ns)
}

/// Bytes as printable ASCII (others become '.'), at most [`MAX_TEXT`] chars.
pub(super) fn printable(b: &[u8]) -> String {
    // Bytes, not chars: one pass the compiler can vectorise, for the SNI
    // and ALPN of every mesh flow. Only printable ASCII and '.' go in, so
    // the UTF-8 check cannot fail.
    let ascii: Vec<u8> = b
        .iter()
        .take(MAX_TEXT)
        .map(|&c| if (0x20..0x7f).contains(&c) { c } else { b'.' })
        .collect();
    String::from_utf8(ascii).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// (sni, alpn, port, expected mesh, expected evidence)
    type Case<'a> = (Option<&'a str>, &'a [&'a str], u16, Option<Mesh>, &'a str);

    fn check_tls(table: &[Case]) {
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
    fn tls_fingerprints() {
        use Mesh::*;
        let istio_sni = "outbound_.9080_._.reviews.default.svc.cluster.local";
        // Linkerd's real form: the control plane's namespace after `identity.`.
        let l5d_sni = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";
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
        ];
        check_tls(table);
    }

    #[test]
    fn tls_non_fingerprints() {
        let table: &[Case] = &[
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
        check_tls(table);
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

    proptest! {
        #![proptest_config(crate::classify::testing::deterministic())]

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
