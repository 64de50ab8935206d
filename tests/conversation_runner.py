"""Conversation tests: what the bot SAYS, turn by turn (tests/conversations/*.yml).

`rasa test` stories check intents and action names; these files check the replies themselves,
through the running stack: each user turn is sent through a channel (REST, or the Matrix staff
room), and the bot's messages of that turn are read back from the conversation's tracker, with the
metadata the actions attach to them (bot/contract.py: CITATION, ESCALATION, PRODUCT).

File format (every key is checked; an unknown key is an error naming the file and conversation):

    conversations:
      - name: urgent sign preempts an exercise question     # unique in the file
        channel: rest            # rest (default) | matrix: the user is a staff member in the staff room
        staff_room: false        # true: needs the Matrix staff room configured (hand-off texts)
        steps:
          - user: "Welke oefeningen helpen? Ik kan sinds vanmorgen niet meer plassen."
          - bot:                 # expectations on this turn's messages, all optional:
              escalation: urgent_now    # level of the referral in this turn; none: no referral
              cites: null               # item id (or list: one of them; null in it: or none) the
                                        # turn cites; null: no article answer
              product: null             # product id (or list: exactly these) with a line; null: none
              contains: [huisarts, huisartsenpost]   # substrings of the turn's texts (any case)
              not_contains: ["Bron:", "€"]
              buttons: [/faq_best_exercises]          # payloads or titles offered; []: no buttons
              texts: {min: 1, max: 3}                 # number of messages (or an exact number)
              introduction: ["digitale assistent"]    # the session start's introduction came before
                                                      # this message and contains these; null: none
          - click: "Wat zijn de beste oefeningen voor rugpijn?"   # a button of the previous turn
                                                                  # (title or payload): sends its payload

A turn's reply is the bot events the tracker gained after the turn's user event: every expectation
but `introduction` is about them. The introduction is not part of the reply: Rasa's session start
sends it before it logs the first user event; `introduction` checks those messages. An expected
referral must also be the first message of the reply, before anything else.
"""
from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import quote

import requests
import yaml

from bot import paths
from bot.channels.matrix import PATH_SAFE
from bot.contract import CITATION, ESCALATION, PRODUCT
from bot.knowledge_base import load_article
from bot.levels import LEVELS, NONE, max_level

CONVERSATIONS_DIR = paths.TESTS_DIR / "conversations"
CONVERSATIONS_VARIABLE = "CONVERSATIONS"  # files or folders (comma- or space-separated) to run instead
CHANNELS = ("rest", "matrix")
CONVERSATION_KEYS = {"name", "channel", "staff_room", "steps", "known_failure"}
STEP_KINDS = ("user", "click", "bot")
EXPECTATION_KEYS = ("escalation", "cites", "product", "contains", "not_contains", "buttons", "texts", "introduction")
TURN_TIMEOUT = 60.0  # seconds for one turn over Matrix (the homeserver pushes the message to Rasa)


class ConversationFormatError(ValueError):
    """A conversation file that does not follow the format; the message names file and conversation."""


# -- the format ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """A user message (`user`) or a button click (`click`: title or payload), and what the bot must say."""

    kind: str  # "user" | "click"
    text: str
    expect: Optional[Dict[str, Any]] = None  # normalised expectations; None: none given


@dataclass(frozen=True)
class ConversationCase:
    file: Path
    name: str
    turns: Tuple[Turn, ...]
    channel: str = "rest"
    staff_room: bool = False
    known_failure: Optional[str] = None  # why the bot fails it today (strict xfail: a fix turns it red)

    @property
    def id(self) -> str:
        return f"{self.file.stem}/{self.name}"

    @property
    def needs_matrix(self) -> bool:
        return self.channel == "matrix" or self.staff_room


@dataclass(frozen=True)
class Known:
    """What expectations may name: the article's item ids and product ids."""

    items: frozenset
    products: frozenset

    @classmethod
    def from_article(cls, article: Path = paths.ARTICLE) -> "Known":
        kb = load_article(article)
        return cls(frozenset(kb.item_ids), frozenset(p.id for p in kb.products))


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(paths.ROOT))
    except ValueError:
        return str(path)


