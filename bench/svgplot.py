"""Line plots as hand-written SVG: log-scale x and y, one line per series, a legend.
No dependencies, so the harness needs nothing but Python's standard library."""
import math
from html import escape

COLORS = ["#d62728", "#ff7f0e", "#bcbd22", "#1f77b4", "#17becf", "#2ca02c",
          "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
W, H = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 80, 210, 40, 60


def _ticks(lo, hi):
    """1-2-5 ticks covering [lo, hi] on a log axis."""
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
    return out


def _fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _dash(name):
    """Interpreted servers dashed, so the two families read apart at a glance."""
    return ' stroke-dasharray="6,4"' if name.startswith("python") else ""


def line_plot(path, title, xlabel, ylabel, series):
    """Writes an SVG. `series` maps a name to [(x, y), ...]; points with y None are left out."""
    pts = [(x, y) for s in series.values() for x, y in s if y]
    if not pts:
        return False
    xlo, xhi = min(p[0] for p in pts), max(p[0] for p in pts)
    ylo, yhi = min(p[1] for p in pts), max(p[1] for p in pts)
    xlo, xhi = (xlo / 2, xhi * 2) if xlo == xhi else (xlo, xhi)
    ylo = 10 ** math.floor(math.log10(ylo))
    yhi = 10 ** math.ceil(math.log10(yhi)) if yhi > ylo else ylo * 10
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x):
        return LEFT + pw * (math.log10(x) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo))

    def sy(y):
        return TOP + ph * (1 - (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)))

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{LEFT + pw / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
         f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    for v in _ticks(ylo, yhi):
        y = sy(v)
        o.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    xs = sorted({p[0] for p in pts})
    for v in xs:
        x = sx(v)
        o.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#ddd"/>')
        o.append(f'<text x="{x:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{_fmt(v)}</text>')
    o.append(f'<text x="{LEFT + pw / 2}" y="{H - 15}" text-anchor="middle">{escape(xlabel)}</text>')
    o.append(f'<text transform="translate(20,{TOP + ph / 2}) rotate(-90)" '
             f'text-anchor="middle">{escape(ylabel)}</text>')
    for i, (name, s) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        good = [(sx(x), sy(y)) for x, y in s if y]
        if len(good) > 1:
            path_pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in good)
            o.append(f'<polyline points="{path_pts}" fill="none" stroke="{color}" '
                     f'stroke-width="2"{_dash(name)}/>')
        for x, y in good:
            o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
        ly = TOP + 10 + 20 * i
        o.append(f'<line x1="{LEFT + pw + 15}" x2="{LEFT + pw + 40}" y1="{ly}" y2="{ly}" '
                 f'stroke="{color}" stroke-width="2"{_dash(name)}/>')
        o.append(f'<text x="{LEFT + pw + 46}" y="{ly + 4}">{escape(name)}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")
    return True
