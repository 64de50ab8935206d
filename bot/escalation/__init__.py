"""Deterministic warning-sign detection for the escalation policy (shared/spec/escalation.md).

The package root is pure Python (no spaCy, no Rasa): the action server imports it for the
conversation's level. The detector runs spaCy and lives in `bot.escalation.detector`:

    from bot.escalation.detector import get_detector
    from bot.escalation import remember
    detection = get_detector().detect("ik kan niet meer plassen")
    detection.level            # "urgent_now"
    detection.to_dict()        # {"level", "signs", "hypothetical", "negated", "scope"}: the parse data
    remember(["back_pain"], [], detection.to_dict()).level   # the conversation's level

Modules: text (normalisation); signs_file, cues, sign_book (signs.yml as typed data); matcher
(the spaCy patterns); scope (negation and hypotheticals); whose (hearsay, the writer's resolved
past, general questions, the message flags); detector (one message); memory (the conversation).
Levels live in bot.levels, the default signs file is bot.paths.SIGNS.
"""
from bot.escalation.memory import ConversationSigns, conversation_level, remember
from bot.escalation.sign_book import SignBook, load_sign_book, parse_sign_book
from bot.escalation.signs_file import SignsFileError

__all__ = [
    "ConversationSigns",
    "SignBook",
    "SignsFileError",
    "conversation_level",
    "load_sign_book",
    "parse_sign_book",
    "remember",
]
