"""Redaction at rest (bot/privacy/redaction.py, bot/privacy/redaction.yml): every kind in its Dutch
formats, the health content that must stay as written, the false-positive guards, whole event dicts."""
from __future__ import annotations

import copy

import pytest

from bot.privacy.redaction import (
    REDACTION_RULES,
    RedactionRulesError,
    elfproef,
    found_kinds,
    iban_mod97,
    load_rules,
    parse_rules,
    redact_text,
    redact_value,
)


def check(text: str, expected: str, removed: str, kind: str) -> None:
    assert redact_text(text) == expected
    assert removed not in redact_text(text)
    assert found_kinds(text) == [kind]


@pytest.mark.parametrize(
    "text, expected, removed",
    [
        ("mail me op jan.de.vries@example.nl graag", "mail me op [e-mail] graag", "jan.de.vries"),
        ("jan+rugpijn@gmail.com", "[e-mail]", "rugpijn"),
        ("Mijn adres: J.Jansen@Mail.Zorg.Example.NL.", "Mijn adres: [e-mail].", "Jansen"),
        ("(piet_de-boer@sub.domein.co.uk)", "([e-mail])", "domein"),
        ("stuur naar INFO@PRAKTIJK.NL en cc a@b.nl", "stuur naar [e-mail] en cc [e-mail]", "PRAKTIJK"),
    ],
)
def test_email(text, expected, removed):
    check(text, expected, removed, "email")


@pytest.mark.parametrize(
    "text, expected, removed",
    [
        ("bel me op 06-12345678 aub", "bel me op [telefoonnummer] aub", "12345678"),
        ("mijn nummer is 06 1234 5678.", "mijn nummer is [telefoonnummer].", "1234 5678"),
        ("0612345678", "[telefoonnummer]", "0612345678"),
        ("bereikbaar op +31 6 12345678", "bereikbaar op [telefoonnummer]", "12345678"),
        ("+31 (0)6 1234 5678 na 17 uur", "[telefoonnummer] na 17 uur", "5678"),
        ("0031612345678", "[telefoonnummer]", "612345678"),
        ("praktijk: 020-1234567", "praktijk: [telefoonnummer]", "1234567"),
        ("(020) 123 4567", "[telefoonnummer]", "4567"),
        ("010 - 123 45 67, ik ben 67", "[telefoonnummer], ik ben 67", "123 45"),
        ("in België: +32 470 12 34 56", "in België: [telefoonnummer]", "470"),
        ("gsm 0470 12 34 56", "gsm [telefoonnummer]", "0470"),
        ("06.12.34.56.78 of 06/12345678", "[telefoonnummer] of [telefoonnummer]", "34.56"),
        ("tel.: +49 30 1234567", "tel.: [telefoonnummer]", "1234567"),
    ],
)
def test_phone(text, expected, removed):
    check(text, expected, removed, "phone")


@pytest.mark.parametrize(
    "text, expected, removed",
    [
        ("123456782", "[bsn]", "123456782"),
        ("mijn nummer 111222333 staat op de pas", "mijn nummer [bsn] staat op de pas", "111222333"),
        ("bsn 1234.56.782", "bsn [bsn]", "782"),
        ("123.456.782 en 123 456 782", "[bsn] en [bsn]", "456"),
        # after a BSN cue nine digits go even when they fail the elfproef
        ("mijn bsn is 123456789", "mijn bsn is [bsn]", "123456789"),
        ("BSN: 987654321.", "BSN: [bsn].", "987654321"),
        ("burgerservicenummer 012345678", "burgerservicenummer [bsn]", "012345678"),
    ],
)
def test_bsn(text, expected, removed):
    check(text, expected, removed, "bsn")


@pytest.mark.parametrize(
    "text, expected, removed",
    [
        ("graag terug op NL91 ABNA 0417 1643 00 aub", "graag terug op [iban] aub", "ABNA"),
        ("NL91ABNA0417164300", "[iban]", "0417164300"),
        ("rekening nl91abna0417164300.", "rekening [iban].", "abna"),
        ("BE68 5390 0754 7034 voor de eigen bijdrage", "[iban] voor de eigen bijdrage", "5390"),
        ("DE89 3704 0044 0532 0130 00", "[iban]", "3704"),
        ("GB82 WEST 1234 5698 7654 32", "[iban]", "WEST"),
    ],
)
def test_iban(text, expected, removed):
    check(text, expected, removed, "iban")


