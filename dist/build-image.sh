#!/usr/bin/env bash
# Build the echo-server container image from this repository alone:
#
#   dist/build-image.sh [IMAGE]        (default IMAGE: localhost/echo-server:VERSION)
#
# 1. cargo builds echo-server and echo-bench as static musl binaries
#    (target/x86_64-unknown-linux-musl/release; needs the Rust target
#    `rustup target add x86_64-unknown-linux-musl` and musl-gcc, Debian's
#    musl-tools, for jemalloc's C code: both are installed here when missing
#    and this runs as root);
# 2. the stripped binaries go into the build context target/image/;
# 3. podman (or docker: ENGINE=docker) builds dist/Containerfile on it.
#    No base image is pulled (FROM scratch).
#
# Environment: ENGINE (podman or docker; default the one installed),
# SOURCE_URL (the org.opencontainers.image.source label; default the git
# remote `origin`).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
engine=${ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  rustup target add "$target"
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq musl-tools >/dev/null || { apt-get update -qq && apt-get install -y -qq musl-tools >/dev/null; }
  else
    echo "build-image.sh: musl-gcc is missing (Debian/Ubuntu: apt-get install musl-tools)" >&2
    exit 2
  fi
fi

cargo build --release --locked --target "$target" -p echo-server -p echo-bench

ctx=target/image
mkdir -p "$ctx"
for bin in echo-server echo-bench; do
  strip -o "$ctx/$bin" "target/$target/release/$bin"
done

version=$("$ctx/echo-server" --version | awk '{print $2}')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source=${SOURCE_URL:-$(git remote get-url origin 2>/dev/null || echo unknown)}
image=${1:-localhost/echo-server:$version}

# The commit's time as the image's creation time, so rebuilding the same
# commit gives the same image configuration (podman only; docker's BuildKit
# reads SOURCE_DATE_EPOCH).
stamp=()
if [[ $engine == podman ]] && epoch=$(git log -1 --format=%ct 2>/dev/null); then
  stamp=(--timestamp "$epoch")
fi
export SOURCE_DATE_EPOCH=${epoch:-0}

"$engine" build "${stamp[@]}" -f dist/Containerfile \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg SOURCE="$source" \
  -t "$image" "$ctx"
echo "built $image ($("$engine" image inspect --format '{{.Size}}' "$image") bytes)"
