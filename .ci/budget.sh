#!/usr/bin/env bash
# CI: a smoke run of bench/budget_churn.py (waves of slow readers that reset, peak RSS against
# --max-memory) at a small size, and its doctests. About 10 s after the release build, which the
# soak step has done by then. Fails if the script fails or prints no result line.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m doctest bench/budget_churn.py
out=$(python3 bench/budget_churn.py --max-memory 16MiB --conns 50 --waves 2 --workers 1 \
  --zero-copy off --settle 0)
echo "$out"
grep -q '^workers=1 .*peak held .*RSS start' <<<"$out"