@pytest.mark.parametrize(
    "text, expected, removed",
    [
        ("1234 AB 12", "[postcode en huisnummer]", "1234"),
        ("ik woon op 1234AB 12a.", "ik woon op [postcode en huisnummer].", "12a"),
        ("1234 ab, 12-3", "[postcode en huisnummer]", "ab"),
        ("Dorpsstraat 12, 1234 AB Utrecht", "Dorpsstraat [postcode en huisnummer] Utrecht", "1234"),
        ("Kerkweg 5a 1234AB Zeist", "Kerkweg [postcode en huisnummer] Zeist", "5a"),
        ("Lange Laan 7 A, 9876 ZX", "Lange Laan [postcode en huisnummer]", "9876"),
        ("postcode 1234 AB", "postcode [postcode en huisnummer]", "1234"),
        ("postcode 1234ab", "postcode [postcode en huisnummer]", "1234"),
    ],
)
def test_postcode(text, expected, removed):
    check(text, expected, removed, "postcode")


@pytest.mark.parametrize(
    "text, expected, removed",
    [
        ("geboren 12-03-1965", "geboren [datum]", "1965"),
        ("12/3/65", "[datum]", "65"),
        ("op 12.03.1965 en 12.03.65", "op [datum] en [datum]", "03"),
        ("1965-03-12", "[datum]", "1965"),
        ("ik ben van 12 maart 1965", "ik ben van [datum]", "maart"),
        ("12 mrt. 1965", "[datum]", "mrt"),
        ("3 januari '65", "[datum]", "januari"),
        ("1e april 1970, vanaf 1 mei 2024", "[datum], vanaf [datum]", "1970"),
        ("geboren op 12 maart", "geboren op [datum]", "maart"),
        ("geboortedatum: 3-4", "geboortedatum: [datum]", "3-4"),
        ("Mijn verjaardag is 3 juni", "Mijn verjaardag is [datum]", "juni"),
        ("date of birth 12/03", "date of birth [datum]", "12/03"),
        ("01-03-1965 12:30", "[datum] 12:30", "1965"),
    ],
)
def test_date(text, expected, removed):
    check(text, expected, removed, "date")


HEALTH_MESSAGES = [
    "Ik heb sinds 3 dagen 38,9 graden koorts.",
    "Vanochtend was het 39 graden, nu 38.5",
    "temperatuur 37,8°C om 06:15",
    "Ik ben 67 en heb sinds 2 weken rugpijn",
    "Mijn moeder is 65 jaar en loopt slecht",
    "Vannacht om 3 uur werd ik wakker van de pijn",
    "Om 14:30 heb ik een afspraak bij de fysio",
    "Om 10.30 uur neem ik 2 x per dag 500 mg paracetamol",
    "Tussen 08.00 en 17.00 uur, van 9:00 tot 17:00",
    "Ik heb in 2018 een hernia gehad en sinds 2019 gaat het beter",
    "sinds 2019 en 3 dagen geleden weer",
    "In 2020 en 2021 heb ik 3 keer fysio gehad",
    "IK BEN SINDS 2019 OP 3 MANIEREN BEHANDELD",
    "in 2018 op 3 mei ben ik gevallen",
    "De brace kost € 24,95 en het kussen 39,95 euro",
    "Dit kost 1.234,56 euro",
    "Op de pijnschaal: NRS 8/10",
    "pijn 7 van de 10",
    "Mijn score was 0,0",
    "2x per week 30 minuten wandelen",
    "Ik drink 1,5 liter water per dag",
    "Zie paragraaf 3.2.1 en hoofdstuk 4.12, artikel 7:446 BW",
    "versie 1.2.10 van de app",
    "Ik neem 1000 IE vitamine D en 2000 mg calcium",
    "Sinds 12 maart heb ik last van mijn onderrug",
    "Ik ben op 3 mei gevallen",
    "Ik ben geboren in 1965 en heb 3 kinderen",
    "Ik loop 5 km per dag, 10.000 stappen",
    "bloeddruk 140/90, hartslag 88",
    "Ik ben 1,82 m en weeg 95 kg, BMI 28,7",
    "glucose 5,6 mmol/l",
    "hernia L4-L5, 3/4 van de dag, 1/2 tablet",
    "Na 2 x 20 mg naproxen en 3 x 1 tablet",
    "Op 3-4 dagen per week, 5-6 uur per dag",
    "ik slik 2 tabletten 3 keer per dag sinds 12/3",
    "0.5 0.6 0.7 0.8 0.9 1.0",
    "ik heb 112 gebeld en daarna 0800-1234",
    "Ik ben 80, 1930 geboren",
    "in week 12 van 2023 begon het",
]


