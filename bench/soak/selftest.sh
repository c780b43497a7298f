#!/usr/bin/env bash
# Checks that bench/soak.sh notices what it is there to notice: it runs soak.sh against
# bench/soak/leaky_server.py (a small Python echo server) with one fault at a time and
# expects PASS for the correct one and FAIL, naming the fault, for each faulty one.
#   bench/soak/selftest.sh [FAULT...]     (default: all; about 20 s each)
# Needs python3 and target/release/echo-bench (it builds nothing).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.."

root=$PWD
bench="${CARGO_TARGET_DIR:-$root/target}/release/echo-bench"
[[ "$bench" = /* ]] || bench="$root/$bench"
[[ -x "$bench" ]] || { echo "selftest: $bench missing (cargo build --release -p echo-bench)" >&2; exit 1; }

fake=$(mktemp -d "${TMPDIR:-/tmp}/soak-selftest.XXXXXX")
trap 'rm -rf "$fake"' EXIT
mkdir -p "$fake/release"
ln -s "$bench" "$fake/release/echo-bench"
cat >"$fake/release/echo-server" <<EOF
#!/bin/sh
# A fixed mmap threshold keeps glibc from growing the heap through fragmentation, so the
# correct server's RSS stays flat and the rss fault is the only trend.
MALLOC_MMAP_THRESHOLD_=65536 exec python3 "$root/bench/soak/leaky_server.py" "\$@"
EOF
chmod +x "$fake/release/echo-server"

# FAULT and what the verdict must say.
declare -A expect=(
    [none]="^soak: PASS"
    [fd]="^soak: FAIL.*(fds [0-9]+ 5 s after the load|fd slope)"
    [rss]="^soak: FAIL.*RSS slope"
    [corrupt]="^soak: FAIL.*chaos:.*mismatches"
    [die]="^soak: FAIL.*server died under load"
    [exit]="^soak: FAIL.*server exited with status 1.*no summary line"
)
faults=("$@")
((${#faults[@]})) || faults=(none fd rss corrupt die exit)

bad=0
for fault in "${faults[@]}"; do
    [[ -n "${expect[$fault]:-}" ]] || { echo "selftest: unknown fault $fault" >&2; exit 2; }
    verdict=$(FAULT=$fault CARGO_TARGET_DIR=$fake bench/soak.sh --no-build --backends epoll \
        --minutes 0.35 --connections 50 --seed 1 2>&1 | tail -n 1) || true
    if [[ "$verdict" =~ ${expect[$fault]} ]]; then
        echo "selftest: $fault ok: $verdict"
    else
        echo "selftest: $fault WRONG: $verdict"
        bad=1
    fi
done
exit "$bad"
