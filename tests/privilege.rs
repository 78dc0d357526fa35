//! Least privilege of a live capture: once `mtlsniff -i lo` runs, every
//! thread of it holds no capability (effective, permitted, inheritable,
//! ambient), has no-new-privileges set, and with `-Z nobody` runs as that
//! user. Read from /proc/<pid>/task/*/status of the running binary. Without
//! permission, the error names CAP_NET_RAW and the ways to get it.
//!
//! Capturing needs root: as another user the capability checks print
//! `SKIP: ...` and pass. Only loopback is opened and no packet is sent; the
//! child is ended by its pid.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `Name:\tvalue` fields of one status file.
fn field(status: &str, name: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// The status of every thread, once the main thread shows no-new-privs
/// (set after the capture is open), or None if the child exited first.
fn statuses_after_drop(child: &mut Child) -> Option<Vec<String>> {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        let main = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if field(&main, "NoNewPrivs").as_deref() == Some("1") {
            // Give the pipeline a moment to start its threads.
            std::thread::sleep(Duration::from_millis(300));
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
            return Some(
                tasks
                    .filter_map(|t| t.ok())
                    .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
                    .collect(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn stop(child: Child) -> String {
    // SAFETY: a signal to our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn uid_of(user: &str) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(user)).then(|| f.nth(1).map(str::to_string))?
    })
}

#[test]
fn a_live_capture_holds_no_capability_once_started() {
    if !is_root() {
        eprintln!("SKIP: privilege test: needs root to capture on lo");
        return;
    }
    if !Path::new("/sys/class/net/lo").exists() {
        eprintln!("SKIP: privilege test: no loopback interface");
        return;
    }
    let nobody = uid_of("nobody");
    let mut runs: Vec<(Vec<&str>, Option<String>)> = vec![(vec![], Some("0".to_string()))];
    match &nobody {
        Some(uid) => runs.push((vec!["-Z", "nobody"], Some(uid.clone()))),
        None => eprintln!("SKIP: -Z part: no user nobody"),
    }
    for (extra, want_uid) in runs {
        let mut child = bin()
            .args(["-i", "lo", "-q", "--threads", "2"])
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mtlsniff");
        let statuses = statuses_after_drop(&mut child);
        let err = stop(child);
        let statuses =
            statuses.unwrap_or_else(|| panic!("{extra:?}: capture did not start: {err}"));
        assert!(
            statuses.len() >= 3,
            "{extra:?}: capture, worker, main threads: {}",
            statuses.len()
        );
        for s in &statuses {
            for cap in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
                assert_eq!(
                    field(s, cap).as_deref(),
                    Some("0000000000000000"),
                    "{extra:?} {cap}:\n{s}"
                );
            }
            assert_eq!(field(s, "NoNewPrivs").as_deref(), Some("1"), "{extra:?}");
            let uids = field(s, "Uid").unwrap_or_default();
            let want = want_uid.clone().unwrap_or_default();
            assert!(
                uids.split_whitespace().all(|u| u == want),
                "{extra:?}: Uid {uids}, want {want}"
            );
        }
    }
}

#[test]
fn without_permission_the_error_names_the_capability_and_the_fixes() {
    let mut cmd = bin();
    cmd.args(["-i", "lo"]).stdin(Stdio::null());
    if is_root() {
        // Run it as nobody, without capabilities.
        use std::os::unix::process::CommandExt;
        let Some(uid) = uid_of("nobody").and_then(|u| u.parse().ok()) else {
            eprintln!("SKIP: no user nobody to run without permission");
            return;
        };
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("run mtlsniff");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "CAP_NET_RAW",
        "setcap cap_net_raw+ep",
        "kubectl debug --profile=netadmin",
    ] {
        assert!(err.contains(needle), "{needle} missing: {err}");
    }
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn switching_to_a_missing_user_fails_loudly() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls12-openssl-noauth.pcap");
    let out = bin()
        .arg("-r")
        .arg(&fixture)
        .args(["-Z", "mtlsniff-no-such-user"])
        .output()
        .expect("run mtlsniff");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no user named"), "{err}");
    assert!(out.stdout.is_empty(), "nothing is read before the switch");
}
