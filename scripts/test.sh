#!/usr/bin/env bash
# Quick start, step 2: run the whole test suite (unit, fixture, public
# truth when ../shared is present, property, CLI, and the live veth test
# when run as root with ip, openssl and tcpdump installed; the container
# image test when root with podman and buildah: it builds the release
# binary and the image with scripts/image.sh), after two
# checks of the code's shape: no upward import or import cycle between
# modules (scripts/check-layers.py), and clippy clean with functions that
# fit on a screen (too_many_lines at 100, clippy.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-libpcap.sh
python3 scripts/check-layers.py
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --all-targets --quiet -- -D warnings
else
    echo "clippy is not installed (rustup component add clippy): lint step skipped" >&2
fi
exec cargo test --all-targets
