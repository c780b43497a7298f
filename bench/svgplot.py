"""Line plots as hand-written SVG: log-scale x and y, one line per series, a legend.
No dependencies, so the harness needs nothing but Python's standard library.

Each series has its own colour (Paul Tol's colour-blind-safe "muted" scheme, and three more
from his "bright" one) and its own marker shape, twelve of each, so overlapping lines stay apart
in grey-scale too; past twelve series the pairs still differ (see `_style`). Interpreted servers
(names starting with "python") are dashed. The legend is as wide as its longest label: the
picture grows to fit it, so no label is cut. A point is (x, y) or (x, y, failed): a failed point (some
of its runs failed) gets a hollow marker, and a point with no figure at all (y None, failed)
an × on the x axis; a note under the plot says so whenever either appears.
"""
import math
from html import escape

# Paul Tol's "muted" scheme (nine colours told apart with any colour vision, and on white),
# then black and two of his "bright" scheme that none of the nine is near.
COLORS = ["#CC6677", "#332288", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933",
          "#AA4499", "#DDCC77", "#000000", "#EE7733", "#0077BB"]
SHAPES = ["circle", "square", "triangle", "diamond", "triangle-down", "pentagon",
          "triangle-left", "triangle-right", "star", "hexagon", "plus", "cross"]
W, H = 760, 500  # the least size; a long legend widens it, many series lengthen it
LEFT, TOP, BOTTOM = 80, 48, 98
PLOT_W = 470  # the plot area's width; the legend starts right of it
LEGEND_ROW = 20
CHAR_W = 7.5  # an upper bound on a 12 px sans-serif character's width (wide: "m", "w" ~ 10)


def _style(i):
    """Series i's (colour, shape): no two of the first 144 series share both.

    >>> len({_style(i) for i in range(144)})
    144
    >>> _style(0) != _style(9) and _style(1) != _style(10)
    True
    >>> len({_style(i)[0] for i in range(12)}), len({_style(i)[1] for i in range(12)})
    (12, 12)
    """
    n = len(COLORS)
    return COLORS[i % n], SHAPES[(i + i // n) % len(SHAPES)]


def _text_width(text):
    """Pixels a label may take at 12 px: an overestimate, so the legend never cuts it.

    >>> _text_width("echo-server (epoll, zero-copy off)") > 200
    True
    """
    return CHAR_W * len(text) + (CHAR_W if any(c in "mwMW" for c in text) else 0)


def _size(names):
    """The picture's (width, height) for these legend labels: the legend column is as wide
    as the longest label and the picture as tall as the legend.

    >>> _size(["mio"])
    (760, 500)
    >>> w, h = _size(["echo-server (epoll, zero-copy off)"])
    >>> w >= LEFT + PLOT_W + 50 + _text_width("echo-server (epoll, zero-copy off)")
    True
    >>> _size([f"s{i}" for i in range(30)])[1] > 500
    True
    """
    widest = max((_text_width(n) for n in names), default=0)
    w = max(W, math.ceil(LEFT + PLOT_W + 50 + widest + 10))
    h = max(H, TOP + 10 + LEGEND_ROW * len(names) + 10)
    return w, h


def _nice_ticks():
    """1-2-5 values from 1e-3 to 1e9, ascending."""
    return [m * 10 ** e for e in range(-3, 10) for m in (1, 2, 5)]


def _bounds(lo, hi):
    """The 1-2-5 values just around [lo, hi]: the axis starts near the data, not at a decade.

    >>> _bounds(5.41, 40.05)
    (5, 50)
    >>> _bounds(9464, 89121)
    (5000, 100000)
    >>> _bounds(20000, 20000)
    (10000, 50000)
    """
    ticks = _nice_ticks()
    below = [t for t in ticks if t <= lo]
    above = [t for t in ticks if t >= hi]
    b, a = (below[-1] if below else lo), (above[0] if above else hi)
    if a <= b:  # one value: widen to the neighbouring 1-2-5 steps
        b = max([t for t in ticks if t < lo] or [lo / 2])
        a = min([t for t in ticks if t > hi] or [hi * 2])
    return b, a


def _ticks(lo, hi):
    """Ticks on a log axis from lo to hi: 1-2-5, or 1-9 when that gives fewer than four.

    >>> _ticks(5, 50)
    [5, 10, 20, 50]
    >>> _ticks(10, 50)
    [10, 20, 30, 40, 50]
    >>> _ticks(1, 1000)
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    """
    def between(mults):
        out = []
        for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
            for m in mults:
                v = m * 10 ** e
                if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                    out.append(round(v, 9) if v < 1 else int(round(v)))
        return out
    ticks = between((1, 2, 5))
    return ticks if len(ticks) >= 4 else between(range(1, 10))


def _fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _dash(name):
    """Interpreted servers dashed, so the two families read apart at a glance."""
    return ' stroke-dasharray="6,4"' if name.startswith("python") else ""


def _marker(shape, x, y, color, hollow, r=4.5):
    """One marker: filled with the series colour, or white inside when hollow."""
    fill = "white" if hollow else color
    style = f'fill="{fill}" stroke="{color}" stroke-width="{2 if hollow else 1}"'
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" {style}/>'
    if shape == "square":
        s = r * 0.9
        return f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}" {style}/>'
    angles = {
        "triangle": [90, 210, 330], "triangle-down": [270, 30, 150],
        "triangle-left": [180, 300, 60], "triangle-right": [0, 120, 240],
        "diamond": [90, 180, 270, 0], "pentagon": [90, 162, 234, 306, 18],
        "hexagon": [0, 60, 120, 180, 240, 300],
    }
    if shape in ("plus", "cross"):  # a thick plus sign, turned 45 degrees for the cross
        a, b = r * 1.2, r * 0.4
        arm = [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a), (-b, -b), (-a, -b),
               (-a, b), (-b, b), (-b, a)]
        turn = math.radians(45 if shape == "cross" else 0)
        pts = [(x + px * math.cos(turn) - py * math.sin(turn),
                y - (px * math.sin(turn) + py * math.cos(turn))) for px, py in arm]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        return f'<polygon points="{path}" {style}/>'

    if shape == "star":
        pts = [(x + (r * 1.3 if i % 2 == 0 else r * 0.55) * math.cos(math.radians(90 + 36 * i)),
                y - (r * 1.3 if i % 2 == 0 else r * 0.55) * math.sin(math.radians(90 + 36 * i)))
               for i in range(10)]
    else:
        k = 1.25 if shape.startswith("triangle") else 1.15
        pts = [(x + r * k * math.cos(math.radians(a)), y - r * k * math.sin(math.radians(a)))
               for a in angles[shape]]
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
    return f'<polygon points="{path}" {style}/>'


