//! Live capture end to end: two network namespaces joined by a veth pair, real
//! `openssl s_server`/`s_client` TLS 1.2 and 1.3 (with and without a client
//! certificate) and one plaintext HTTP request across it, captured at the same
//! time by `mtlsniff -i` and by `tcpdump -w`. The verdicts printed live must be
//! the same as those `mtlsniff -r` prints from tcpdump's file.
//!
//! Needs root (network namespaces, raw capture), `ip`, `openssl`, `tcpdump` and
//! `python3` (plaintext HTTP server); without them the test prints `SKIP: ...`
//! on stderr and passes. The namespaces, veth pair, servers and clients are
//! the lab in `live/lab.rs` (shared with tests/image.rs, which runs the same
//! flows past the container image); everything it creates is removed by a
//! Drop guard, also on panic. Run: `cargo test --test live -- --nocapture`.

#[path = "live/lab.rs"]
mod lab;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use lab::{FLOWS, Lab, Tools, check_live_against_file, is_root};

/// Hard cap on the whole test; every individual wait is much shorter.
const TEST_BUDGET: Duration = Duration::from_secs(55);
/// How long a live capture may take to stop after SIGINT (its read timeout is 250 ms).
const SIGINT_GRACE: Duration = Duration::from_secs(3);
/// How long after the last flow closes its verdict may take to appear with -l.
const VERDICT_GRACE: Duration = Duration::from_secs(3);

fn skip(why: &str) {
    eprintln!("SKIP: live capture test: {why}");
}

/// The libpcap path: one socket, a capture thread and workers.
#[test]
fn live_capture_matches_file() {
    live_case("mtv", &["--no-fanout"], "libpcap, one socket");
}

/// An AF_PACKET fanout group of one socket: one thread does everything.
#[test]
fn fanout_of_one_matches_file() {
    live_case("mf1", &["--threads", "1"], "AF_PACKET fanout, 1 socket(s)");
}

/// Two sockets: each flow on one of them, the lines the same.
#[test]
fn fanout_of_two_matches_file() {
    live_case("mf2", &["--threads", "2"], "AF_PACKET fanout, 2 socket(s)");
}

/// Capture the lab's flows live with `args`, compare with tcpdump's file;
/// `--stats` must name the capture path `path`.
fn live_case(prefix: &str, args: &[&str], path: &str) {
    let started = Instant::now();
    if !is_root() {
        return skip("not root (needs network namespaces and raw capture)");
    }
    let tools = match Tools::find() {
        Ok(t) => t,
        Err(e) => return skip(&e),
    };
    let mtlsniff = PathBuf::from(env!("CARGO_BIN_EXE_mtlsniff"));
    let (mut lab, net) = match Lab::build(&tools, prefix, TEST_BUDGET) {
        Ok(built) => built,
        Err(e) => return skip(&e),
    };
    let veth_srv = net.veth_srv.clone();
    lab.start_servers(&tools, &net);

    // Both captures on the server's end of the veth, started together.
    let pcap = lab.file("live.pcap");
    let dump = lab.start_tcpdump(&tools, &net, &pcap);
    let mut sniff_args = vec!["-i", veth_srv.as_str(), "--json", "-l", "--stats"];
    sniff_args.extend(args);
    let sniff = lab.spawn("mtlsniff -i", &net.ns_srv, &mtlsniff, &sniff_args);
    // mtlsniff logs nothing when its capture is open: give it a moment, and
    // make sure it is still running.
    thread::sleep(Duration::from_millis(1500));
    if let Ok(Some(st)) = lab.procs[sniff].child.try_wait() {
        thread::sleep(Duration::from_millis(100));
        panic!("mtlsniff -i exited early ({st})\n{}", lab.describe(sniff));
    }

    lab.run_clients(&tools, &net);

    // Live problems found below are collected, the verdict comparison still
    // runs, and the test fails at the end with all of them.
    let mut live_faults: Vec<String> = Vec::new();
    // With -l, each flow's verdict should be printed soon after the flow ends
    // (all five have closed by now), without waiting for more traffic.
    let printed = lab.printed_lines(sniff, FLOWS, VERDICT_GRACE);
    if printed < FLOWS {
        live_faults.push(format!(
            "with -l, mtlsniff -i had printed only {printed} of {FLOWS} verdicts \
             {VERDICT_GRACE:?} after the last flow closed (the interface was idle \
             from then on)"
        ));
    }
    thread::sleep(Duration::from_secs(1)); // the last ACKs, for tcpdump
    // Stop both captures with SIGINT: tcpdump first, so that nothing after
    // this point is in the file.
    lab.interrupt(dump);
    lab.wait_exit(dump, Duration::from_secs(10));
    // The interface is now idle. A live capture must still stop promptly on
    // SIGINT, flush its verdicts and print its summary.
    lab.interrupt(sniff);
    let sniff_ok = match lab.try_wait_exit(sniff, SIGINT_GRACE) {
        Some(ok) => ok,
        None => {
            // Note it, then wake the capture with one UDP datagram (not TCP, so
            // no flow) to see whether the rest works; the test fails at the end.
            live_faults.push(format!(
                "mtlsniff -i did not exit within {SIGINT_GRACE:?} of SIGINT on an idle \
                 interface; it exited only after another packet arrived \
                 (likely blocked in pcap_next_ex: on Linux TPACKET_V3 the libpcap read \
                 timeout does not fire when no packets arrive)"
            ));
            let script = format!("echo wake > /dev/udp/{}/9", net.srv_ip);
            let w = lab.spawn(
                "bash (UDP wake-up)",
                &net.ns_cli,
                &tools.bash,
                &["-c", &script],
            );
            lab.wait_exit(w, Duration::from_secs(5));
            match lab.try_wait_exit(sniff, Duration::from_secs(5)) {
                Some(ok) => ok,
                None => panic!(
                    "mtlsniff -i ignores SIGINT even after a packet\n{}",
                    lab.describe(sniff)
                ),
            }
        }
    };
    assert!(
        sniff_ok,
        "mtlsniff -i did not exit cleanly on SIGINT\n{}",
        lab.describe(sniff)
    );
    let live_out = lab.procs[sniff].out.text();

    let file = Command::new(&mtlsniff)
        .args(["-r", &pcap, "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("mtlsniff -r");
    let file_out = String::from_utf8_lossy(&file.stdout).into_owned();
    let report = format!(
        "=== live (mtlsniff -i {veth_srv} --json -l) ===\n{live_out}\n{}\n\
         === file (mtlsniff -r {pcap} --json) ===\n{file_out}\n--- stderr:\n{}",
        lab.procs[sniff].err.text(),
        String::from_utf8_lossy(&file.stderr)
    );
    assert!(file.status.success(), "mtlsniff -r failed\n{report}");
    eprintln!("{report}");

    check_live_against_file("live", &live_out, &file_out, &net, &report);
    let said = format!("mtlsniff: capture: {path}");
    assert!(
        lab.procs[sniff].err.text().contains(&said),
        "--stats does not say {said:?}\n{report}"
    );

    assert!(
        live_faults.is_empty(),
        "live mode: {}\n(the verdicts themselves match the file's)\n{report}",
        live_faults.join("\nlive mode: ")
    );
    eprintln!("live test passed in {:.1?}", started.elapsed());
}