def _strings(value: Any, where: str, key: str) -> Tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ConversationFormatError(f"{where}: `{key}` must be a non-empty string or a list of them, got {value!r}")
    return tuple(values)


def _ids(value: Any, known: Optional[frozenset], where: str, key: str, what: str) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    ids = _strings(value, where, key)
    if not ids:
        raise ConversationFormatError(f"{where}: `{key}: []` names nothing; use null for none")
    unknown = [i for i in ids if known is not None and i not in known]
    if unknown:
        raise ConversationFormatError(f"{where}: `{key}` names unknown {what} {unknown}; known: {sorted(known or ())}")
    return ids


def _texts_bounds(value: Any, where: str) -> Tuple[int, Optional[int]]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, value
    if isinstance(value, dict) and value and set(value) <= {"min", "max"}:
        low, high = value.get("min", 0), value.get("max")
        if isinstance(low, int) and low >= 0 and (high is None or (isinstance(high, int) and high >= low)):
            return low, high
    raise ConversationFormatError(f"{where}: `texts` must be a count or {{min: n, max: m}}, got {value!r}")


def _expectation(raw: Any, known: Known, where: str) -> Dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConversationFormatError(f"{where}: `bot` must be a mapping of expectations, got {raw!r}")
    unknown = sorted(set(raw) - set(EXPECTATION_KEYS))
    if unknown:
        raise ConversationFormatError(f"{where}: unknown key(s) {unknown} in `bot`; allowed: {list(EXPECTATION_KEYS)}")
    expect: Dict[str, Any] = {}
    if "escalation" in raw:
        level = NONE if raw["escalation"] is None else raw["escalation"]
        if level not in LEVELS:
            raise ConversationFormatError(f"{where}: `escalation` must be one of {list(LEVELS)}, got {raw['escalation']!r}")
        expect["escalation"] = level
    if "cites" in raw:
        cites = raw["cites"]
        if isinstance(cites, list) and None in cites and len(cites) > 1:  # "one of these, or nothing"
            named = _ids([c for c in cites if c is not None], known.items, where, "cites", "article item(s)")
            expect["cites"] = (*named, None)
        else:
            expect["cites"] = _ids(cites, known.items, where, "cites", "article item(s)")
    if "product" in raw:
        expect["product"] = _ids(raw["product"], known.products, where, "product", "product(s)")
    for key in ("contains", "not_contains"):
        if key in raw:
            expect[key] = _strings(raw[key], where, key)
    if "buttons" in raw:
        buttons = raw["buttons"]
        expect["buttons"] = () if buttons == [] else _strings(buttons, where, "buttons")
    if "texts" in raw:
        expect["texts"] = _texts_bounds(raw["texts"], where)
    if "introduction" in raw:
        value = raw["introduction"]
        expect["introduction"] = None if value is None else _strings(value, where, "introduction")
    return expect


