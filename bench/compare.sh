#!/usr/bin/env bash
# Side-by-side echo server comparison. Builds the servers and echo-bench, sets up the Python
# venv (uvloop when it installs), raises the descriptor limit, then runs bench/compare.py.
#   bench/compare.sh [--quick | --smoke] [--repeats R] [--duration SECS] [--servers a,b] ...
# Results: bench/results/<timestamp>/ and bench/results/latest.md. See bench/README.md.
# --smoke (CI) builds only echo-server, echo-bench and the C reference, and sets up no venv:
# name the servers it runs with --servers (e.g. epoll,c-epoll).
set -euo pipefail
cd "$(dirname "$0")/.."

ulimit -n "$(ulimit -Hn)"

smoke=0
for arg in "$@"; do
    [[ "$arg" == --smoke ]] && smoke=1
done

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    if ((smoke)); then
        cargo build --release -p echo-server -p echo-bench
    else
        cargo build --release -p echo-server -p echo-bench -p echo-peers
    fi
    cc -O2 -o target/release/c-epoll-echo bench/peers/c/epoll_echo.c
fi

venv=bench/.venv
if ((smoke)); then
    :  # the Python peers are not in the smoke
elif [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" || echo "compare: no venv; Python peers use python3" >&2
fi
if ((!smoke)) && [[ -x "$venv/bin/python" ]] && ! "$venv/bin/python" -c 'import uvloop' 2>/dev/null; then
    "$venv/bin/pip" install --quiet uvloop \
        || echo "compare: uvloop did not install; its rows are skipped" >&2
fi

# compare.py stops every server it started (finally/atexit); this catches the rest of the
# process group if it is killed outright.
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 bench/compare.py "$@" &
pids+=("$!")
wait "${pids[0]}"
