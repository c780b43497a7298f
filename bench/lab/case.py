"""The lab tests' base class: skips with the reason when no lab can be made, gives each test a
fresh lab that is torn down whatever happens, and collects the figures for the summary."""
import math
import unittest

from bench.lab import echo, netlab

_why_not = []
FIGURES = []  # (test, text): printed at the end of the run, for docs/lab.md


def why_unavailable():
    if not _why_not:
        why = netlab.unavailable()
        if not why and not (echo.ECHO_SERVER.exists() and echo.ECHO_BENCH.exists()):
            why = "target/release/echo-server and echo-bench not built (cargo build --release)"
        _why_not.append(why)
    return _why_not[0]


class LabCase(unittest.TestCase):
    def setUp(self):
        why = why_unavailable()
        if why:
            self.skipTest(why)
        self.lab = self.enterContext(netlab.Lab(self._testMethodName[5:17].replace("_", "")))

    def figure(self, text):
        FIGURES.append((self.id().split(".", 2)[-1], text))
        print(f"    {text}", flush=True)

    def assertBench(self, result, what):
        """echo-bench ran, every connection served, no mismatch, no error."""
        rc, rep, err = result
        self.assertIsNotNone(rep, f"{what}: no report (exit {rc}): {err[-500:]}")
        self.assertEqual(rep["mismatches"], 0, f"{what}: mismatches: {rep.get('first_error')}")
        self.assertEqual(rep["errors"], 0, f"{what}: errors: {rep.get('first_error')}")
        self.assertEqual(rc, 0, f"{what}: exit {rc}: {err[-500:]}")
        self.assertGreater(rep["messages"], 0, f"{what}: nothing echoed")
        return rep


def loss_bound(p_link, crossings, n):
    """Expected share of datagrams lost when each crosses ``crossings`` links that lose
    ``p_link`` each, and the half-width of its 4-sigma binomial interval over ``n`` datagrams
    (outside it by chance: about 6 in 100,000 runs)."""
    q = 1 - (1 - p_link) ** crossings
    return q, 4 * math.sqrt(q * (1 - q) / max(n, 1))
