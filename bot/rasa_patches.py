"""Measured fixes to Rasa 3.6.21 internals, applied when Rasa loads this project's components.

`RemoteAction._validate_action_result` calls `jsonschema.validate(result, spec)` for every reply
of the action server; `jsonschema.validate` first checks the *schema* against its meta-schema,
which costs about 15 ms on this machine, against 0.3 ms for validating the reply with a validator
compiled once (`make bench`, `profile`: a quarter of the dialogue side of one message). The
replacement validates the same reply against the same schema and raises the same error.

`Event.resolve_by_type` (which class an event's `"event"` name is) walks every subclass of `Event`
for every event it deserialises: 5.7 % of a Rasa server's time under load (py-spy, `make cluster`,
8 conversations), since a tracker is rebuilt from all its events on every message. The replacement
remembers the answer per name (an unknown name is not remembered and raises as before).

`RemoteAction._action_call_format` sends the action server the whole tracker: every earlier user
message with its full parse data (intent ranking, paragraph search, per-question hits), about 2.4 kB
each, serialised by Rasa and parsed by the action server on every action call. The replacement keeps
of the messages before the latest one what actions read (`bot/contract.py`, EARLIER_MESSAGE_KEYS);
the latest message and every other event are sent as Rasa sends them.

`RemoteAction.run` is wrapped by bot/action_guard.py: bounded in time, and the referral is sent by
the Rasa server itself when the escalation action cannot run.

`FailSafeTrackerStore` (which Rasa wraps around every tracker store) answers a failed read with
"no conversation" and keeps a failed save in memory, where it is lost with the process (and on
another replica never seen): the visitor gets a reply whose turn is not stored. For our store's
`TrackerStoreUnavailable` (the database cannot be reached) its error handlers raise instead, so
the message fails as a whole and the REST channel answers 503 (bot/channels/rest.py). Any other
error is handled as Rasa does.

Rasa's structured logs carry visitor text (a failed RabbitMQ publish logs the whole user event at
ERROR): bot/privacy/log_privacy.py withholds it.
"""
from __future__ import annotations

from functools import lru_cache, wraps
from typing import Any, Callable, Dict, Optional, Text, Type

import jsonschema
from rasa.core.actions.action import RemoteAction
from rasa.core.tracker_store import FailSafeTrackerStore
from rasa.shared.core.events import Event
from rasa.shared.constants import DOCS_BASE_URL

from bot.action_guard import guarded
from bot.contract import earlier_message_parse_data
from bot.privacy import log_privacy
from bot.stores.tracker_store import TrackerStoreUnavailable


@lru_cache(maxsize=1)
def action_response_validator() -> jsonschema.protocols.Validator:
    spec = RemoteAction.action_response_format_spec()
    validator_class = jsonschema.validators.validator_for(spec)
    validator_class.check_schema(spec)  # once, instead of once per action call
    return validator_class(spec)


def validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
    """`RemoteAction._validate_action_result` with a compiled validator (same result, same error)."""
    try:
        action_response_validator().validate(result)
        return True
    except jsonschema.ValidationError as error:
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error


_original_action_call_format = RemoteAction._action_call_format


def action_call_format(self: RemoteAction, tracker: Any, domain: Any) -> Dict[Text, Any]:
    """`RemoteAction._action_call_format` with the user messages before the latest one trimmed to
    what actions read of them."""
    body = _original_action_call_format(self, tracker, domain)
    events = body["tracker"]["events"]
    user_indices = [index for index, event in enumerate(events) if event.get("event") == "user"]
    for index in user_indices[:-1]:
        events[index] = {**events[index], "parse_data": earlier_message_parse_data(events[index].get("parse_data") or {})}
    return body


_original_resolve_by_type = Event.resolve_by_type


@lru_cache(maxsize=None)
def resolve_by_type(type_name: Text, default: Optional[Type[Event]] = None) -> Optional[Type[Event]]:
    """`Event.resolve_by_type`, remembered per (name, default)."""
    return _original_resolve_by_type(type_name, default)


ErrorHandler = Callable[[FailSafeTrackerStore, Exception], None]


def unavailable_raises(handler: ErrorHandler) -> ErrorHandler:
    """A `FailSafeTrackerStore` error handler that raises `TrackerStoreUnavailable` (it runs inside
    the `except` of the failed call: raising there fails the call) and handles the rest as before."""

    @wraps(handler)
    def on_error(self: FailSafeTrackerStore, error: Exception) -> None:
        if isinstance(error, TrackerStoreUnavailable):
            raise error
        handler(self, error)

    return on_error


_original_run = RemoteAction.run
_original_on_error = FailSafeTrackerStore.on_tracker_store_error
_original_on_retrieve_error = FailSafeTrackerStore.on_tracker_store_retrieve_error


def apply() -> None:
    RemoteAction._validate_action_result = validate_action_result
    RemoteAction._action_call_format = action_call_format
    Event.resolve_by_type = staticmethod(resolve_by_type)
    RemoteAction.run = guarded(_original_run)
    FailSafeTrackerStore.on_tracker_store_error = unavailable_raises(_original_on_error)
    FailSafeTrackerStore.on_tracker_store_retrieve_error = unavailable_raises(_original_on_retrieve_error)
    log_privacy.install()
