#!/usr/bin/env bash
# Makes sure libpcap's development files are present (the pcap crate links
# against libpcap). Installs them with apt when run as root on Debian or
# Ubuntu; otherwise prints the exact command for this system and exits 1.
set -euo pipefail

have_libpcap() {
    pkg-config --exists libpcap 2>/dev/null && return 0
    for d in /usr/include /usr/local/include /opt/homebrew/include; do
        [ -e "$d/pcap.h" ] || [ -e "$d/pcap/pcap.h" ] || continue
        return 0
    done
    return 1
}

have_libpcap && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "libpcap headers missing: installing libpcap-dev with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpcap-dev >/dev/null
    have_libpcap && exit 0
fi

cat >&2 <<'MSG'
mtlsniff needs libpcap's development files. Install them, then run this again:
  Debian/Ubuntu:  sudo apt-get install -y libpcap-dev
  Fedora/RHEL:    sudo dnf install -y libpcap-devel
  Alpine:         sudo apk add libpcap-dev
  macOS:          brew install libpcap
MSG
exit 1
