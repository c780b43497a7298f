#!/usr/bin/env bash
# CI: the Kubernetes manifests (dist/kubernetes) validated against the
# Kubernetes API schema, then the container image (dist/Containerfile) built
# and run: TCP and UDP echo, /healthz, the SIGTERM drain with exit status 0,
# a read-only root file system, a non-root user without capabilities, and
# the manifests' server arguments started in the image.
#
# Where no container can run (podman or runc cannot be installed, or the
# runtime refuses to start one), the container part prints
# "SKIPPED: <reason>" and the script exits 0: a skip is loud, never silent.
set -euo pipefail
cd "$(dirname "$0")/.."

image=localhost/echo-server:ci
venv=target/ci-k8s-venv
k8s_min=1.30.0 # the oldest Kubernetes the manifests are for (preStop sleep)
k8s_max=1.37.0 # the newest schema kubernetes-validate 1.37.0 carries

echo "== manifests: validated against the Kubernetes API schema ($k8s_min and $k8s_max, strict)"
if [[ ! -x $venv/bin/kubernetes-validate ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate==1.37.0
fi
validate() { # FILE...: every resource in them, against both versions
  for k in "$k8s_min" "$k8s_max"; do
    "$venv/bin/kubernetes-validate" --quiet --strict -k "$k" "$@"
  done
}
mapfile -t plain < <(find dist/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
validate "${plain[@]}"
echo "validated: ${plain[*]}"
rendered=target/ci-k8s-rendered
rm -rf "$rendered" && mkdir -p "$rendered"
if command -v kubectl >/dev/null 2>&1; then
  for dir in $(find dist/kubernetes -name kustomization.yaml -printf '%h\n' | sort); do
    kubectl kustomize "$dir" > "$rendered/$(basename "$dir").yaml"
  done
  validate "$rendered"/*.yaml
  echo "validated: kubectl kustomize of $(ls "$rendered" | tr '\n' ' ')"
else
  echo "SKIPPED: kustomize overlays not rendered: no kubectl on this machine"
fi
# The validator can fail: a broken copy of the Deployment is refused.
broken=$rendered/broken.yaml
sed 's/replicas: 2/replicas: two/' dist/kubernetes/echo-server/echo-server.yaml > "$broken"
if "$venv/bin/kubernetes-validate" --quiet --strict -k "$k8s_max" "$broken" >/dev/null 2>&1; then
  echo "FAIL: kubernetes-validate accepted replicas: two"
  exit 1
fi
echo "refused as it should be: a Deployment with replicas: two"

skip() {
  echo
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  echo "SKIPPED: container image checks: $*"
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  exit 0
}

echo "== image: podman and runc"
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  if ! { timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq podman runc >/dev/null; }; then
    skip "podman and runc could not be installed (apt-get install podman runc)"
  fi
fi
podman --version
# crun refuses some hosts' cgroup layouts and the default ulimits may exceed
# the hard limits: runc, cgroupfs, and limits within this shell's.
pm=(podman --runtime runc --cgroup-manager cgroupfs)
nofile=$(ulimit -Hn); [[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
nproc=$(ulimit -Hu); [[ $nproc == unlimited || $nproc -gt 4096 ]] && nproc=4096
run=(run --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" --read-only)

echo "== image: built by dist/build-image.sh"
# What the build needs beyond .ci/run's toolchain: the musl target's standard
# library (from rustup's server, which CI may not reach) and musl-gcc.
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl &&
  ! timeout 300 rustup target add x86_64-unknown-linux-musl; then
  skip "the Rust standard library for x86_64-unknown-linux-musl could not be installed"
fi
if ! command -v musl-gcc >/dev/null 2>&1 &&
  ! { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq musl-tools >/dev/null; }; then
  skip "musl-tools (musl-gcc) could not be installed"
fi
start=$SECONDS
dist/build-image.sh "$image"
echo "build: $((SECONDS - start)) s"
bench=target/image/echo-bench # the static binary the image holds, run here too

echo "== image: size, labels, user"
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "size: $size bytes"
((size < 15000000)) || { echo "FAIL: the image is $size bytes, over 15 MB"; exit 1; }
version=$(target/image/echo-server --version | awk '{print $2}')
for label in source version licenses; do
  value=$(podman image inspect --format "{{index .Labels \"org.opencontainers.image.$label\"}}" "$image")
  echo "org.opencontainers.image.$label: $value"
  [[ -n $value && $value != "<no value>" ]] || { echo "FAIL: label $label missing"; exit 1; }
done
[[ $(podman image inspect --format '{{index .Labels "org.opencontainers.image.version"}}' "$image") == "$version" ]] ||
  { echo "FAIL: the version label is not $version"; exit 1; }
user=$(podman image inspect --format '{{.Config.User}}' "$image")
[[ $user == 65532:65532 ]] || { echo "FAIL: the image's user is '$user'"; exit 1; }

names=()
cleanup() { for n in "${names[@]}"; do podman rm -f "$n" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT

echo "== image: can a container run here?"
out=$("${pm[@]}" "${run[@]}" --rm --network none --entrypoint /usr/local/bin/echo-bench "$image" --version 2>&1) && rc=0 || rc=$?
if ((rc != 0)); then
  # 125-127: podman or the runtime could not start it; anything else is ours.
  ((rc >= 125 && rc <= 127)) && skip "podman could not start a container (status $rc): $out"
  echo "FAIL: echo-bench --version in the image, status $rc: $out"
  exit 1
fi
echo "$out"

wait_log() { # NAME TEXT: until the container's log shows TEXT (10 s at most)
  for _ in $(seq 100); do
    podman logs "$1" 2>&1 | grep -qF "$2" && return 0
    [[ $(podman inspect --format '{{.State.Running}}' "$1") == true ]] || break
    sleep 0.1
  done
  echo "FAIL: container $1 never logged '$2':"
  podman logs "$1" 2>&1 | tail -20
  exit 1
}
stop_ok() { # NAME: SIGTERM, then exited_ok
  podman kill --signal TERM "$1" >/dev/null
  exited_ok "$1"
}
exited_ok() { # NAME: the container exits with status 0
  local status
  status=$(podman wait "$1")
  echo "$1: exit status $status"
  [[ $status == 0 ]] || { podman logs "$1" 2>&1 | tail -20; echo "FAIL: exit status $status"; exit 1; }
}

echo "== image: echo-server with the image's default arguments"
server=echo-ci-server
names+=("$server")
"${pm[@]}" "${run[@]}" -d --name "$server" \
  -p 127.0.0.1::10000/tcp -p 127.0.0.1::10007/udp -p 127.0.0.1::9090/tcp "$image" >/dev/null
wait_log "$server" "listening metrics"
tcp=$(podman port "$server" 10000/tcp)
udp=$(podman port "$server" 10007/udp)
metrics=$(podman port "$server" 9090/tcp)
echo "published: tcp $tcp, udp $udp, metrics $metrics"

echo "== image: /healthz answers 200"
python3 - "$metrics" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 20
while True:
    try:
        with urllib.request.urlopen(f"http://{sys.argv[1]}/healthz", timeout=2) as r:
            print("healthz:", r.status, r.read().decode().strip())
            sys.exit(0 if r.status == 200 else 1)
    except OSError as e:
        if time.monotonic() > deadline:
            sys.exit(f"FAIL: /healthz did not answer: {e}")
        time.sleep(0.2)
PY

echo "== image: echo over TCP and UDP through the published ports (echo-bench here)"
"$bench" -c 4 -d 1 --warmup 0.2 --fail-if 'errors>0' "$tcp" | grep -E 'messages|errors|mismatches'
"$bench" --udp -c 2 -d 1 --warmup 0.2 --fail-if 'errors>0' "$udp" | grep -E 'messages|errors|mismatches|lost'

echo "== image: echo-bench in a second container, by host name, container to container"
ip=$(podman inspect --format '{{.NetworkSettings.IPAddress}}' "$server")
"${pm[@]}" "${run[@]}" --rm --add-host "echo-server:$ip" --entrypoint /usr/local/bin/echo-bench \
  "$image" -c 2 -d 1 --warmup 0.2 --fail-if 'errors>0' echo-server:10000 | grep -E 'messages|errors|mismatches'

echo "== image: non-root, no capabilities, read-only root file system"
pid=$(podman inspect --format '{{.State.Pid}}' "$server")
[[ $(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$server") == true ]] ||
  { echo "FAIL: ReadonlyRootfs is not true"; exit 1; }
grep -E '^(Uid|Gid|CapEff):' "/proc/$pid/status"
awk '/^Uid:|^Gid:/ { for (i = 2; i <= 5; i++) if ($i != 65532) exit 1 }
     /^CapEff:/ { if ($2 !~ /^0+$/) exit 1 }' "/proc/$pid/status" ||
  { echo "FAIL: the server runs as root or with capabilities"; exit 1; }
rootopts=$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo")
echo "root file system: $rootopts"
[[ ,$rootopts, == *,ro,* ]] || { echo "FAIL: the root file system is not read-only"; exit 1; }

echo "== image: the Indexed Job's echo-bench arguments, 3 shard containers, merged into one verdict"
# As Kubernetes runs dist/kubernetes/echo-bench-job.yaml, scaled down: its
# arguments with a start 8 s ahead, 2 s long, 1/10 of the connections and
# rate; JOB_COMPLETION_INDEX set per container; the reports read from the
# container logs (stdout and stderr mixed, as kubectl logs gives them).
mapfile -t jobargs < <("$venv/bin/python" - dist/kubernetes/echo-bench-job.yaml "$(($(date +%s) + 8))" <<'PY'
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
pod = job["spec"]["template"]["spec"]["containers"][0]
for arg in pod["args"]:
    flag, _, value = arg.partition("=")
    if flag == "--start-at":
        arg = f"--start-at={sys.argv[2]}"
    elif flag in ("--connections", "--rate"):
        arg = f"{flag}={int(value) // 10}"
    elif flag == "--duration":
        arg = "--duration=2"
    print(arg)
print(job["spec"]["completions"])
PY
)
shards=${jobargs[-1]}
unset 'jobargs[-1]'
echo "echo-bench ${jobargs[*]} (JOB_COMPLETION_INDEX 0..$((shards - 1)))"
reports=target/ci-k8s-reports
rm -rf "$reports" && mkdir -p "$reports"
for ((i = 0; i < shards; i++)); do
  names+=("echo-ci-shard-$i")
  "${pm[@]}" "${run[@]}" -d --name "echo-ci-shard-$i" --add-host "echo-server:$ip" -e "JOB_COMPLETION_INDEX=$i" \
    --entrypoint /usr/local/bin/echo-bench "$image" "${jobargs[@]}" >/dev/null
done
for ((i = 0; i < shards; i++)); do
  exited_ok "echo-ci-shard-$i"
  podman logs "echo-ci-shard-$i" > "$reports/$i.json" 2>&1
done
conns=$(printf '%s\n' "${jobargs[@]}" | sed -n 's/^--connections=//p')
"$bench" merge --fail-if 'errors>0' --fail-if "connected<$conns" "$reports"/[0-9]*.json |
  grep -E 'connected|messages|errors|mismatches'
# The merged run is the sum of its shards: each shard's share of the
# connections, the counts added, every shard index once.
"$bench" merge --json "$reports"/[0-9]*.json > "$reports/merged.json"
python3 - "$shards" "$conns" "$reports" <<'PY'
import json, pathlib, sys
n, conns, dir = int(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
def report(path):
    return json.loads([l for l in path.read_text().splitlines() if '"type":"report"' in l][-1])
shards = [report(dir / f"{i}.json") for i in range(n)]
merged = json.loads((dir / "merged.json").read_text())
assert sorted(r["shard"]["index"] for r in shards) == list(range(n)), [r["shard"] for r in shards]
assert sum(r["connections"] for r in shards) == conns == merged["connections"], merged
for k in ("connected", "messages", "bytes"):
    assert merged[k] == sum(r[k] for r in shards), (k, merged[k], [r[k] for r in shards])
print(f"merged = sum of {n} shards: {merged['messages']} messages, {merged['bytes']} bytes, "
      f"connections {[r['connections'] for r in shards]}")
PY
if "$bench" merge "$reports/0.json" "$reports/1.json" > /dev/null 2>&1; then
  echo "FAIL: merge accepted $((shards - 1)) of $shards shards"
  exit 1
fi
echo "refused as it should be: a merge with shard 2 missing"

echo "== image: SIGTERM drains (every byte the server received comes back) and exits 0"
# 3 MiB sent to a client that does not read (a 4 KiB receive buffer), until
# the kernel's send queue is empty (the server's kernel has acknowledged every
# byte) while the server still owes part of the echo (from /metrics); then
# SIGTERM: all of it must come back, in order, then EOF. SIGKILL at that
# point fails this check (a reset, the owed bytes lost).
python3 - "$tcp" "$metrics" podman kill --signal TERM "$server" <<'PY'
import fcntl, os, re, socket, struct, subprocess, sys, time, urllib.request

tcp, metrics, kill = sys.argv[1], sys.argv[2], sys.argv[3:]

def sent():
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(int(v) for v in re.findall(r"^echo_bytes_sent_total(?:\{.*\})? (\d+)$", text, re.M))

size = 3 << 20
data = os.urandom(size)
before = sent()
host, port = tcp.rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(20)
s.connect((host, int(port)))
s.sendall(data)
deadline = time.monotonic() + 10
while struct.unpack("i", fcntl.ioctl(s, 0x5411, b"\0" * 4))[0]:  # TIOCOUTQ
    if time.monotonic() > deadline:
        sys.exit("FAIL: the server's kernel did not take all the bytes within 10 s")
    time.sleep(0.01)
owed = size - (sent() - before)
print(f"at SIGTERM the server has all {size} bytes and still owes {owed} of their echo")
if owed <= 0:
    sys.exit("FAIL: nothing was left to drain at SIGTERM: the check would prove nothing")
subprocess.run(kill, check=True, stdout=subprocess.DEVNULL)
got = bytearray()
try:
    while chunk := s.recv(1 << 16):
        got += chunk
except OSError as e:
    sys.exit(f"FAIL: {e} after {len(got)} of {size} bytes")
if bytes(got) != data:
    sys.exit(f"FAIL: {len(got)} of {size} bytes came back after SIGTERM, or not in order")
print(f"drain: all {size} bytes echoed after SIGTERM, then EOF")
PY
exited_ok "$server"
podman logs "$server" 2>&1 | grep -E '^summary:' || { echo "FAIL: no summary line"; exit 1; }

echo "== image: the Kubernetes manifests' server arguments start and stop cleanly"
if ls "$rendered"/echo-server.yaml "$rendered"/ipv6.yaml "$rendered"/dual-stack.yaml >/dev/null 2>&1; then
  for variant in echo-server ipv6 dual-stack; do
    mapfile -t args < <("$venv/bin/python" - "$rendered/$variant.yaml" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "Deployment":
        print("\n".join(doc["spec"]["template"]["spec"]["containers"][0]["args"]))
PY
)
    name=echo-ci-$variant
    names+=("$name")
    echo "$variant: ${args[*]}"
    "${pm[@]}" "${run[@]}" -d --name "$name" "$image" "${args[@]}" >/dev/null
    wait_log "$name" "listening metrics"
    stop_ok "$name"
  done
else
  echo "SKIPPED: the overlays were not rendered (no kubectl), their arguments not run"
fi

echo "== cluster: all checks passed"
