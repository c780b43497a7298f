#!/usr/bin/env python3
"""Runs the shell commands that the documentation shows, as written, from the repository root.

    bench/doc_commands.py [--list] [--timeout SECS] [FILE.md ...]

Default files: README.md, docs/*.md, bench/README.md and crates/*/README.md. The rules (what a
doc writer needs to know):

- Only fenced blocks opened with ```sh (or ```bash, ```shell) are looked at. Usage synopses,
  output samples and templates with placeholders (PID, ADDR, N) go in a plain ``` or ```text
  block, which is never run.
- In a ```sh block every line is a command, except blank lines and lines that start with `#`.
  A line ending in `\\` continues on the next. Each command runs on its own with
  `bash -o pipefail -c`, stdin from /dev/null, from the repository root, and must exit 0 within
  the time limit (default 180 s; cargo may have to build first).
- A command's comment is its trailing comment plus the comment lines directly above it (no
  blank line between). A comment that contains `no-run` keeps the command from running; say why:
  `bench/soak.sh --minutes 30    # the long soak (no-run: 30 minutes)`. Use it for anything
  long (over ~20 s once built), interactive, or already run by another CI step. A block whose
  first line is such a comment is not run at all.
- A comment that contains `until Ctrl-C` marks a server: it is started in the
  background (only if 127.0.0.1:10000 and [::1]:10000 are free, else the line is skipped with
  a note), must stay up and either echo a line sent to localhost:10000 or print a
  `listening ...` line, and is then stopped with SIGINT.
- Client commands that name the default address (`127.0.0.1:10000`, `localhost 10000`, ...)
  run against a server this script starts (`target/release/echo-server -l 127.0.0.1:0
  -u 127.0.0.1:0`): the port 10000 in the command is replaced by that server's TCP port, or
  its UDP port when the command has `--udp` or `nc -u`.
- A comment that says `prints "TEXT"` also requires TEXT in the command's output.
- A command whose program is not installed here (say `nc`) is skipped with a note.
- The README's Layout block must name every file of src/ (as `udp.rs` or `server/accept.rs`).
- docs/echo-server.md must name every long option that `echo-server --help` lists (the help
  text itself is never copied into the docs: it is generated from the code).
- ```rust blocks are compiled with `rustdoc --test` against the `selector` crate, and run
  unless marked `rust,no_run`; a block must therefore be a whole program (its own `fn main`,
  its `use` lines: GitHub shows rustdoc's hidden `# ` lines). Use ```text for output or
  sketches that are not meant to compile.

`--list` shows what would run and what not, without running anything. Exit status: 0 when
every command that ran succeeded, 1 otherwise. `python3 -m doctest bench/doc_commands.py`
tests the parsing rules below.
"""
import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 10000
SHELL_LANGS = {"sh", "bash", "shell"}
SERVER_START_TIMEOUT = 180.0


@dataclass
class Command:
    path: str
    line: int
    text: str  # the command, without its trailing comment
    comment: str

    @property
    def kind(self):
        if "no-run" in self.comment:
            return "no-run"
        if "until ctrl-c" in self.comment.lower():
            return "server"
        return "run"

    def where(self):
        return f"{self.path}:{self.line}"


def split_comment(line):
    """A command line split into (command, trailing comment), quotes respected.

    >>> split_comment("printf 'a # b\\\\n' | nc -N 127.0.0.1 10000   # prints a # b")
    ("printf 'a # b\\\\n' | nc -N 127.0.0.1 10000", 'prints a # b')
    >>> split_comment("cargo test -p selector --test readiness poll::")
    ('cargo test -p selector --test readiness poll::', '')
    >>> split_comment("echo a#b")
    ('echo a#b', '')
    """
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def commands(path, text):
    """The commands of every ```sh block of one Markdown file.

    >>> doc = "x\\n```sh\\n# a comment\\ncargo build \\\\\\n  --release\\n\\nsoak  # long (no-run)\\n```\\n"
    >>> [(c.line, c.text, c.kind) for c in commands("D.md", doc)]
    [(4, 'cargo build --release', 'run'), (7, 'soak', 'no-run')]
    >>> [c.kind for c in commands("D.md", "```sh\\ncargo run --release  # runs until Ctrl-C\\n```")]
    ['server']
    >>> [c.kind for c in commands("D.md", "```sh\\n# the server, until Ctrl-C:\\ncargo run\\nls\\n```")]
    ['server', 'run']
    >>> [c.kind for c in commands("D.md", "```sh\\n# no-run: all of it\\nls\\n\\nls  # until Ctrl-C\\n```")]
    ['no-run', 'no-run']
    >>> commands("D.md", "```\\necho-bench [OPTIONS] ADDR\\n```\\n```text\\nPID\\n```")
    []
    """
    out = []
    lang = None
    pending, start, above, block_note, first = "", 0, [], "", False
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            if lang is None:
                lang = stripped[3:].strip().split(",")[0].split(" ")[0] or "-"
            else:
                lang = None
            above, block_note, first = [], "", True
            continue
        if lang not in SHELL_LANGS:
            continue
        if not pending:
            start = n
            if not stripped:
                above = []
                continue
            if stripped.startswith("#"):
                above.append(stripped.lstrip("#").strip())
                if first and "no-run" in above[-1]:
                    block_note = "(block) no-run"
                first = False
                continue
        first = False
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        cmd, comment = split_comment(pending + stripped)
        pending = ""
        out.append(Command(str(path), start, cmd, " ".join(above + [comment, block_note]).strip()))
        above = []
    return out


