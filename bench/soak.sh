#!/usr/bin/env bash
# Chaos soak of echo-server, one readiness backend after another: every byte checked, the
# server's descriptors and memory sampled each second, fails on loss, death or a leak.
#   bench/soak.sh [--minutes N] [--connections C] [--backends "epoll poll select"] [--seed S]
# See --help for what it checks and how to run the long version.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

usage() {
    cat <<'EOF'
Usage: bench/soak.sh [--minutes N] [--connections C] [--backends "epoll poll select"]
                     [--zero-copy auto|off|always] [--seed S] [--no-build] [--logs DIR]

Soak echo-server under `echo-bench chaos` on each backend in turn and fail
unless every byte came back and the server neither died nor leaked.

For each backend it starts `echo-server -l 127.0.0.1:0 --backend B --zero-copy Z` (on CPU 0
when taskset is there), measures its idle descriptor count, runs
`echo-bench chaos --json --server-pid PID -c C -d SECS ADDR` (on CPU 1) for the
backend's share of the time, and samples the server's open descriptors
(/proc/PID/fd) and VmRSS once a second meanwhile. It fails when:
  - chaos reports a mismatch, a loss, a stall or a failed connect (its exit
    status or its JSON);
  - the server dies, does not come back to its idle descriptor count within
    5 s of the load stopping, or does not exit 0 with its `summary:` line
    within 10 s of SIGTERM;
  - descriptors or RSS trend upward once the load is steady. Over the samples
    of the load after its first 20% it fits a least-squares slope, and fails
    only when the slope AND the rise from the first third's median to the
    last third's both pass a threshold: descriptors max(30, C/2)/min and
    max(10, C/10), three times that unless --zero-copy off (a session may
    hold a pipe); RSS 1 MiB/min and max(1 MiB, 10% of the first third's median). (The exact descriptor check is the one after the load.)
    Fewer than 6 samples (backend share under ~8 s): no trend test.
It prints one line of figures per backend; the last line is the verdict.
Exit status 0 only when everything held, 1 otherwise, 2 on a usage error.

Options:
  --minutes N      total time for all backends together, decimals allowed [default: 1]
                   (each backend's load runs its share less ~2 s for start,
                   settle and shutdown; chaos's last sessions may add a little)
  --connections C  chaos sessions at once [default: 100]; thresholds scale
                   with it (checked at 10,000 on epoll and poll, 1,000 on
                   select, whose descriptors must stay below 1024)
  --backends LIST  space-separated backends [default: "epoll poll select"]
  --zero-copy Z    the server's --zero-copy mode [default: auto]; CI runs auto
                   and always
  --seed S         chaos seed, the same for every backend, to repeat a run
                   [default: from the clock; printed on the first line]
  --no-build       use target/release/{echo-server,echo-bench} as they are
                   (SKIP_BUILD=1 does the same)
  --logs DIR       keep every backend's samples, chaos JSON and server output in
                   DIR (default: a temporary directory, kept only on failure)
  -h, --help       this text

Short run (CI, about a minute, all three backends):
  bench/soak.sh
Long run (by hand: 10 minutes per backend; figures in docs/BENCHMARKS.md). select(2)
holds only descriptors below FD_SETSIZE (1024), so it soaks at 1,000 sessions:
  bench/soak.sh --minutes 20 --connections 10000 --backends "epoll poll"
  bench/soak.sh --minutes 10 --connections 1000 --backends select
A failing run prints its seed; rerun with --seed S (and the same --connections)
to get the same sessions again.
EOF
}

die_usage() {
    echo "soak: $1 (see --help)" >&2
    exit 2
}

minutes=1
connections=100
backends="epoll poll select"
zero_copy=auto
seed=""
build=1
logs=""
[[ "${SKIP_BUILD:-0}" == 1 ]] && build=0
while (($#)); do
    case "$1" in
        --minutes | --connections | --backends | --zero-copy | --seed | --logs)
            (($# >= 2)) || die_usage "$1 needs a value"
            case "$1" in
                --minutes) minutes=$2 ;;
                --connections) connections=$2 ;;
                --backends) backends=$2 ;;
                --zero-copy) zero_copy=$2 ;;
                --seed) seed=$2 ;;
                --logs) logs=$2 ;;
            esac
            shift 2
            ;;
        --no-build)
            build=0
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done
[[ "$zero_copy" =~ ^(auto|off|always)$ ]] || die_usage "--zero-copy wants auto, off or always, got '$zero_copy'"
if ! [[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || ! awk -v m="$minutes" 'BEGIN { exit !(m > 0) }'; then
    die_usage "--minutes wants a positive number, got '$minutes'"
fi
[[ "$connections" =~ ^[1-9][0-9]*$ ]] || die_usage "--connections wants a positive integer"
[[ -z "$seed" || "$seed" =~ ^[0-9]+$ ]] || die_usage "--seed wants a non-negative integer"
read -r -a backend_list <<<"$backends"
((${#backend_list[@]})) || die_usage "--backends is empty"
for b in "${backend_list[@]}"; do
    [[ "$b" =~ ^(epoll|poll|select|auto)$ ]] || die_usage "unknown backend: $b"
done
[[ -d /proc/self/fd ]] || { echo "soak: needs /proc (Linux)" >&2; exit 1; }
[[ -n "$seed" ]] || seed=$(( $(date +%s) * 1000 + RANDOM % 1000 ))

bin="${CARGO_TARGET_DIR:-target}/release"
if ((build)); then
    cargo build --quiet --release -p echo-server -p echo-bench
fi
for exe in echo-server echo-bench; do
    [[ -x "$bin/$exe" ]] || { echo "soak: $bin/$exe missing (build it, or drop --no-build)" >&2; exit 1; }
done

# Thresholds: see --help. Chosen so that healthy runs (several short and long ones on
# every backend) stay well below them, while a leak of one descriptor or one small buffer
# per session - thousands of sessions a minute - passes them many times over.
warmup_frac=0.2
# With zero-copy on, a session may also hold a pipe (two more descriptors: always, and
# under auto every bulk session of chaos), so the descriptor count swings up to three
# times as far under the same load. The exact check after the load is unchanged.
fds_per_session=1
[[ "$zero_copy" != off ]] && fds_per_session=3
fd_slope_max=$((fds_per_session * (connections / 2 > 30 ? connections / 2 : 30)))
fd_rise_max=$((fds_per_session * (connections / 10 > 10 ? connections / 10 : 10)))
rss_slope_max=1024
rss_rise_min_kib=1024
rss_rise_frac=0.10
settle_s=5
term_wait_s=10
session_timeout=10

# The server on CPU 0 and the load on CPU 1, as bench/compare.sh does, when there are two.
pin_server=()
pin_bench=()
if command -v taskset >/dev/null && taskset -c 1 true 2>/dev/null; then
    pin_server=(taskset -c 0)
    pin_bench=(taskset -c 1)
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ -n "$logs" ]]; then
    mkdir -p "$logs"
    work=$logs
    keep=1
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
    keep=0
fi

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if ((!keep)); then
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        printf '%s\n' "$EPOCHREALTIME"
    else
        date +%s.%N
    fi
}

# Whether PID is running (not gone, not a zombie waiting to be reaped). A status file that
# cannot be read for a moment (as during exec) counts as running.
alive() {
    local key val _ state=""
    [[ -e /proc/$1 ]] || return 1
    {
        while read -r key val _; do
            if [[ "$key" == State: ]]; then
                state=$val
                break
            fi
        done <"/proc/$1/status"
    } 2>/dev/null || true
    [[ "$state" != Z && "$state" != X ]]
}

# Open descriptors and VmRSS (KiB) of PID, as "FDS RSS"; no forks, so it samples cheaply.
probe() {
    local -a fds
    local key val _ rss=0
    shopt -s nullglob
    fds=("/proc/$1/fd/"*)
    shopt -u nullglob
    while read -r key val _; do
        if [[ "$key" == VmRSS: ]]; then
            rss=$val
            break
        fi
    done <"/proc/$1/status" 2>/dev/null || true
    printf '%s %s\n' "${#fds[@]}" "$rss"
}

# Once a second until the file STOP appears: "TIME FDS RSS_KIB" for PID.
sampler() {
    while alive "$1" && [[ ! -e "$2" ]]; do
        printf '%s %s\n' "$(now)" "$(probe "$1")"
        sleep 1
    done
}

# Forgets PID once it has been reaped, so cleanup never signals a reused number.
forget() {
    local i
    for i in "${!pids[@]}"; do
        [[ "${pids[$i]}" != "$1" ]] || unset 'pids[i]'
    done
}

# Waits up to SECS for the child PID to exit, then kills it; sets `status` to its exit
# status and returns 1 if it had to be killed.
wait_for() {
    local pid=$1 ticks=$(($2 * 10)) killed=0
    while alive "$pid" && ((ticks-- > 0)); do
        sleep 0.1
    done
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        killed=1
    fi
    status=0
    wait "$pid" || status=$?
    forget "$pid"
    return "$killed"
}

# A number from chaos's one-line JSON (top-level keys only; kinds use other names).
json_num() {
    sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2" | head -n 1
}

# Trend of the steady part of the samples: prints
#   N FD_SLOPE FD_FIRST FD_LAST FD_MED RSS_SLOPE RSS_FIRST RSS_LAST RSS_MED
# (slopes per minute; FIRST/LAST: medians of the first and last third; MED: all).
trend() {
    awk -v from="$2" -v to="$3" '
        function median(a, lo, hi,    i, j, k, t, b, m) {
            m = 0
            for (i = lo; i <= hi; i++) b[++m] = a[i]
            for (i = 2; i <= m; i++) {
                t = b[i]
                for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]
                b[j + 1] = t
            }
            k = int((m + 1) / 2)
            return (m % 2) ? b[k] : (b[k] + b[k + 1]) / 2
        }
        function slope(x, y, n,    i, sx, sy, sxx, sxy, d) {
            for (i = 1; i <= n; i++) { sx += x[i]; sy += y[i]; sxx += x[i] * x[i]; sxy += x[i] * y[i] }
            d = n * sxx - sx * sx
            return d > 0 ? (n * sxy - sx * sy) / d : 0
        }
        $1 >= from && $1 <= to && $3 > 0 { n++; t[n] = ($1 - from) / 60; f[n] = $2; r[n] = $3 }
        END {
            if (n == 0) { print 0, 0, 0, 0, 0, 0, 0, 0, 0; exit }
            k = int(n / 3)
            if (k < 1) k = 1
            printf "%d %.2f %s %s %s %.1f %s %s %s\n", n,
                slope(t, f, n), median(f, 1, k), median(f, n - k + 1, n), median(f, 1, n),
                slope(t, r, n), median(r, 1, k), median(r, n - k + 1, n), median(r, 1, n)
        }' "$1"
}

kib() {
    awk -v k="$1" 'BEGIN {
        s = k < -0.5 ? "-" : "+"; a = (k < 0 ? -k : k) + 0
        if (a >= 1024) printf "%s%.1f MiB", s, a / 1024; else printf "%s%.0f KiB", s, a
    }'
}

