"""Fairness across a slow link: a bulk client behind 1 Mbit/s and a 64-byte ping-pong client
on a clean link; the clean client's p99 with the bulk flow stays within 2x of its p99 alone.
Alone and loaded runs alternate (A B A B A B) and the medians are compared, since a shared
machine's noise moves single runs more than that."""
import statistics

from bench.lab import echo
from bench.lab.case import LabCase
from bench.lab.netlab import wait_for

PING = ["-c", "1", "-s", "64", "-d", "1.5", "--warmup", "0.3"]
BULK = ["-c", "4", "-s", "8192", "-p", "2", "-d", "60", "--warmup", "0"]
ROUNDS = 3


class FairnessAcrossSlowLink(LabCase):
    def test_clean_client_p99_with_bulk_behind_1mbit(self):
        server_host = self.lab.host("server")
        slow = self.lab.host("slow", rate=1_000_000)
        clean = self.lab.host("clean")
        server = echo.Server(server_host)
        alone, loaded, bulk_rates = [], [], []
        for _ in range(ROUNDS):
            alone.append(self.ping(clean, server_host))
            bulk = slow.popen(echo.bench_argv(server_host, *BULK),
                              stdout=-1, stderr=-1, text=True)
            # The bulk flow is going once 32 kB more came through the slow link.
            before = server.metrics()["echo_bytes_sent_total"]
            going, _ = wait_for(
                lambda: server.metrics()["echo_bytes_sent_total"] - before > 32_000, 10)
            self.assertTrue(going, "the bulk flow did not start")
            loaded.append(self.ping(clean, server_host))
            bulk.send_signal(2)
            out, _ = bulk.communicate(timeout=30)
            rep = echo.report_of(out)
            self.assertIsNotNone(rep, "the bulk client gave no report")
            self.assertEqual(rep["mismatches"], 0)
            bulk_rates.append(rep["mbytes_per_sec"])
        ratio = statistics.median(loaded) / statistics.median(alone)
        self.figure(f"64 B ping-pong p99 alone {alone} us, with a 1 Mbit/s bulk flow {loaded} "
                    f"us (bulk {bulk_rates} MB/s); median ratio {ratio:.2f}")
        self.assertTrue(all(r < 0.13 for r in bulk_rates), "the slow link was not shaped")
        self.assertLessEqual(ratio, 2.0)

    def ping(self, client, server_host):
        rep = self.assertBench(echo.bench(client, server_host, *PING), "ping-pong")
        return rep["latency_us"]["p99"]
