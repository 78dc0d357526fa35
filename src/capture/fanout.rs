//! Live capture on every core: N libpcap handles on one interface, their
//! AF_PACKET sockets joined in one fanout group (packet(7),
//! `PACKET_FANOUT`) whose classic BPF program picks the member for each
//! packet, so each member's thread can capture, decode and judge its share
//! to completion with no packet crossing a thread.
//!
//! The program keeps whole flows on one member by the rule
//! `FlowKey::shard` follows: hash the endpoint (address and port) with the
//! higher port, the client's ephemeral one in nearly every connection, so
//! both directions of a flow and both halves of an iptables REDIRECT
//! (which share only that endpoint) meet; equal ports hash both addresses.
//! What the program cannot read (not IPv4/IPv6 TCP over Ethernet, an IP
//! fragment, an IPv6 extension header, an in-band VLAN tag, a tunnel) goes
//! to member 0, which still sees all of it in order: nothing is lost, it
//! is only not spread. The hash is the program's own (a multiplicative
//! one, the kernel takes it modulo N); only the rule is `shard`'s.
//!
//! Until every member has joined, a packet may reach several members (a
//! socket captures everything before it joins), so `Group::since` is the
//! time the group was complete: members skip frames stamped before it, as
//! if the capture had started then. This file owns the socket options and
//! the program; it must not read packets (`source.rs` does) or make
//! threads. Linux only: elsewhere `open` says fanout does not apply.

use std::fmt;

use crate::capture::decode::LinkType;
use crate::capture::segment::Timestamp;
use crate::capture::source::{Capture, CaptureError, Options, Source};

/// Why the libpcap path is used instead of a fanout group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoFanout {
    /// `--no-fanout`.
    Asked,
    /// `-i any`: its socket is bound to no interface.
    AnyInterface,
    /// Not Linux.
    Platform,
    /// A link layer the program does not read.
    Link(LinkType),
    /// The kernel refused (its words).
    Refused(String),
}

impl fmt::Display for NoFanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoFanout::Asked => write!(f, "--no-fanout"),
            NoFanout::AnyInterface => write!(f, "-i any is captured by one socket"),
            NoFanout::Platform => write!(f, "AF_PACKET fanout is Linux only"),
            NoFanout::Link(l) => write!(f, "link type {} is not Ethernet", l.0),
            NoFanout::Refused(e) => write!(f, "the kernel refused the fanout group: {e}"),
        }
    }
}

/// The members of a fanout group, in member order.
pub struct Group {
    pub members: Vec<Capture>,
    /// When the group was complete: frames before it may be duplicates.
    pub since: Timestamp,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("members", &self.members.len())
            .field("since", &self.since)
            .finish()
    }
}

/// What opening a group gave: the group, or why not (with the one capture
/// opened on the way, for the libpcap path to use), or an error that ends
/// the run (the interface cannot be opened at all).
pub enum Opened {
    Group(Group),
    Single(Capture, NoFanout),
}