nb=${#backend_list[@]}
share=$(awk -v m="$minutes" -v n="$nb" 'BEGIN { printf "%.3f", m * 60 / n }')
load_s=$(awk -v s="$share" 'BEGIN { d = s - 2; if (d < 3) d = 3; printf "%.3f", d }')
echo "soak: ${backend_list[*]}; ${load_s} s of chaos each, ${connections} connections, --zero-copy ${zero_copy}, seed ${seed}"

failures=()
total_sessions=0
total_verified=0
worst_fd_slope=""
worst_rss_slope=""
started=$(now)

for backend in "${backend_list[@]}"; do
    dir="$work/$backend"
    mkdir -p "$dir"
    rm -f "$dir/stop" "$dir/samples" "$dir/chaos.json" "$dir/chaos.err"
    fail=()

    # Created here, not by the background job's redirection, which may come after the
    # first look for the address.
    : >"$dir/server.out"
    : >"$dir/server.err"
    "${pin_server[@]}" "$bin/echo-server" -l 127.0.0.1:0 --backend "$backend" --zero-copy "$zero_copy" \
        </dev/null >"$dir/server.out" 2>"$dir/server.err" &
    server=$!
    pids+=("$server")
    addr=""
    for _ in $(seq 100); do
        addr=$(awk '$1 == "listening" && $2 == "tcp" { print $3; exit }' "$dir/server.out" || true)
        [[ -n "$addr" ]] && break
        alive "$server" || break
        sleep 0.1
    done
    if [[ -z "$addr" ]]; then
        last=$(tail -n 1 "$dir/server.err")
        failures+=("$backend: server announced no address in 10 s${last:+ (stderr: $last)}")
        echo "soak: $backend: server did not start; stderr: $(tail -n 3 "$dir/server.err")"
        wait_for "$server" 0 || true
        continue
    fi

    # Idle baseline: the listener, selector, waker, signal pipe and whatever else the
    # server opens after it announces the address; wait until the count stops changing.
    sleep 0.3
    read -r fd_idle rss_idle < <(probe "$server")
    for _ in $(seq 20); do
        sleep 0.1
        read -r f r < <(probe "$server")
        [[ "$f" == "$fd_idle" ]] && break
        fd_idle=$f rss_idle=$r
    done

    sampler "$server" "$dir/stop" >"$dir/samples" &
    sampling=$!
    pids+=("$sampling")
    t0=$(now)
    "${pin_bench[@]}" "$bin/echo-bench" chaos --json --server-pid "$server" \
        -c "$connections" -d "$load_s" --session-timeout "$session_timeout" --seed "$seed" \
        "$addr" >"$dir/chaos.json" 2>"$dir/chaos.err" &
    bench=$!
    pids+=("$bench")
    # chaos lets running sessions finish for up to ten session timeouts after -d.
    limit=$(awk -v d="$load_s" -v s="$session_timeout" 'BEGIN { printf "%d", d + 10 * s + 30 }')
    wait_for "$bench" "$limit" || fail+=("chaos did not finish within ${limit} s (killed)")
    chaos_rc=$status
    touch "$dir/stop"
    wait_for "$sampling" 3 || true

    # After the load: every connection closed, back to the idle descriptor count.
    fd_after="" settled=""
    if alive "$server"; then
        t1=$(now)
        for _ in $(seq $((settle_s * 10))); do
            read -r fd_after rss_after < <(probe "$server")
            if ((fd_after <= fd_idle)); then
                settled=$(awk -v a="$t1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
                break
            fi
            sleep 0.1
        done
        [[ -n "$settled" ]] \
            || fail+=("fds ${fd_after} ${settle_s} s after the load, ${fd_idle} idle (leak)")
    else
        last=$(tail -n 1 "$dir/server.err")
        fail+=("server died under load${last:+ (stderr: $last)}")
        rss_after=0
    fi

    # Shutdown: SIGTERM, exit status 0 and the summary line.
    kill -TERM "$server" 2>/dev/null || true
    if wait_for "$server" "$term_wait_s"; then
        ((status == 0)) || fail+=("server exited with status ${status}")
    else
        fail+=("server still running ${term_wait_s} s after SIGTERM (killed)")
    fi
    grep -q '^summary:' "$dir/server.out" || fail+=("server printed no summary line")
    if grep -q 'panicked' "$dir/server.err"; then
        fail+=("server panicked: $(grep -m 1 'panicked' "$dir/server.err")")
    fi

    # Bytes: chaos's own verdict and its counts.
    sessions=$(json_num sessions "$dir/chaos.json")
    verified=$(json_num bytes_verified "$dir/chaos.json")
    if [[ -z "$sessions" || -z "$verified" ]]; then
        fail+=("chaos gave no report (exit ${chaos_rc}): $(tail -n 1 "$dir/chaos.err")")
        sessions=0 verified=0 bad=""
    else
        bad=""
        for key in failures mismatches lost stalls connect_errors; do
            v=$(json_num "$key" "$dir/chaos.json")
            [[ "${v:-0}" == 0 ]] || bad+=" $key $v,"
        done
        if [[ -n "$bad" || "$chaos_rc" != 0 ]]; then
            fail+=("chaos:${bad%,} (exit ${chaos_rc}; $(grep -m 1 'echo-bench' "$dir/chaos.err" || true))")
        fi
    fi
    total_sessions=$((total_sessions + sessions))
    total_verified=$((total_verified + verified))

    # Trend over the steady part of the load.
    read -r n fd_slope fd_first fd_last fd_med rss_slope rss_first rss_last rss_med < <(
        trend "$dir/samples" \
            "$(awk -v t="$t0" -v d="$load_s" -v w="$warmup_frac" 'BEGIN { printf "%.3f", t + d * w }')" \
            "$(awk -v t="$t0" -v d="$load_s" 'BEGIN { printf "%.3f", t + d }')"
    )
    if ((n >= 6)); then
        if awk -v s="$fd_slope" -v a="$fd_first" -v b="$fd_last" -v sm="$fd_slope_max" \
            -v rm="$fd_rise_max" 'BEGIN { exit !(s > sm && b - a > rm) }'; then
            fail+=("fd slope $(printf '%+.1f' "$fd_slope")/min, median ${fd_first} -> ${fd_last} (leak)")
        fi
        if awk -v s="$rss_slope" -v a="$rss_first" -v b="$rss_last" -v sm="$rss_slope_max" \
            -v rm="$rss_rise_min_kib" -v rf="$rss_rise_frac" \
            'BEGIN { m = a * rf; if (m < rm) m = rm; exit !(s > sm && b - a > m) }'; then
            fail+=("RSS slope $(kib "$rss_slope")/min, median ${rss_first} -> ${rss_last} KiB (leak)")
        fi
        worst_fd_slope=$(awk -v a="$worst_fd_slope" -v b="$fd_slope" \
            'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }')
        worst_rss_slope=$(awk -v a="$worst_rss_slope" -v b="$rss_slope" \
            'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }')
        slopes="fd slope $(printf '%+.1f' "$fd_slope")/min, RSS slope $(kib "$rss_slope")/min"
    else
        slopes="no trend (${n} samples)"
    fi

    printf 'soak: %-6s %s sessions, %s GB verified; fds idle %s, load median %s, after %s%s; RSS %s -> %s -> %s MiB; %s; %s\n' \
        "$backend" "$sessions" "$(awk -v b="$verified" 'BEGIN { printf "%.2f", b / 1e9 }')" \
        "$fd_idle" "${fd_med:-?}" "${fd_after:-?}" "${settled:+ in ${settled} s}" \
        "$(awk -v k="$rss_idle" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$(awk -v k="$rss_med" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$(awk -v k="$rss_after" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$slopes" "$( ((${#fail[@]})) && echo "FAIL" || echo "ok")"
    for f in "${fail[@]}"; do
        failures+=("$backend: $f")
    done
done

elapsed=$(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) / 60 }')
if ((${#failures[@]})); then
    keep=1
    echo "soak: seed ${seed}; logs in ${work}"
    verdict="soak: FAIL ${failures[0]}"
    for f in "${failures[@]:1}"; do
        verdict+="; $f"
    done
    echo "$verdict"
    exit 1
fi
if [[ -n "$worst_fd_slope" ]]; then
    slopes="fd slope $(printf '%+.1f' "$worst_fd_slope")/min, RSS slope $(kib "$worst_rss_slope")/min (worst)"
else
    slopes="no trend (too short)"
fi
echo "soak: PASS ${nb} backends, ${elapsed} min, ${connections} connections, ${total_sessions} sessions, $(awk -v b="$total_verified" 'BEGIN { printf "%.1f", b / 1e9 }') GB verified, ${slopes}"
