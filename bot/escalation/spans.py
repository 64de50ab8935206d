"""Token spans: overlap, and which tokens a set of spans covers (scope.py, whose.py)."""
from __future__ import annotations

import itertools
from typing import Iterable

from bot.escalation.matcher import Span


def overlaps(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class Coverage:
    """Which tokens a set of spans covers; `hits(span)` in O(1) (long messages stay linear)."""

    def __init__(self, n: int, spans: Iterable[Span]) -> None:
        marks = [0] * (n + 1)
        for start, end in spans:
            if end > start:
                marks[start] += 1
                marks[min(end, n)] -= 1
        covered = list(itertools.accumulate(marks[:n]))
        self._prefix = list(itertools.accumulate([0] + [1 if c > 0 else 0 for c in covered]))
        self._n = n

    def hits(self, span: Span) -> bool:
        start, end = max(span[0], 0), min(span[1], self._n)
        return end > start and self._prefix[end] - self._prefix[start] > 0

    def covers(self, span: Span) -> bool:
        """Whether every token of `span` is covered."""
        start, end = max(span[0], 0), min(span[1], self._n)
        return end > start and self._prefix[end] - self._prefix[start] == end - start

    def count(self, tokens: Iterable[int]) -> int:
        """How many of `tokens` are covered."""
        return sum(1 for i in tokens if 0 <= i < self._n and self._prefix[i + 1] > self._prefix[i])
