//! Least privilege once the packet source is open: capture needs
//! CAP_NET_RAW only to open the socket, nothing afterwards.
//!
//! This file owns the process's privileges and the libc calls that change
//! them: making a merely permitted CAP_NET_RAW effective before a live
//! capture opens (`raise_net_raw`), resolving the `-Z` user, dropping supplementary groups, group and
//! user (in that order: after `setuid` nothing else may be changed), the
//! capability bounding set, the ambient, effective, permitted and
//! inheritable sets, and no-new-privileges (PR_SET_NO_NEW_PRIVS, so no
//! later `exec` can regain anything). It must not open captures or make
//! threads, and it must run before any thread exists: capabilities are per
//! thread on Linux, and threads inherit the creator's at `clone`.
//! Invariant: `relinquish` either leaves the process with no capability and
//! no-new-privileges set (and the `-Z` user's ids, when given), or returns
//! an error that ends the run; it never half-succeeds silently.

use std::ffi::{CStr, CString};

/// What `relinquish` did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relinquished {
    /// The user switched to, with its uid and gid.
    pub user: Option<(String, u32, u32)>,
    /// Whether the bounding set could be emptied (needs CAP_SETPCAP, which a
    /// `setcap cap_net_raw+ep` binary does not hold; no-new-privileges makes
    /// it moot).
    pub bounding_cleared: bool,
}

/// CAP_NET_RAW's number (linux/capability.h); it lives in the low word.
#[cfg(target_os = "linux")]
const CAP_NET_RAW: u32 = 13;

/// Make CAP_NET_RAW effective when it is permitted but not effective, and
/// say whether it is effective now. That is what a non-root user holds
/// after running a binary with the file capability `cap_net_raw+p` (no
/// effective bit), as the container image installs it: without the
/// effective bit the kernel still runs the binary when the container's
/// bounding set lacks NET_RAW (with it, exec fails with EPERM, even for
/// `-r`), and the binary raises the capability itself, as ping does. Never
/// an error: without the capability, opening the capture fails with its
/// own message. Adds nothing the process was not already permitted, and
/// `relinquish` empties every set right after the capture opens.
#[cfg(target_os = "linux")]
pub fn raise_net_raw() -> bool {
    use linux::{CapData, CapHeader, VERSION_3};
    let bit = 1u32 << CAP_NET_RAW;
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut sets = [CapData::default(); 2];
    // SAFETY: a valid header; the kernel writes two data words into `sets`.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, sets.as_mut_ptr()) } != 0 {
        return false;
    }
    let [mut low, high] = sets;
    if low.effective & bit != 0 {
        return true;
    }
    if low.permitted & bit == 0 {
        return false;
    }
    low.effective |= bit;
    let raised = [low, high];
    // SAFETY: a valid header and two data words, as version 3 requires.
    unsafe { libc::syscall(libc::SYS_capset, &mut header, raised.as_ptr()) == 0 }
}

#[cfg(not(target_os = "linux"))]
pub fn raise_net_raw() -> bool {
    false
}

/// Drop every privilege; with `user`, also become that user.
pub fn relinquish(user: Option<&str>) -> Result<Relinquished, String> {
    let target = match user {
        Some(name) => Some(lookup_user(name)?),
        None => None,
    };
    // The bounding set can only be changed while CAP_SETPCAP is held, so
    // before the switch of user drops it.
    let bounding_cleared = clear_bounding_set();
    if let Some((name, uid, gid)) = &target {
        switch_user(name, *uid, *gid)?;
    }
    clear_capabilities()?;
    set_no_new_privs()?;
    Ok(Relinquished {
        user: target,
        bounding_cleared,
    })
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// The user's uid and primary gid (getpwnam_r).
fn lookup_user(name: &str) -> Result<(String, u32, u32), String> {
    let c_name = CString::new(name).map_err(|_| format!("-Z: bad user name {name:?}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data, all-zero is a valid (empty) value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: the name is a
    // NUL-terminated string, `buf` outlives the call and its length is
    // passed, `pwd` and `result` are valid out-parameters.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        return Err(format!(
            "-Z: cannot look up user {name:?}: {}",
            std::io::Error::from_raw_os_error(rc)
        ));
    }
    if result.is_null() {
        return Err(format!("-Z: no user named {name:?} (see /etc/passwd)"));
    }
    // SAFETY: getpwnam_r succeeded, so pw_name points to a NUL-terminated
    // string inside `buf`, which is still alive.
    let found = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    Ok((found, pwd.pw_uid, pwd.pw_gid))
}

