"""The action server loads the data its actions read before the first request (bot/action_server.py)."""
from __future__ import annotations

import datetime

import pytest

from bot import clock
from bot.action_server import preload
from bot.coverage import item_kind_words, quantity_questions, sign_questions, uncovered_topics
from bot.escalation.sign_book import _load_sign_book_cached
from bot.knowledge_base.answers import stop_words
from bot.knowledge_base.questions import question_rules
from bot.knowledge_base.store import load_knowledge_base
from bot.knowledge_base.suggestions import suggestion_settings
from bot.products import product_settings
from bot.replies import replies

LOADERS = (
    _load_sign_book_cached, load_knowledge_base, replies, uncovered_topics, sign_questions, item_kind_words, quantity_questions,
    product_settings, question_rules, suggestion_settings, stop_words, clock.dutch_public_holidays,
)


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_preload_leaves_the_data_loaded(loader):
    loader.cache_clear()
    preload()
    assert loader.cache_info().currsize >= 1


def test_office_hours_know_the_holidays_of_each_year():
    """The holidays are computed once per year, and each year's are its own."""
    clock.dutch_public_holidays.cache_clear()
    kings_day_2026 = datetime.datetime(2026, 4, 27, 10, 0, tzinfo=clock.AMSTERDAM)  # a Monday
    kings_day_2027 = datetime.datetime(2027, 4, 27, 10, 0, tzinfo=clock.AMSTERDAM)  # a Tuesday
    ordinary_monday = datetime.datetime(2026, 4, 20, 10, 0, tzinfo=clock.AMSTERDAM)
    assert not clock.is_office_hours(kings_day_2026)
    assert not clock.is_office_hours(kings_day_2027)
    assert clock.is_office_hours(ordinary_monday)
    assert clock.is_office_hours(ordinary_monday)  # from the cache
    assert clock.dutch_public_holidays.cache_info().hits >= 1