_ADDR = re.compile(r"\b(127\.0\.0\.1|localhost)([: ])" + str(DEFAULT_PORT) + r"\b")


def rewrite(cmd, tcp_port, udp_port):
    """The command with the default port replaced by the test server's.

    >>> rewrite("printf 'hello\\\\n' | nc -N 127.0.0.1 10000", 4242, 5353)
    "printf 'hello\\\\n' | nc -N 127.0.0.1 4242"
    >>> rewrite("target/release/echo-bench --udp -c 2 -d 1 localhost:10000", 4242, 5353)
    'target/release/echo-bench --udp -c 2 -d 1 localhost:5353'
    >>> rewrite("cargo build --release", 4242, 5353)
    'cargo build --release'
    """
    udp = re.search(r"--udp\b|\bnc\s+(-\w+\s+)*-\w*u", cmd)
    port = udp_port if udp else tcp_port
    return _ADDR.sub(lambda m: f"{m.group(1)}{m.group(2)}{port}", cmd)


def rust_blocks(path, text):
    """The ```rust blocks of one Markdown file, each with its info string and first line.

    >>> rust_blocks("D.md", "```rust,no_run\\nfn main() {}\\n```\\n```sh\\nls\\n```\\n```rust\\nlet x = 1;\\n```\\n")
    [(2, 'rust,no_run', 'fn main() {}\\n'), (8, 'rust', 'let x = 1;\\n')]
    """
    out, info, body, start = [], None, [], 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            if info is None:
                info, body, start = stripped[3:].strip() or "-", [], n + 1
            else:
                if info.split(",")[0] == "rust":
                    out.append((start, info, "".join(body)))
                info = None
            continue
        if info is not None:
            body.append(raw + "\n")
    return out


def check_rust(files):
    """Compiles (and runs) the ```rust blocks with rustdoc; returns the number that failed."""
    blocks = [(f, b) for f in files for b in rust_blocks(f.relative_to(ROOT), f.read_text())]
    if not blocks:
        return 0, 0
    # The README's own `cargo build --release`: the selector library as the binaries use it,
    # so nothing is built twice with other features.
    build = subprocess.run(["cargo", "build", "--quiet", "--release", "--message-format=json"],
                           cwd=ROOT, capture_output=True, text=True)
    rlib = None
    for line in build.stdout.splitlines():
        if '"compiler-artifact"' in line and '"name":"selector"' in line:
            rlib = next((f for f in re.findall(r'"([^"]+\.rlib)"', line)), rlib)
    if build.returncode != 0 or rlib is None:
        print(f"FAIL   cannot build the selector library for the Rust blocks\n{tail(build.stderr)}")
        return len(blocks), len(blocks)
    deps = ROOT / "target" / "release" / "deps"
    failed = 0
    for f, (line, info, body) in blocks:
        where = f"{f.relative_to(ROOT)}:{line}"
        with tempfile.TemporaryDirectory() as tmp:
            md = Path(tmp) / "block.md"
            md.write_text(f"```{info}\n{body}```\n")
            t0 = time.monotonic()
            out = subprocess.run(["rustdoc", "--test", "--edition", "2021", str(md),
                                  "-L", f"dependency={deps}", "--extern", f"selector={rlib}"],
                                 cwd=tmp, capture_output=True, text=True, timeout=300)
        ok = out.returncode == 0
        failed += not ok
        print(f"{'ok    ' if ok else 'FAIL  '} {where:28} ```{info} block "
              f"({time.monotonic() - t0:.1f} s; rustdoc --test)")
        if not ok:
            print(tail(out.stdout + out.stderr, 40))
    return len(blocks), failed


