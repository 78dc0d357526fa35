#!/usr/bin/env bash
# Fuzz every target (or the ones named) for SECONDS_PER_TARGET each, one at
# a time, at the lowest CPU priority:
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; decode engine tls identity)
#
# Installs cargo-fuzz when missing, builds the seed corpora from fixtures/
# and ../shared/pcaps/public (fuzz/examples/seeds.rs) plus the committed
# fuzz/seeds/, runs each target with -max_total_time and prints libFuzzer's
# final figures (executions, exec/s, cov/ft, corpus) as a table, also
# written to fuzz/logs/summary.md. A crash leaves its input in
# fuzz/artifacts/<target>/ and is listed; the run goes on with the next
# target, and the script exits 1 at the end.
#
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets stable rustc
# accept the -Zsanitizer / -Cpasses=sancov flags cargo-fuzz passes (nightly
# flags on a stable compiler, for this build only). AddressSanitizer is the
# default; MTLSNIFF_FUZZ_SANITIZER=none fuzzes without it (faster, finds
# panics but not memory errors; the library has no unsafe code of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
# Two cores shared with others: never compete with interactive work.
if [ "$(nice)" -lt 19 ]; then
    exec nice -n 19 "$0" "$@"
fi

seconds=${1:-60}
case $seconds in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac
shift $(($# > 0 ? 1 : 0))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode engine tls identity)
sanitizer=${MTLSNIFF_FUZZ_SANITIZER:-address}

scripts/ensure-libpcap.sh
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# Seeds: frames, connections, streams and certificates of every capture.
captures=()
for f in fixtures/*.pcap ../shared/pcaps/public/*.pcap ../shared/pcaps/public/*.pcapng; do
    [ -e "$f" ] && captures+=("$(realpath "$f")")
done
(cd fuzz && cargo run -q --example seeds -- corpus "${captures[@]}")

(cd fuzz && cargo fuzz build --sanitizer "$sanitizer")

max_len() {
    case $1 in
        engine | tls) echo 32768 ;;
        *) echo 16384 ;;
    esac
}

mkdir -p fuzz/logs
summary=fuzz/logs/summary.md
{
    echo "| target | seconds | executions | exec/s | cov | ft | corpus | crashes |"
    echo "|---|--:|--:|--:|--:|--:|--:|---|"
} >"$summary"
failed=0
for t in "${targets[@]}"; do
    log=fuzz/logs/$t.log
    echo "fuzz: $t for ${seconds}s (log: $log)" >&2
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    set +e
    mkdir -p "fuzz/artifacts/$t"
    # The binaries cargo fuzz built above, run directly (as `cargo fuzz run`
    # does, with its ASan option) so that editing the sources while a long
    # campaign runs cannot trigger a rebuild between targets.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} \
        "fuzz/target/x86_64-unknown-linux-gnu/release/$t" \
        -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$seconds" \
        -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "fuzz/corpus/$t" "fuzz/seeds/$t" >"$log" 2>&1
    status=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # libFuzzer says how long it ran only when it was not stopped by a crash.
    ran=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ -z "$ran" ] && [ -n "$execs" ] && [ "${rate:-0}" -gt 0 ]; then
        ran="~$((execs / rate))"
    fi
    last=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
    crashes=none
    if [ $status -ne 0 ]; then
        failed=1
        crashes=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tr '\n' ' ')
        crashes=${crashes:-"exit $status, see $log"}
    fi
    echo "| $t | ${ran:-?} | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $crashes |" >>"$summary"
done
cat "$summary"
if [ $failed -ne 0 ]; then
    echo "fuzz: crashes found; minimize with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin TARGET ARTIFACT)," \
        "then commit the input under tests/fuzz-regressions/TARGET/" >&2
    exit 1
fi