def _conversation(raw: Any, index: int, file: Path, known: Known, names: set) -> ConversationCase:
    shown = _display(file)
    if not isinstance(raw, dict):
        raise ConversationFormatError(f"{shown}, conversation #{index + 1}: must be a mapping, got {raw!r}")
    name = raw.get("name")
    where = f"{shown}, conversation #{index + 1}" + (f" {name!r}" if isinstance(name, str) else "")
    unknown = sorted(set(raw) - CONVERSATION_KEYS)
    if unknown:
        raise ConversationFormatError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(CONVERSATION_KEYS)}")
    if not isinstance(name, str) or not name.strip():
        raise ConversationFormatError(f"{where}: `name` (a non-empty string) is required")
    if name in names:
        raise ConversationFormatError(f"{where}: another conversation in the file has the same name")
    names.add(name)
    channel = raw.get("channel", "rest")
    if channel not in CHANNELS:
        raise ConversationFormatError(f"{where}: `channel` must be one of {list(CHANNELS)}, got {channel!r}")
    staff_room = raw.get("staff_room", False)
    if not isinstance(staff_room, bool):
        raise ConversationFormatError(f"{where}: `staff_room` must be true or false, got {staff_room!r}")
    known_failure = raw.get("known_failure")
    if known_failure is not None and (not isinstance(known_failure, str) or not known_failure.strip()):
        raise ConversationFormatError(f"{where}: `known_failure` must be the reason, a non-empty string")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConversationFormatError(f"{where}: `steps` (a non-empty list) is required")
    turns: List[Turn] = []
    for number, step in enumerate(steps, start=1):
        at = f"{where}, step {number}"
        if not isinstance(step, dict) or len(step) != 1 or next(iter(step)) not in STEP_KINDS:
            raise ConversationFormatError(f"{at}: a step is one of `user: <text>`, `click: <button>`, `bot: {{…}}`, got {step!r}")
        kind, value = next(iter(step.items()))
        if kind == "bot":
            if not turns or turns[-1].expect is not None:
                raise ConversationFormatError(f"{at}: a `bot` step must follow a `user` or `click` step (one per turn)")
            turns[-1] = Turn(turns[-1].kind, turns[-1].text, _expectation(value, known, at))
        else:
            if not isinstance(value, str) or (kind == "click" and not value):
                raise ConversationFormatError(f"{at}: `{kind}` must be a string, got {value!r}")
            if kind == "click" and not turns:
                raise ConversationFormatError(f"{at}: `click` needs a previous turn that offered buttons")
            turns.append(Turn(kind, value))
    return ConversationCase(file=Path(file), name=name, turns=tuple(turns), channel=channel, staff_room=staff_room,
                            known_failure=known_failure)


