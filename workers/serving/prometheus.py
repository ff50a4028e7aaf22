"""A small reader of the Prometheus text format (what a server's ``/metrics`` answers).

Enough for a server's own books: each sample's value summed over its labels but ``le`` (a
histogram's bucket bound), so several engines of one server add up; ``*_created`` series
(creation timestamps) are left out. Histogram arithmetic: the difference of two scrapes, its
mean (sum / count) and a percentile interpolated linearly inside its bucket, as
PromQL's ``histogram_quantile``.
"""

from __future__ import annotations

import math
import re
import urllib.request

Samples = dict[tuple[str, str | None], float]  # (name, le or None) -> value

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LE = re.compile(r'(?:^|,)\s*le="([^"]*)"')


def parse(text: str, only: tuple[str, ...] | None = None) -> Samples:
    """The samples of a scrape (comments, ``*_created`` and unreadable lines skipped; with
    ``only``, just the lines that start with one of those names: cheap enough to sample)."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or (only is not None and not line.startswith(only)):
            continue
        m = _LINE.match(line)
        if not m or m.group(1).endswith("_created"):
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        le = _LE.search(m.group(2) or "")
        key = (m.group(1), le.group(1) if le else None)
        out[key] = out.get(key, 0.0) + value
    return out


def scrape(url: str, timeout_s: float = 5.0, only: tuple[str, ...] | None = None) -> Samples | None:
    """The samples at ``url`` (see ``parse``); None when it does not answer with metrics."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (the server's)
            if resp.status != 200:
                return None
            return parse(resp.read().decode("utf-8", errors="replace"), only)
    except (OSError, ValueError):
        return None


def value(s: Samples, name: str) -> float | None:
    return s.get((name, None))


def buckets(s: Samples, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of histogram ``name``, by bound."""
    out = [(float(le), v) for (n, le), v in s.items() if n == name + "_bucket" and le]
    return sorted(out)


def delta_buckets(before: Samples, after: Samples, name: str) -> list[tuple[float, float]]:
    old = dict(buckets(before, name))
    return [(le, v - old.get(le, 0.0)) for le, v in buckets(after, name)]


def quantile(q: float, cum: list[tuple[float, float]]) -> float | None:
    """The q-quantile (0..1) of a histogram's cumulative buckets, linear inside a bucket (the
    first bucket starts at 0; one that falls in +Inf gives the highest finite bound)."""
    if not cum or cum[-1][1] <= 0:
        return None
    rank = q * cum[-1][1]
    lo_bound, lo_count = 0.0, 0.0
    for bound, count in cum:
        if count >= rank:
            if math.isinf(bound):
                return lo_bound
            if count == lo_count:
                return bound
            return lo_bound + (bound - lo_bound) * (rank - lo_count) / (count - lo_count)
        lo_bound, lo_count = bound, count
    return lo_bound


def histogram_delta(before: Samples, after: Samples, name: str) -> dict[str, float | None]:
    """Count, mean, p50 and p99 of what histogram ``name`` observed between two scrapes."""
    count = (value(after, name + "_count") or 0.0) - (value(before, name + "_count") or 0.0)
    total = (value(after, name + "_sum") or 0.0) - (value(before, name + "_sum") or 0.0)
    cum = delta_buckets(before, after, name)
    return {
        "count": count,
        "mean": total / count if count > 0 else None,
        "p50": quantile(0.50, cum),
        "p99": quantile(0.99, cum),
    }
