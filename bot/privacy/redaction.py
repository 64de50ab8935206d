"""Redaction at rest: the copy of a conversation written to the conversation store carries no
e-mail addresses, phone numbers, BSNs, IBANs, postcodes with house numbers or dates (of birth);
each is replaced by a typed placeholder ("[telefoonnummer]", "[datum]", ...).

The patterns are data (bot/privacy/redaction.yml, applied in the file's order); the validators
they name live here: the BSN elfproef, the IBAN mod-97 test (ISO 13616) and digit counts, so a
random run of digits that fails them is kept. A nine-digit number after "bsn" is redacted anyway.

Deliberately left alone, because they are the health content of a message: temperatures ("38,9",
"39 graden"), ages ("ik ben 67"), durations ("sinds 3 dagen"), times ("om 14:30"), years alone
("sinds 2019"), amounts and prices ("€ 24,95", "2 x per dag", "1000 IE"), scores ("NRS 8/10")
and section numbers.

Only the store calls this: the live turn (NLU, the warning-sign detector, the actions) always
sees the message as written. `redact_value` takes a whole event dict and returns a redacted
copy; strings without a digit or an "@" are returned untouched without running any pattern.
Imports nothing of Rasa.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Pattern, Sequence, Tuple

import yaml

from bot import paths

REDACTION_RULES = paths.BOT_DIR / "privacy" / "redaction.yml"

CUE_GROUP = "cue"  # an introducing word: kept, and the match skips the check
VALUE_GROUP = "value"  # the part replaced (the whole match when the pattern has no such group)

# Every pattern needs one of these (redaction.yml says so): strings without are not scanned.
_MAY_MATCH = re.compile(r"[\d@]")
_FRAGMENT = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"^\[[^\]\d@]+\]$")


class RedactionRulesError(ValueError):
    """redaction.yml is malformed (raised when loading, never while redacting)."""


# --- validators -------------------------------------------------------------------------------

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)

# ISO 13616 register: the length of an IBAN per country (the countries a visitor plausibly has).
IBAN_LENGTHS: Mapping[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def digits_of(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def elfproef(text: str) -> bool:
    """The BSN eleven test: nine digits (eight get a leading 0), weights 9..2 and -1 for the last,
    the sum divisible by 11 (and not all zeros)."""
    digits = digits_of(text)
    if len(digits) == 8:
        digits = "0" + digits
    if len(digits) != 9 or not digits.isascii() or int(digits) == 0:
        return False
    return sum(int(d) * w for d, w in zip(digits, _BSN_WEIGHTS)) % 11 == 0


def iban_mod97(text: str) -> bool:
    """ISO 13616: a known country, that country's length, and mod 97 of the rearranged number is 1."""
    iban = "".join(text.split()).upper()
    if not iban.isascii() or not iban.isalnum() or IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    if not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


VALIDATORS: Dict[str, Callable[[str], bool]] = {"elfproef": elfproef, "iban_mod97": iban_mod97}
COUNTS: Dict[str, Callable[[str, int], bool]] = {
    "min_digits": lambda text, n: len(digits_of(text)) >= n,
    "max_digits": lambda text, n: len(digits_of(text)) <= n,
}


@dataclass(frozen=True)
class Check:
    """One validator a match must pass: a name of VALIDATORS, or of COUNTS with its number."""

    name: str
    argument: Optional[int] = None

    def __call__(self, text: str) -> bool:
        if self.name in COUNTS:
            return COUNTS[self.name](text, int(self.argument or 0))
        return VALIDATORS[self.name](text)


