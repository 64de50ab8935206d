"""Percentiles and latency summaries (pure; numpy's default interpolation)."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(milliseconds: Sequence[float]) -> Dict[str, Optional[float]]:
    """p50, p95, mean, max (ms, one decimal) and the count; None values when there are none."""
    if not milliseconds:
        return {"p50": None, "p95": None, "mean": None, "max": None, "n": 0}
    return {
        "p50": round(percentile(milliseconds, 50), 1),
        "p95": round(percentile(milliseconds, 95), 1),
        "mean": round(sum(milliseconds) / len(milliseconds), 1),
        "max": round(max(milliseconds), 1),
        "n": len(milliseconds),
    }
