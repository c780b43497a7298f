#!/usr/bin/env bash
# The lab suite (docs/lab.md): echo-server and echo-bench between hosts made of network
# namespaces, across lossy, slow and narrow links and vanished peers. Needs root; installs
# iproute2 and nftables when missing; uses the release binaries CI built (builds them only if
# they are missing). About 2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
if ((${#missing[@]})); then
  if ! { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "WARNING: could not install ${missing[*]}: the lab tests will be SKIPPED"
  fi
fi
if [[ ! -x target/release/echo-server || ! -x target/release/echo-bench ]]; then
  cargo build --release -p echo-server -p echo-bench
fi
ulimit -n "$(ulimit -Hn)" || true
python3 -m doctest bench/lab/hdr.py
python3 -m bench.lab
