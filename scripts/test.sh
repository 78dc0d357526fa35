#!/usr/bin/env bash
# Quick start, step 2: run the whole test suite (unit, fixture, public
# truth when ../shared is present, property, CLI, and the live veth test
# when run as root with ip, openssl and tcpdump installed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-libpcap.sh
exec cargo test --all-targets
