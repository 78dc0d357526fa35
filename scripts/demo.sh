#!/usr/bin/env bash
# Quick start, step 1: build mtlsniff and run it on the bundled capture
# fixtures/demo.pcap (mTLS, TLS, rejected and plaintext flows from real
# TLS stacks). Extra arguments go to mtlsniff, e.g. `scripts/demo.sh --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-libpcap.sh
cargo build --release --quiet
exec target/release/mtlsniff -r fixtures/demo.pcap "$@"
