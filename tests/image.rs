//! The container image (scripts/image.sh), run the way Kubernetes runs it:
//! podman with `--cap-drop ALL --cap-add NET_RAW --user 65534 --read-only`
//! (no /etc/passwd in the image, uid 65534 only).
//!
//! - File mode: fixtures mounted read-only at /data; the image prints the
//!   same bytes as the golden file and as the host binary, through the
//!   ENTRYPOINT and through `mtlsniff` found on PATH (how `kubectl debug
//!   ... -- mtlsniff ...` overrides it). It also reads files with podman's
//!   default capabilities and with none at all (the file capability has no
//!   effective bit, so exec is not refused), where a live capture fails
//!   naming CAP_NET_RAW. The image is under 25 MB.
//! - Live: the container joins the server namespace of the lab in
//!   `live/lab.rs` (`--network ns:/run/netns/NAME`) and captures on its veth
//!   while real TLS and HTTP clients talk across it; its verdicts must equal
//!   those `mtlsniff -r` prints from a simultaneous tcpdump file. While it
//!   runs, /proc shows uid 65534, no capability left and a bounding set of
//!   CAP_NET_RAW alone: the capture opened with that one capability. Also
//!   with `--security-opt no-new-privileges` from the start (the
//!   DaemonSet's `allowPrivilegeEscalation: false`).
//!
//! The test builds the image itself (`scripts/image.sh --tag
//! localhost/mtlsniff:test`: `cargo build --release`, a no-op when the
//! binary is current, then a few seconds of buildah). podman reads
//! tests/image/containers.conf (runc, ulimits the test machines allow).
//! Needs root and podman (plus what scripts/image.sh and the lab need);
//! without root or podman it prints `SKIP: ...` and passes; anything else
//! missing fails. Only the lab's namespaces are used (`--network none` for
//! file mode); the container is ended through its podman client's PID
//! (SIGINT, forwarded) and removed by name if it is left over.
//! Run: `cargo test --test image -- --nocapture`.

#[path = "live/lab.rs"]
mod lab;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use lab::{FLOWS, Lab, Tools, check_live_against_file, find_tool, is_root, run};

const IMAGE: &str = "localhost/mtlsniff:test";
/// The issue's target for the whole image.
const MAX_IMAGE_BYTES: u64 = 25 * 1000 * 1000;
/// Bound on the live part (the image build is before it and not counted).
const LIVE_BUDGET: Duration = Duration::from_secs(90);
/// How long a capture may take to stop after SIGINT (through podman).
const SIGINT_GRACE: Duration = Duration::from_secs(10);
/// How long after the last flow closes its verdict may take to appear with -l.
const VERDICT_GRACE: Duration = Duration::from_secs(3);
/// Fixtures read through the image: IPv4 and IPv6, pcap and pcapng, TLS 1.2
/// and 1.3, plaintext.
const FIXTURES: [&str; 4] = [
    "demo.pcap",
    "tls13-openssl-mtls-p256-ipv6.pcap",
    "tls12-openssl-mtls-p256.pcap",
    "tls13-openssl-mtls-dsb.pcapng",
];

fn skip(why: &str) {
    eprintln!("SKIP: image test: {why}");
}

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// podman with the test's containers.conf.
fn podman(podman: &Path) -> Command {
    let mut cmd = Command::new(podman);
    cmd.env(
        "CONTAINERS_CONF",
        root_dir().join("tests/image/containers.conf"),
    );
    cmd
}

/// The flags a Kubernetes pod with `capabilities: {drop: [ALL], add:
/// [NET_RAW]}`, `runAsUser: 65534` and `readOnlyRootFilesystem` gets.
const K8S_FLAGS: [&str; 7] = [
    "--cap-drop",
    "ALL",
    "--cap-add",
    "NET_RAW",
    "--user",
    "65534",
    "--read-only",
];

fn build_image() {
    let started = Instant::now();
    let out = Command::new(root_dir().join("scripts/image.sh"))
        .args(["--tag", IMAGE])
        .current_dir(root_dir())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run scripts/image.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scripts/image.sh failed:\n{text}");
    eprintln!("{text}image built in {:.1?}", started.elapsed());
}

fn image_size(podman_bin: &Path) -> u64 {
    let size = run(podman(podman_bin).args(["image", "inspect", "--format", "{{.Size}}", IMAGE]))
        .unwrap_or_else(|e| panic!("{e}"));
    size.trim()
        .parse()
        .unwrap_or_else(|e| panic!("image size {size:?}: {e}"))
}

