#!/usr/bin/env bash
# Build a minimal OCI image of mtlsniff, with no container registry: the
# release binary built here, the shared libraries it loads (found with ldd),
# nothing else: no shell, no /etc/passwd. The binary is
# /usr/local/bin/mtlsniff with the file capability cap_net_raw+p, so a
# non-root user (the image runs as 65534:65534) can capture when the
# container's capability set holds NET_RAW, and it is the ENTRYPOINT
# (`podman run IMAGE -r FILE`); PATH holds /usr/local/bin, so a command that
# overrides the entrypoint (`kubectl debug ... -- mtlsniff -i any`) works.
#
#   scripts/image.sh [--tag NAME] [--save FILE] [--binary PATH]
#
#   --tag NAME     image name (default localhost/mtlsniff:dev)
#   --save FILE    also write the image as an OCI archive (for
#                  `ctr -n k8s.io images import FILE` or
#                  `kind load image-archive FILE`)
#   --binary PATH  put this mtlsniff in the image instead of building
#                  target/release/mtlsniff with `cargo build --release`
#
# Needs root (or a rootless buildah setup), buildah, setcap/getcap
# (libcap2-bin), ldd and ldconfig; podman only for --save.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=localhost/mtlsniff:dev
save=
binary=
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag=${2:?--tag needs a name}; shift 2 ;;
        --save) save=${2:?--save needs a file}; shift 2 ;;
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for tool in buildah setcap getcap ldd ldconfig; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] && [ ! -x "/sbin/$tool" ]; then
        echo "image.sh: $tool not found; on Debian: apt-get install buildah libcap2-bin libc-bin" >&2
        exit 1
    fi
done
export PATH="$PATH:/usr/sbin:/sbin"

if [ -z "$binary" ]; then
    scripts/ensure-libpcap.sh
    cargo build --release --quiet
    binary=target/release/mtlsniff
fi
[ -x "$binary" ] || { echo "image.sh: $binary is not an executable" >&2; exit 1; }

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/mtlsniff-rootfs.XXXXXX")
ctr=
cleanup() {
    [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
    rm -rf "$rootfs"
}
trap cleanup EXIT

# The binary, then every library the dynamic loader resolves for it (the
# loader itself included), each at the path ldd names, so the loader's
# default search finds it; an ld.so.cache built for the rootfs makes that
# independent of the distribution's default directories.
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/mtlsniff"
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "image.sh: ldd found no libraries for $binary" >&2; exit 1; }
if ldd "$binary" | grep -q 'not found'; then
    echo "image.sh: unresolved libraries:" >&2
    ldd "$binary" | grep 'not found' >&2
    exit 1
fi
for lib in $libs; do
    install -D -m 0644 "$(readlink -f "$lib")" "$rootfs$lib"
done
chmod 0755 "$rootfs"/lib*/ld-linux* 2>/dev/null || true
mkdir -p "$rootfs/etc"
for lib in $libs; do dirname "$lib"; done | sort -u > "$rootfs/etc/ld.so.conf"
ldconfig -r "$rootfs"
# CAP_NET_RAW as a file capability: a non-root user gets it at exec (when
# the container's bounding set holds it) and mtlsniff drops it as soon as
# the capture is open. Permitted only, no effective bit: with the effective
# bit the kernel refuses to exec the binary at all (EPERM) in a container
# whose bounding set lacks NET_RAW (podman's default, a restricted pod),
# even to read a file; without it mtlsniff raises the capability itself
# before a live capture (src/shell/privilege.rs, raise_net_raw).
setcap cap_net_raw+p "$rootfs/usr/local/bin/mtlsniff"

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then revision="$revision-dirty"; fi
ctr=$(buildah from scratch)
buildah copy --quiet "$ctr" "$rootfs/" / >/dev/null
buildah config \
    --entrypoint '["/usr/local/bin/mtlsniff"]' \
    --cmd '["--help"]' \
    --env PATH=/usr/local/bin:/usr/bin:/bin \
    --user 65534:65534 \
    --workingdir / \
    --label org.opencontainers.image.title=mtlsniff \
    --label org.opencontainers.image.description="passive TLS/mTLS detector; needs CAP_NET_RAW only" \
    --label org.opencontainers.image.revision="$revision" \
    "$ctr"
old=$(buildah images --quiet --noheading "$tag" 2>/dev/null || true)
buildah commit --quiet --rm "$ctr" "$tag" >/dev/null
ctr=
# The image this tag named before is left without a name: remove it (not
# when a container still uses it), so rebuilds do not pile up.
new=$(buildah images --quiet --noheading "$tag")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
    buildah rmi "$old" >/dev/null 2>&1 || true
fi

# The capability must survive the commit: read it back from the image.
check=$(buildah from --pull-never "$tag")
mnt=$(buildah mount "$check")
caps=$(getcap "$mnt/usr/local/bin/mtlsniff" || true)
buildah umount "$check" >/dev/null
buildah rm "$check" >/dev/null
case "$caps" in
    *cap_net_raw=p*) ;;
    *) echo "image.sh: the image's mtlsniff lost its file capability (getcap: '$caps')" >&2; exit 1 ;;
esac

size=$(podman image inspect --format '{{.Size}}' "$tag" 2>/dev/null || true)
if [ -z "$size" ] || [ "$size" = 0 ] || [ "$size" = "<no value>" ]; then
    size=$(du -sb "$rootfs" | cut -f1)
fi
echo "image.sh: built $tag (revision $revision), $((size / 1024)) KiB ($size bytes); getcap: cap_net_raw=p"
(cd "$rootfs" && find . -mindepth 1 | sort | sed 's/^\./  /')

if [ -n "$save" ]; then
    rm -f "$save"
    podman save --quiet --format oci-archive -o "$save" "$tag"
    echo "image.sh: wrote $save ($(du -k "$save" | cut -f1) KiB, OCI archive)"
fi