/// setgroups, setgid, setuid, in that order, then check that the old ids
/// cannot be regained.
fn switch_user(name: &str, uid: u32, gid: u32) -> Result<(), String> {
    let fail = |what: &str| {
        format!(
            "-Z {name}: cannot switch to uid {uid} gid {gid}: {} (switching user needs root or \
             CAP_SETUID and CAP_SETGID)",
            os_error(what)
        )
    };
    let groups = [gid];
    // SAFETY: one valid gid_t array of length 1.
    if unsafe { libc::setgroups(1, groups.as_ptr()) } != 0 {
        return Err(fail("setgroups"));
    }
    // SAFETY: plain syscalls with integer arguments.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(fail("setgid"));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(fail("setuid"));
    }
    // SAFETY: as above.
    let (ruid, euid, rgid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if (ruid, euid, rgid, egid) != (uid, uid, gid, gid) {
        return Err(format!(
            "-Z {name}: ids are {ruid}/{euid}/{rgid}/{egid} after the switch, not {uid}/{gid}"
        ));
    }
    // SAFETY: as above.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(format!(
            "-Z {name}: root could be regained after the switch"
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod linux {
    /// capget/capset header (linux/capability.h).
    #[repr(C)]
    pub struct CapHeader {
        pub version: u32,
        pub pid: libc::c_int,
    }

    /// One 32-bit word of each set; version 3 takes two.
    #[repr(C)]
    #[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
    pub struct CapData {
        pub effective: u32,
        pub permitted: u32,
        pub inheritable: u32,
    }

    /// _LINUX_CAPABILITY_VERSION_3: 64-bit sets in two words.
    pub const VERSION_3: u32 = 0x2008_0522;
}

/// Empty the bounding set; false when the kernel refuses (no CAP_SETPCAP).
#[cfg(target_os = "linux")]
fn clear_bounding_set() -> bool {
    let mut all = true;
    // Capability numbers are small; the kernel answers EINVAL past the last.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc != 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            all = false;
        }
    }
    all
}

#[cfg(not(target_os = "linux"))]
fn clear_bounding_set() -> bool {
    false
}

/// Empty the ambient, effective, permitted and inheritable sets, then
/// read them back.
#[cfg(target_os = "linux")]
fn clear_capabilities() -> Result<(), String> {
    use linux::{CapData, CapHeader, VERSION_3};
    // Ambient capabilities exist since Linux 4.3; EINVAL before that means
    // there are none to clear.
    // SAFETY: prctl with integer arguments.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(os_error("cannot clear the ambient capabilities"));
    }
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let empty = [CapData::default(); 2];
    // SAFETY: a valid header and two data words, as version 3 requires.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, empty.as_ptr()) };
    if rc != 0 {
        return Err(os_error("cannot drop capabilities (capset)"));
    }
    let mut now = [CapData::default(); 2];
    // SAFETY: as above, the kernel writes two words into `now`.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, now.as_mut_ptr()) };
    if rc != 0 {
        return Err(os_error("cannot read capabilities back (capget)"));
    }
    if now != empty {
        return Err(format!("capabilities remain after capset: {now:?}"));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn clear_capabilities() -> Result<(), String> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn set_no_new_privs() -> Result<(), String> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(os_error("cannot set no-new-privileges"));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_no_new_privs() -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_named() {
        let e = lookup_user("mtlsniff-no-such-user-xyz").unwrap_err();
        assert!(e.contains("no user named"), "{e}");
        let e = lookup_user("a\0b").unwrap_err();
        assert!(e.contains("bad user name"), "{e}");
    }

    #[test]
    fn root_is_found() {
        let (name, uid, gid) = lookup_user("root").expect("root exists");
        assert_eq!((name.as_str(), uid, gid), ("root", 0, 0));
    }
}
