"""Runs the lab suite: ``python3 -m bench.lab [-k PATTERN]`` from the repository root, as root.

Every test builds its own hosts (bench/lab/netlab.py) and tears them down, whatever happens;
a run also removes what killed earlier runs left, tears down on SIGINT, SIGTERM and SIGHUP and
at exit, and checks at the end that nothing of it is left. The last line is the summary,
``N passed, N failed, N skipped``; the exit status is 0 when nothing failed.
"""
import argparse
import atexit
import signal
import sys
import time
import unittest
from pathlib import Path

from bench.lab import case, netlab

# Tests that fail on today's build for a known reason, with the reason. Each is still run: a
# failure here is reported as expected and not counted as failed; a pass is counted as failed
# ("unexpectedly passed") so that the entry is removed once its cause is fixed.
KNOWN_FAILURES = {}
# Tests that fail in some runs on today's build for a known reason: a failure is reported as
# expected and not counted as failed; a pass is a pass.
KNOWN_INTERMITTENT = {}


class Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test)


def known(test):
    return KNOWN_FAILURES.get(test.id().split(".", 2)[-1])


def interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    ap = argparse.ArgumentParser(prog="python3 -m bench.lab", description=__doc__.split("\n")[0])
    ap.add_argument("-k", dest="patterns", action="append", help="run only tests matching this")
    args = ap.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    atexit.register(netlab.teardown_all)
    why = case.why_unavailable()
    if why:
        print(f"SKIPPED: no lab here ({why}); every lab test is skipped")
    else:
        stale = netlab.remove_stale()
        if stale:
            print(f"removed {len(stale)} namespaces left by earlier runs: {' '.join(stale)}")
        kinds = netlab.qdisc_kinds()
        print("kernel qdiscs: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in kinds.items()))
    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [f"*{p}*" for p in args.patterns]
    suite = loader.discover(str(Path(__file__).parent), pattern="test_*.py",
                            top_level_dir=str(Path(__file__).parents[2]))
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stdout)
    start = time.monotonic()
    try:
        result = runner.run(suite)
    except KeyboardInterrupt as e:
        netlab.teardown_all()
        print(f"\ninterrupted ({e}); torn down: {report_leftovers()}")
        return 130
    return summarize(result, time.monotonic() - start)


def summarize(result, seconds):
    failed_ids = {t.id() for t, _ in result.failures + result.errors}
    failed, expected = set(), []
    for test_id in failed_ids:
        name = test_id.split(".", 2)[-1].split(" ")[0]
        reason = KNOWN_FAILURES.get(name) or KNOWN_INTERMITTENT.get(name)
        if reason:
            expected.append((test_id, reason))
        else:
            failed.add(test_id)
    passed = 0
    for t in result.passed:
        if t.id() in failed_ids:
            continue
        if known(t):
            failed.add(f"{t.id()} (unexpectedly passed: remove it from KNOWN_FAILURES)")
        else:
            passed += 1
    print()
    if case.FIGURES:
        print("figures:")
        for test, text in case.FIGURES:
            print(f"  {test}: {text}")
    if expected:
        print("KNOWN_FAILURES and KNOWN_INTERMITTENT (bench/lab/__main__.py), failing as expected, not counted:")
        for test_id, reason in expected:
            print(f"  {test_id}: {reason}")
    for test_id in sorted(failed):
        print(f"FAILED {test_id}")
    print(f"lab suite took {seconds:.1f} s; {report_leftovers()}")
    print(f"{passed} passed, {len(failed)} failed, {len(result.skipped)} skipped")
    return 1 if failed else 0


def report_leftovers():
    made = ", ".join(f"{n} {k}" for k, n in netlab.created().items())
    left = netlab.leftovers()
    if left:
        return f"made {made}; LEFT BEHIND: {'; '.join(left)}"
    return (f"made {made}; left behind: nothing (no lab namespace, no process or socket in one, "
            f"no lab link or nftables table in the root namespace)")


if __name__ == "__main__":
    sys.exit(main())