@pytest.mark.parametrize("text", HEALTH_MESSAGES)
def test_health_content_untouched(text):
    assert redact_text(text) == text
    assert found_kinds(text) == []


def test_health_content_kept_next_to_redactions():
    text = "Ik ben 67, heb 38,9 koorts sinds 3 dagen, bel 06-12345678 om 14:30 (€ 24,95, 2 x per dag)"
    expected = "Ik ben 67, heb 38,9 koorts sinds 3 dagen, bel [telefoonnummer] om 14:30 (€ 24,95, 2 x per dag)"
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "123456789",  # nine digits failing the elfproef, no BSN cue
        "ordernummer 987654321",
        "NL92 ABNA 0417 1643 00",  # the checksum is wrong
        "NL91ABNA0417164301",
        "BE69 5390 0754 7034",
        "XX91 ABNA 0417 1643 00",  # no such country
        "message 7f3a9c2e41d04b5e9a0c1d2e3f4a5b6c",
        "2024-06-12T10:00:00+00:00",  # a timestamp, not a date of birth
        "sinds 2019 EN 2020",
    ],
)
def test_false_positive_guards(text):
    assert redact_text(text) == text
    assert found_kinds(text) == []


def test_validators():
    assert elfproef("123456782") and elfproef("1234.56.782") and elfproef("111222333")
    assert not elfproef("123456789") and not elfproef("000000000") and not elfproef("12345")
    assert iban_mod97("NL91 ABNA 0417 1643 00") and iban_mod97("be68539007547034")
    assert iban_mod97("DE89 3704 0044 0532 0130 00")
    assert not iban_mod97("NL92ABNA0417164300") and not iban_mod97("NL91ABNA04171643")  # checksum, length


def test_mixed_message_in_rule_order():
    text = (
        "Ik ben Jan (jan@example.nl, 06-12345678), geboren 12-03-1965, bsn 123456782, "
        "NL91 ABNA 0417 1643 00, Dorpsstraat 12, 1234 AB Utrecht. Sinds 3 dagen 38,9 koorts."
    )
    assert redact_text(text) == (
        "Ik ben Jan ([e-mail], [telefoonnummer]), geboren [datum], bsn [bsn], "
        "[iban], Dorpsstraat [postcode en huisnummer] Utrecht. Sinds 3 dagen 38,9 koorts."
    )
    assert found_kinds(text) == ["email", "iban", "bsn", "date", "phone", "postcode"]


def test_placeholders_and_order():
    rules = load_rules()
    assert [(rule.name, rule.placeholder) for rule in rules] == [
        ("email", "[e-mail]"),
        ("iban", "[iban]"),
        ("bsn", "[bsn]"),
        ("date", "[datum]"),
        ("phone", "[telefoonnummer]"),
        ("postcode", "[postcode en huisnummer]"),
    ]
    assert load_rules(REDACTION_RULES) is rules  # cached
    for rule in rules:  # a placeholder is never redacted again
        assert redact_text(rule.placeholder) == rule.placeholder


