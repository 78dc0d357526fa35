//! Golden files: `mtlsniff -r F -q` on every fixture capture must print
//! exactly `fixtures/expected/<F>.txt` (text view) and `<F>.json` (JSON
//! Lines view). One `#[test]` per capture, so a failure names its capture
//! and `cargo test --test golden tls13_openssl` runs a few; the list below
//! is checked against `fixtures/` both ways (a new capture without a test,
//! a test without its capture, a golden file without a capture all fail).
//!
//! Run with `MTLSNIFF_BLESS=1 cargo test --test golden [NAME]` to rewrite
//! the golden files of the captures that run, after an intended output
//! change, then review the diff. This file owns only the comparison; what
//! the output should be is decided by the engine and the printer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn run(capture: &Path, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
    cmd.arg("-r").arg(capture).arg("-q");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run mtlsniff");
    assert!(
        out.status.success(),
        "{}: exit {:?}: {}",
        capture.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Compare (or, with `MTLSNIFF_BLESS` set, rewrite) both golden files of
/// one capture. Both views are compared before failing, so one run shows
/// every difference of the capture.
fn check_golden(file: &str) {
    let capture = fixtures().join(file);
    assert!(capture.is_file(), "{} is missing", capture.display());
    let expected_dir = fixtures().join("expected");
    let bless = std::env::var_os("MTLSNIFF_BLESS").is_some();
    let mut mismatches = Vec::new();
    for (json, ext) in [(false, "txt"), (true, "json")] {
        let got = run(&capture, json);
        let path = expected_dir.join(format!("{file}.{ext}"));
        if bless {
            std::fs::create_dir_all(&expected_dir).expect("create fixtures/expected");
            std::fs::write(&path, &got).expect("write golden file");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "missing {}: run MTLSNIFF_BLESS=1 cargo test --test golden",
                path.display()
            )
        });
        if got != want {
            mismatches.push(format!(
                "== {}\n-- expected:\n{want}-- got:\n{got}",
                path.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{file}: {} golden file(s) differ (MTLSNIFF_BLESS=1 to rewrite):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// One `#[test]` per fixture capture, and `GOLDEN`, the list of them.
macro_rules! golden {
    ($($test:ident = $file:literal,)*) => {
        const GOLDEN: &[&str] = &[$($file),*];
        $(
            #[test]
            fn $test() {
                check_golden($file);
            }
        )*
    };
}

golden! {
    demo = "demo.pcap",
    midstream_tls12_mtls_cut_after_server_flight = "midstream-tls12-mtls-cut-after-server-flight.pcap",
    midstream_tls12_mtls_nohandshake = "midstream-tls12-mtls-nohandshake.pcap",
    plaintext_h2c_15009 = "plaintext-h2c-15009.pcap",
    plaintext_http_curl = "plaintext-http-curl.pcap",
    plaintext_http_to_boring_port = "plaintext-http-to-boring-port.pcap",
    plaintext_http_to_tls_port = "plaintext-http-to-tls-port.pcap",
    plaintext_proxyv2_tlv_d0 = "plaintext-proxyv2-tlv-d0.pcap",
    redirect_ambient_in_hbone_15008_mtls = "redirect-ambient-in-hbone-15008-mtls.pcap",
    redirect_ambient_in_plaintext_http = "redirect-ambient-in-plaintext-http.pcap",
    redirect_ambient_out_plaintext_http = "redirect-ambient-out-plaintext-http.pcap",
    redirect_ambient_out_tls13_curl_mtls = "redirect-ambient-out-tls13-curl-mtls.pcap",
    redirect_in_plaintext_http = "redirect-in-plaintext-http.pcap",
    redirect_in_self_tls13_curl_mtls = "redirect-in-self-tls13-curl-mtls.pcap",
    redirect_in_tls12_openssl_mtls = "redirect-in-tls12-openssl-mtls.pcap",
    redirect_in_tls13_curl_mtls = "redirect-in-tls13-curl-mtls.pcap",
    redirect_l5d_in_plaintext_http = "redirect-l5d-in-plaintext-http.pcap",
    redirect_l5d_in_tls13_openssl_mtls = "redirect-l5d-in-tls13-openssl-mtls.pcap",
    redirect_l5d_out_plaintext_http = "redirect-l5d-out-plaintext-http.pcap",
    redirect_l5d_out_tls13_curl_mtls = "redirect-l5d-out-tls13-curl-mtls.pcap",
    redirect_l5d_out_tls13_curl_noauth = "redirect-l5d-out-tls13-curl-noauth.pcap",
    redirect_out_plaintext_http = "redirect-out-plaintext-http.pcap",
    redirect_out_tls12_openssl_mtls = "redirect-out-tls12-openssl-mtls.pcap",
    redirect_out_tls13_curl_mtls = "redirect-out-tls13-curl-mtls.pcap",
    redirect_out_tls13_curl_noauth = "redirect-out-tls13-curl-noauth.pcap",
    redirect_out_tls13_curl_nocert_rejected = "redirect-out-tls13-curl-nocert-rejected.pcap",
    tls12_boring_istio_sidecar_mtls = "tls12-boring-istio-sidecar-mtls.pcap",
    tls12_curl_mtls_p256 = "tls12-curl-mtls-p256.pcap",
    tls12_curl_required_nocert = "tls12-curl-required-nocert.pcap",
    tls12_gnutls_mtls_p256_pyserver = "tls12-gnutls-mtls-p256-pyserver.pcap",
    tls12_openssl_istio_sidecar = "tls12-openssl-istio-sidecar.pcap",
    tls12_openssl_mtls_expired_certs = "tls12-openssl-mtls-expired-certs.pcap",
    tls12_openssl_mtls_expired_rejected = "tls12-openssl-mtls-expired-rejected.pcap",
    tls12_openssl_mtls_p256_dup = "tls12-openssl-mtls-p256-dup.pcap",
    tls12_openssl_mtls_p256_vlan100 = "tls12-openssl-mtls-p256-vlan100.pcap",
    tls12_openssl_mtls_p256_sgt = "tls12-openssl-mtls-p256-sgt.pcap",
    tls12_openssl_mtls_p256 = "tls12-openssl-mtls-p256.pcap",
    tls12_openssl_mtls_rsa2048 = "tls12-openssl-mtls-rsa2048.pcap",
    tls12_openssl_noauth = "tls12-openssl-noauth.pcap",
    tls12_openssl_renegotiation_client_cert = "tls12-openssl-renegotiation-client-cert.pcap",
    tls12_openssl_resume_sessionid = "tls12-openssl-resume-sessionid.pcap",
    tls12_openssl_resume_ticket = "tls12-openssl-resume-ticket.pcap",
    tls12_openssl_untrusted_ca = "tls12-openssl-untrusted-ca.pcap",
    tls12_python_mtls_rsa2048_ipv6 = "tls12-python-mtls-rsa2048-ipv6.pcap",
    tls12_python_optional_nocert = "tls12-python-optional-nocert.pcap",
    tls12_python_required_nocert_pyserver = "tls12-python-required-nocert-pyserver.pcap",
    tls13_boring_istio_sidecar_mtls = "tls13-boring-istio-sidecar-mtls.pcap",
    tls13_boring_istio_sidecar_noauth = "tls13-boring-istio-sidecar-noauth.pcap",
    tls13_boring_istio_sidecar_optional_nocert = "tls13-boring-istio-sidecar-optional-nocert.pcap",
    tls13_boring_istio_sidecar_required_nocert = "tls13-boring-istio-sidecar-required-nocert.pcap",
    tls13_boring_istio_sidecar_resume = "tls13-boring-istio-sidecar-resume.pcap",
    tls13_curl_mtls_p256 = "tls13-curl-mtls-p256.pcap",
    tls13_curl_mtls_rsa2048 = "tls13-curl-mtls-rsa2048.pcap",
    tls13_curl_mtls_spiffe_pyserver = "tls13-curl-mtls-spiffe-pyserver.pcap",
    tls13_curl_noauth = "tls13-curl-noauth.pcap",
    tls13_curl_optional_nocert_pyserver = "tls13-curl-optional-nocert-pyserver.pcap",
    tls13_curl_required_nocert = "tls13-curl-required-nocert.pcap",
    tls13_curl_untrusted_ca_pyserver = "tls13-curl-untrusted-ca-pyserver.pcap",
    tls13_gnutls_mtls_p256 = "tls13-gnutls-mtls-p256.pcap",
    tls13_gnutls_noauth = "tls13-gnutls-noauth.pcap",
    tls13_gnutls_optional_nocert = "tls13-gnutls-optional-nocert.pcap",
    tls13_gnutls_required_nocert = "tls13-gnutls-required-nocert.pcap",
    tls13_openssl_0rtt_early_data = "tls13-openssl-0rtt-early-data.pcap",
    tls13_openssl_0rtt_rejected_full_handshake = "tls13-openssl-0rtt-rejected-full-handshake.pcap",
    tls13_openssl_hbone_15008 = "tls13-openssl-hbone-15008.pcap",
    tls13_openssl_istio_sidecar = "tls13-openssl-istio-sidecar.pcap",
    tls13_openssl_linkerd_opaque = "tls13-openssl-linkerd-opaque.pcap",
    tls13_openssl_linkerd = "tls13-openssl-linkerd.pcap",
    tls13_openssl_mtls_aes128gcm = "tls13-openssl-mtls-aes128gcm.pcap",
    tls13_openssl_mtls_chacha20 = "tls13-openssl-mtls-chacha20.pcap",
    tls13_openssl_mtls_chain = "tls13-openssl-mtls-chain.pcap",
    tls13_openssl_mtls_dsb = "tls13-openssl-mtls-dsb.pcapng",
    tls13_openssl_mtls_hrr_aes128gcm = "tls13-openssl-mtls-hrr-aes128gcm.pcap",
    tls13_openssl_mtls_p256_hrr = "tls13-openssl-mtls-p256-hrr.pcap",
    tls13_openssl_mtls_p256_ipv6 = "tls13-openssl-mtls-p256-ipv6.pcap",
    tls13_openssl_mtls_p256_nosyn = "tls13-openssl-mtls-p256-nosyn.pcap",
    tls13_openssl_mtls_p256 = "tls13-openssl-mtls-p256.pcap",
    tls13_openssl_mtls_rsa2048 = "tls13-openssl-mtls-rsa2048.pcap",
    tls13_openssl_noauth = "tls13-openssl-noauth.pcap",
    tls13_openssl_optional_nocert = "tls13-openssl-optional-nocert.pcap",
    tls13_openssl_pha_offered = "tls13-openssl-pha-offered.pcap",
    tls13_openssl_pha_requested = "tls13-openssl-pha-requested.pcap",
    tls13_openssl_required_nocert_chacha20 = "tls13-openssl-required-nocert-chacha20.pcap",
    tls13_openssl_required_nocert = "tls13-openssl-required-nocert.pcap",
    tls13_openssl_resume_psk = "tls13-openssl-resume-psk.pcap",
    tls13_openssl_untrusted_ca = "tls13-openssl-untrusted-ca.pcap",
    tls13_python_mtls_p256_pyserver = "tls13-python-mtls-p256-pyserver.pcap",
    tls13_python_mtls_rsa2048_pyserver = "tls13-python-mtls-rsa2048-pyserver.pcap",
    tls13_python_noauth_pyserver = "tls13-python-noauth-pyserver.pcap",
    tls13_python_optional_nocert = "tls13-python-optional-nocert.pcap",
    tls13_python_required_nocert_pyserver = "tls13-python-required-nocert-pyserver.pcap",
    tls13_python_untrusted_ca = "tls13-python-untrusted-ca.pcap",
    tls13_openssl_client_aborts_unknown_ca = "tls13-openssl-client-aborts-unknown-ca.pcap",
    tls13_python_client_aborts_unknown_ca = "tls13-python-client-aborts-unknown-ca.pcap",
    tls13_gnutls_client_aborts_unknown_ca = "tls13-gnutls-client-aborts-unknown-ca.pcap",
    plaintext_http_to_nginx_tls_port = "plaintext-http-to-nginx-tls-port.pcap",
    tls12_openssl_reneg_cert = "tls12-openssl-reneg-cert.pcap",
    tls12_openssl_reneg_nocert = "tls12-openssl-reneg-nocert.pcap",
    tls12_openssl_reneg_norequest = "tls12-openssl-reneg-norequest.pcap",
    tls12_python_reneg_cert = "tls12-python-reneg-cert.pcap",
    tls12_python_reneg_nocert = "tls12-python-reneg-nocert.pcap",
    // A resumption alone (the issuing handshake cut): the ticket's size in the reason.
    tls13_openssl_resume_alone_noauth = "tls13-openssl-resume-alone-noauth.pcap",
    tls12_openssl_resume_alone_ticket = "tls12-openssl-resume-alone-ticket.pcap",
    tls13_jdk_resume_alone_noauth = "tls13-jdk-resume-alone-noauth.pcap",
    // Post-handshake authentication from Python (decrypted only with the key log).
    tls13_python_pha_cert = "tls13-python-pha-cert.pcap",
    tls13_python_pha_nocert = "tls13-python-pha-nocert.pcap",
    // Real mesh stacks (fixtures/make-stacks.sh: rustls as Linkerd and ztunnel).
    tls13_rustls_linkerd_mtls = "tls13-rustls-linkerd-mtls.pcap",
    tls13_rustls_linkerd_noauth = "tls13-rustls-linkerd-noauth.pcap",
    tls13_rustls_linkerd_optional_nocert = "tls13-rustls-linkerd-optional-nocert.pcap",
    tls13_rustls_linkerd_required_nocert = "tls13-rustls-linkerd-required-nocert.pcap",
    tls13_rustls_linkerd_resume = "tls13-rustls-linkerd-resume.pcap",
    tls13_rustls_ztunnel_hbone_mtls = "tls13-rustls-ztunnel-hbone-mtls.pcap",
    tls13_rustls_ztunnel_hbone_noauth = "tls13-rustls-ztunnel-hbone-noauth.pcap",
    tls13_rustls_ztunnel_hbone_required_nocert = "tls13-rustls-ztunnel-hbone-required-nocert.pcap",
    tls13_rustls_ztunnel_hbone_resume = "tls13-rustls-ztunnel-hbone-resume.pcap",
}

/// Issue 13 §2: a Cisco TrustSec link tags the client's frames with a Cisco
/// MetaData header (EtherType 0x8909); they were skipped and the mTLS
/// handshake became `unknown incomplete`. The tagged capture must print
/// exactly what the untagged one prints, in both views.
#[test]
fn a_trustsec_tagged_capture_reads_like_the_untagged_one() {
    let tagged = fixtures().join("tls12-openssl-mtls-p256-sgt.pcap");
    let plain = fixtures().join("tls12-openssl-mtls-p256.pcap");
    for json in [false, true] {
        let got = run(&tagged, json);
        assert!(got.contains("mtls"), "{got}");
        assert_eq!(got, run(&plain, json), "json: {json}");
    }
}

/// The captures in `fixtures/` (pcap and pcapng), by file name.
fn captures_on_disk() -> BTreeSet<String> {
    std::fs::read_dir(fixtures())
        .expect("read fixtures/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect()
}

#[test]
fn the_golden_list_names_every_fixture_capture() {
    let listed: BTreeSet<String> = GOLDEN.iter().map(|f| f.to_string()).collect();
    assert_eq!(listed.len(), GOLDEN.len(), "a capture is listed twice");
    let on_disk = captures_on_disk();
    let unlisted: Vec<_> = on_disk.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        unlisted.is_empty() && gone.is_empty(),
        "tests/golden.rs and fixtures/ disagree.\n\
         captures without a golden test (add a line to `golden!`): {unlisted:?}\n\
         golden tests without a capture (remove their line): {gone:?}"
    );
}

#[test]
fn every_golden_file_belongs_to_a_fixture_capture() {
    let on_disk = captures_on_disk();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("expected"))
        .expect("read fixtures/expected")
        .flatten()
    {
        let path = entry.path();
        if !path.is_file() {
            continue; // expected/answers/: tests/answers.rs owns it
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = name
            .strip_suffix(".txt")
            .or_else(|| name.strip_suffix(".json"));
        if !owner.is_some_and(|c| on_disk.contains(c)) {
            orphans.push(name);
        }
    }
    assert!(
        orphans.is_empty(),
        "golden files with no capture in fixtures/: {orphans:?}"
    );
}
