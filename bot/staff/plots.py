"""The staff page's plots, drawn on the server as SVG with matplotlib (no pyplot: no global state, safe
in a thread pool; the SVG embeds its glyphs as paths, so the browser loads nothing else).

Imports nothing of Rasa and nothing of bot/web. The Dutch labels are in bot/replies.yml.
"""
from __future__ import annotations

import io
from typing import Callable, Dict, List

import matplotlib

matplotlib.use("Agg")  # never a window, whatever MPLBACKEND says

from babel.dates import format_date  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bot.replies import LOCALE, reply  # noqa: E402
from bot.staff.insight import Insight  # noqa: E402
from bot.staff.report import ANSWERED, CLARIFIED, ESCALATED, FALLBACK, HANDED_OFF, OTHER, PRODUCT_LINE  # noqa: E402

WIDTH_IN, HEIGHT_IN = 7.0, 3.2
COLOURS = ("#1f5f8b", "#e07b39", "#4c9a2a", "#8e44ad", "#c0392b", "#7f8c8d", "#16a085")
SHOWN_OUTCOMES = (ANSWERED, CLARIFIED, FALLBACK, ESCALATED, HANDED_OFF, PRODUCT_LINE, OTHER)
SVG_METADATA = {"Date": None, "Creator": None}  # the same figures give the same bytes


def _figure() -> Figure:
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    return figure


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=SVG_METADATA)
    return buffer.getvalue()


def _day_labels(insight: Insight) -> List[str]:
    return [format_date(day.day, format="d MMM", locale=LOCALE) for day in insight.days]


def daily_plot(insight: Insight) -> str:
    """Conversations and visitor messages per day (bars side by side)."""
    figure = _figure()
    axes = figure.add_subplot()
    positions = list(range(len(insight.days)))
    width = 0.4
    axes.bar([p - width / 2 for p in positions], [d.conversations for d in insight.days], width,
             label=reply("staff_plot_conversations"), color=COLOURS[0])
    axes.bar([p + width / 2 for p in positions], [d.messages for d in insight.days], width,
             label=reply("staff_plot_messages"), color=COLOURS[1])
    axes.set_xticks(positions, _day_labels(insight), rotation=45 if len(positions) > 8 else 0)
    axes.set_title(reply("staff_plot_daily_title"))
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.legend(loc="upper left")
    return _svg(figure)


def outcomes_plot(insight: Insight) -> str:
    """The share of visitor messages per outcome (horizontal bars, in %)."""
    figure = _figure()
    axes = figure.add_subplot()
    labels = [reply(f"staff_outcome_{outcome}") for outcome in SHOWN_OUTCOMES]
    shares = [insight.report.share(outcome) for outcome in SHOWN_OUTCOMES]
    axes.barh(labels, shares, color=[COLOURS[i % len(COLOURS)] for i in range(len(labels))])
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("%")
    axes.set_title(reply("staff_plot_outcomes_title"))
    return _svg(figure)


def response_plot(insight: Insight) -> str:
    """Response time p50 and p95 per day (ms)."""
    figure = _figure()
    axes = figure.add_subplot()
    positions = list(range(len(insight.days)))
    axes.plot(positions, [d.p50_ms for d in insight.days], marker="o", label="p50", color=COLOURS[0])
    axes.plot(positions, [d.p95_ms for d in insight.days], marker="s", label="p95", color=COLOURS[4])
    axes.set_xticks(positions, _day_labels(insight), rotation=45 if len(positions) > 8 else 0)
    axes.set_ylim(bottom=0)
    axes.set_ylabel("ms")
    axes.set_title(reply("staff_plot_response_title"))
    axes.legend(loc="upper left")
    return _svg(figure)


PLOTS: Dict[str, Callable[[Insight], str]] = {
    "daily": daily_plot,
    "outcomes": outcomes_plot,
    "response": response_plot,
}