def test_rules_can_be_passed_in():
    (email,) = parse_rules({"rules": [{"name": "email", "placeholder": "[mail]", "pattern": r"\S+@\S+"}]})
    assert redact_text("a@b.nl en 06-12345678", rules=[email]) == "[mail] en 06-12345678"
    assert redact_value({"t": "a@b.nl"}, rules=[email]) == {"t": "[mail]"}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"rules": []}, "non-empty"),
        ({"rules": [{"name": "x", "placeholder": "[x]", "pattern": "("}]}, "rules.x.pattern"),
        ({"rules": [{"name": "x", "placeholder": "x", "pattern": r"\d"}]}, "placeholder"),
        ({"rules": [{"name": "x", "placeholder": "[x1]", "pattern": r"\d"}]}, "placeholder"),
        ({"rules": [{"name": "x", "placeholder": "[x]", "pattern": r"\d", "check": "luhn"}]}, "unknown check"),
        ({"rules": [{"name": "x", "placeholder": "[x]", "pattern": r"{nope}\d"}]}, "unknown fragment"),
        ({"rules": [{"name": "x", "placeholder": "[x]", "pattern": r"\d", "flags": "i"}]}, "unknown key"),
    ],
)
def test_malformed_rules_fail_when_loaded(data, message):
    with pytest.raises(RedactionRulesError, match=message):
        parse_rules(data)


def user_event() -> dict:
    return {
        "event": "user",
        "timestamp": 1718186400.25,
        "text": "bel 06-12345678, ik ben 67 en heb 38,9 koorts",
        "input_channel": "rest",
        "message_id": "7f3a9c2e41d04b5e9a0c1d2e3f4a5b6c",
        "parse_data": {
            "text": "bel 06-12345678, ik ben 67 en heb 38,9 koorts",
            "intent": {"name": "report_symptom", "confidence": 0.93},
            "entities": [{"entity": "phone", "start": 4, "end": 15, "value": "06-12345678", "extractor": None}],
            "warning_signs": [{"clause": "geboren op 12 maart, mail a@b.nl", "sign": "fever", "negated": False}],
            "text_tokens": [[0, 3], [4, 15]],
            "spans": ("NL91 ABNA 0417 1643 00", 3),
        },
        "metadata": {
            "06-12345678": "sleutel blijft", "nested": [[{"deep": "BSN 123456789"}]], "count": 2, "none": None,
        },
    }


def test_redact_value_on_an_event_dict():
    event = user_event()
    original = copy.deepcopy(event)
    redacted = redact_value(event)
    assert event == original  # the input is not changed
    assert redacted["text"] == "bel [telefoonnummer], ik ben 67 en heb 38,9 koorts"
    assert redacted["parse_data"]["text"] == redacted["text"]
    assert redacted["parse_data"]["entities"][0]["value"] == "[telefoonnummer]"
    assert redacted["parse_data"]["warning_signs"][0]["clause"] == "geboren op [datum], mail [e-mail]"
    assert redacted["parse_data"]["spans"] == ("[iban]", 3)
    assert redacted["metadata"]["nested"] == [[{"deep": "BSN [bsn]"}]]
    # keys, numbers, None, booleans and clean strings unchanged
    assert list(redacted["metadata"]) == list(event["metadata"])
    assert redacted["metadata"]["06-12345678"] == "sleutel blijft"
    assert redacted["timestamp"] == 1718186400.25 and redacted["metadata"]["count"] == 2
    assert redacted["metadata"]["none"] is None and redacted["parse_data"]["warning_signs"][0]["negated"] is False
    assert redacted["parse_data"]["entities"][0]["extractor"] is None
    assert redacted["parse_data"]["entities"][0]["start"] == 4
    assert redacted["parse_data"]["intent"] == event["parse_data"]["intent"]
    assert redacted["parse_data"]["text_tokens"] == [[0, 3], [4, 15]]
    assert redacted["message_id"] == event["message_id"] and redacted["input_channel"] == "rest"
    # containers are copies: changing the output leaves the input alone
    redacted["parse_data"]["entities"].append({})
    assert len(event["parse_data"]["entities"]) == 1


@pytest.mark.parametrize(
    "value", [None, True, False, 0, 3.5, "", "geen getallen", "sinds 3 dagen 38,9", ["a", 1, None]]
)
def test_redact_value_leaves_clean_values(value):
    assert redact_value(value) == value
    assert type(redact_value(value)) is type(value)
    if isinstance(value, str):
        assert redact_value(value) is value
