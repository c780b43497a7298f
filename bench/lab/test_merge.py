"""Several load machines: echo-bench from three client hosts at once, each writing its JSON
report, combined with ``echo-bench merge``; checked against the server's own counters and
against the union of the three histograms, decoded here."""
import json
import os
import subprocess
import tempfile

from bench.lab import echo, hdr
from bench.lab.case import LabCase

ARGS = ["-c", "10", "-s", "256", "-d", "2", "--warmup", "0"]


class SeveralLoadMachines(LabCase):
    def test_three_hosts_merged(self):
        server_host = self.lab.host("server")
        clients = [self.lab.host(f"load{i}") for i in (1, 2, 3)]
        server = echo.Server(server_host)
        results = echo.bench_many([(c, echo.bench_argv(server_host, *ARGS)) for c in clients])
        reports = [self.assertBench(r, f"echo-bench on {c.name}") for r, c in zip(results, clients)]
        counters = server.metrics()
        merged = self.merge(reports)

        accepted = counters["echo_connections_accepted_total"]
        self.assertEqual(merged["connected"], sum(r["connected"] for r in reports))
        self.assertEqual(merged["connected"], accepted, "merged connections vs the server's")
        self.assertEqual(merged["messages"], sum(r["messages"] for r in reports))
        # The server counts every byte; the reports count the messages completed inside the
        # window. With --warmup 0 the difference is what was in flight at the window's ends:
        # at most one message per connection at each end (pipeline 1).
        echoed = counters["echo_bytes_sent_total"]
        slack = 2 * accepted * 256
        self.figure(f"3 hosts: merged {merged['messages']:,} messages = {merged['bytes']:,} B, "
                    f"server echoed {echoed:,.0f} B (difference {echoed - merged['bytes']:,.0f}, "
                    f"bound {slack:,.0f}); connections {merged['connected']} = server {accepted:.0f}")
        self.assertGreaterEqual(echoed, merged["bytes"])
        self.assertLessEqual(echoed - merged["bytes"], slack)

        decoded = [hdr.decode(r["latency_hist"]) for r in reports]
        for (counts, _), r in zip(decoded, reports):
            self.assertEqual(sum(counts.values()), r["messages"], "a histogram's count")
        union = hdr.union(counts for counts, _ in decoded)
        self.assertEqual(sum(union.values()), merged["messages"])
        p99 = hdr.value_at_quantile(union, 0.99, decoded[0][1]) / 1000
        each = [r["latency_us"]["p99"] for r in reports]
        self.figure(f"p99 per host {each} us; merged {merged['latency_us']['p99']} us; "
                    f"the union's p99 decoded here {p99:.1f} us")
        self.assertAlmostEqual(merged["latency_us"]["p99"], p99, delta=0.06)

    def merge(self, reports):
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for i, r in enumerate(reports):
                paths.append(os.path.join(d, f"load{i + 1}.json"))
                with open(paths[-1], "w") as f:
                    json.dump(r, f)
            p = subprocess.run([str(echo.ECHO_BENCH), "merge", "--json", *paths],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, f"echo-bench merge: {p.stderr}")
        return json.loads(p.stdout)
