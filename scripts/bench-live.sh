#!/usr/bin/env bash
# Live-capture benchmark of mtlsniff.
#
# Replays a pcap with tcpreplay into one end of a veth pair and captures on the
# other end with `mtlsniff -i`, both ends in network namespaces this script
# creates. For each capture configuration it replays at top speed, then
# bisects the packet rate (tcpreplay --pps) between 10k pps and the top speed
# reached, and reports per step: rate asked and reached, packets mtlsniff
# read, kernel drops, interface drops, mtlsniff queue drops (workers behind).
# A step is "zero drops" when the kernel dropped nothing, the interface
# dropped nothing, no segment was dropped on mtlsniff's worker queues and
# mtlsniff read exactly the packets tcpreplay sent. It then writes the
# highest zero-drop rate found, per configuration and overall, and an
# accuracy check of the snaplen option (verdicts with -s 2048 and -s 256
# against the full snaplen), to stdout and as Markdown to target/bench/live.md.
# The default configurations compare the libpcap path (--no-fanout) with
# an AF_PACKET fanout group of 1 and 2 sockets, and the report ends with
# the fanout scaling: the highest zero-drop rate of 2 sockets over 1's.
#
# With --drain it measures instead what the capture reads when no sender
# shares the CPUs with it: mtlsniff is started, stopped (SIGSTOP, its PID
# only) once its sockets are bound, K packets are replayed at top speed into
# its stopped sockets' rings (-B sized by the script to hold them all), then
# it is continued (SIGCONT) and timed until its threads go idle. A run is
# valid when nothing was dropped anywhere and mtlsniff read exactly the K
# packets sent (its --stats, after SIGINT). Drain rate = K / drain time
# (wall clock, from SIGCONT to the last 5 ms in which its threads ran more
# than a quarter of the time); CPU = the CPU time its threads used until
# then (/proc/PID/task/*/schedstat), per packet, and K / the busiest
# thread's CPU time: the drain rate with a core per thread, which other
# work on a shared host changes much less. Each configuration (default
# --no-fanout, --threads 1, --threads 2) is run 3 times, the configurations
# in turn; the report gives the medians of the valid runs and the fanout
# scaling: the drain rate of 2 sockets over 1's (target 1.6x), and the
# same by CPU. mtlsniff is idle (no CPU tick in 0.3 s) before SIGSTOP: a
# socket is bound before its ring is set up.
#
# Usage (as root):
#   scripts/bench-live.sh [--quick] [--senders N] [--out FILE] [--config 'OPTS']... [PCAP]
#   scripts/bench-live.sh --drain [--drain-packets K] [--senders N] [--out FILE] [--config 'OPTS']... [PCAP]
#
#   --drain      the drain measurement above instead of the rate search
#                (Markdown report default target/bench/live-drain.md)
#   --drain-packets K  packets per drain run (default 1000000, --quick 300000)
#   --senders N  N tcpreplay processes at once, each sending 1/N of the rate
#                and of the packets (default 1): one sender tops out near
#                one core's speed, which must not be what a step measures
#   PCAP         Ethernet pcap to replay (default target/bench/mixed.pcap; when
#                that does not exist, a stand-in is built from fixtures/*.pcap:
#                IPv4 frames, 100 copies, copy k readdressed to 10.199.k.0/24)
#   --quick      about one minute: 2 configurations, shorter and fewer steps
#   --config O   mtlsniff options of one configuration (repeatable; replaces
#                the default set), e.g. --config '-B 65536 --threads 2'
#   --out FILE   Markdown report (default target/bench/live.md)
#
# Safety: the two namespaces (mtlsb-tx-PID, mtlsb-rx-PID) and the veth pair
# between them are created here and deleted on exit (trap), with the temp
# dir and every process this script started (killed by PID). No address is
# configured anywhere: the receiving namespace has no IPv4 address, IPv6
# disabled, loopback down and forwarding off, so the replayed frames are
# captured and then discarded by its kernel; nothing is sent to any host.
# Host settings (sysctls, CPU governor, ...) are not touched.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
PCAP=""
OUT="$ROOT/target/bench/live.md"
CONFIGS=()
SENDERS=1
DRAIN=0
DRAIN_PKTS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --drain) DRAIN=1 ;;
        --drain-packets) DRAIN_PKTS=$2; shift ;;
        --senders) SENDERS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --config) CONFIGS+=("$2"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench-live: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) PCAP=$1 ;;
    esac
    shift
done