/// `podman run` of the image with `flags`, no network, the fixtures at
/// /data; `entrypoint` replaces the image's when given.
fn podman_run(
    podman_bin: &Path,
    flags: &[&str],
    entrypoint: Option<&str>,
    args: &[&str],
) -> Command {
    let fixtures = root_dir().join("fixtures");
    let mut cmd = podman(podman_bin);
    cmd.args(["run", "--rm", "--network", "none"])
        .args(flags)
        .arg("-v")
        .arg(format!("{}:/data:ro", fixtures.display()));
    if let Some(e) = entrypoint {
        cmd.args(["--entrypoint", e]);
    }
    cmd.arg(IMAGE).args(args);
    cmd
}

/// stdout of a `podman_run` that must succeed.
fn run_file(podman_bin: &Path, flags: &[&str], entrypoint: Option<&str>, args: &[&str]) -> String {
    run(&mut podman_run(podman_bin, flags, entrypoint, args)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_image_runs_with_cap_net_raw_only() {
    let started = Instant::now();
    if !is_root() {
        return skip("not root (podman containers, network namespaces, raw capture)");
    }
    let Some(podman_bin) = find_tool("podman") else {
        return skip("`podman` not found (apt-get install podman buildah runc libcap2-bin)");
    };
    build_image();

    let size = image_size(&podman_bin);
    eprintln!("image {IMAGE}: {size} bytes");
    assert!(
        size < MAX_IMAGE_BYTES,
        "image is {size} bytes, over {MAX_IMAGE_BYTES}"
    );

    file_mode_matches_host(&podman_bin);
    eprintln!("file mode matched in {:.1?}", started.elapsed());
    live_capture_matches_file(&podman_bin);
    eprintln!("image test passed in {:.1?}", started.elapsed());
}

fn file_mode_matches_host(podman_bin: &Path) {
    let host_bin = env!("CARGO_BIN_EXE_mtlsniff");
    let golden = |name: &str| {
        std::fs::read_to_string(
            root_dir()
                .join("fixtures/expected")
                .join(format!("{name}.txt")),
        )
        .unwrap_or_else(|e| panic!("golden file for {name}: {e}"))
    };
    for name in FIXTURES {
        let host = run(Command::new(host_bin)
            .arg("-r")
            .arg(root_dir().join("fixtures").join(name)))
        .unwrap_or_else(|e| panic!("{e}"));
        let data = format!("/data/{name}");
        let image = run_file(podman_bin, &K8S_FLAGS, None, &["-r", &data]);
        assert_eq!(
            image,
            golden(name),
            "{name}: the image's output differs from the golden file"
        );
        assert_eq!(
            image, host,
            "{name}: the image's output differs from the host binary's"
        );
    }
    // `kubectl debug ... -- mtlsniff ARGS` replaces the entrypoint with a
    // command found on the image's PATH.
    let via_path = run_file(
        podman_bin,
        &K8S_FLAGS,
        Some("mtlsniff"),
        &["-r", "/data/demo.pcap"],
    );
    assert_eq!(
        via_path,
        golden("demo.pcap"),
        "`mtlsniff` on the image's PATH"
    );
    // Without NET_RAW in the container's capability set (podman's default
    // set lacks it; a restricted pod drops ALL) the binary still runs and
    // reads files: its file capability has no effective bit, so the kernel
    // does not refuse the exec.
    for flags in [
        &[][..],
        &["--cap-drop", "ALL", "--user", "65534", "--read-only"][..],
    ] {
        let out = run_file(podman_bin, flags, None, &["-r", "/data/demo.pcap"]);
        assert_eq!(out, golden("demo.pcap"), "podman run {flags:?} IMAGE -r");
    }
    // ... and a live capture there fails with the message that says why.
    let out = podman_run(
        podman_bin,
        &["--cap-drop", "ALL", "--user", "65534"],
        None,
        &["-i", "lo"],
    )
    .stdin(Stdio::null())
    .output()
    .expect("podman run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("CAP_NET_RAW"),
        "a live capture without NET_RAW: {}\n{err}",
        out.status
    );
}

/// Removes the test's container by name if it outlived its podman client.
struct Container<'a> {
    podman: &'a Path,
    name: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = podman(self.podman)
            .args(["rm", "--force", "--ignore", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `Name:\tvalue` of a /proc status file.
fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The container's mtlsniff as the host sees it: uid 65534, no capability
/// left once the capture is open, a bounding set of CAP_NET_RAW (bit 13)
/// alone, no-new-privileges.
fn check_privileges(podman_bin: &Path, container: &str) {
    let pid = run(podman(podman_bin).args(["inspect", "--format", "{{.State.Pid}}", container]))
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = pid.trim();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let want = [
        ("Uid", "65534\t65534\t65534\t65534"),
        ("CapEff", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        ("CapBnd", "0000000000002000"),
        ("NoNewPrivs", "1"),
    ];
    for (key, value) in want {
        assert_eq!(
            field(&status, key),
            Some(value),
            "{key} of the container's mtlsniff (pid {pid})\n{status}"
        );
    }
}

/// The DaemonSet's `allowPrivilegeEscalation: false` (no-new-privileges
/// from the start): the capture still opens, because no_new_privs only
/// caps the file capability's grant at what the runtime already put in the
/// permitted set (NET_RAW, from `--cap-add`).
fn opens_under_no_new_privileges(podman_bin: &Path, lab: &mut Lab, ns: &str, veth: &str) {
    let container = Container {
        podman: podman_bin,
        name: format!("mtlsniff-test-nnp-{}", std::process::id()),
    };
    let mut cmd = podman(podman_bin);
    cmd.args(["run", "--rm", "--name", &container.name])
        .arg("--network")
        .arg(format!("ns:/run/netns/{ns}"))
        .args(K8S_FLAGS)
        .args(["--security-opt", "no-new-privileges"])
        .arg(IMAGE)
        .args(["-i", veth, "--log-level", "info"]);
    let i = lab.spawn_command("podman run --security-opt no-new-privileges", cmd);
    lab.wait_for(i, "privileges dropped", Duration::from_secs(30));
    check_privileges(podman_bin, &container.name);
    lab.interrupt(i);
    assert!(
        lab.wait_exit(i, SIGINT_GRACE),
        "the no-new-privileges capture did not exit cleanly\n{}",
        lab.describe(i)
    );
}

fn live_capture_matches_file(podman_bin: &Path) {
    let tools = Tools::find().unwrap_or_else(|e| panic!("the live lab needs {e}"));
    let (mut lab, net) = Lab::build(&tools, "mti", LIVE_BUDGET).unwrap_or_else(|e| panic!("{e}"));
    lab.start_servers(&tools, &net);
    opens_under_no_new_privileges(podman_bin, &mut lab, &net.ns_srv, &net.veth_srv);
    let pcap = lab.file("live.pcap");
    let dump = lab.start_tcpdump(&tools, &net, &pcap);

    let container = Container {
        podman: podman_bin,
        name: format!("mtlsniff-test-{}", std::process::id()),
    };
    let mut cmd = podman(podman_bin);
    cmd.args(["run", "--rm", "--name", &container.name])
        .arg("--network")
        .arg(format!("ns:/run/netns/{}", net.ns_srv))
        .args(K8S_FLAGS)
        .arg(IMAGE)
        .args(["-i", &net.veth_srv, "--json", "-l", "--log-level", "info"]);
    let sniff = lab.spawn_command("podman run mtlsniff -i", cmd);
    // Logged (--log-level info) once the capture is open and every privilege dropped.
    lab.wait_for(sniff, "privileges dropped", Duration::from_secs(30));
    check_privileges(podman_bin, &container.name);

    lab.run_clients(&tools, &net);
    let printed = lab.printed_lines(sniff, FLOWS, VERDICT_GRACE);
    thread::sleep(Duration::from_secs(1)); // the last ACKs, for tcpdump
    lab.interrupt(dump);
    lab.wait_exit(dump, Duration::from_secs(10));
    // SIGINT to the podman client's PID; podman forwards it (--sig-proxy).
    lab.interrupt(sniff);
    let ok = lab.wait_exit(sniff, SIGINT_GRACE);
    let live_out = lab.procs[sniff].out.text();

    let file = Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
        .args(["-r", &pcap, "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("mtlsniff -r");
    let file_out = String::from_utf8_lossy(&file.stdout).into_owned();
    let report = format!(
        "=== image (podman run ... {IMAGE} -i {} --json -l) ===\n{live_out}\n{}\n\
         === host (mtlsniff -r {pcap} --json) ===\n{file_out}\n--- stderr:\n{}",
        net.veth_srv,
        lab.procs[sniff].err.text(),
        String::from_utf8_lossy(&file.stderr)
    );
    assert!(ok, "the container did not exit cleanly on SIGINT\n{report}");
    assert!(file.status.success(), "mtlsniff -r failed\n{report}");
    assert_eq!(
        printed, FLOWS,
        "with -l the container had printed {printed} of {FLOWS} verdicts \
         {VERDICT_GRACE:?} after the last flow closed\n{report}"
    );
    eprintln!("{report}");
    check_live_against_file("image's live", &live_out, &file_out, &net, &report);
    drop(container);
}