# --- rules --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedactionRule:
    """One kind of personal data: its pattern, the placeholder it leaves, the checks a match passes."""

    name: str
    placeholder: str
    pattern: Pattern[str]
    check: Tuple[Check, ...] = ()
    needs: Optional[Pattern[str]] = None  # a cheap pattern the text must hold before `pattern` runs

    def passes(self, text: str) -> bool:
        return all(check(text) for check in self.check)

    def apply(self, text: str) -> str:
        """`text` with every accepted match replaced (the same object when there is none)."""
        if self.needs is not None and not self.needs.search(text):
            return text
        pieces: List[str] = []
        last = 0
        for match in self.pattern.finditer(text):
            span = self._accepted(text, match)
            if span is None:
                continue
            pieces += [text[last : span[0]], self.placeholder]
            last = span[1]
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def _accepted(self, text: str, match: "re.Match[str]") -> Optional[Tuple[int, int]]:
        """The span to replace, or None. A match that fails the check is retried without its
        last word(s) ("BE68 5390 0754 7034 voor"), each shorter candidate matching the whole pattern."""
        for candidate in self._candidates(text, match):
            span = _value_span(candidate)
            if not self.check or _cued(candidate) or self.passes(text[span[0] : span[1]]):
                return span
        return None

    def _candidates(self, text: str, match: "re.Match[str]") -> Iterator["re.Match[str]"]:
        yield match
        for cut in range(match.end() - 1, match.start(), -1):  # the rightmost word end first
            if text[cut].isspace() and not text[cut - 1].isspace():
                shorter = self.pattern.fullmatch(text, match.start(), cut)
                if shorter is not None:
                    yield shorter


def _value_span(match: "re.Match[str]") -> Tuple[int, int]:
    if VALUE_GROUP in match.re.groupindex and match.start(VALUE_GROUP) >= 0:
        return match.span(VALUE_GROUP)
    return match.span()


def _cued(match: "re.Match[str]") -> bool:
    return CUE_GROUP in match.re.groupindex and match.group(CUE_GROUP) is not None


# --- reading redaction.yml ----------------------------------------------------------------------


def _expand(pattern: str, fragments: Mapping[str, str], where: str) -> str:
    def fragment(found: "re.Match[str]") -> str:
        name = found.group(1)
        if name not in fragments:
            raise RedactionRulesError(f"{where}: unknown fragment {{{name}}}")
        return f"(?:{fragments[name]}\n)"

    return _FRAGMENT.sub(fragment, pattern)


def _read_fragments(raw: Any) -> Dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RedactionRulesError("fragments: expected a mapping")
    fragments: Dict[str, str] = {}
    for name, text in raw.items():
        if not isinstance(text, str) or not text.strip():
            raise RedactionRulesError(f"fragments.{name}: expected a non-empty string")
        fragments[str(name)] = _expand(text, fragments, f"fragments.{name}")  # may use the ones above
    return fragments


