"""Reads echo-bench's histograms (HdrHistogram V2, deflate-compressed, base64) with the
standard library, to check ``echo-bench merge`` against the union of the histograms.

>>> counts = {1: 98, 5000: 1, 100_000: 1}
>>> value_at_quantile(counts, 0.99)
5003
>>> value_at_quantile(counts, 0.5)
1
"""
import base64
import math
import struct
import zlib

COMPRESSED_COOKIE = 0x1C849314
V2_COOKIE = 0x1C849313


def decode(text):
    """({bucket's lowest value: count}, layout) from a base64 V2 compressed histogram."""
    raw = base64.b64decode(text)
    cookie, length = struct.unpack(">iI", raw[:8])
    if cookie != COMPRESSED_COOKIE:
        raise ValueError(f"not a V2 compressed histogram (cookie {cookie:#x})")
    body = zlib.decompress(raw[8:8 + length])
    cookie, payload_len, offset, digits, lowest, _highest, _ratio = struct.unpack(">iiiiqqd", body[:40])
    if cookie != V2_COOKIE or offset != 0:
        raise ValueError(f"unexpected histogram header (cookie {cookie:#x}, offset {offset})")
    layout = Layout(digits, lowest)
    counts = {}
    index = 0
    for n in _varints(body[40:40 + payload_len]):
        if n < 0:
            index += -n  # a run of empty buckets
            continue
        if n:
            counts[layout.value_for(index)] = n
        index += 1
    return counts, layout


def _varints(data):
    """ZigZag LEB128 as HdrHistogram writes it: at most 9 bytes, the ninth taken whole."""
    i = 0
    while i < len(data):
        value = shift = 0
        for k in range(9):
            b = data[i]
            i += 1
            if k == 8:
                value |= b << shift
                break
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        yield (value >> 1) ^ -(value & 1)


class Layout:
    """Bucket layout of a histogram with ``digits`` significant digits from ``lowest``."""

    def __init__(self, digits, lowest):
        sub_bucket_count = 2 ** math.ceil(math.log2(2 * 10 ** digits))
        self.half_magnitude = int(math.log2(sub_bucket_count)) - 1
        self.half_count = sub_bucket_count // 2
        self.unit = int(math.floor(math.log2(lowest)))
        self.values = {}

    def value_for(self, index):
        bucket = (index >> self.half_magnitude) - 1
        sub = (index & (self.half_count - 1)) + self.half_count
        if bucket < 0:
            sub -= self.half_count
            bucket = 0
        value = sub << (bucket + self.unit)
        self.values[value] = index
        return value

    def highest_equivalent(self, value):
        return self.value_for(self.values[value] + 1) - 1


def union(histograms):
    """Adds decoded histograms (same layout): {value: count}."""
    total = {}
    for counts in histograms:
        for v, n in counts.items():
            total[v] = total.get(v, 0) + n
    return total


def value_at_quantile(counts, q, layout=None):
    """The value at quantile ``q`` as HdrHistogram gives it: the highest value equivalent to
    the bucket where the running count reaches ceil(q * total)."""
    total = sum(counts.values())
    if not total:
        return 0
    want = max(1, math.ceil(q * total))
    seen = 0
    layout = layout or Layout(3, 1)
    for v in sorted(counts):
        seen += counts[v]
        if seen >= want:
            if v not in layout.values:
                _index_of(layout, v)
            return layout.highest_equivalent(v)
    return 0


def _index_of(layout, value):
    """Registers ``value`` (a bucket's lowest value) in ``layout`` by scanning the indices."""
    index = 0
    while layout.value_for(index) < value:
        index += 1
