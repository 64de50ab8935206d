"""Conversation tests: every conversation of every tests/conversations/*.yml file through the running
stack, checking what the bot says (format and runner: tests/conversation_runner.py).

One file only: `make test-conversations FILE=tests/conversations/escalation.yml`
(or CONVERSATIONS=<files or folders> python -m pytest tests/test_conversations.py).
Conversations that do not need the Matrix staff room carry the `without_matrix` marker: when every
collected test that uses the stack does, the stack starts without Synapse (tests/conftest.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from conversation_runner import (
    ConversationCase,
    ConversationFormatError,
    Known,
    MatrixStaffChannel,
    RestChannel,
    conversation_files,
    load_file,
    run_conversation,
)

KNOWN = Known.from_article()
FILES = conversation_files()


def _cases() -> List:
    params = []
    for file in FILES:
        try:
            cases = load_file(file, KNOWN)
        except ConversationFormatError:
            continue  # test_conversation_file_is_valid reports it
        for case in cases:
            marks = () if case.needs_matrix else (pytest.mark.without_matrix,)
            if case.known_failure:
                marks += (pytest.mark.xfail(reason=case.known_failure, strict=True),)
            params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("file", FILES, ids=[file.stem for file in FILES])
def test_conversation_file_is_valid(file: Path):
    try:
        load_file(file, KNOWN)
    except ConversationFormatError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.mark.parametrize("case", _cases())
def test_conversation(case: ConversationCase, stack, request):
    if case.channel == "matrix":
        channel = MatrixStaffChannel(stack, request.getfixturevalue("matrix"))
    else:
        channel = RestChannel(stack)
    outcome = run_conversation(case, channel)
    if not outcome.passed:
        pytest.fail(outcome.report(), pytrace=False)


# -- the format's validation (no stack) ----------------------------------------------------------

GOOD = """
conversations:
  - name: one
    steps:
      - user: "hoi"
      - bot: {escalation: none, cites: null, contains: [assistent]}
"""


@pytest.mark.parametrize(
    "text, words",
    [
        pytest.param(GOOD.replace("contains:", "contain:"), ["unknown key", "contain", "conversation #1 'one'", "step 2"], id="expectation key"),
        pytest.param(GOOD.replace("name: one", "name: one\n    chanel: rest"), ["unknown key", "chanel", "'one'"], id="conversation key"),
        pytest.param(GOOD.replace("cites: null", "cites: faq_nope"), ["faq_nope", "unknown article item"], id="item id"),
        pytest.param(GOOD.replace("escalation: none", "escalation: urgent"), ["escalation", "urgent_now"], id="level"),
        pytest.param(GOOD.replace("      - user: \"hoi\"\n", ""), ["must follow a `user` or `click` step"], id="bot first"),
        pytest.param(GOOD.replace("conversations:", "conversation:"), ["exactly one top-level key `conversations`"], id="top level"),
        pytest.param(GOOD + "  - name: one\n    steps: [{user: x}]\n", ["conversation #2 'one'", "same name"], id="duplicate name"),
    ],
)
def test_format_errors_name_file_and_conversation(tmp_path, text, words):
    path = tmp_path / "broken.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConversationFormatError) as error:
        load_file(path, KNOWN)
    message = str(error.value)
    assert "broken.yml" in message
    for word in words:
        assert word in message


def test_a_valid_file_loads(tmp_path):
    path = tmp_path / "fine.yml"
    path.write_text(GOOD, encoding="utf-8")
    (case,) = load_file(path, KNOWN)
    assert case.id == "fine/one" and case.channel == "rest" and not case.needs_matrix
    assert case.turns[0].expect == {"escalation": "none", "cites": None, "contains": ("assistent",)}


def test_checks_read_the_turn_from_tracker_events():
    from conversation_runner import Turn, TurnRecord, check_turn, turn_messages
    from bot.contract import CITATION, ESCALATION, PRODUCT

    events = [
        {"event": "bot", "text": "Hallo! Ik ben een digitale assistent."},  # session start
        {"event": "user", "text": "vraag"},
        {"event": "bot", "text": "Uitleg\nBron: X", "metadata": {CITATION: {"item": "faq_best_exercises", "heading": "X"}}},
        {"event": "bot", "text": "Bel nu je huisarts", "metadata": {ESCALATION: {"level": "urgent_now", "signs": ["s"]}}},
        {"event": "bot", "text": "Uit onze winkel: kussen €", "metadata": {PRODUCT: "seat_cushion"}, "data": {"buttons": [{"title": "T", "payload": "/p"}]}},
        {"event": "action", "name": "action_listen"},
    ]
    record = TurnRecord(1, "vraag", Turn("user", "vraag"), turn_messages(events))
    assert [m.text for m in record.introduction] == ["Hallo! Ik ben een digitale assistent."]
    problems = check_turn(
        {"escalation": "urgent_now", "cites": None, "product": None, "contains": ("HUISARTS",),
         "not_contains": ("digitale assistent",), "buttons": ("T", "/q"), "texts": (1, 2), "introduction": ("assistent",)},
        record,
    )
    assert [p.split(":")[0] for p in problems] == ["escalation", "cites", "product", "buttons", "texts"]
    assert "must come first" in problems[0] and "'/q'" in problems[3]
    assert check_turn({"cites": ("faq_best_exercises", None), "buttons": ("/p",), "introduction": ("Hallo",)}, record) == []
