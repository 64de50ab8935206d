"""Deterministic warning-sign detection for the escalation policy (shared/spec/escalation.md).

    from bot.escalation import get_detector, combine_level
    detection = get_detector().detect("ik kan niet meer plassen", earlier_sign_ids=["back_pain"])
    detection.level            # "urgent_now"
    detection.to_dict()        # {"level", "signs", "hypothetical", "negated"}
    combine_level(["fever", "feeling_ill"])   # "urgent_now" (for the action server)
"""
from bot.escalation.detector import (
    DEFAULT_SIGNS_PATH,
    LEVELS,
    Detection,
    SignBook,
    SignMatch,
    SignsFileError,
    WarningSignDetector,
    combine_level,
    compare_levels,
    get_detector,
    level_rank,
    load_sign_book,
    max_level,
    normalise_text,
)

__all__ = [
    "DEFAULT_SIGNS_PATH",
    "LEVELS",
    "Detection",
    "SignBook",
    "SignMatch",
    "SignsFileError",
    "WarningSignDetector",
    "combine_level",
    "compare_levels",
    "get_detector",
    "level_rank",
    "load_sign_book",
    "max_level",
    "normalise_text",
]