def _cross(x, y, color, r=5):
    return (f'<path d="M{x - r:.1f},{y - r:.1f} L{x + r:.1f},{y + r:.1f} M{x - r:.1f},{y + r:.1f} '
            f'L{x + r:.1f},{y - r:.1f}" stroke="{color}" stroke-width="2.5"/>')


def _points(s):
    """A series' points as (x, y, failed)."""
    return [(p[0], p[1], bool(p[2]) if len(p) > 2 else False) for p in s]


def line_plot(path, title, xlabel, ylabel, series, subtitle=""):
    """Writes an SVG; returns False (and writes nothing) when no point has a figure.
    `series` maps a name to [(x, y) or (x, y, failed), ...]; `subtitle` goes under the title
    (say which way is better)."""
    series = {name: _points(s) for name, s in series.items()}
    pts = [(x, y) for s in series.values() for x, y, _ in s if y]
    if not pts:
        return False
    xs = sorted({p[0] for s in series.values() for p in s})
    xlo, xhi = xs[0], xs[-1]
    xlo, xhi = (xlo / 2, xhi * 2) if xlo == xhi else (xlo, xhi)
    ylo, yhi = _bounds(min(p[1] for p in pts), max(p[1] for p in pts))
    width, height = _size(list(series))
    pw, ph = PLOT_W, H - TOP - BOTTOM

    def sx(x):
        return LEFT + pw * (math.log10(x) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo))

    def sy(y):
        return TOP + ph * (1 - (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)))

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{LEFT + pw / 2}" y="20" text-anchor="middle" font-size="15">{escape(title)}</text>']
    if subtitle:
        o.append(f'<text x="{LEFT + pw / 2}" y="38" text-anchor="middle" fill="#444">'
                 f'{escape(subtitle)}</text>')
    o.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    for v in _ticks(ylo, yhi):
        y = sy(v)
        o.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    for v in xs:
        x = sx(v)
        o.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#ddd"/>')
        o.append(f'<text x="{x:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{_fmt(v)}</text>')
    o.append(f'<text x="{LEFT + pw / 2}" y="{TOP + ph + 38}" text-anchor="middle">{escape(xlabel)}</text>')
    o.append(f'<text transform="translate(20,{TOP + ph / 2}) rotate(-90)" '
             f'text-anchor="middle">{escape(ylabel)}</text>')
    hollow_seen = cross_seen = False
    for i, (name, s) in enumerate(series.items()):
        color, shape = _style(i)
        good = [(sx(x), sy(y), failed) for x, y, failed in s if y]
        if len(good) > 1:
            path_pts = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in good)
            o.append(f'<polyline points="{path_pts}" fill="none" stroke="{color}" '
                     f'stroke-width="2"{_dash(name)}/>')
        for x, y, failed in good:
            o.append(_marker(shape, x, y, color, failed))
            hollow_seen |= failed
        for x, y, failed in s:
            if not y and failed:
                o.append(_cross(sx(x), TOP + ph, color))
                cross_seen = True
        ly = TOP + 10 + LEGEND_ROW * i
        o.append(f'<line x1="{LEFT + pw + 12}" x2="{LEFT + pw + 44}" y1="{ly}" y2="{ly}" '
                 f'stroke="{color}" stroke-width="2"{_dash(name)}/>')
        o.append(_marker(shape, LEFT + pw + 28, ly, color, False))
        o.append(f'<text x="{LEFT + pw + 50}" y="{ly + 4}">{escape(name)}</text>')
    notes = []
    if hollow_seen:
        notes.append("Hollow marker: some runs at that point failed (see the table's notes).")
    if cross_seen:
        notes.append("× on the x axis: no run at that point gave a figure.")
    for i, note in enumerate(notes):
        o.append(f'<text x="{LEFT}" y="{TOP + ph + BOTTOM - 10 - 16 * (len(notes) - 1 - i)}" '
                 f'fill="#444">{escape(note)}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")
    return True
