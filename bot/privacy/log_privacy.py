"""No visitor text in the Rasa servers' structured logs.

Rasa 3.6 logs events through structlog with the message inside (`rasa_event`, `text`, ...): at
ERROR when RabbitMQ refuses an event ("pika.events.publish.failed" carries the whole user event),
at DEBUG for most of the dialogue. Its own anonymizer (`rasa.utils.log_utils._anonymizer`) only acts
when Rasa Pro provides a pipeline. `withhold_visitor_text` is a structlog processor that replaces
the values of those fields by what an operator needs: which events, how long a text was.

    install()   # once the Rasa command line has configured structlog (bot/rasa_patches.py)
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import structlog

# Rasa 3.6's structlog fields that may carry what a visitor wrote (rasa/utils/log_utils.py,
# `_anonymizer`'s list).
VISITOR_TEXT_FIELDS = frozenset({
    "text", "response_text", "user_text", "slot_values", "parse_data_text", "parse_data_entities",
    "prediction_events", "tracker_latest_message", "prefilled_slots", "message", "response",
    "slot_candidates", "rasa_event", "rasa_events", "tracker_states", "current_states", "old_states",
    "successes", "current_entity", "next_entity", "states", "entity", "token_text", "user_message",
    "json_message",
})


def withheld(value: Any) -> Any:
    """What may be logged of a field's value: an event's name and time, a text's length."""
    if isinstance(value, Mapping):
        return {key: value[key] for key in ("event", "timestamp") if key in value} or "<withheld>"
    if isinstance(value, (list, tuple)):
        return [withheld(item) for item in value]
    if isinstance(value, str):
        return f"<{len(value)} characters withheld>"
    return "<withheld>"


def withhold_visitor_text(_: Any, __: str, event_dict: Dict[str, Any]) -> Dict[str, Any]:
    """structlog processor: the fields of VISITOR_TEXT_FIELDS reduced by `withheld`."""
    for key in VISITOR_TEXT_FIELDS.intersection(event_dict):
        event_dict[key] = withheld(event_dict[key])
    return event_dict


def install() -> None:
    """Run `withhold_visitor_text` first in structlog's current processor chain. The list is changed
    in place, so loggers that are already bound (Rasa caches them on first use) are covered too."""
    processors = structlog.get_config()["processors"]
    if withhold_visitor_text not in processors:
        processors.insert(0, withhold_visitor_text)