def layout_gaps(readme, src):
    """Files under src/ that the README's Layout block does not name (path relative to src/).

    >>> layout_gaps("## Layout\\n\\n```text\\nsrc/ main.rs, server/accept.rs\\n```\\n",
    ...             ["main.rs", "server/accept.rs", "udp.rs"])
    ['udp.rs']
    """
    m = re.search(r"^## Layout\s*\n+```\w*\n(.*?)^```", readme, re.M | re.S)
    block = m.group(1) if m else ""
    return [f for f in src if not re.search(r"(?<![\w/])" + re.escape(f) + r"\b", block)]


def option_gaps(doc, help_text):
    """Long options of a --help text that the doc does not name.

    >>> option_gaps("use `--listen` or `-l/--listen-proxy`", "  -l, --listen <ADDR>\\n"
    ...             "      --listen-proxy <ADDR>\\n      --udp <ADDR>  see --listen\\n")
    ['--udp']
    """
    flags = []
    for m in re.finditer(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", help_text, re.M):
        if m.group(1) not in flags:
            flags.append(m.group(1))
    return [f for f in flags if not re.search(re.escape(f) + r"(?![\w-])", doc)]


def missing_program(cmd):
    """The first program of a pipeline stage that is not installed, or None.

    >>> missing_program("printf 'x' | no-such-program-here -N 127.0.0.1 1")
    'no-such-program-here'
    >>> missing_program("target/release/echo-bench -c 1 ADDR") is None
    True
    """
    for stage in re.split(r"\|\||&&|[|;]", cmd):
        try:
            words = shlex.split(stage)
        except ValueError:
            return None
        while words and re.match(r"^\w+=", words[0]):
            words = words[1:]  # VAR=value prefix
        if words and "/" not in words[0] and shutil.which(words[0]) is None:
            if words[0] not in ("cd", "export", "set", "ulimit", "time"):
                return words[0]
    return None


def port_free(port):
    """Whether nothing listens on 127.0.0.1:PORT and [::1]:PORT (TCP)."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno != 99:  # EADDRNOTAVAIL: no ::1 here, nothing to clash with
                return False
        finally:
            s.close()
    return True


def echo_once(port, deadline):
    """Connects to localhost:PORT, sends a line, reads it back; True when it came back."""
    msg = b"doc_commands\n"
    try:
        with socket.create_connection(("localhost", port), timeout=1.0) as s:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(64)
                if not chunk:
                    break
                got += chunk
            return got == msg
    except OSError:
        return None  # not listening (yet)


class Background:
    """A process started in its own session, its output going to a temporary file."""

    def __init__(self, argv):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig=signal.SIGINT):
        """Signals the whole session, waits up to 10 s, then kills it; returns the status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        return self.proc.returncode


class TestServer:
    """The echo-server that client commands are pointed at."""

    def __init__(self):
        exe = ROOT / "target" / "release" / "echo-server"
        self.bg = Background([str(exe), "-q", "-l", "127.0.0.1:0", "-u", "127.0.0.1:0"])
        self.tcp = self.udp = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self.tcp is None or self.udp is None):
            for line in self.bg.output().splitlines():
                m = re.match(r"listening (tcp|udp) 127\.0\.0\.1:(\d+)", line)
                if m:
                    setattr(self, m.group(1), int(m.group(2)))
            if self.bg.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.tcp is None or self.udp is None:
            self.bg.stop()
            sys.exit(f"doc_commands: {exe} did not start: {self.bg.output().strip()}")


def tail(text, n=15):
    lines = text.rstrip().splitlines()
    return "\n".join("    " + line for line in lines[-n:])


def run_server(cmd, timeout):
    """Starts a server line; returns (ok, note)."""
    if not port_free(DEFAULT_PORT):
        return None, f"skipped: port {DEFAULT_PORT} is in use here"
    bg = Background(["bash", "-o", "pipefail", "-c", cmd.text])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if bg.proc.poll() is not None:
                return False, f"exited with status {bg.proc.returncode} before serving\n" + \
                    tail(bg.output())
            echoed = echo_once(DEFAULT_PORT, min(deadline, time.monotonic() + 5))
            if echoed:
                return True, f"echoed a line on localhost:{DEFAULT_PORT}"
            if echoed is False:
                return False, f"accepted on localhost:{DEFAULT_PORT} but did not echo\n" + \
                    tail(bg.output())
            if re.search(r"^listening ", bg.output(), re.M):
                time.sleep(0.5)
                if bg.proc.poll() is None:
                    return True, "printed its listening line"
            time.sleep(0.2)
        return False, f"not serving after {timeout:.0f} s\n" + tail(bg.output())
    finally:
        bg.stop(signal.SIGINT)