def load_file(path: Path, known: Optional[Known] = None) -> List[ConversationCase]:
    """The conversations of one file, validated; raises ConversationFormatError."""
    known = known or Known.from_article()
    shown = _display(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConversationFormatError(f"{shown}: not valid YAML: {error}") from None
    if not isinstance(data, dict) or set(data) != {"conversations"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ConversationFormatError(f"{shown}: the file must have exactly one top-level key `conversations`, got {keys}")
    if not isinstance(data["conversations"], list) or not data["conversations"]:
        raise ConversationFormatError(f"{shown}: `conversations` must be a non-empty list")
    names: set = set()
    return [_conversation(raw, index, Path(path), known, names) for index, raw in enumerate(data["conversations"])]


def conversation_files(selection: Optional[str] = None) -> List[Path]:
    """Every tests/conversations/*.yml, or the files/folders named in `selection` (CONVERSATIONS)."""
    selection = os.environ.get(CONVERSATIONS_VARIABLE, "") if selection is None else selection
    names = selection.replace(",", " ").split()
    if not names:
        return sorted(CONVERSATIONS_DIR.glob("*.yml"))
    files: List[Path] = []
    for name in names:
        path = paths.absolute(name)
        if path.is_dir():
            files += sorted(path.glob("*.yml"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{CONVERSATIONS_VARIABLE}={selection!r}: {name} is not a file or folder")
    return files


# -- what the bot did ---------------------------------------------------------------------------


@dataclass
class BotMessage:
    text: str
    buttons: List[Dict[str, Any]]
    metadata: Dict[str, Any]
    answers_user: bool  # after the user event (False: the session start's introduction)

    @classmethod
    def from_event(cls, event: Dict[str, Any], answers_user: bool) -> "BotMessage":
        data = event.get("data") or {}
        return cls(event.get("text") or "", list(data.get("buttons") or []), dict(event.get("metadata") or {}), answers_user)

    @property
    def citation(self) -> Optional[str]:
        value = self.metadata.get(CITATION)
        return value.get("item") if isinstance(value, dict) else None

    @property
    def escalation(self) -> Optional[Dict[str, Any]]:
        value = self.metadata.get(ESCALATION)
        return value if isinstance(value, dict) else None

    @property
    def product(self) -> Optional[str]:
        return self.metadata.get(PRODUCT)

    def tags(self) -> str:
        tags = []
        if self.citation:
            tags.append(f"cites {self.citation}")
        if self.escalation:
            tags.append(f"escalation {self.escalation.get('level')} {self.escalation.get('signs')}")
        if self.product:
            tags.append(f"product {self.product}")
        return f"  [{'; '.join(tags)}]" if tags else ""


@dataclass
class TurnRecord:
    """One turn as it happened: what was sent and the bot messages the tracker gained."""

    number: int
    sent: str
    step: Turn
    messages: List[BotMessage] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def reply(self) -> List[BotMessage]:
        """The messages answering the user's message (after its user event)."""
        return [message for message in self.messages if message.answers_user]

    @property
    def introduction(self) -> List[BotMessage]:
        """Messages of a session start before the user's message (the introduction)."""
        return [message for message in self.messages if not message.answers_user]

    @property
    def text(self) -> str:
        return "\n".join(message.text for message in self.reply)

    @property
    def buttons(self) -> List[Dict[str, Any]]:
        return [button for message in self.reply for button in message.buttons]


def turn_messages(new_events: Sequence[Dict[str, Any]]) -> Optional[List[BotMessage]]:
    """The bot messages among a turn's new tracker events (None when it has no user event)."""
    users = [index for index, event in enumerate(new_events) if event.get("event") == "user"]
    if not users:
        return None
    return [
        BotMessage.from_event(event, answers_user=index > users[-1])
        for index, event in enumerate(new_events)
        if event.get("event") == "bot"
    ]


# -- checking a turn ----------------------------------------------------------------------------


def check_turn(expect: Dict[str, Any], record: TurnRecord) -> List[str]:
    """What differs between the expectations and the turn; empty when it matches."""
    problems: List[str] = []
    messages = record.reply
    joined = record.text.casefold()

    if "escalation" in expect:
        referrals = [m for m in messages if m.escalation]
        levels = [m.escalation.get("level", NONE) for m in referrals]
        unknown = [level for level in levels if level not in LEVELS]
        got = max_level(*levels) if referrals and not unknown else NONE
        if unknown:
            problems.append(f"escalation: the referral metadata names unknown level(s) {unknown}")
        elif got != expect["escalation"]:
            detail = "no referral in this turn" if not referrals else ", ".join(
                f"{m.escalation.get('level')} (signs {m.escalation.get('signs')})" for m in referrals
            )
            problems.append(f"escalation: expected {expect['escalation']}, got {got} ({detail})")
        elif referrals and not messages[0].escalation:
            problems.append(f"escalation: the referral must come first, but the reply starts with: {messages[0].text[:80]!r}")

    if "cites" in expect:
        cited = [m.citation for m in messages if m.citation]
        accepted = expect["cites"]
        if accepted is None and cited:
            problems.append(f"cites: expected no article answer, got {cited}")
        elif accepted is not None and not cited and None not in accepted:
            problems.append(f"cites: expected {_one_of(accepted)}, got no article answer (no `{CITATION}` metadata)")
        elif accepted is not None and any(item not in accepted for item in cited):
            problems.append(f"cites: expected {_one_of(accepted)}, got {cited}")

    if "product" in expect:
        named = [m.product for m in messages if m.product]
        wanted = expect["product"]
        if wanted is None and named:
            problems.append(f"product: expected no product line, got {named}")
        elif wanted is not None and sorted(set(named)) != sorted(set(wanted)):
            problems.append(f"product: expected a line for exactly {sorted(set(wanted))}, got {named or 'no product line'}")

    for needle in expect.get("contains", ()):
        if needle.casefold() not in joined:
            problems.append(f"contains: {needle!r} is not in the turn's texts")
    for needle in expect.get("not_contains", ()):
        if needle.casefold() in joined:
            problems.append(f"not_contains: {needle!r} is in the turn's texts")

    if "buttons" in expect:
        offered = record.buttons
        if not expect["buttons"] and offered:
            problems.append(f"buttons: expected none, got {_buttons(offered)}")
        missing = [b for b in expect["buttons"] if not any(b in (o.get("payload"), o.get("title")) for o in offered)]
        if missing:
            problems.append(f"buttons: {missing} not offered; offered: {_buttons(offered) or 'none'}")

    if "texts" in expect:
        low, high = expect["texts"]
        count = len(messages)
        if count < low or (high is not None and count > high):
            bounds = f"{low}" if low == high else f"{low}..{'' if high is None else high}"
            problems.append(f"texts: expected {bounds} message(s), got {count}")

    if "introduction" in expect:
        introduction = "\n".join(m.text for m in record.introduction)
        if expect["introduction"] is None and introduction:
            problems.append("introduction: expected none before this message, got one")
        elif expect["introduction"] is not None and not introduction:
            problems.append("introduction: expected one before this message (session start), got none")
        else:
            for needle in expect["introduction"] or ():
                if needle.casefold() not in introduction.casefold():
                    problems.append(f"introduction: {needle!r} is not in the introduction")
    return problems


def _one_of(ids: Sequence[Optional[str]]) -> str:
    return str(ids[0]) if len(ids) == 1 else f"one of {[i for i in ids if i]}" + (" or no article answer" if None in ids else "")


def _buttons(buttons: Iterable[Dict[str, Any]]) -> List[str]:
    return [f"{b.get('title')} -> {b.get('payload')}" for b in buttons]


# -- the transcript of a failure ----------------------------------------------------------------


def _indent(text: str, prefix: str) -> str:
    lines = (text or "").splitlines() or [""]
    return "\n".join([prefix + lines[0]] + [" " * len(prefix) + line for line in lines[1:]])


def transcript(case: ConversationCase, records: Sequence[TurnRecord], sender: str) -> str:
    """The whole conversation so far (user and bot texts, with the messages' metadata), then what
    differed in the failing turn."""
    lines = [f"Conversation {case.name!r} ({_display(case.file)}), channel {case.channel}, sender {sender}"]
    for record in records:
        mark = "  <-- differs" if record.problems else ""
        lines.append(f"  turn {record.number}{mark}")
        for message in record.introduction:
            lines.append(_indent(message.text + message.tags(), "    bot (session start): "))
        sent = record.sent if record.step.kind == "user" else f"{record.sent}   (clicked {record.step.text!r})"
        lines.append(_indent(sent, "    user: "))
        if not record.reply:
            lines.append("    bot:  (nothing)")
        for message in record.reply:
            lines.append(_indent(message.text + message.tags(), "    bot:  "))
            if message.buttons:
                lines.append(f"          buttons: {_buttons(message.buttons)}")
    for record in records:
        if record.problems:
            lines.append(f"Turn {record.number} differs from the expectations:")
            lines += [f"  - {problem}" for problem in record.problems]
    return "\n".join(lines)


# -- channels -----------------------------------------------------------------------------------


class RestChannel:
    """A visitor on the REST channel; the turn's events come from the tracker."""

    def __init__(self, stack, sender: Optional[str] = None) -> None:
        self.stack = stack
        self.sender = sender or f"conv-{uuid.uuid4().hex[:12]}"
        self.seen = 0  # tracker events already attributed to earlier turns (no GET before the first
        # message: fetching the tracker of a new conversation would start its session early)
        self.delivered: Optional[List[str]] = None  # the texts of the last REST response

    def send(self, text: str) -> List[Dict[str, Any]]:
        response = requests.post(self.stack.rest_url, json={"sender": self.sender, "message": text}, timeout=60)
        if response.status_code != 200:
            raise AssertionError(f"REST channel answered {response.status_code}: {response.text[:500]}")
        self.delivered = [message.get("text") or "" for message in response.json() if message.get("text")]
        return self._new_events()

    def _new_events(self) -> List[Dict[str, Any]]:
        events = self.stack.tracker(self.sender)["events"]
        new, self.seen = events[self.seen:], len(events)
        return new


class MatrixStaffChannel:
    """A staff member of its own (a fresh user invited to the staff room, so that the conversation
    starts empty) writing in the staff room; the homeserver pushes the message to the Rasa server."""

    def __init__(self, stack, matrix) -> None:
        self.stack = stack
        self.matrix = matrix
        self.user = matrix.homeserver.register(f"staff-{uuid.uuid4().hex[:10]}", secrets.token_hex(12))
        room = quote(matrix.room, safe="")
        matrix.staff.api("POST", f"/rooms/{room}/invite", json={"user_id": self.user.user_id})
        self.user.api("POST", f"/rooms/{room}/join", json={})
        self.sender = f"{self.user.user_id}@{matrix.room}"  # the Matrix channel's conversation id
        # Start the session before the first message (its introduction is not part of a turn): a
        # tracker GET while the first message is being handled could otherwise race with it.
        self.seen = len(self._tracker()["events"])

    def _tracker(self) -> Dict[str, Any]:
        # Not stack.tracker(): it quotes every character, and the Rasa server (Sanic) does not decode
        # an escaped `@`, `!` or `:` in the conversation id, so it would read (and create) another
        # conversation. Quoted like the Matrix channel's own calls to the HTTP API instead.
        path = f"/conversations/{quote(self.sender, safe=PATH_SAFE)}/tracker"
        url = self.stack.api_url(path) if hasattr(self.stack, "api_url") else f"{self.stack.url}{path}"
        response = requests.get(url, timeout=30)
        if response.status_code != 200:
            raise AssertionError(f"GET {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def send(self, text: str) -> List[Dict[str, Any]]:
        self.user.say(self.matrix.room, text)
        deadline = time.monotonic() + TURN_TIMEOUT
        while True:
            events = self._tracker()["events"]
            new = events[self.seen:]
            done = any(e.get("event") == "user" for e in new) and new[-1].get("event") == "action" and new[-1].get("name") == "action_listen"
            if done:
                self.seen = len(events)
                return new
            if time.monotonic() > deadline:
                raise AssertionError(f"the staff message {text!r} got no complete turn in {self.sender}'s tracker within {TURN_TIMEOUT:.0f} s")
            time.sleep(0.2)


# -- running a conversation ---------------------------------------------------------------------


@dataclass
class Outcome:
    case: ConversationCase
    sender: str
    records: List[TurnRecord]

    @property
    def passed(self) -> bool:
        return not any(record.problems for record in self.records)

    def report(self) -> str:
        return transcript(self.case, self.records, self.sender)


def delivery_problems(messages: Sequence[BotMessage], delivered: Optional[Sequence[str]]) -> List[str]:
    """The tracker is read for the metadata; the channel must have delivered the same texts (Rasa's
    collecting channel sends the blank-line-separated parts of a text without buttons separately)."""
    if delivered is None:
        return []
    recorded = [part for m in messages if m.text for part in ([m.text] if m.buttons else m.text.strip().split("\n\n"))]
    if list(delivered) == recorded:
        return []
    return [f"delivery: the REST response's texts {list(delivered)!r} differ from the tracker's bot messages {recorded!r}"]


def click_payload(step: Turn, previous: Optional[TurnRecord]) -> Tuple[Optional[str], Optional[str]]:
    """The payload of the button `step` clicks, or a problem when the previous turn did not offer it."""
    offered = previous.buttons if previous else []
    for button in offered:
        if step.text in (button.get("payload"), button.get("title")):
            return str(button.get("payload") or ""), None
    return None, f"click: no button {step.text!r} was offered in the previous turn; offered: {_buttons(offered) or 'none'}"


def run_conversation(case: ConversationCase, channel) -> Outcome:
    """Plays the conversation; stops at the first turn that differs from its expectations."""
    records: List[TurnRecord] = []
    for number, step in enumerate(case.turns, start=1):
        text = step.text
        if step.kind == "click":
            text, problem = click_payload(step, records[-1] if records else None)
            if problem:
                records.append(TurnRecord(number, "(not sent)", step, problems=[problem]))
                break
        record = TurnRecord(number, text, step)
        records.append(record)
        messages = turn_messages(channel.send(text))
        if messages is None:
            record.problems.append("the tracker gained no user event for this message (was it handled?)")
            break
        record.messages = messages
        record.problems = delivery_problems(messages, getattr(channel, "delivered", None))
        if step.expect:
            record.problems += check_turn(step.expect, record)
        if record.problems:
            break
    return Outcome(case, channel.sender, records)