if [ "$DRAIN" = 1 ]; then
    [ "$OUT" != "$ROOT/target/bench/live.md" ] || OUT="$ROOT/target/bench/live-drain.md"
    [ -n "$DRAIN_PKTS" ] || { if [ "$QUICK" = 1 ]; then DRAIN_PKTS=300000; else DRAIN_PKTS=1000000; fi; }
    case "$DRAIN_PKTS" in ''|*[!0-9]*) echo "bench-live: --drain-packets needs a number" >&2; exit 2 ;; esac
    DRAIN_RUNS=3
    [ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=("--no-fanout" "--threads 1" "--threads 2")
fi
if [ "$QUICK" = 1 ]; then
    BUDGET=80          # seconds for the measurements (build not included)
    TOP_PKTS=1000000   # packets per top-speed step
    STEP_SECS=1.5      # seconds of traffic per rate step
    BISECT=2           # bisection steps after the 10k pps floor
    [ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=("--no-fanout -B 65536" "-B 65536 --threads 1" "-B 65536 --threads 2")
else
    BUDGET=540
    TOP_PKTS=2000000
    STEP_SECS=4
    BISECT=6
    [ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=("--no-fanout -B 65536" "--no-fanout -B 65536 --threads 2" "-B 65536 --threads 1" "-B 65536 --threads 2" "-l -B 65536" "-B 65536 -s 2048")
fi
FLOOR_PPS=10000
MIN_STEP_PKTS=20000

say() { echo "bench-live: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, raw capture, tcpreplay)"
export PATH="$PATH:/usr/sbin:/sbin"
command -v ip >/dev/null || die "'ip' (iproute2) not found"
if ! command -v tcpreplay >/dev/null; then
    say "installing tcpreplay"
    apt-get install -y tcpreplay >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y tcpreplay >/dev/null 2>&1; } ||
        die "cannot install tcpreplay (apt-get install -y tcpreplay)"
fi
command -v python3 >/dev/null || die "python3 not found (used to parse pcap headers and compare verdicts)"

WORK=$(mktemp -d /tmp/mtlsniff-bench-live.XXXXXX)
P=$$
NT="mtlsb-tx-$P"; NR="mtlsb-rx-$P"
TX="mbt$P"; RX="mbr$P"          # <= 15 characters
NS_MADE=()
SNIFF_PID=""; REPLAY_PIDS=""
cleanup() {
    local rc=$?
    for pid in $REPLAY_PIDS $SNIFF_PID; do
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    done
    for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
say "building mtlsniff (release)"
"$ROOT/scripts/ensure-libpcap.sh" >/dev/null
(cd "$ROOT" && cargo build --release --quiet)
# A private copy: a rebuild of target/ during the run cannot change the binary.
cp "$ROOT/target/release/mtlsniff" "$WORK/mtlsniff"
SNIFF="$WORK/mtlsniff"
VERSION=$("$SNIFF" --version 2>/dev/null || echo "mtlsniff ?")
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")

# ---------------------------------------------------------------- input
STANDIN=0
if [ -z "$PCAP" ]; then PCAP="$ROOT/target/bench/mixed.pcap"; fi
if [ ! -f "$PCAP" ]; then
    [ "$PCAP" = "$ROOT/target/bench/mixed.pcap" ] || die "no such file: $PCAP"
    command -v mergecap >/dev/null && command -v tcprewrite >/dev/null && command -v tcpdump >/dev/null ||
        die "$PCAP does not exist, and the stand-in needs mergecap (wireshark-common), tcprewrite and tcpdump"
    say "$PCAP does not exist yet: building a stand-in from fixtures/*.pcap"
    mergecap -a -F pcap -w "$WORK/fixtures.pcap" "$ROOT"/fixtures/*.pcap
    # IPv4 only (the fixtures' IPv6 is ::1), then 100 copies, copy k moved
    # from 127.0.0.0/8 to 10.199.k.0/24 so the copies are distinct flows.
    tcpdump -r "$WORK/fixtures.pcap" -w "$WORK/fixtures4.pcap" 'not ip6' 2>/dev/null
    for k in $(seq 0 99); do
        tcprewrite --pnat=127.0.0.0/8:10.199.$k.0/24 -i "$WORK/fixtures4.pcap" -o "$WORK/copy$k.pcap"
    done
    mergecap -a -F pcap -w "$WORK/standin.pcap" $(for k in $(seq 0 99); do echo "$WORK/copy$k.pcap"; done)
    rm -f "$WORK"/copy*.pcap "$WORK/fixtures.pcap" "$WORK/fixtures4.pcap"
    PCAP="$WORK/standin.pcap"
    STANDIN=1
fi
# Packets, bytes, link type, longest frame, frames longer than 2048 / 256.
read -r FILE_PKTS FILE_BYTES LINKTYPE MAXLEN OVER2048 OVER256 < <(python3 - "$PCAP" <<'EOF'
import struct, sys
f = open(sys.argv[1], 'rb')
h = f.read(24)
magic = h[:4]
if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'): e = '<'
elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'): e = '>'
else: print('0 0 -1 0 0 0'); sys.exit()
link = struct.unpack(e + 'I', h[20:24])[0] & 0xfffffff
n = b = mx = o2 = o1 = 0
while True:
    r = f.read(16)
    if len(r) < 16: break
    _, _, incl, orig = struct.unpack(e + 'IIII', r)
    f.seek(incl, 1)
    n += 1; b += incl; mx = max(mx, orig)
    o2 += orig > 2048; o1 += orig > 256
print(n, b, link, mx, o2, o1)
EOF
)
[ "$LINKTYPE" != -1 ] || die "$PCAP: not a pcap file (pcapng is not supported here: convert with editcap -F pcap)"
[ "$LINKTYPE" = 1 ] || die "$PCAP: link type $LINKTYPE; tcpreplay onto a veth needs Ethernet (1)"
[ "$FILE_PKTS" -gt 0 ] || die "$PCAP: no packets"
# Preload into tcpreplay's memory (-K) unless the file is large.
PRELOAD=(-K); [ "$FILE_BYTES" -lt $((1024 * 1024 * 1024)) ] || PRELOAD=()
say "input: $PCAP: $FILE_PKTS packets, $FILE_BYTES bytes, longest frame $MAXLEN B"

# ---------------------------------------------------------------- network
for ns in "$NT" "$NR"; do
    ip netns add "$ns"
    NS_MADE+=("$ns")
    ip netns exec "$ns" sh -c 'for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done'
done
# The pair is created directly inside the namespaces; MTU 65535 (the veth
# maximum) so frames captured on loopback fit.
ip link add "$TX" netns "$NT" mtu 65535 type veth peer name "$RX" netns "$NR" mtu 65535
ip -n "$NT" link set "$TX" up
ip -n "$NR" link set "$RX" promisc on
ip -n "$NR" link set "$RX" up
sleep 0.5

# ---------------------------------------------------------------- one step
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
tx_dropped() { ip netns exec "$NT" cat "/sys/class/net/$TX/statistics/tx_dropped"; }
softnet_dropped() { # column 2 of /proc/net/softnet_stat, summed over CPUs (hex); host-wide
    python3 -c 'import sys; print(sum(int(l.split()[1], 16) for l in open("/proc/net/softnet_stat")))'
}

# start_sniff OPTS [OUT]: mtlsniff -i in the receiving namespace, --stats on
# $WORK/sniff.err, verdicts to OUT (default /dev/null); returns once its
# packet sockets are bound. Sets SNIFF_PID.
start_sniff() {
    local opts=$1 out=${2:-/dev/null} err="$WORK/sniff.err"
    local fmt=(); [ "$out" = /dev/null ] || fmt=(--json)
    # shellcheck disable=SC2086
    ip netns exec "$NR" "$SNIFF" -i "$RX" --stats $opts "${fmt[@]}" >"$out" 2>"$err" &
    SNIFF_PID=$!
    # Ready when its packet socket is bound (an interface index in /proc/net/packet).
    local i
    for i in $(seq 50); do
        if ip netns exec "$NR" awk 'NR > 1 && $5 != 0 { f = 1 } END { exit !f }' /proc/net/packet; then break; fi
        kill -0 "$SNIFF_PID" 2>/dev/null || break
        sleep 0.1
    done
    sleep 0.3
    kill -0 "$SNIFF_PID" 2>/dev/null || { wait "$SNIFF_PID" || true; SNIFF_PID=""; die "mtlsniff -i $RX $opts exited early: $(cat "$err")"; }
}

# replay RATE PKTS LOOPS: SENDERS tcpreplay processes at once, each with its
# share of the rate and packets; their reports in $WORK/replay.out.
replay() {
    local rate=$1 pkts=$2 loops=$3 rep="$WORK/replay.out"
    local speed=(--topspeed); [ "$rate" = top ] || speed=(--pps="$(( (rate + SENDERS - 1) / SENDERS ))")
    local limit=(--limit="$(( (pkts + SENDERS - 1) / SENDERS ))"); [ "$pkts" != 0 ] || limit=()
    local k pids=()
    for k in $(seq "$SENDERS"); do
        ip netns exec "$NT" tcpreplay -i "$TX" "${PRELOAD[@]}" --loop="$loops" "${limit[@]}" "${speed[@]}" "$PCAP" >"$rep.$k" 2>&1 &
        pids+=($!)
    done
    REPLAY_PIDS="${pids[*]}"
    for k in "${!pids[@]}"; do
        wait "${pids[$k]}" || { die "tcpreplay failed: $(tail -5 "$rep.$((k + 1))")"; }
    done
    REPLAY_PIDS=""
    cat "$rep".* >"$rep"
}

# run_step CONFIG RATE PKTS [LOOPS] [JSON_OUT]: RATE is a pps number or "top".
# Sets S_* variables.
run_step() {
    local opts=$1 rate=$2 pkts=$3 loops=${4:-0} json=${5:-}
    start_sniff "$opts" "${json:-/dev/null}"
    local txd0 snd0; txd0=$(tx_dropped); snd0=$(softnet_dropped)
    replay "$rate" "$pkts" "$loops"
    # Let mtlsniff finish reading: SIGINT stops it at its next read, and what
    # is still in the ring then would be neither read nor counted as dropped.
    # Idle = under 2 CPU ticks in 0.4 s (bounded: 20 s).
    sleep 0.3
    local i a b
    for i in $(seq 50); do
        a=$(cpu_ticks "$SNIFF_PID"); sleep 0.4; b=$(cpu_ticks "$SNIFF_PID")
        [ $((b - a)) -ge 2 ] || break
    done
    stop_sniff "$opts" "$rate" "$txd0" "$snd0"
}

# stop_sniff OPTS RATE TXD0 SND0: SIGINT mtlsniff, wait for it, and read its
# --stats and the senders' reports into S_* (S_OK=1 when nothing was lost).
stop_sniff() {
    local opts=$1 rate=$2 txd0=$3 snd0=$4 err="$WORK/sniff.err" rep="$WORK/replay.out" i
    # Summed over the senders (they ran side by side): packets, Mbps, pps.
    sum_rep() { sed -n "$1" "$rep" | awk '{ s += $1 } END { printf "%s", (NR ? s : "") }'; }
    kill -INT "$SNIFF_PID" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$SNIFF_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SNIFF_PID" 2>/dev/null; then
        say "mtlsniff did not exit within 10 s of SIGINT ($opts, rate $rate); killing it"
        kill -KILL "$SNIFF_PID" 2>/dev/null || true
    fi
    wait "$SNIFF_PID" 2>/dev/null || true
    SNIFF_PID=""
    S_TXDROP=$(( $(tx_dropped) - txd0 )); S_SOFTNET=$(( $(softnet_dropped) - snd0 ))
    S_SENT=$(sum_rep 's/.*Actual: \([0-9]*\) packets.*/\1/p')
    S_SECS=$(sed -n 's/.*packets ([0-9]* bytes) sent in \([0-9.]*\) seconds.*/\1/p' "$rep" | sort -n | tail -1)
    S_MBPS=$(sum_rep 's/.*Rated: .* Bps, \([0-9.]*\) Mbps, \([0-9.]*\) pps.*/\1/p')
    S_PPS=$(sum_rep 's/.*Rated: .* Bps, \([0-9.]*\) Mbps, \([0-9.]*\) pps.*/\2/p')
    S_FAILED=$(sum_rep 's/.*Failed packets: *\([0-9]*\).*/\1/p')
    S_READ=$(sed -n 's/^mtlsniff: \([0-9]*\) packets read.*/\1/p' "$err")
    S_KRECV=$(sed -n 's/^mtlsniff: kernel: .* (\([0-9]*\) passed the filter.*/\1/p' "$err")
    S_KDROP=$(sed -n 's/^mtlsniff: kernel: \([0-9]*\) dropped,.*/\1/p' "$err")
    S_IFDROP=$(sed -n 's/^mtlsniff: kernel: [0-9]* dropped, \([0-9]*\) dropped by interface.*/\1/p' "$err")
    S_QDROP=$(sed -n 's/^mtlsniff: dropped (workers behind.*: \([0-9]*\) segments.*/\1/p' "$err")
    S_QTICKS=$(sed -n 's/^mtlsniff: dropped (workers behind.*[ :] \([0-9]*\) ticks.*/\1/p' "$err")
    S_FLOWS=$(sed -n 's/^mtlsniff: flows: //p' "$err")
    S_GAPS=$(grep -o 'stream\.gaps=[0-9]*' "$err" | cut -d= -f2 || true)
    S_LOAD=$(cut -d' ' -f1 /proc/loadavg)
    S_NREP=$(sed -n 's/^mtlsniff: [0-9]* packets read, \([0-9]*\) flows reported.*/\1/p' "$err")
    : "${S_SENT:=0}" "${S_SECS:=0}" "${S_MBPS:=0}" "${S_PPS:=0}" "${S_FAILED:=0}" "${S_READ:=}"
    : "${S_KRECV:=0}" "${S_KDROP:=0}" "${S_IFDROP:=0}" "${S_QDROP:=0}" "${S_QTICKS:=0}" "${S_GAPS:=0}" "${S_NREP:=0}"
    if [ -z "$S_READ" ]; then
        S_READ=0; S_OK=0; S_WHY="no summary from mtlsniff: $(tr '\n' ' ' <"$err" | cut -c1-120)"
        return
    fi
    local why=()
    [ "$S_KDROP" = 0 ] || why+=("kernel dropped $S_KDROP")
    [ "$S_IFDROP" = 0 ] || why+=("interface dropped $S_IFDROP")
    [ "$S_QDROP" = 0 ] || why+=("queue dropped $S_QDROP segments")
    [ "$S_FAILED" = 0 ] || why+=("tcpreplay failed $S_FAILED")
    if [ "$S_READ" != "$S_SENT" ]; then
        local lost=$((S_SENT - S_KRECV)) unread=$((S_KRECV - S_KDROP - S_READ))
        [ "$lost" = 0 ] || why+=("$lost sent but not received by the socket (veth tx_dropped +$S_TXDROP, softnet dropped +$S_SOFTNET)")
        [ "$unread" = 0 ] || why+=("$unread received, not dropped, not read")
    fi
    [ "$S_QTICKS" = 0 ] || why+=("(and $S_QTICKS ticks dropped)")
    if [ ${#why[@]} -eq 0 ]; then S_OK=1; S_WHY="zero drops"; else S_OK=0; S_WHY="DROPS: ${why[*]}"; fi
}

# ---------------------------------------------------------------- drain mode
# drain_step OPTS: one drain run (see the header). Sets S_* as run_step does,
# and D_SECS (drain time), D_CPU (CPU seconds of all threads), D_TOP (of the
# busiest thread), D_WAIT (its time runnable but waiting for a CPU: other
# work's share of the drain time), D_TIMEOUT (1: still busy after 120 s).
drain_step() {
    local opts=$1 i t
    start_sniff "$opts"
    # A bound socket may still be setting up its ring (a large -B takes a
    # while, and packets before the ring are not counted): wait until
    # mtlsniff is idle (no CPU tick in 0.3 s, bounded: 15 s).
    local a b
    for i in $(seq 50); do
        a=$(cpu_ticks "$SNIFF_PID"); sleep 0.3; b=$(cpu_ticks "$SNIFF_PID")
        [ "$a" != "$b" ] || break
    done
    kill -STOP "$SNIFF_PID"
    # Stopped when every thread is (state T in /proc/PID/task/*/stat).
    for i in $(seq 50); do
        t=$(cat /proc/"$SNIFF_PID"/task/*/stat 2>/dev/null | awk '{ sub(/.*\) /, ""); if ($1 != "T") n++ } END { print n + 0 }')
        [ "$t" != 0 ] || break
        sleep 0.1
    done
    [ "$t" = 0 ] || { kill -CONT "$SNIFF_PID"; die "mtlsniff $opts: $t thread(s) still running 5 s after SIGSTOP"; }
    local txd0 snd0; txd0=$(tx_dropped); snd0=$(softnet_dropped)
    replay top "$DRAIN_PKTS" 0
    sleep 0.2
    read -r D_SECS D_CPU D_TOP D_TIMEOUT D_WAIT < <(python3 - "$SNIFF_PID" <<'EOF'
import glob, os, signal, sys, time
pid = int(sys.argv[1])
def sched():  # thread id -> (ns on a CPU, ns runnable but waiting for one)
    r = {}
    for p in glob.glob('/proc/%d/task/*/schedstat' % pid):
        try: r[p.split('/')[4]] = tuple(map(int, open(p).read().split()[:2]))
        except (OSError, ValueError, IndexError): pass
    return r
def runtimes(): return {k: v[0] for k, v in sched().items()}
base_s = sched(); base = {k: v[0] for k, v in base_s.items()}
t0 = time.monotonic(); os.kill(pid, signal.SIGCONT)
prev, tprev, last, at_last, at_last_s = base, t0, t0, base, base_s
while True:
    time.sleep(0.005)  # coarser would blur the end, finer costs the CPUs it measures
    now = time.monotonic(); cur = runtimes()
    # Busy: its threads ran more than a quarter of the interval, together.
    if sum(v - prev.get(k, 0) for k, v in cur.items()) > 0.25e9 * (now - tprev): last, at_last, at_last_s = now, cur, sched()
    prev, tprev = cur, now
    if now - last > 0.5 or now - t0 > 120: break
used = {k: v - base.get(k, 0) for k, v in at_last.items()}
top = max(used, key=used.get) if used else None
# How long the busiest thread was runnable but waited for a CPU: other work.
wait = (at_last_s[top][1] - base_s.get(top, (0, 0))[1]) / 1e9 if top in at_last_s else 0
print('%.4f %.4f %.4f %d %.4f' % (last - t0, sum(used.values()) / 1e9, max(used.values() or [0]) / 1e9, now - t0 > 120, wait))
EOF
)
    kill -CONT "$SNIFF_PID" 2>/dev/null || true
    : "${D_SECS:=0}" "${D_CPU:=0}" "${D_TOP:=0}" "${D_TIMEOUT:=1}" "${D_WAIT:=0}"
    stop_sniff "$opts" drain "$txd0" "$snd0"
    if [ "$S_OK" = 1 ] && [ "$S_SENT" != "$DRAIN_PKTS" ]; then S_OK=0; S_WHY="sent $S_SENT, not $DRAIN_PKTS"; fi
    if [ "$S_OK" = 1 ] && [ "${D_TIMEOUT:-1}" != 0 ]; then S_OK=0; S_WHY="still busy 120 s after SIGCONT"; fi
}

# The median of the numbers given (empty when none).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

if [ "$DRAIN" = 1 ]; then
    # The ring must hold all K packets in one socket (a fanout member gets
    # 1/N of -B, and the hash need not split them evenly): K packets of the
    # file's mean length, plus 128 B of TPACKET_V3 header and alignment
    # each, a quarter more for the block ends, twice over.
    DRAIN_KIB=$(( (DRAIN_PKTS * (FILE_BYTES / FILE_PKTS + 128) * 5 / 4 * 2 + 1023) / 1024 ))
    [ "$DRAIN_KIB" -le 4194303 ] || die "--drain-packets $DRAIN_PKTS needs -B $DRAIN_KIB KiB, over libpcap's limit (4194303): fewer packets"
    AVAIL_KIB=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
    [ "$DRAIN_KIB" -le $((AVAIL_KIB / 2)) ] || die "--drain-packets $DRAIN_PKTS needs a $DRAIN_KIB KiB ring, over half the available memory ($AVAIL_KIB KiB): fewer packets"
    say "drain: $DRAIN_PKTS packets per run, -B $DRAIN_KIB KiB, $DRAIN_RUNS runs per configuration"
    echo
    printf '%-28s %4s %9s %9s %8s %11s %9s %8s %11s %7s %5s  %s\n' config run sent read drain_s drain_pps cpu_s ns/pkt cpu_cap_pps wait_s load verdict
    declare -A D_RATES D_NSPP D_CAPS D_BAD D_WHY D_LOADS
    DROWS=()
    for run in $(seq "$DRAIN_RUNS"); do
        for cfg in "${CONFIGS[@]}"; do
            opts=$cfg
            case " $cfg " in *" -B "*|*" --buffer-size"*) ;; *) opts="$cfg -B $DRAIN_KIB" ;; esac
            drain_step "$opts"
            rate=$(python3 -c "import sys; k, s = int(sys.argv[1]), float(sys.argv[2]); print('%.0f' % (k / s) if s > 0 else 0)" "$DRAIN_PKTS" "$D_SECS")
            cap=$(python3 -c "import sys; k, s = int(sys.argv[1]), float(sys.argv[2]); print('%.0f' % (k / s) if s > 0 else 0)" "$DRAIN_PKTS" "$D_TOP")
            nspp=$(python3 -c "import sys; print('%.0f' % (float(sys.argv[2]) * 1e9 / int(sys.argv[1])))" "$DRAIN_PKTS" "$D_CPU")
            verdict=$S_WHY; [ "$S_OK" = 1 ] && verdict="valid" || verdict="INVALID: $S_WHY"
            printf '%-28s %4s %9s %9s %8s %11s %9s %8s %11s %7s %5s  %s\n' "${cfg:-(defaults)}" "$run" "$S_SENT" "$S_READ" "$D_SECS" "$rate" "$D_CPU" "$nspp" "$cap" "$D_WAIT" "$S_LOAD" "$verdict"
            DROWS+=("| \`${cfg:-(defaults)}\` | $run | $S_SENT | $S_READ | $S_KDROP / $S_IFDROP / $S_QDROP | $D_SECS | $rate | $D_CPU | $nspp | $D_TOP | $D_WAIT | $cap | $S_LOAD | $verdict |")
            D_LOADS[$cfg]="${D_LOADS[$cfg]:-} $S_LOAD"
            if [ "$S_OK" = 1 ]; then
                D_RATES[$cfg]="${D_RATES[$cfg]:-} $rate"; D_NSPP[$cfg]="${D_NSPP[$cfg]:-} $nspp"; D_CAPS[$cfg]="${D_CAPS[$cfg]:-} $cap"
            else
                D_BAD[$cfg]=$(( ${D_BAD[$cfg]:-0} + 1 )); D_WHY[$cfg]=$S_WHY
            fi
        done
    done
    DSUM=()
    for cfg in "${CONFIGS[@]}"; do
        # shellcheck disable=SC2086
        r=$(median ${D_RATES[$cfg]:-}); n=$(median ${D_NSPP[$cfg]:-}); c=$(median ${D_CAPS[$cfg]:-})
        # shellcheck disable=SC2086
        valid=$(echo ${D_RATES[$cfg]:-} | wc -w)
        if [ -n "$r" ]; then
            DSUM+=("| \`${cfg:-(defaults)}\` | $(printf '%.0f' "$r") | $(printf '%.0f' "$c") | $(printf '%.0f' "$n") | $valid of $DRAIN_RUNS (${D_RATES[$cfg]# }) | ${D_LOADS[$cfg]# } |")
        else
            DSUM+=("| \`${cfg:-(defaults)}\` | no valid run | | | 0 of $DRAIN_RUNS (last: ${D_WHY[$cfg]}) | ${D_LOADS[$cfg]# } |")
        fi
    done
    # shellcheck disable=SC2086
    f1=$(median ${D_RATES["--threads 1"]:-}); f2=$(median ${D_RATES["--threads 2"]:-})
    if [ -n "$f1" ] && [ -n "$f2" ]; then
        DSCALING=$(python3 -c "import sys; a, b = map(float, sys.argv[1:]); print('fanout of 2 sockets %.0f pps / fanout of 1 %.0f pps = %.2fx (target >= 1.6x: %s)' % (b, a, b / a, 'met' if b / a >= 1.6 else 'NOT met'))" "$f1" "$f2")
        # shellcheck disable=SC2086
        c1=$(median ${D_CAPS["--threads 1"]:-}); c2=$(median ${D_CAPS["--threads 2"]:-})
        DCPUSCALING=$(python3 -c "import sys; a, b = map(float, sys.argv[1:]); print('%.0f / %.0f pps = %.2fx' % (b, a, b / a))" "$c1" "$c2")
    else
        DSCALING="not measured (needs valid runs of the configurations '--threads 1' and '--threads 2')"
    fi
    echo
    for d in "${DSUM[@]}"; do echo "$d" | tr -d '`'; done
    echo "drain scaling: $DSCALING"
    [ -z "${DCPUSCALING:-}" ] || echo "by CPU (packets / busiest thread's CPU seconds): $DCPUSCALING"
    mkdir -p "$(dirname "$OUT")"
    {
        echo "# mtlsniff live capture: drain of a pre-filled ring"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $VERSION (commit $COMMIT), \`scripts/bench-live.sh --drain$([ "$QUICK" = 1 ] && echo ' --quick') --drain-packets $DRAIN_PKTS --senders $SENDERS\`"
        echo
        echo "- host: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), Linux $(uname -r); load: 1-minute load average after each run (anything else on the host shares the CPUs)"
        if [ "$STANDIN" = 1 ]; then
            echo "- input: stand-in (fixtures/*.pcap, IPv4 frames, 100 copies readdressed): $FILE_PKTS packets, $FILE_BYTES bytes, looped to $DRAIN_PKTS packets per run"
        else
            echo "- input: \`$PCAP\`: $FILE_PKTS packets, $FILE_BYTES bytes, looped to $DRAIN_PKTS packets per run"
        fi
        echo "- method: mtlsniff -i started, SIGSTOP once its sockets are bound, $DRAIN_PKTS packets replayed at top speed into its stopped rings (\`-B $DRAIN_KIB\`), SIGCONT, timed until its threads are idle; valid = no kernel, interface or queue drop and read = sent = $DRAIN_PKTS"
        echo
        echo "| options | median drain rate (pps) | median packets / busiest thread's CPU s | median CPU ns/packet (all threads) | valid runs (drain pps each) | load |"
        echo "|---|---|---|---|---|---|"
        for d in "${DSUM[@]}"; do echo "$d"; done
        echo
        echo "**drain scaling: $DSCALING**"
        [ -z "${DCPUSCALING:-}" ] || { echo; echo "by CPU (packets / the busiest thread's CPU seconds, what the drain would reach with a core per thread): $DCPUSCALING"; }
        echo
        echo "## Runs"
        echo
        echo "| options | run | sent | read | dropped kernel / interface / queue | drain s | drain pps | CPU s | CPU ns/packet | busiest thread CPU s | its wait for a CPU s | packets / its CPU s | load | verdict |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        for d in "${DROWS[@]}"; do echo "$d"; done
    } >"$OUT"
    say "wrote $OUT ($(($(date +%s) - START))s of measurements)"
    exit 0
fi

# ---------------------------------------------------------------- table
ROWS=()        # markdown rows
SUMMARY=()     # per-config result lines
BEST_PPS=0; BEST_LINE="none"
hdr=$(printf '%-20s %14s %10s %8s %9s %9s %9s %7s %5s  %s' config asked_pps reached_pps Mbps sent read k/if_drop q_drop load verdict)
label() { if [ -z "$1" ]; then echo "(defaults)"; else echo "$1"; fi; }
record() { # CONFIG ASKED [norow]
    local l; l=$(label "$1")
    printf '%-20s %14s %10.0f %8.1f %9s %9s %9s %7s %5s  %s\n' "$l" "$2" "$S_PPS" "$S_MBPS" "$S_SENT" "$S_READ" \
        "$S_KDROP/$S_IFDROP" "$S_QDROP" "$S_LOAD" "$S_WHY"
    [ -n "${3:-}" ] || ROWS+=("| \`$l\` | $2 | $(printf '%.0f' "$S_PPS") | $S_MBPS | $S_SENT | $S_READ | $S_KDROP | $S_IFDROP | $S_QDROP | $S_LOAD | $S_WHY |")
}
step_pkts() { # RATE -> packets for STEP_SECS at RATE, within [MIN_STEP_PKTS, TOP_PKTS]
    python3 -c "import sys; r, s, lo, hi = map(float, sys.argv[1:]); print(int(min(hi, max(lo, r * s))))" \
        "$1" "$STEP_SECS" "$MIN_STEP_PKTS" "$TOP_PKTS"
}

say "capturing on $RX in $NR, replaying on $TX in $NT; budget ${BUDGET}s"
echo
echo "$hdr"
ABORTED=""
BEST_UNCONF=0; BEST_UNCONF_LINE=""
declare -A BEST_OF   # configuration -> its highest zero-drop rate
declare -A AT_TOP    # configuration -> 1 when clean at the sender's top speed
# Search, per configuration: top speed, run twice (drops depend on
# scheduling); unless both runs are clean, FLOOR_PPS, then BISECT bisection
# steps between the highest clean and the lowest dropping rate; then the
# highest clean rate is run again, and if that drops, the next clean rate
# below it (at most CONFIRM_TRIES re-runs; the floor needs none).
CONFIRM_TRIES=2
for cfg in "${CONFIGS[@]}"; do
    l=$(label "$cfg")
    if [ "$(left)" -lt 20 ]; then ABORTED="time budget reached before configuration $l"; break; fi
    best=""; bestline=""; note=""
    run_step "$cfg" top "$TOP_PKTS"; record "$cfg" top
    top_pps=${S_PPS%.*}; top_mbps=$S_MBPS
    if [ "$S_OK" = 1 ]; then
        run_step "$cfg" top "$TOP_PKTS"; record "$cfg" "top (again)"
        if [ "$S_OK" = 1 ]; then
            best=$top_pps
            bestline="$top_pps pps ($top_mbps Mbps; $(printf '%.0f' "$S_PPS") pps again) at top speed: no drop up to the sender's limit"
            confirmed=1
        else
            note="top speed clean once, then $S_WHY; "
        fi
    fi
    if [ -z "$best" ]; then
        confirmed=0
        run_step "$cfg" "$FLOOR_PPS" "$(step_pkts $FLOOR_PPS)"; record "$cfg" "$FLOOR_PPS"
        if [ "$S_OK" = 1 ]; then
            passed=("$FLOOR_PPS:${S_PPS%.*}:$S_MBPS")     # asked:reached:Mbps, ascending
            lo=$FLOOR_PPS; hi=$top_pps
            for _ in $(seq "$BISECT"); do
                [ "$(left)" -ge 10 ] || { ABORTED="time budget reached during $l"; break; }
                mid=$(( (lo + hi) / 2 ))
                [ $((hi - lo)) -gt $((lo / 50)) ] || break
                run_step "$cfg" "$mid" "$(step_pkts "$mid")"; record "$cfg" "$mid"
                if [ "$S_OK" = 1 ]; then lo=$mid; passed+=("$mid:${S_PPS%.*}:$S_MBPS"); else hi=$mid; fi
            done
            tries=0
            while :; do
                IFS=: read -r asked reached mbps <<<"${passed[-1]}"
                if [ "$asked" = "$FLOOR_PPS" ]; then confirmed=1; break; fi
                if [ "$tries" -ge "$CONFIRM_TRIES" ] || [ "$(left)" -lt 10 ]; then break; fi
                tries=$((tries + 1))
                run_step "$cfg" "$asked" "$(step_pkts "$asked")"; record "$cfg" "$asked (again)"
                if [ "$S_OK" = 1 ]; then confirmed=1; reached2=${S_PPS%.*}; break; fi
                note="$note$asked pps clean once, then $S_WHY; "
                unset 'passed[-1]'
            done
            best=$reached
            bestline="$reached pps ($mbps Mbps)"
            if [ "$asked" != "$FLOOR_PPS" ] && [ "$confirmed" = 1 ]; then bestline="$bestline, clean twice ($reached2 pps again)"; fi
            if [ "$confirmed" = 0 ]; then bestline="$bestline, clean once (not confirmed)"; fi
        fi
    fi
    [ -z "$note" ] || bestline="$bestline [${note%; }]"
    if [ -n "$best" ]; then
        SUMMARY+=("highest zero-drop rate with \`$l\`: $bestline")
        BEST_OF["$cfg"]=$best
        case "$bestline" in *"at top speed"*) AT_TOP["$cfg"]=1 ;; esac
        if [ "$confirmed" = 1 ] && [ "$best" -gt "$BEST_PPS" ]; then BEST_PPS=$best; BEST_LINE="$bestline, with options \`$l\`"; fi
        if [ "$confirmed" = 0 ] && [ "$best" -gt "$BEST_UNCONF" ]; then BEST_UNCONF=$best; BEST_UNCONF_LINE="$bestline, with options \`$l\`"; fi
    else
        SUMMARY+=("\`$l\`: drops even at $FLOOR_PPS pps [${note}$S_WHY]")
    fi
    [ -z "$ABORTED" ] || break
done
if [ "$BEST_PPS" = 0 ] && [ -n "$BEST_UNCONF_LINE" ]; then BEST_PPS=$BEST_UNCONF; BEST_LINE=$BEST_UNCONF_LINE; fi
# Fanout scaling: 2 sockets against 1 (same options otherwise), and each
# against the libpcap path.
SCALING="not measured (run the fanout configurations '-B 65536 --threads 1' and '-B 65536 --threads 2')"
f1=${BEST_OF["-B 65536 --threads 1"]:-}; f2=${BEST_OF["-B 65536 --threads 2"]:-}
lp=${BEST_OF["--no-fanout -B 65536"]:-}
if [ -n "${AT_TOP["-B 65536 --threads 1"]:-}" ] && [ -n "${AT_TOP["-B 65536 --threads 2"]:-}" ]; then
    SCALING="not measured: 1 and 2 sockets were both clean at the senders' top speed ($f1 and $f2 pps), so the senders were the limit; add senders (--senders) or a faster host"
elif [ -n "$f1" ] && [ -n "$f2" ] && [ "$f1" -gt 0 ]; then
    # 2 sockets clean at the senders' top speed: their limit is higher,
    # the ratio only a lower bound.
    atleast=""; [ -z "${AT_TOP["-B 65536 --threads 2"]:-}" ] || atleast="at least "
    SCALING=$(python3 -c "import sys; a, b = map(int, sys.argv[1:3]); lp, al = sys.argv[3:5]; \
print('fanout of 2 sockets %d pps / fanout of 1 %d pps = %s%.2fx (target >= 1.6x)' % (b, a, al, b / a) \
+ (' (2 sockets were clean at the senders\' top speed: the senders were their limit)' if al else '') \
+ ('; libpcap path %s pps' % lp if lp else ''))" "$f1" "$f2" "$lp" "$atleast")
fi

# ---------------------------------------------------------------- accuracy of -s
# One pass over the file (at most TOP_PKTS packets) at a rate every
# configuration so far held without drops, verdicts in JSON: full snaplen
# against -s 2048 and -s 256. Differences are flows whose class or outcome
# changed (the flow key is client, server, and the occurrence number).
ACC=()
ACC_PKTS=$FILE_PKTS; [ "$ACC_PKTS" -le "$TOP_PKTS" ] || ACC_PKTS=$TOP_PKTS
ACC_RATE=$(( BEST_PPS / 2 )); [ "$ACC_RATE" -le 100000 ] || ACC_RATE=100000
[ "$ACC_RATE" -ge "$FLOOR_PPS" ] || ACC_RATE=$FLOOR_PPS
base_opts="-B 65536"
if [ "$(left)" -lt 15 ]; then
    ACC+=("skipped: time budget reached")
else
    echo
    echo "accuracy of the snaplen: one pass, $ACC_PKTS packets at $ACC_RATE pps, $base_opts"
    declare -A ACC_CLEAN
    for s in 0 2048 256; do
        for try in 1 2; do  # a run with drops says nothing about the snaplen: once more
            run_step "$base_opts -s $s" "$ACC_RATE" "$ACC_PKTS" 1 "$WORK/verdicts-$s.json"
            record "$base_opts -s $s" "$ACC_RATE" norow
            [ "$S_OK" = 0 ] && [ "$try" = 1 ] && [ "$(left)" -ge 10 ] || break
        done
        ACC_CLEAN[$s]=$S_OK
        ACC+=("| \`-s $s\` | $S_READ | $S_NREP | $S_GAPS | $S_FLOWS | $S_WHY |")
        [ "$(left)" -ge 8 ] || break
    done
    for s in 2048 256; do
        [ -f "$WORK/verdicts-$s.json" ] && [ -s "$WORK/verdicts-0.json" ] || continue
        d=$(python3 - "$WORK/verdicts-0.json" "$WORK/verdicts-$s.json" <<'EOF'
import json, sys, collections
def load(p):
    seen = collections.Counter(); out = {}
    for line in open(p):
        if not line.strip(): continue
        v = json.loads(line)
        k = (v.get('client'), v.get('server'))
        seen[k] += 1
        out[k + (seen[k],)] = (v.get('class'), v.get('outcome'))
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
changed = collections.Counter()
for k in a.keys() | b.keys():
    x, y = a.get(k, ('missing', '')), b.get(k, ('missing', ''))
    if x != y: changed['%s/%s -> %s/%s' % (x + y)] += 1
total = sum(changed.values())
top = ', '.join('%s: %d' % kv for kv in changed.most_common(4))
print('%d of %d flows changed class/outcome%s' % (total, len(a), (' (' + top + ')') if top else ''))
EOF
)
        if [ "${ACC_CLEAN[0]}" = 1 ] && [ "${ACC_CLEAN[$s]}" = 1 ]; then
            d="$d; both runs without drops"
        else
            d="$d; NOT an accuracy result: a run had drops"
        fi
        ACC+=("-s $s against the full snaplen: $d")
        echo "-s $s against the full snaplen: $d"
    done
fi

# ---------------------------------------------------------------- report
echo
for s in "${SUMMARY[@]}"; do echo "$s" | tr -d '`'; done
[ -z "$ABORTED" ] || echo "note: $ABORTED"
echo "highest zero-drop rate: $BEST_LINE" | tr -d '`'
echo "fanout scaling: $SCALING"

mkdir -p "$(dirname "$OUT")"
{
    echo "# mtlsniff live-capture benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $VERSION (commit $COMMIT), \`scripts/bench-live.sh$([ "$QUICK" = 1 ] && echo ' --quick')\`"
    echo
    echo "- host: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), Linux $(uname -r)"
    echo "- sender: $SENDERS x $(tcpreplay --version 2>&1 | head -1) \`-K --loop --limit --topspeed|--pps\` (each 1/$SENDERS of the rate) on a veth in namespace A; capture: \`mtlsniff -i\` on its peer in namespace B (MTU 65535, promiscuous), stdout to /dev/null"
    if [ "$STANDIN" = 1 ]; then
        echo "- input: stand-in (target/bench/mixed.pcap did not exist): fixtures/*.pcap, IPv4 frames, 100 copies readdressed to 10.199.k.0/24: $FILE_PKTS packets, $FILE_BYTES bytes, longest frame $MAXLEN B, $OVER2048 frames > 2048 B"
    else
        echo "- input: \`$PCAP\`: $FILE_PKTS packets, $FILE_BYTES bytes, longest frame $MAXLEN B, $OVER2048 frames > 2048 B, $OVER256 > 256 B"
    fi
    echo "- steps: top speed with $TOP_PKTS packets, then $FLOOR_PPS pps and a bisection (each step ${STEP_SECS}s of traffic, at least $MIN_STEP_PKTS packets; the file is looped)"
    echo "- load: 1-minute load average after the step (the sender, the capture and anything else on the host share $(nproc) CPUs)"
    echo "- zero drops = kernel dropped 0, dropped by interface 0, queue (workers behind) 0 segments, tcpreplay failed 0, and packets read = packets sent"
    echo
    echo "## Rate search"
    echo
    echo "| options | asked pps | reached pps | Mbps | sent | read | kernel dropped | if dropped | queue dropped | load | verdict |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${ROWS[@]}"; do echo "$r"; done
    echo
    for s in "${SUMMARY[@]}"; do echo "- $s"; done
    [ -z "$ABORTED" ] || echo "- note: $ABORTED"
    echo
    echo "**highest zero-drop rate: $BEST_LINE**"
    echo
    echo "**fanout scaling: $SCALING** ($SENDERS sender(s))"
    echo
    echo "Reading the options: without \`-l\` (stdout not a terminal) libpcap uses TPACKET_V3: blocks of 256 KiB"
    echo "holding many packets, 8 of them in libpcap's default 2 MiB buffer, \`-B\` adds blocks. \`-l\` (or stdout on a"
    echo "terminal) turns on immediate mode, where libpcap uses TPACKET_V2: one slot per packet, sized for the"
    echo "largest frame (65535 + 18 B when the interface has offloads on, as veth and most NICs do, whatever the"
    echo "snaplen above that), so the default 2 MiB ring has 32 slots. \`-s\` below that size shrinks the V2 slots;"
    echo "it does not change the V3 ring. Worker batching (128 segments per message, 256 messages per worker queue)"
    echo "is fixed in src/pipeline/batch.rs, not an option."
    echo
    echo "## Snaplen accuracy"
    echo
    echo "One pass, $ACC_PKTS packets at $ACC_RATE pps, \`$base_opts\`:"
    echo
    echo "| snaplen | read | flows | stream gaps | verdicts | drops |"
    echo "|---|---|---|---|---|---|"
    for a in "${ACC[@]}"; do case "$a" in \|*) echo "$a" ;; esac; done
    echo
    for a in "${ACC[@]}"; do case "$a" in \|*) ;; *) echo "- $a" ;; esac; done
} >"$OUT"
say "wrote $OUT ($(($(date +%s) - START))s of measurements)"
