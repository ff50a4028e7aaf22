"""The Pareto front's one sweep (O(n log n)) marks every point as the pairwise rule does: the
same front, and each dominated point the same dominating point (most tokens/s per card, then
per sequence, the first such in the list), ties, repeated points, NaN and inf included."""

from __future__ import annotations

import math
import random

import pytest

from aggregate.answers.pareto import Point, mark_front


def naive(points: list[Point]) -> list[Point | None]:
    """The rule as written: q dominates p when it is at least as good on both axes and
    better on one; p's mark is the dominating q with the most (y, x), the first such."""

    def dominates(a: Point, b: Point) -> bool:
        return a.x >= b.x and a.y >= b.y and (a.x > b.x or a.y > b.y)

    out = []
    for p in points:
        better = [q for q in points if dominates(q, p)]
        out.append(max(better, key=lambda q: (q.y, q.x)) if better else None)
    return out


def points_of(rng: random.Random, n: int, grid: int) -> list[Point]:
    specials = [math.nan, math.inf, -0.0, 0.0]
    pts = []
    for i in range(n):
        x = float(rng.randrange(grid)) if rng.random() > 0.05 else rng.choice(specials)
        y = float(rng.randrange(grid)) if rng.random() > 0.05 else rng.choice(specials)
        pts.append(Point({"cell_id": str(i)}, x, y, f"p{i}"))
    return pts


@pytest.mark.parametrize("seed", range(40))
def test_the_sweep_marks_what_the_pairwise_rule_marks(seed):
    rng = random.Random(seed)
    pts = points_of(rng, rng.randrange(0, 60), rng.choice([3, 8, 1000]))
    if seed % 2:
        pts.sort(key=lambda p: (p.x, -p.y))  # as pareto_points hands them over
    want = naive(pts)
    front = mark_front(pts)
    assert all(p.dominated_by is w for p, w in zip(pts, want, strict=True))  # the very same points
    expected = sorted(
        (p for p, w in zip(pts, want, strict=True) if w is None), key=lambda p: (p.x, -p.y)
    )
    assert [id(p) for p in front] == [id(p) for p in expected]


def test_marks_are_reset_on_a_second_call():
    a, b = Point({}, 1.0, 1.0), Point({}, 2.0, 2.0)
    mark_front([a, b])
    assert a.dominated_by is b
    mark_front([a])
    assert a.dominated_by is None