def _read_checks(raw: Any, where: str) -> Tuple[Check, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    checks: List[Check] = []
    for item in items:
        if isinstance(item, str) and item in VALIDATORS:
            checks.append(Check(item))
        elif isinstance(item, Mapping):
            for name, argument in item.items():
                if name in COUNTS and isinstance(argument, int) and not isinstance(argument, bool):
                    checks.append(Check(str(name), argument))
                elif name in VALIDATORS and argument in (None, True):
                    checks.append(Check(str(name)))
                else:
                    raise RedactionRulesError(f"{where}: bad check {name}: {argument!r}")
        else:
            raise RedactionRulesError(f"{where}: unknown check {item!r} (one of {sorted(VALIDATORS) + sorted(COUNTS)})")
    return tuple(checks)


def _read_rule(raw: Any, fragments: Mapping[str, str], where: str) -> RedactionRule:
    if not isinstance(raw, Mapping):
        raise RedactionRulesError(f"{where}: expected a mapping")
    name, placeholder, pattern = raw.get("name"), raw.get("placeholder"), raw.get("pattern")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RedactionRulesError(f"{where}.name: required, snake_case")
    where = f"rules.{name}"
    if not isinstance(placeholder, str) or not _PLACEHOLDER.match(placeholder):
        # a placeholder with a digit or "@" could be matched again by a later rule
        raise RedactionRulesError(f"{where}.placeholder: required, in brackets, no digit or '@'")
    if not isinstance(pattern, str) or not pattern.strip():
        raise RedactionRulesError(f"{where}.pattern: required, a regex")
    unknown = set(raw) - {"name", "placeholder", "pattern", "check", "needs"}
    if unknown:
        raise RedactionRulesError(f"{where}: unknown key(s) {sorted(unknown)}")
    needs = raw.get("needs")
    if needs is not None and (not isinstance(needs, str) or not needs.strip()):
        raise RedactionRulesError(f"{where}.needs: a regex")
    return RedactionRule(
        name,
        placeholder,
        _compile(pattern, fragments, f"{where}.pattern"),
        _read_checks(raw.get("check"), f"{where}.check"),
        None if needs is None else _compile(needs, fragments, f"{where}.needs"),
    )


def _compile(pattern: str, fragments: Mapping[str, str], where: str) -> Pattern[str]:
    try:
        return re.compile(_expand(pattern, fragments, where), re.VERBOSE)
    except re.error as error:
        raise RedactionRulesError(f"{where}: {error}") from None


def parse_rules(data: Any) -> Tuple[RedactionRule, ...]:
    """The rules of a parsed redaction.yml, in application order."""
    if not isinstance(data, Mapping) or not isinstance(data.get("rules"), list) or not data["rules"]:
        raise RedactionRulesError("expected a mapping with a non-empty `rules` list")
    fragments = _read_fragments(data.get("fragments"))
    rules = tuple(_read_rule(raw, fragments, f"rules[{index}]") for index, raw in enumerate(data["rules"]))
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise RedactionRulesError(f"rules: a name twice in {names}")
    return rules


@lru_cache(maxsize=8)
def _load_rules_cached(path: str) -> Tuple[RedactionRule, ...]:
    with open(path, encoding="utf-8") as handle:
        return parse_rules(yaml.safe_load(handle))


def load_rules(path: Path | str = REDACTION_RULES) -> Tuple[RedactionRule, ...]:
    """redaction.yml parsed, compiled and validated (cached per resolved path)."""
    return _load_rules_cached(str(Path(path).resolve()))


@lru_cache(maxsize=1)
def _default_rules() -> Tuple[RedactionRule, ...]:
    """load_rules() without resolving the path on every call (the hot path of redact_value)."""
    return load_rules()


# --- redacting ----------------------------------------------------------------------------------


def _redact(text: str, rules: Sequence[RedactionRule]) -> Tuple[str, List[str]]:
    kinds: List[str] = []
    if not _MAY_MATCH.search(text):
        return text, kinds
    for rule in rules:
        redacted = rule.apply(text)
        if redacted is not text:
            kinds.append(rule.name)
            text = redacted
    return text, kinds


def redact_text(text: str, rules: Optional[Sequence[RedactionRule]] = None) -> str:
    """`text` with every e-mail address, phone number, BSN, IBAN, postcode with house number and
    date replaced by its placeholder (the same object when there is nothing to redact)."""
    return _redact(text, _default_rules() if rules is None else rules)[0]


def found_kinds(text: str, rules: Optional[Sequence[RedactionRule]] = None) -> List[str]:
    """The names of the kinds `redact_text` replaces in `text`, in rule order (for logs and tests)."""
    return _redact(text, _default_rules() if rules is None else rules)[1]


def redact_value(value: Any, rules: Optional[Sequence[RedactionRule]] = None) -> Any:
    """A copy of a JSON-like value (a Rasa event dict) with every string redacted: dicts, lists and
    tuples are copied (keys as they are), other values returned as they are. The input is never
    changed. A string met twice (the text, again in parse_data) is redacted once."""
    return _redact_value(value, _default_rules() if rules is None else rules, {})


def _redact_value(value: Any, rules: Sequence[RedactionRule], seen: Dict[str, str]) -> Any:
    if isinstance(value, str):
        if not _MAY_MATCH.search(value):
            return value
        if value not in seen:
            seen[value] = _redact(value, rules)[0]
        return seen[value]
    if isinstance(value, dict):
        return {key: _redact_value(item, rules, seen) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_value(item, rules, seen) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(item, rules, seen) for item in value)
    return value
