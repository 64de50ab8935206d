"""Whose sign (policy behaviour 8) and the message scope flags of the detector.

(a) hearsay about someone else's past, (b) the writer's own resolved past and (c) general
questions about alarm signs do not escalate: their signs are reported under `hypothetical` with a
`reason`. (d) a sign of someone who is with the writer now counts as the writer's own. The flags
in `to_dict()["scope"]` tell a second (semantic) layer what governs the message as a whole.

Runs without a trained model or a running stack: only spaCy and bot/escalation/signs.yml.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from bot.escalation import SignsFileError, parse_sign_book
from bot.escalation.detector import Detection, SignDetector, get_detector
from bot.paths import SIGNS

URGENT = ("urgent_now", "urgent_112")
SCOPE_KEYS = {"hypothetical", "general_question", "hearsay", "resolved_past", "negation"}


@pytest.fixture(scope="module")
def detector() -> SignDetector:
    return get_detector()


def reasons(detection: Detection) -> set:
    return {match.reason for match in detection.hypothetical}


def flags(detection: Detection) -> set:
    return {key for key, value in detection.to_dict()["scope"].items() if value}


# --------------------------------------------------------------------------------------------
# (a) hearsay about someone else's past
# --------------------------------------------------------------------------------------------

HEARSAY_NOT_ESCALATED = [
    # Dutch
    "Mijn buurvrouw kon vorig jaar een week lang niet plassen door haar hernia.",
    "Mijn schoonvader had jaren geleden koorts en rugpijn, hij bleek een infectie te hebben.",
    "Een collega van mijn man had een paar jaar terug geen gevoel meer in zijn kruis.",
    "Mijn oma was destijds verlamd in beide benen na een val.",
    "Ik hoorde van een kennis dat zijn benen plotseling slap werden.",
    "Ik las dat iemand door een hernia niet meer kon plassen.",
    "Mijn buurman had vorig jaar een hernia. Hij kon niet meer plassen en moest met spoed geopereerd worden.",
    "Een vriendin van me had na haar bevalling een doof gevoel rond haar anus.",
    "Mijn moeder heeft destijds niet kunnen plassen.",
    "Iemand op mijn werk had koorts bij zijn rugpijn en bleek een ontsteking te hebben.",
    "Mijn vader is in 2015 van een steiger gevallen.",
    "Ik ken iemand die vorig jaar niet kon plassen.",
    # English
    "My neighbour had a fever with his back pain last year.",
    "A colleague of mine couldn't pee after his back surgery years ago.",
    "I read about someone who lost control of his bladder.",
    "My mother had numb legs back in 2010.",
]

HEARSAY_STILL_ESCALATED = [
    # the writer has it too, now
    ("Ik las dat iemand niet meer kon plassen. Dat heb ik nu ook!", URGENT),
    ("Mijn buurman kon vorig jaar niet plassen, net als ik nu.", URGENT),
    ("Mijn vriendin had vorig jaar hetzelfde als ik nu: ik kan niet plassen.", URGENT),
    ("Ik hoorde dat iemand met rugpijn niet kon plassen, en nu kan ik het ook niet.", URGENT),
    ("Op internet staat dat een doof gevoel in je kruis gevaarlijk is, ik heb dat sinds vanochtend.", URGENT),
    # the writer's own sign after the story
    ("Mijn moeder had vorig jaar een hernia en ik kan sinds gisteren niet plassen.", URGENT),
    ("Mijn buurman had vroeger ook rugpijn. Ik heb nu koorts en voel me echt ziek.", URGENT),
    ("Kan niet plassen volgens internet is dat gevaarlijk", URGENT),
    ("Kan niet plassen net als mijn moeder vroeger", URGENT),
    ("Ik zocht op internet wat het betekent dat ik niet kan plassen", URGENT),
    ("My friend had a fever years ago, and now I have a fever and feel very ill.", URGENT),
    ("I read that someone lost bladder control. I have that too!", URGENT),
    ("My friend couldn't pee last year, and I can't either.", URGENT),
    ("My neighbour couldn't pee last year, and I can't pee since this morning.", URGENT),
]


@pytest.mark.parametrize("text", HEARSAY_NOT_ESCALATED)
def test_hearsay_about_someone_elses_past_does_not_escalate(detector, text):
    detection = detector.detect(text)
    assert detection.level == "none", detection.to_dict()
    assert "hearsay" in reasons(detection), detection.to_dict()
    assert "hearsay" in flags(detection), detection.to_dict()


@pytest.mark.parametrize("text, levels", HEARSAY_STILL_ESCALATED)
def test_hearsay_does_not_hide_the_writers_own_sign(detector, text, levels):
    detection = detector.detect(text)
    assert detection.level in levels, detection.to_dict()
    assert not flags(detection) - {"negation"}, detection.to_dict()


# --------------------------------------------------------------------------------------------
# (d) a person who is with the writer now counts as the writer
# --------------------------------------------------------------------------------------------

WITH_THE_WRITER_NOW = [
    # Dutch
    ("Mijn vrouw kan sinds vanochtend niet meer plassen.", "urgent_now"),
    ("Mijn man z'n benen zijn sinds vanmiddag slap, hij komt de trap niet op.", "urgent_now"),
    ("Mijn vader van 80 voelt zijn benen niet meer.", "urgent_now"),
    ("Mijn moeder is vanochtend van de trap gevallen en heeft veel pijn in haar rug.", "urgent_112"),
    ("Mijn zoon kon vannacht niet plassen en heeft nu koorts.", "urgent_now"),
    ("Mijn vader had vroeger ook rugpijn en kan nu opeens niet meer lopen.", "urgent_now"),
    ("Mijn moeder had vorig jaar een hernia en kan sinds gisteren haar plas niet ophouden.", "urgent_now"),
    ("Mijn man kon gisteren niet plassen.", "urgent_now"),
    ("Mijn vrouw heeft vorig jaar een operatie gehad. Ze kan nu niet plassen.", "urgent_now"),
    ("Mijn vrouw kon niet plassen.", "urgent_now"),  # no distant past: when unsure, the higher level
    ("Mijn man had vanochtend geen gevoel in zijn benen.", "urgent_now"),
    ("Mijn man z'n benen waren vorig jaar slap na de operatie, nu kan hij de trap niet op.", "urgent_now"),
    ("Mijn vader is vorig jaar gevallen en kan sindsdien niet goed plassen.", "urgent_now"),
    ("Mijn dochter heeft koorts en ligt te rillen met haar rugpijn.", "soon"),
    # English
    ("My husband can't feel his legs since an hour.", "urgent_now"),
    ("My wife suddenly can't walk and her legs are numb.", "urgent_now"),
    ("My dad fell off a ladder this morning and his back hurts badly.", "urgent_112"),
    ("My son has a fever and back pain and feels very ill.", "urgent_now"),
    ("My husband had numb legs years ago, now he can't walk.", "urgent_now"),
]


@pytest.mark.parametrize("text, level", WITH_THE_WRITER_NOW)
def test_a_person_with_the_writer_now_counts(detector, text, level):
    detection = detector.detect(text)
    assert detection.level == level, detection.to_dict()


@pytest.mark.parametrize(
    "now, past",
    [
        ("Mijn vrouw kan sinds vanochtend niet meer plassen.", "Mijn vrouw kon destijds niet meer plassen."),
        ("Mijn vader kan sinds een uur zijn benen niet meer voelen.", "Mijn vader kon jaren geleden zijn benen niet meer voelen."),
        ("Mijn moeder heeft nu koorts bij haar rugpijn.", "Mijn moeder had vorig jaar koorts bij haar rugpijn."),
        ("My wife can't pee since this morning.", "My wife couldn't pee years ago."),
    ],
)
def test_present_or_recent_time_breaks_the_hearsay_scope(detector, now, past):
    assert detector.detect(now).level != "none"
    detection = detector.detect(past)
    assert detection.level == "none", detection.to_dict()
    assert "hearsay" in reasons(detection)


# --------------------------------------------------------------------------------------------
# (b) the writer's own resolved past
# --------------------------------------------------------------------------------------------

RESOLVED_PAST_NOT_ESCALATED = [
    # Dutch
    "In 2020 kon ik niet plassen, sindsdien klachtenvrij.",
    "Twee jaar geleden had ik koorts bij rugpijn, dat is over.",
    "Vroeger had ik vaak tintelingen in mijn linkerbeen.",
    "Als kind ben ik eens van een klimrek gevallen, daar heb ik nooit meer last van gehad.",
    "Ik had in 2018 een periode dat mijn benen gevoelloos waren, maar dat is helemaal over.",
    "Drie jaar geleden kreeg ik een hernia en kon ik slecht lopen. Inmiddels ben ik volledig hersteld.",
    "Ik ben vorig jaar van mijn fiets aangereden, sindsdien ben ik klachtenvrij.",
    "Jaren geleden had ik koorts en rillingen bij een nierbekkenontsteking. Dat is gelukkig voorbij.",
    "Ik heb in 2020 niet kunnen plassen, sindsdien nergens last van.",
    # English
    "In 2019 I couldn't pee for a day, I've been fine ever since.",
    "Years ago I had numbness in my groin, it went away.",
    "Back in 2015 I had a fever with back pain, I fully recovered.",
]

RESOLVED_PAST_STILL_ESCALATED = [
    # it came back, or it never went
    ("In 2020 kon ik niet plassen en nu gebeurt het weer.", URGENT),
    ("Vorig jaar had ik koorts bij rugpijn en nu heb ik het weer.", ("soon",)),
    ("Vroeger had ik koorts bij rugpijn. Nu is het terug.", ("soon",)),
    ("In 2018 had ik een hernia en toen kon ik ook niet plassen, net als nu.", URGENT),
    ("Twee jaar geleden had ik een hernia en sindsdien kan ik niet goed plassen.", URGENT),
    ("Vorig jaar begonnen de tintelingen in mijn been en ze zijn er nog steeds.", ("soon",)),
    ("Ik had vorig jaar koorts en ben sindsdien nooit meer helemaal beter geworden.", ("soon",)),
    # a present sign next to the past one
    ("Vroeger had ik tintelingen, sinds vanochtend kan ik niet plassen.", URGENT),
    ("Vroeger kon ik nog goed plassen, nu lukt het niet meer.", URGENT),
    ("Vorig jaar hernia gehad en vanochtend niet kunnen plassen", URGENT),
    ("Ik kan niet plassen zoals in 2020.", URGENT),
    # too recent to call it over (when unsure, the higher level)
    ("Ik kon vanochtend niet plassen. Nu is dat over.", URGENT),
    ("Vorige week had ik koorts, dat is over.", ("soon",)),
    # history signs keep counting
    ("Ik heb vroeger borstkanker gehad en nu rugpijn.", ("soon",)),
    ("Vroeger prostaatkanker gehad, sindsdien klachtenvrij. Nu weer rugpijn.", ("soon",)),
    # English
    ("In 2019 I had a fever with back pain and now it's back.", ("soon",)),
    ("Years ago I had back pain, now I can't feel my legs.", URGENT),
    ("Back in 2018 I couldn't pee for a day, and it is happening again.", URGENT),
]


@pytest.mark.parametrize("text", RESOLVED_PAST_NOT_ESCALATED)
def test_the_writers_resolved_past_does_not_escalate(detector, text):
    detection = detector.detect(text)
    assert detection.level == "none", detection.to_dict()
    assert "resolved_past" in reasons(detection), detection.to_dict()
    assert "resolved_past" in flags(detection), detection.to_dict()


@pytest.mark.parametrize("text, levels", RESOLVED_PAST_STILL_ESCALATED)
def test_past_that_is_not_over_still_escalates(detector, text, levels):
    detection = detector.detect(text)
    assert detection.level in levels, detection.to_dict()


def test_history_signs_survive_the_resolved_past(detector):
    detection = detector.detect("In 2015 borstkanker gehad, sindsdien klachtenvrij. Nu rugpijn.")
    assert "cancer_history" in detection.sign_ids
    assert detection.level == "soon"
    # someone else's cancer is not the writer's history
    detection = detector.detect("Mijn moeder had vroeger borstkanker.")
    assert detection.level == "none"
    assert {(m.sign_id, m.reason) for m in detection.hypothetical} == {("cancer_history", "hearsay")}


# --------------------------------------------------------------------------------------------
# (c) general questions about alarm signs
# --------------------------------------------------------------------------------------------

GENERAL_QUESTIONS = [
    # Dutch
    "Welke alarmsignalen zijn er bij rugpijn?",
    "Wanneer moet je naar de dokter bij rugpijn?",
    "Wanneer is rugpijn gevaarlijk?",
    "Is koorts bij rugpijn een alarmsignaal?",
    "Wat zijn de rode vlaggen bij hernia?",
    "Is niet kunnen plassen een alarmsignaal?",
    "Hoe weet je of gevoelloosheid in je benen ernstig is?",
    "Welke waarschuwingssignalen horen bij een hernia?",
    "Welke alarmsignalen moet ik in de gaten houden?",  # first person: the flag, no sign set apart
    # English
    "What are the warning signs of cauda equina?",
    "When should someone see a doctor for back pain?",
    "Is not being able to pee a red flag?",
    "Which red flags should I know about?",
]

GENERAL_LOOKING_BUT_PERSONAL = [
    "Is het gevaarlijk, ik kan sinds vanochtend niet plassen?",
    "Ik kan niet plassen, is dat een alarmsignaal?",
    "Wanneer moet ik naar de dokter? Ik kan al twee dagen niet plassen.",
    "Kan niet plassen, is dat gevaarlijk?",
    "Is het ernstig dat mijn benen gevoelloos zijn?",
    "Is dit ernstig: benen voelen doof",
    "Is dit een alarmsignaal, kan niet plassen?",
    "Is het gevaarlijk als je sinds gisteren niet kunt plassen?",
    "Should I see a doctor? I can't feel my legs.",
    "Is it dangerous that I can't pee?",
    "What are the red flags? I have had no feeling in my groin since this morning.",
]


@pytest.mark.parametrize("text", GENERAL_QUESTIONS)
def test_general_questions_about_alarm_signs_do_not_escalate(detector, text):
    detection = detector.detect(text)
    assert detection.level == "none", detection.to_dict()
    assert reasons(detection) <= {"general_question"}, detection.to_dict()
    assert "general_question" in flags(detection), detection.to_dict()


@pytest.mark.parametrize("text", GENERAL_LOOKING_BUT_PERSONAL)
def test_a_question_about_ones_own_sign_escalates(detector, text):
    detection = detector.detect(text)
    assert detection.level in URGENT, detection.to_dict()
    assert "general_question" not in flags(detection)


# --------------------------------------------------------------------------------------------
# The message scope flags and the audit record
# --------------------------------------------------------------------------------------------


def test_to_dict_has_reasons_and_scope(detector):
    data = detector.detect("Mijn buurman had vorig jaar koorts en kon niet plassen.").to_dict()
    assert set(data) == {"level", "signs", "hypothetical", "negated", "scope", "scoped"}
    assert set(data["scope"]) == SCOPE_KEYS
    assert all(isinstance(value, bool) for value in data["scope"].values())
    assert data["level"] == "none" and data["signs"] == []
    assert {(m["sign_id"], m["reason"]) for m in data["hypothetical"]} == {
        ("fever", "hearsay"),
        ("urinary_retention", "hearsay"),
    }
    assert data["scoped"] == [{"reason": "hearsay", "text": "Mijn buurman had vorig jaar koorts en kon niet plassen."}]
    # present and negated signs carry no reason
    data = detector.detect("Ik heb geen koorts maar kan niet plassen.").to_dict()
    assert all("reason" not in m for m in data["signs"] + data["negated"])
    assert data["scope"] == {key: key == "negation" for key in SCOPE_KEYS}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Wat als ik ooit niet meer kan plassen?", {"hypothetical"}),
        ("Stel dat mijn benen ooit slap worden, wat dan?", {"hypothetical"}),
        ("Welke alarmsignalen zijn er?", {"general_question"}),
        ("Mijn moeder kon destijds niet plassen.", {"hearsay"}),
        ("Vroeger had ik tintelingen in mijn been.", {"resolved_past"}),
        ("Ik heb geen koorts.", {"negation"}),
        ("Ik heb rugpijn.", set()),
        # a sign present outside the scopes: no flag
        ("Mijn moeder kon destijds niet plassen. Ik kan nu ook niet plassen.", set()),
        ("Wat als het erger wordt? Ik kan nu al niet meer plassen.", set()),
        # the writer reports something present outside the scopes: no flag (when unsure)
        ("Mijn buurman had vorig jaar koorts. Ik heb sinds gisteren rugpijn.", set()),
        ("Ik heb rugpijn. Wat als ik ooit niet meer kan plassen?", set()),
        # the scopes cover too little of the message
        ("Vroeger had ik rugpijn. Mijn plas komt er de laatste tijd nauwelijks nog uit en ik maak me zorgen.", set()),
    ],
)
def test_message_scope_flags(detector, text, expected):
    assert flags(detector.detect(text)) == expected, detector.detect(text).to_dict()


def test_detection_exposes_the_flags(detector):
    detection = detector.detect("Ik las dat iemand niet meer kon plassen, en ik heb geen koorts.")
    assert detection.scope.hearsay is True
    assert detection.negated_cues is True
    assert detection.not_present == detection.hypothetical


def test_flags_are_deterministic(detector):
    texts = [m for m in HEARSAY_NOT_ESCALATED[:4] + RESOLVED_PAST_NOT_ESCALATED[:4] + GENERAL_QUESTIONS[:4]]
    first = [detector.detect(text).to_dict() for text in texts]
    fresh = SignDetector.from_file(SIGNS, nlp=detector.nlp)
    assert [fresh.detect(text).to_dict() for text in texts] == first


# --------------------------------------------------------------------------------------------
# The data file
# --------------------------------------------------------------------------------------------


def test_whose_sign_section_is_validated():
    data = yaml.safe_load(Path(SIGNS).read_text(encoding="utf-8"))
    parse_sign_book(data)  # the file itself is fine
    broken = copy.deepcopy(data)
    broken["whose_sign"]["cues"][0]["kind"] = "rumour"
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
    broken = copy.deepcopy(data)
    broken["whose_sign"]["cues"][0]["stop_at"] = ["NO_SUCH_MARKER"]
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
    broken = copy.deepcopy(data)
    del broken["whose_sign"]["governs_share"]  # no defaults for the policy's bounds
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
    broken = copy.deepcopy(data)
    broken["hypothetical"]["general_questions"]["unless_any"] = ["NO_SUCH_MARKER"]
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
    broken = copy.deepcopy(data)
    broken["signs"][0]["history"] = "yes"
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
