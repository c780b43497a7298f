#!/usr/bin/env bash
# Chaos soak of echo-server, one readiness backend after another: every byte checked, the
# server's descriptors and memory sampled each second, fails on loss, death or a leak.
#   bench/soak.sh [--minutes N] [--connections C] [--backends "epoll poll select"] [--seed S]
# The soak is bench/soak.py (on bench/harness.py); --help says what it checks.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/soak.py "$@"