def run_client(cmd, server, timeout):
    """Runs one command to completion; returns (ok, note)."""
    text = cmd.text
    if _ADDR.search(text):
        text = rewrite(text, server().tcp, server().udp)
    proc = subprocess.Popen(["bash", "-o", "pipefail", "-c", text], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output = proc.communicate(timeout=timeout)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole pipeline, not only bash
        output = proc.communicate()[0].decode(errors="replace")
        return False, f"still running after {timeout:.0f} s (`{text}`)\n" + tail(output)
    if proc.returncode != 0:
        return False, f"exit status {proc.returncode} (`{text}`)\n" + tail(output)
    want = re.search(r'prints "([^"]*)"', cmd.comment)
    if want and want.group(1) not in output:
        return False, f'did not print "{want.group(1)}" (`{text}`)\n' + tail(output)
    return True, "" if text == cmd.text else f"as `{text}`"


def default_files():
    files = [ROOT / "README.md", ROOT / "bench" / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "crates").glob("*/README.md"))
    return [f for f in files if f.exists()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="Markdown files (default: all docs)")
    ap.add_argument("--list", action="store_true", help="show what would run; run nothing")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per command")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows in CI logs as it happens
    files = [f.resolve() for f in args.files] or default_files()
    cmds = []
    for f in files:
        cmds += commands(f.relative_to(ROOT), f.read_text())

    if args.list:
        for c in cmds:
            print(f"{c.kind:7} {c.where():28} {c.text}")
        for f in files:
            for line, info, _ in rust_blocks(f.relative_to(ROOT), f.read_text()):
                print(f"{'rustdoc':7} {str(f.relative_to(ROOT)) + ':' + str(line):28} ```{info}")
        return 0

    if not (ROOT / "target" / "release" / "echo-server").exists() or \
            any(_ADDR.search(c.text) for c in cmds if c.kind == "run"):
        # `cargo build --release`, as the README says (also what `cargo run --release` reuses).
        subprocess.run(["cargo", "build", "--quiet", "--release"], cwd=ROOT, check=True)
    server = None

    def test_server():
        nonlocal server
        if server is None:
            server = TestServer()
        return server

    t_all = time.monotonic()
    ran, failed = check_rust(files)
    if not args.files:
        src = sorted(str(p.relative_to(ROOT / "src")) for p in (ROOT / "src").rglob("*.rs"))
        gaps = layout_gaps((ROOT / "README.md").read_text(), src)
        ran += 1
        failed += bool(gaps)
        print(f"{'FAIL  ' if gaps else 'ok    '} {'README.md Layout':28} names every file of src/"
              + (f" (missing: {', '.join(gaps)})" if gaps else ""))
        helped = subprocess.run([str(ROOT / "target" / "release" / "echo-server"), "--help"],
                                capture_output=True, text=True)
        gaps = option_gaps((ROOT / "docs" / "echo-server.md").read_text(), helped.stdout)
        if helped.returncode != 0 or not helped.stdout:
            gaps = ["(echo-server --help failed)"]
        ran += 1
        failed += bool(gaps)
        print(f"{'FAIL  ' if gaps else 'ok    '} {'docs/echo-server.md':28} names every option of "
              "echo-server --help" + (f" (missing: {', '.join(gaps)})" if gaps else ""))
    try:
        for c in cmds:
            if c.kind == "no-run":
                print(f"no-run {c.where():28} {c.text}")
                continue
            prog = missing_program(c.text)
            if prog:
                print(f"skip   {c.where():28} {c.text}  ({prog} is not installed here)")
                continue
            t0 = time.monotonic()
            if c.kind == "server":
                ok, note = run_server(c, min(args.timeout, SERVER_START_TIMEOUT))
            else:
                ok, note = run_client(c, test_server, args.timeout)
            secs = time.monotonic() - t0
            if ok is None:
                print(f"skip   {c.where():28} {c.text}  ({note})")
                continue
            ran += 1
            first, _, rest = note.partition("\n")
            print(f"{'ok    ' if ok else 'FAIL  '} {c.where():28} {c.text}  ({secs:.1f} s"
                  f"{'; ' + first if first else ''})")
            if rest:
                print(rest)
            failed += not ok
    finally:
        if server is not None:
            server.bg.stop(signal.SIGTERM)
    print(f"doc_commands: {ran - failed} of {ran} commands and Rust blocks ran as written, "
          f"{failed} failed "
          f"({time.monotonic() - t_all:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