/// Open `members` captures of the live interface `name` and join them in
/// one fanout group. A reason not to (any, not Linux, not Ethernet, the
/// kernel says no) gives back one plain capture and the reason.
pub fn open(name: &str, opts: &Options, members: usize) -> Result<Opened, CaptureError> {
    let source = Source::Live(name.to_string());
    // The kernel buffer asked for (-B) is the group's: each socket gets its
    // share, so N members hold what one socket would.
    let shared = Options {
        buffer_bytes: opts
            .buffer_bytes
            .map(|b| b / u32::try_from(members.max(1)).unwrap_or(1)),
        ..opts.clone()
    };
    let opts = &shared;
    let first = Capture::open(&source, opts)?;
    if name == "any" {
        return Ok(Opened::Single(first, NoFanout::AnyInterface));
    }
    if !cfg!(target_os = "linux") {
        return Ok(Opened::Single(first, NoFanout::Platform));
    }
    if first.link() != LinkType(1) {
        let link = first.link();
        return Ok(Opened::Single(first, NoFanout::Link(link)));
    }
    let id = group_id();
    if let Err(e) = join(&first, id, true) {
        // Drop the half-joined socket: a fresh one is not in the group.
        drop(first);
        let single = Capture::open(&source, opts)?;
        return Ok(Opened::Single(single, NoFanout::Refused(e)));
    }
    let mut group = vec![first];
    for _ in 1..members.max(1) {
        let member = Capture::open(&source, opts)?;
        join(&member, id, false).map_err(|detail| CaptureError::OpenInterface {
            name: name.to_string(),
            detail: format!("joining the fanout group: {detail}; try --no-fanout"),
        })?;
        group.push(member);
    }
    Ok(Opened::Group(Group {
        members: group,
        since: now(),
    }))
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A fanout group id no other process in this network namespace is
/// likely to use (ids are per namespace, 16 bits).
fn group_id() -> u16 {
    (std::process::id() & 0xffff) as u16
}

#[cfg(target_os = "linux")]
fn join(capture: &Capture, id: u16, first: bool) -> Result<(), String> {
    let Some(fd) = capture.raw_fd() else {
        return Err("not a live capture".to_string());
    };
    let arg: libc::c_int =
        libc::c_int::from(id) | ((libc::PACKET_FANOUT_CBPF as libc::c_int) << 16);
    set(fd, libc::PACKET_FANOUT, &arg)?;
    if first {
        let mut program = program();
        let fprog = libc::sock_fprog {
            len: u16::try_from(program.len()).unwrap_or(u16::MAX),
            filter: program.as_mut_ptr(),
        };
        set(fd, libc::PACKET_FANOUT_DATA, &fprog)?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn join(_: &Capture, _: u16, _: bool) -> Result<(), String> {
    Err("AF_PACKET fanout is Linux only".to_string())
}

#[cfg(target_os = "linux")]
fn set<T>(fd: i32, option: libc::c_int, value: &T) -> Result<(), String> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(0);
    // SAFETY: `value` points to a live, initialised `T` of `len` bytes for
    // the whole call; the kernel copies it (a sock_fprog's filter array is
    // copied during the call too).
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            option,
            std::ptr::from_ref(value).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// One classic BPF instruction, jumps by label.
enum Ins {
    S(u16, u32),
    /// Conditional jump: code, k, label if true, label if false (None:
    /// the next instruction).
    J(u16, u32, Option<&'static str>, Option<&'static str>),
    Label(&'static str),
}

// Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
const LD_H_ABS: u16 = 0x28;
const LD_W_ABS: u16 = 0x20;
const LD_B_ABS: u16 = 0x30;
const LD_H_IND: u16 = 0x48;
const LDX_B_MSH: u16 = 0xb1;
const LD_MEM: u16 = 0x60;
const LDX_MEM: u16 = 0x61;
const ST: u16 = 0x02;
const TAX: u16 = 0x07;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JEQ_X: u16 = 0x1d;
const JGT_X: u16 = 0x2d;
const JSET_K: u16 = 0x45;
const XOR_X: u16 = 0xac;
const MUL_K: u16 = 0x24;
const RSH_K: u16 = 0x74;
const RET_A: u16 = 0x16;
const RET_K: u16 = 0x06;

/// Where loads point (linux/filter.h): `NET + k` is k bytes into the
/// network header, wherever the frame's data starts. A fanout program
/// runs before AF_PACKET puts the link header back: a received packet's
/// data starts at its IP header, a sent one's at its Ethernet header, so
/// absolute offsets would read different fields in the two directions.
const NET: u32 = 0xfff0_0000;
/// The packet's ethertype (`skb->protocol`, SKF_AD_OFF + SKF_AD_PROTOCOL),
/// also right when a VLAN tag was taken off by the card.
const PROTOCOL: u32 = 0xffff_f000;

/// Scratch slots: source port, destination port, source and destination
/// address (IPv6: its four words xored).
const SPORT: u32 = 0;
const DPORT: u32 = 1;
const SADDR: u32 = 2;
const DADDR: u32 = 3;

/// `A = xor of the four words at off..off+16`, kept in slot `slot`.
fn xor_words(off: u32, slot: u32) -> Vec<Ins> {
    let mut v = vec![Ins::S(LD_W_ABS, off)];
    for i in 1..4 {
        v.extend([
            Ins::S(TAX, 0),
            Ins::S(LD_W_ABS, off + 4 * i),
            Ins::S(XOR_X, 0),
        ]);
    }
    v.push(Ins::S(ST, slot));
    v
}

/// The fanout program over an Ethernet frame (see the module comment).
fn listing() -> Vec<Ins> {
    use Ins::{J, Label, S};
    let mut p = vec![
        S(LD_W_ABS, PROTOCOL),
        J(JEQ_K, 0x86dd, Some("v6"), None),
        J(JEQ_K, 0x0800, None, Some("other")),
        // IPv4: TCP, not a fragment (offset or more-fragments set).
        S(LD_B_ABS, NET + 9),
        J(JEQ_K, 6, None, Some("other")),
        S(LD_H_ABS, NET + 6),
        J(JSET_K, 0x3fff, Some("other"), None),
        S(LDX_B_MSH, NET),
        S(LD_H_IND, NET),
        S(ST, SPORT),
        S(LD_H_IND, NET + 2),
        S(ST, DPORT),
        S(LD_W_ABS, NET + 12),
        S(ST, SADDR),
        S(LD_W_ABS, NET + 16),
        S(ST, DADDR),
        J(JA, 0, Some("pick"), Some("pick")),
    ];
    p.extend([
        Label("v6"),
        S(LD_B_ABS, NET + 6),
        J(JEQ_K, 6, None, Some("other")),
        S(LD_H_ABS, NET + 40),
        S(ST, SPORT),
        S(LD_H_ABS, NET + 42),
        S(ST, DPORT),
    ]);
    p.extend(xor_words(NET + 8, SADDR));
    p.extend(xor_words(NET + 24, DADDR));
    p.extend([
        Label("pick"),
        S(LDX_MEM, DPORT),
        S(LD_MEM, SPORT),
        J(JGT_X, 0, Some("src"), None),
        J(JEQ_X, 0, Some("both"), None),
        // The destination's port is higher: its endpoint.
        S(LD_MEM, DADDR),
        S(LDX_MEM, DPORT),
        J(JA, 0, Some("mix"), Some("mix")),
        Label("src"),
        S(LD_MEM, SADDR),
        S(LDX_MEM, SPORT),
        J(JA, 0, Some("mix"), Some("mix")),
        Label("both"),
        S(LD_MEM, SADDR),
        S(LDX_MEM, DADDR),
        S(XOR_X, 0),
        S(LDX_MEM, SPORT),
        Label("mix"),
        S(XOR_X, 0),
        // Fibonacci hashing: the high half spreads every input bit.
        S(MUL_K, 0x9E37_79B1),
        S(RSH_K, 16),
        S(RET_A, 0),
        Label("other"),
        S(RET_K, 0),
    ]);
    p
}

/// The listing with its labels resolved to jump offsets.
#[cfg(target_os = "linux")]
fn program() -> Vec<libc::sock_filter> {
    assemble(&listing())
        .into_iter()
        .map(|(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
        .collect()
}

/// (code, jt, jf, k) per instruction. A JA jumps by k; a conditional
/// jump by jt or jf (forward only, as classic BPF requires).
fn assemble(listing: &[Ins]) -> Vec<(u16, u8, u8, u32)> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for ins in listing {
        match ins {
            Ins::Label(l) => {
                at.insert(*l, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for ins in listing {
        let here = out.len();
        let offset = |l: &Option<&str>| {
            l.and_then(|l| at.get(l))
                .map_or(0, |&t: &usize| t.saturating_sub(here + 1))
        };
        match ins {
            Ins::Label(_) => {}
            Ins::S(code, k) => out.push((*code, 0, 0, *k)),
            Ins::J(JA, _, t, _) => out.push((JA, 0, 0, offset(t) as u32)),
            Ins::J(code, k, t, f) => {
                let (jt, jf) = (offset(t), offset(f));
                out.push((*code, jt as u8, jf as u8, *k));
            }
        }
    }
    out
}

/// Run the program over an Ethernet `frame` as the kernel would (the
/// subset of classic BPF it uses), for tests: the member hash, or None
/// when the program reads past the frame (the kernel then returns 0).
/// Network-header loads read from byte 14 on, the protocol from byte 12.
#[cfg(test)]
fn interpret(frame: &[u8]) -> Option<u32> {
    let prog = assemble(&listing());
    let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
    let load = |off: usize, size: usize| -> Option<u32> {
        let off = if off == PROTOCOL as usize {
            return Some(u32::from(u16::from_be_bytes([
                *frame.get(12)?,
                *frame.get(13)?,
            ])));
        } else {
            off.checked_sub(NET as usize)? + 14
        };
        let b = frame.get(off..off + size)?;
        Some(b.iter().fold(0u32, |v, &byte| (v << 8) | u32::from(byte)))
    };
    loop {
        let (code, jt, jf, k) = *prog.get(pc)?;
        pc += 1;
        let ku = k as usize;
        match code {
            LD_H_ABS => a = load(ku, 2)?,
            LD_W_ABS => a = load(ku, 4)?,
            LD_B_ABS => a = load(ku, 1)?,
            LD_H_IND => a = load(x as usize + ku, 2)?,
            LDX_B_MSH => x = (load(ku, 1)? & 0xf) * 4,
            LD_MEM => a = mem[ku],
            LDX_MEM => x = mem[ku],
            ST => mem[ku] = a,
            TAX => x = a,
            XOR_X => a ^= x,
            MUL_K => a = a.wrapping_mul(k),
            RSH_K => a >>= k,
            RET_A => return Some(a),
            RET_K => return Some(k),
            JA => pc += ku,
            JEQ_K | JEQ_X | JGT_X | JSET_K => {
                let operand = if code == JEQ_X || code == JGT_X { x } else { k };
                let taken = match code {
                    JEQ_K | JEQ_X => a == operand,
                    JGT_X => a > operand,
                    _ => a & operand != 0,
                };
                pc += usize::from(if taken { jt } else { jf });
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::{self, DecodeCounters, Frame};
    use crate::capture::segment::Timestamp;
    use etherparse::PacketBuilder;

    fn frame(v6: bool, src: ([u8; 16], u16), dst: ([u8; 16], u16)) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let ip = if v6 {
            eth.ipv6(src.0, dst.0, 64)
        } else {
            let four = |a: [u8; 16]| [a[0], a[1], a[2], a[3]];
            eth.ipv4(four(src.0), four(dst.0), 64)
        };
        let tcp = ip.tcp(src.1, dst.1, 1, 1000).ack(1);
        let mut out = Vec::new();
        tcp.write(&mut out, b"payload").unwrap();
        out
    }

    fn addr(seed: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        for (i, b) in a.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8);
        }
        a[0] = 10; // a unicast address decode reads
        a
    }

    #[test]
    fn the_program_fits_classic_bpf() {
        let prog = assemble(&listing());
        assert!(prog.len() < 256, "{}", prog.len());
        // Every jump lands inside the program.
        let jumps = [JA, JEQ_K, JEQ_X, JGT_X, JSET_K];
        for (i, (code, jt, jf, k)) in prog.iter().enumerate() {
            if !jumps.contains(code) {
                continue;
            }
            let far = if *code == JA {
                *k as usize
            } else {
                usize::from(*jt.max(jf))
            };
            assert!(i + 1 + far < prog.len(), "instruction {i}");
        }
    }

    proptest::proptest! {
        /// Both directions, and the two halves of a REDIRECT (which share
        /// only the higher-port endpoint), reach one member; the frames
        /// are ones `decode` reads as TCP.
        #[test]
        fn flows_and_redirect_halves_stay_on_one_member(
            v6: bool, a: u8, b: u8, c: u8, pa in 1..=u16::MAX, pb in 1..=u16::MAX, pc in 1..=u16::MAX,
        ) {
            let (client, server, other) = ((addr(a), pa), (addr(b), pb), (addr(c), pc));
            let there = interpret(&frame(v6, client, server)).unwrap();
            let back = interpret(&frame(v6, server, client)).unwrap();
            proptest::prop_assert_eq!(there, back);
            let f = frame(v6, client, server);
            let mut counters = DecodeCounters::default();
            let seg = decode::decode(&Frame { ts: Timestamp(0), link: LinkType(1), data: &f, orig_len: f.len() as u32 }, &mut counters);
            proptest::prop_assert!(seg.is_some(), "{:?}", counters.entries());
            // The client's port is the higher: a second connection from
            // the same client endpoint to anywhere lands with the first.
            if pa > pb && pa > pc {
                let redirected = interpret(&frame(v6, other, client)).unwrap();
                proptest::prop_assert_eq!(there, redirected);
            }
        }
    }

    #[test]
    fn flows_spread_and_the_unreadable_go_to_member_0() {
        let mut members = [0usize; 2];
        for port in 40_000..40_200u16 {
            let h = interpret(&frame(false, (addr(1), port), (addr(2), 443))).unwrap();
            members[(h % 2) as usize] += 1;
        }
        assert!(members.iter().all(|&n| n > 60), "{members:?}");
        let mut udp = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64)
            .udp(1, 2)
            .write(&mut udp, b"x")
            .unwrap();
        assert_eq!(interpret(&udp), Some(0));
        let mut frag = frame(false, (addr(1), 5), (addr(2), 6));
        frag[20] |= 0x20; // more fragments
        assert_eq!(interpret(&frag), Some(0));
    }
}
