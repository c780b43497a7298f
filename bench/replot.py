#!/usr/bin/env python3
"""Redraws a comparison's plots from the "All points" table of its Markdown summary, without
the raw records (which stay on the machine that ran it). The committed figures come from
docs/BENCHMARKS.md this way:

    bench/replot.py docs/BENCHMARKS.md --after "## All servers" --out bench/figures
    bench/replot.py docs/BENCHMARKS.md --after "## echo-server against tokio-ct" --prefix quiet_ --out bench/figures

It reads the first table whose header starts `| server | backend |` (after the first line
containing --after, if given): its medians of msgs/s and CPU µs/msg, and its "runs ok" column
(a point where a run failed is drawn hollow). Works on a run's summary.md as well.
"""
import argparse
import sys
from pathlib import Path

import report


def _num(text):
    """A table cell as a number, None for n/a or empty.

    >>> _num("1,127,720"), _num("5.62"), _num("n/a"), _num("")
    (1127720.0, 5.62, None, None)
    """
    text = text.strip().replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def read_table(text, after=None):
    """(labels in table order, medians keyed as report.plots expects).

    >>> t = ("| server | backend | conns | size | pipeline | rate | msgs/s | x | CPU µs/msg | x |"
    ...      " p99 µs | peak RSS MiB | runs ok | others' CPU % | notes |\\n|---|\\n"
    ...      "| mio | - | 100 | 64 | 1 | max | 61,557 | 0.95 | 5.77 | 0.97 | 1 | 2.1 | 3/3 | 46 |  |\\n"
    ...      "| python | select | 10000 | 64 | 1 | max | n/a | n/a | n/a | n/a | n/a | n/a | 0/1 | 59 | x |\\n"
    ...      "| python | asyncio | 1 | 64 | 8 | max | n/a | | n/a | | n/a | n/a | 0/0 | | not run |\\n")
    >>> labels, m = read_table(t)
    >>> labels
    ['mio', 'python (select)']
    >>> m[("mio", (100, 64, 1, 0))]
    {'msgs': 61557.0, 'cpu': 5.77, 'ok': 3, 'runs': 3}
    >>> m[("python (select)", (10000, 64, 1, 0))]
    {'msgs': None, 'cpu': None, 'ok': 0, 'runs': 1}
    """
    lines = text.splitlines()
    if after is not None:
        start = next((i for i, line in enumerate(lines) if after in line), None)
        if start is None:
            raise ValueError(f"no line contains {after!r}")
        lines = lines[start:]
    head = next((i for i, line in enumerate(lines) if line.startswith("| server | backend |")),
                None)
    if head is None:
        raise ValueError("no table whose header starts '| server | backend |'")
    labels, m = [], {}
    for line in lines[head + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name, backend, conns, size, pipeline, rate = cells[:6]
        ok, _, runs = cells[12].partition("/")
        if int(runs) == 0:
            continue  # not run at this point
        label = name if backend == "-" else f"{name} ({backend})"
        if label not in labels:
            labels.append(label)
        point = (int(conns), int(size), int(pipeline), 0 if rate == "max" else int(rate))
        m[(label, point)] = {"msgs": _num(cells[6]), "cpu": _num(cells[8]),
                             "ok": int(ok), "runs": int(runs)}
    return labels, m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", type=Path, help="Markdown file with an 'All points' table")
    ap.add_argument("--after", help="use the first table after the line containing this")
    ap.add_argument("--prefix", default="", help="prefix of the SVG file names")
    ap.add_argument("--out", type=Path, default=Path("."), help="directory for the SVGs")
    args = ap.parse_args()
    try:
        labels, m = read_table(args.summary.read_text(), args.after)
    except (OSError, ValueError) as e:
        sys.exit(f"replot: {args.summary}: {e}")
    shown = report.plots(m, labels, args.out, args.prefix)
    for line in shown:
        if line:
            print(line)
    return 0 if shown else 1


if __name__ == "__main__":
    sys.exit(main())
