#!/usr/bin/env bash
# CI: a smoke of the comparison harness (bench/compare.sh --smoke): echo-server (epoll) and the C
# epoll reference at two points, 1 s runs, then the idle-memory step, the summary and both plots.
# Fails if any run fails or an output is missing. About 15 s after the release build, which the
# soak step has done by then (this builds only the C reference, with cc).
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bench/compare.sh --smoke --servers epoll,c-epoll --out "$out"
test -s "$out/summary.md"

# The bench scripts' own doctests (the parsing, trend and formatting rules of soak, ab, harness).
python3 -m doctest bench/harness.py bench/soak.py bench/ab.py
