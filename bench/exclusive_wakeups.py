"""Wakeups per accepted connection: echo-server with 4 workers on one TCP
listener inherited from systemd-socket-activate (shared by all workers),
300 connections one at a time, each echoing 4 bytes; two builds alternated.

    python3 bench/exclusive_wakeups.py BEFORE_BINARY AFTER_BINARY [ROUNDS]

Prints per connection the server loop's wakeups (the echo_loop_wakeups
metric: waits that returned) and its threads' voluntary context switches
(every time a thread slept, so every time one was woken, including the
wake-ups a level-triggered epoll absorbs in the kernel when another worker
accepted first, which the loop never sees).
"""
import socket, subprocess, sys, time, re

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def run(binary, conns=300):
    port, mport = free_port(), free_port()
    p = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", binary,
                          "--workers", "4", "--metrics", f"127.0.0.1:{mport}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=5); break
            except OSError:
                if time.time() > deadline: raise
                time.sleep(0.05)
        c.sendall(b"x"); assert c.recv(1) == b"x"; c.close()
        for _ in range(20):  # metrics up
            try:
                socket.create_connection(("127.0.0.1", mport), timeout=1).close(); break
            except OSError: time.sleep(0.1)
        time.sleep(0.3)
        before = metrics(mport); cs0 = switches(p.pid)
        for i in range(conns):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"ping"); got = b""
            while len(got) < 4: got += c.recv(4 - len(got))
            c.close()
            time.sleep(0.002)  # one connection at a time, workers idle in between
        time.sleep(0.5)
        after = metrics(mport); cs1 = switches(p.pid)
        w = after["wakeups"] - before["wakeups"]; a = after["accepted"] - before["accepted"]
        return w, a, cs1 - cs0
    finally:
        p.terminate(); p.wait(10)

def switches(pid):
    """Voluntary context switches of the server's threads: each time a
    thread went to sleep, so each time one was woken (and slept again)."""
    import os
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in open(f"/proc/{pid}/task/{tid}/status"):
            if line.startswith("voluntary_ctxt_switches"):
                total += int(line.split()[1])
    return total

def metrics(mport):
    s = socket.create_connection(("127.0.0.1", mport), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = b""
    while True:
        d = s.recv(65536)
        if not d: break
        body += d
    text = body.decode()
    def total(name):
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))
    return {"wakeups": total("echo_loop_wakeups"), "accepted": total("echo_connections_accepted_total")}

if len(sys.argv) < 3:
    sys.exit("usage: exclusive_wakeups.py BEFORE_BINARY AFTER_BINARY [ROUNDS]")
for rnd in range(int(sys.argv[3]) if len(sys.argv) > 3 else 2):
    for name, b in (("before", sys.argv[1]), ("after", sys.argv[2])):
        w, a, cs = run(b)
        print(f"{name}: {a:.0f} connections: loop wakeups {w / a:.2f}, thread wake-ups (voluntary context switches, all threads) {cs / a:.2f} per connection", flush=True)
