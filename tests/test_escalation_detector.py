"""Unit tests of the deterministic warning-sign detector (bot/escalation, signs.yml).

Runs without a trained model or a running stack: only spaCy and the signs file.
"""
from __future__ import annotations

import copy
import difflib
import random
from pathlib import Path

import pytest
import yaml

from bot.escalation import (
    ConversationSigns,
    SignsFileError,
    conversation_level,
    load_sign_book,
    parse_sign_book,
    remember,
)
from bot.escalation.detector import Detection, SignDetector, SignMatch, get_detector
from bot.escalation.segment import _typo_candidates, known_words, looks_like_a_typo, segmentation_settings
from bot.levels import LEVELS, level_rank, max_level
from bot.paths import SIGNS


@pytest.fixture(scope="module")
def detector() -> SignDetector:
    return get_detector()


@pytest.fixture(scope="module")
def book():
    return load_sign_book()


def found(detection: Detection) -> set:
    return {match.sign_id for match in detection.signs}


# One Dutch example per sign of signs.yml (test_every_sign_has_an_example keeps this complete).
SIGN_EXAMPLES = {
    "serious_accident": "Ik ben gisteren van de ladder gevallen en nu doet mijn rug erg zeer.",
    "chest_pain": "Naast mijn rugpijn heb ik ook pijn op de borst.",
    "short_of_breath": "Ik ben sinds vanmiddag kortademig en mijn rug doet pijn.",
    "urinary_retention": "Ik kan sinds vanochtend niet meer plassen.",
    "incontinence": "Ik verlies urine zonder dat ik het merk.",
    "saddle_anaesthesia": "Rond mijn anus en in mijn kruis voelt alles doof.",
    "both_legs_numb_or_weak": "Mijn beide benen zijn ineens heel slap.",
    "walking_fails": "Ik kan opeens niet meer lopen.",
    "foot_drop": "Mijn voet hangt slap en ik sleep met mijn voet.",
    "sexual_dysfunction": "Sinds de rugpijn krijg ik geen erectie meer.",
    "painkillers_do_not_help": "De pijnstillers helpen helemaal niet meer.",
    "unbearable_pain": "De pijn in mijn rug is ondraaglijk.",
    "fever": "Ik heb sinds gisteren koorts.",
    "feeling_ill": "Ik voel me de laatste dagen echt ziek.",
    "cancer_history": "Ik heb drie jaar geleden borstkanker gehad.",
    "weight_loss": "Ik ben de afgelopen maanden zes kilo afgevallen zonder dat ik lijn.",
    "constant_or_night_pain": "Ik word 's nachts wakker van de pijn in mijn rug.",
    "osteoporosis_or_steroids": "Ik heb botontkalking en sinds het bukken veel rugpijn.",
    "one_leg_numbness": "Mijn linkervoet tintelt de hele tijd.",
    "one_leg_weakness": "Ik heb minder kracht in mijn rechterbeen.",
    "numbness_unspecified": "Ik heb last van tintelingen.",
    "no_improvement": "Ik heb al zes weken rugpijn en het wordt niet beter.",
    "worsening": "De pijn wordt steeds erger.",
    "recurrent_pain": "De rugpijn komt steeds terug.",
    "lump_or_deformity": "Ik voel een nieuwe bult onderaan mijn rug.",
    "daily_life_limited": "Ik kan door de rugpijn niet meer werken.",
    "fall": "Ik ben vorige week uitgegleden op het ijs.",
    "back_pain": "Ik heb rugpijn.",
    "radiating_below_knee": "De pijn straalt uit tot onder mijn knie.",
    "belly_pain": "Ik heb ook buikpijn.",
    "shock_signs": "Ik ben een beetje duizelig.",
    "sudden_onset": "Het begon plotseling.",
    "severe_pain": "Het is een heftige pijn.",
    "recent_back_procedure": "Ik ben vorige week geopereerd aan mijn rug.",
    "first_episode": "Het is de eerste keer dat ik dit heb.",
    "age_over_50": "Ik ben 63 jaar oud.",
    "age_under_20": "Ik ben 17 jaar oud.",
    "other_leg_too": "Nu zit het ook in mijn andere been.",
}

# One Dutch example per combination (test_every_combination_has_an_example).
COMBINATION_EXAMPLES = {
    "back_pain_with_chest_pain_or_breathlessness": ("Ik heb rugpijn en pijn op de borst.", "urgent_112"),
    "back_and_belly_sudden_severe": ("Ik kreeg opeens hevige pijn in mijn buik en rug.", "urgent_112"),
    "severe_pain_with_shock": ("Ik heb vreselijke pijn en ben lijkbleek en klam.", "urgent_112"),
    "sudden_pain_with_shock": ("Ik werd plotseling duizelig.", "urgent_now"),
    "fever_and_feeling_ill": ("Ik heb koorts en voel me heel ziek.", "urgent_now"),
    "fever_after_back_procedure": ("Na de operatie aan mijn rug kreeg ik koorts.", "urgent_now"),
    "more_pain_after_back_procedure": ("Sinds de injectie in mijn rug wordt de pijn steeds erger.", "urgent_now"),
    "leg_weakness_worsening_fast": ("Mijn been wordt snel steeds zwakker.", "urgent_now"),
    "both_legs_over_time": ("Mijn linkerbeen was al gevoelloos en nu ook mijn andere been.", "urgent_now"),
    "first_back_pain_over_50": ("Ik ben 58 en heb voor het eerst rugpijn.", "soon"),
    "first_back_pain_under_20": ("Ik ben 16 en heb voor het eerst rugpijn.", "soon"),
    "back_pain_under_20": ("Ik ben 15 jaar oud en heb last van mijn onderrug.", "soon"),
}


# --------------------------------------------------------------------------------------------
# The data file
# --------------------------------------------------------------------------------------------


def test_levels_are_ordered():
    assert LEVELS == ("none", "soon", "urgent_now", "urgent_112")
    assert [level_rank(level) for level in LEVELS] == [0, 1, 2, 3]
    assert max_level("soon", "urgent_112", "none") == "urgent_112"
    assert max_level() == "none"
    assert level_rank("urgent_now") > level_rank("soon")
    assert max_level("none", "none") == "none"
    assert level_rank("soon") < level_rank("urgent_112")
    with pytest.raises(ValueError):
        level_rank("red")


def test_every_sign_has_id_level_description_and_patterns(book):
    raw = yaml.safe_load(Path(SIGNS).read_text(encoding="utf-8"))
    for sign in raw["signs"]:
        assert sign["id"] == sign["id"].lower() and " " not in sign["id"]
        assert sign["level"] in LEVELS
        assert sign["description"].strip()
    # every level above none has signs
    assert {sign.level for sign in book.signs.values()} == set(LEVELS)


def test_every_sign_has_an_example(book):
    assert set(SIGN_EXAMPLES) == set(book.sign_ids)


def test_every_combination_has_an_example(book):
    assert set(COMBINATION_EXAMPLES) == set(book.combination_ids)


def test_policy_signs_have_the_policy_level(book):
    level = {sign_id: book.level_of(sign_id) for sign_id in book.sign_ids + book.combination_ids}
    for sign_id in ("serious_accident", "chest_pain", "short_of_breath", "back_and_belly_sudden_severe"):
        assert level[sign_id] == "urgent_112", sign_id
    for sign_id in (
        "urinary_retention", "incontinence", "saddle_anaesthesia", "both_legs_numb_or_weak",
        "walking_fails", "foot_drop", "sexual_dysfunction", "painkillers_do_not_help",
        "fever_and_feeling_ill", "fever_after_back_procedure", "leg_weakness_worsening_fast",
    ):
        assert level[sign_id] == "urgent_now", sign_id
    for sign_id in (
        "fever", "cancer_history", "weight_loss", "feeling_ill", "constant_or_night_pain",
        "osteoporosis_or_steroids", "one_leg_numbness", "one_leg_weakness", "no_improvement",
        "worsening", "recurrent_pain", "lump_or_deformity", "daily_life_limited",
        "first_back_pain_over_50",
    ):
        assert level[sign_id] == "soon", sign_id
    assert level["radiating_below_knee"] == "none"
    assert level["back_pain"] == "none"


def test_bad_signs_file_is_rejected_when_loading():
    data = yaml.safe_load(Path(SIGNS).read_text(encoding="utf-8"))
    broken = copy.deepcopy(data)
    broken["signs"][0]["level"] = "red"
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
    broken = copy.deepcopy(data)
    broken["combinations"][0]["requires"] = ["no_such_sign"]
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
    broken = copy.deepcopy(data)
    broken["terms"]["PAIN"]["words"].append(False)  # what YAML makes of a bare `no`
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
    broken = copy.deepcopy(data)
    del broken["settings"]["max_term_candidates"]  # the engine has no defaults for bounds
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)
    broken = copy.deepcopy(data)
    broken["negation"]["coordination"] = ["of", "de"]  # conjunctions and fillers are kept apart
    with pytest.raises(SignsFileError):
        parse_sign_book(broken)


# --------------------------------------------------------------------------------------------
# Every sign and combination
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sign_id", sorted(SIGN_EXAMPLES))
def test_sign_is_triggered_by_its_example(detector, book, sign_id):
    detection = detector.detect(SIGN_EXAMPLES[sign_id])
    assert sign_id in found(detection), detection.to_dict()
    assert level_rank(detection.level) >= level_rank(book.level_of(sign_id))


@pytest.mark.parametrize("combination_id", sorted(COMBINATION_EXAMPLES))
def test_combination_is_triggered_by_its_example(detector, combination_id):
    text, level = COMBINATION_EXAMPLES[combination_id]
    detection = detector.detect(text)
    assert combination_id in found(detection), detection.to_dict()
    assert detection.level == level


@pytest.mark.parametrize(
    "text, level",
    [
        # urgent_112
        ("Ik ben van de trap gevallen en kan mijn rug nauwelijks bewegen", "urgent_112"),
        ("Na een auto-ongeluk heb ik veel rugpijn", "urgent_112"),
        ("Ik ben op de fiets aangereden door een auto", "urgent_112"),
        ("Ik ben met de auto tegen een boom gereden", "urgent_112"),
        ("Mijn auto is over de kop geslagen", "urgent_112"),
        ("Mijn rug doet pijn en ik ben erg benauwd", "urgent_112"),
        ("Ik heb plotseling scheurende pijn in mijn rug en viel flauw", "urgent_112"),
        # urgent_now
        ("Plassen lukt sinds vanochtend niet meer", "urgent_now"),
        ("Ik heb moeite met plassen", "urgent_now"),
        ("ik kan niet plasen", "urgent_now"),  # typo
        ("Ik plas in mijn broek zonder dat ik het merk", "urgent_now"),
        ("Bij het afvegen voel ik bijna niks meer", "urgent_now"),
        ("De binnenkant van mijn dijen is gevoelloos", "urgent_now"),
        ("mijn benen zijn gevoeloos", "urgent_now"),  # typo
        ("Ik voel mijn benen niet meer", "urgent_now"),
        ("Mijn benen begaven het ineens", "urgent_now"),
        ("ik merk dat ik mijn benen niet goed kan bewegen", "urgent_now"),  # weakness by what fails
        ("Ik heb koors en ben echt heel ziek", "urgent_now"),  # typo
        ("Ik heb hoge koorts, koude rillingen en voel me beroerd", "urgent_now"),
        ("Vorige week geopereerd aan mijn hernia en nu 39 graden", "urgent_now"),
        ("Paracetamol en ibuprofen doen helemaal niks tegen de pijn", "urgent_now"),
        ("Er werkt geen enkele pijnstiller meer", "urgent_now"),  # the negation is the sign
        ("Ik merk dat ik mijn plas niet meer kan ophouden", "urgent_now"),  # verb last
        ("Ik merk dat ik opeens niet meer kan lopen", "urgent_now"),  # verb last
        ("Ik schrik ervan dat ik bij het afvegen niks voel", "urgent_now"),  # verb last
        ("Ik krijg mijn linkervoet niet meer omhoog", "urgent_now"),  # foot drop
        ("Mijn man kan sinds vanochtend zijn benen niet meer bewegen", "urgent_now"),  # a long middle
        ("Ik moet persen om te plassen en er komt maar een straaltje", "urgent_now"),
        ("Ik voel het niet meer als ik moet poepen", "urgent_now"),
        ("Mijn benen trillen en ik val steeds om", "urgent_now"),
        ("Mijn tenen slepen over de grond", "urgent_now"),  # foot drop
        ("Vorige week aan mijn hernia geopereerd en nu 38,5", "urgent_now"),  # a temperature, no unit
        ("ik kan nie meer pisse", "urgent_now"),  # Flemish
        ("ik voel mijne poep nie meer komen", "urgent_now"),
        ("Mijn broek was nat en ik had het niet door", "urgent_now"),
        ("Mijn kruis voelt als een dood stuk vlees", "urgent_now"),
        ("Mijn benen werken niet meer mee", "urgent_now"),
        ("Ik struikel steeds over mijn voet", "urgent_now"),  # foot drop
        ("Ik bel omdat ik mijn tenen niet meer kan optillen", "urgent_now"),  # foot drop, verb last
        ("Geen enkele pil helpt tegen deze rugpijn", "urgent_now"),
        ("Niks helpt meer tegen de pijn, ook geen morfine", "urgent_now"),  # "ook geen": not either
        ("Rust helpt niet, zelfs de tramadol niet", "urgent_now"),
        ("Ik slik pijnstillers maar het helpt geen moer", "urgent_now"),
        ("Zelfs met morfine is het niet te doen", "urgent_now"),  # "niet te doen" is no denial
        ("Mijn vagina voelt ook niet goed meer", "urgent_now"),  # "ook" between part and "niet"
        ("Welke oefeningen helpen? Ik kan trouwens niet meer plassen.", "urgent_now"),
        # soon
        ("Ik heb wat tintelingen in mijn rechtervoet", "soon"),
        ("Sinds vanochtend kan ik mijn linkerbeen niet goed optillen", "soon"),  # one leg
        ("De pijn is er constant, ook in rust", "soon"),
        ("Ik gebruik al jaren prednison en heb sinds gisteren rugpijn", "soon"),
        ("Na vier weken is het nog steeds niet minder geworden", "soon"),
        ("Ik voel me al een tijdje niet lekker", "soon"),
        ("Ik ben zonder reden veel afgevallen", "soon"),
        ("Ik word steeds magerder en mijn rug doet pijn", "soon"),
        ("Mijn rugpijn gaat nooit meer over", "soon"),  # "nooit" is part of the sign
        ("Ik ben nooit meer pijnvrij", "soon"),
        ("Ik lig al drie dagen plat met mijn rug", "soon"),
        ("Ik krijg mijn sokken niet meer aan door de pijn", "soon"),
        ("Ik merk dat ik nauwelijks nog kan werken", "soon"),  # verb last
        ("Ik merk dat de pijn niet meer weggaat", "soon"),  # verb last
        ("Ik merk dat ik steeds verder afval", "soon"),
        ("Ik slaap niet meer van de pijn", "soon"),
        ("Ik verlies gewicht zonder dat ik er iets voor doe", "soon"),
        # none
        ("Welke oefeningen zijn goed bij rugpijn?", "none"),
        ("Ik heb sinds gisteren rugpijn, wat kan ik zelf doen?", "none"),
        ("De pijn straalt uit tot onder mijn knie", "none"),
        ("Ik heb ischias in mijn rechterbeen", "none"),
        ("Mijn rug doet pijn als ik buk", "none"),
        ("Ik kan mijn rug niet goed bewegen door de pijn", "none"),  # the back, not a limb
        ("Ik kan mijn benen gelukkig nog goed bewegen", "none"),
        ("Ik heb per ongeluk iets te zwaars getild", "none"),
        ("Het wordt erger als ik lang zit", "none"),
        ("Als ik plat lig op de vloer gaat het beter", "none"),  # lying flat is a posture
        ("Toen ik het afval buiten zette, schoot het in mijn rug", "none"),  # garbage, not weight
        ("Ik merk dat ik niet lang kan zitten", "none"),
        ("Ik wil gewicht verliezen, welke oefeningen passen daarbij?", "none"),
        ("Ik ben tegen mijn zin naar de fysio gereden", "none"),  # no vehicle
        ("Is dat kussen nu 38,5 euro?", "none"),  # a price, not a temperature
        ("Ik val om van de slaap", "none"),
        ("Mijn broek is nat van de regen, helpt warmte?", "none"),
        ("Ik heb geen pijnstillers nodig, welke oefeningen helpen?", "none"),
        ("Rust helpt niet, ook geen paracetamol nodig gehad", "none"),  # not taken, so not failing
        ("Mijn rugpijn gaat na een dag weer over", "none"),
        ("In 2019 had ik koorts bij mijn rugpijn, dat is toen vanzelf overgegaan", "none"),  # resolved past
        ("Ik kon vorig jaar niet plassen, dat is toen overgegaan, maar sinds gisteren lukt het weer niet",
         "urgent_now"),
        ("Zijn buikspieroefeningen goed voor je rug?", "none"),
        ("Wat kost het zitkussen?", "none"),
    ],
)
def test_levels_of_typical_messages(detector, text, level):
    detection = detector.detect(text)
    assert detection.level == level, detection.to_dict()


@pytest.mark.parametrize(
    "text, level",
    [
        ("I can't pee", "urgent_now"),
        ("The painkillers aren't touching it", "urgent_now"),
        ("I've lost feeling down there", "urgent_now"),
        ("My legs feel like lead and won't hold me", "urgent_now"),
        ("My foot keeps slapping the floor", "urgent_now"),
        ("The pain is so bad nothing helps", "urgent_now"),
        ("Nothing comes to mind, any tips for my back?", "none"),
        ("I can't urinate since this morning", "urgent_now"),
        ("I have a numb groin", "urgent_now"),
        ("my saddle area feels numb", "urgent_now"),
        ("both legs weak", "urgent_now"),
        ("I suddenly can't walk", "urgent_now"),
        ("I wet myself without noticing", "urgent_now"),
        ("I have a fever and feel very ill", "urgent_now"),
        ("the painkillers don't help at all", "urgent_now"),
        ("I have back pain and chest pain", "urgent_112"),
        ("I'm short of breath", "urgent_112"),
        ("I fell from a ladder", "urgent_112"),
        ("I was in a car accident", "urgent_112"),
        ("I have a fever", "soon"),
        ("my leg is numb", "soon"),
    ],
)
def test_common_english_phrasings(detector, text, level):
    assert detector.detect(text).level == level


# --------------------------------------------------------------------------------------------
# Negation and hypotheticals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, negated_sign",
    [
        ("Ik heb geen koorts", "fever"),
        ("geen koorts", "fever"),
        ("Mijn been is niet doof", "one_leg_numbness"),
        ("Pijn in mijn onderrug zonder uitstraling", "radiating_below_knee"),
        ("I don't have a fever", "fever"),
        ("Ik heb geen pijn op de borst", "chest_pain"),
        ("Ik heb geen moeite met plassen", "urinary_retention"),
        ("Mijn benen zijn niet gevoelloos", "both_legs_numb_or_weak"),
        ("Geen tintelingen of gevoelloosheid", "numbness_unspecified"),
        ("Ik heb nooit kanker gehad", "cancer_history"),
        ("Koorts heb ik niet", "fever"),
        ("koorts: nee", "fever"),
        ("I have no numbness", "numbness_unspecified"),
        ("Ik denk niet dat mijn been zwakker wordt", "one_leg_weakness"),  # clause cue
        ("Het is niet zo dat ik koorts heb", "fever"),
    ],
)
def test_negated_signs_do_not_escalate(detector, text, negated_sign):
    detection = detector.detect(text)
    assert detection.level == "none", detection.to_dict()
    assert negated_sign in {match.sign_id for match in detection.negated}


@pytest.mark.parametrize(
    "text",
    ["ik kan gewoon plassen", "Ik kan gewoon lopen en plassen", "Plassen gaat prima, geen probleem",
     "Ik heb geen koorts en kan gewoon plassen", "I can still pee normally"],
)
def test_normal_function_does_not_escalate(detector, text):
    assert detector.detect(text).level == "none"


@pytest.mark.parametrize(
    "text, level",
    [
        # the cue's scope ends at the clause: the second half still counts
        ("Ik heb geen koorts en kan niet plassen", "urgent_now"),
        ("Geen koorts, wel rillingen", "soon"),
        ("Ik heb geen rugpijn meer maar mijn benen zijn gevoelloos", "urgent_now"),
        ("Ik kan gewoon niet plassen", "urgent_now"),  # "gewoon niet" is no normal function
        ("Ik heb niet alleen rugpijn maar ook koorts", "soon"),  # pseudo-negation
        ("Ik weet niet of ik koorts heb", "soon"),  # uncertainty: the higher level
        ("Ik ben zonder duidelijke reden afgevallen", "soon"),
        ("Ik verlies urine zonder het te merken", "urgent_now"),
        ("Ik denk niet dat het ernstig is, maar ik kan niet plassen", "urgent_now"),
        # degree, not presence, is denied: the symptom counts (when unsure, the higher level)
        ("Ik voel me niet heel erg ziek, wel heb ik 39 graden koorts", "urgent_now"),
        ("Ik heb geen hoge koorts", "soon"),
        # a cue never negates the phrase it belongs to: "nooit ... gehad" is a first episode
        ("Ik ben 64 en heb nog nooit rugklachten gehad, tot vorige week", "soon"),
    ],
)
def test_negation_scope_is_limited(detector, text, level):
    assert detector.detect(text).level == level


@pytest.mark.parametrize(
    "text, sign",
    [
        ("wat als ik ooit gevoelloos word?", "numbness_unspecified"),
        ("Stel dat ik niet meer kan plassen, wat moet ik dan doen?", "urinary_retention"),
        ("Stel dat ik mijn plas niet meer kan ophouden, wat dan?", "incontinence"),
        ("Wat als mijn benen ooit slap worden?", "both_legs_numb_or_weak"),
        ("Moet ik naar de huisarts als ik koorts krijg?", "fever"),
        ("Zou het kanker kunnen zijn?", "cancer_history"),
        ("Kun je van rugpijn koorts krijgen?", "fever"),
        ("What if I get a fever?", "fever"),
        ("In case I can't pee, what should I do?", "urinary_retention"),
        ("Moet ik me zorgen maken als mijn been later gaat tintelen?", "one_leg_numbness"),
        ("Mijn zus zei dat je bij een doof gevoel in je kruis moet bellen.", "saddle_anaesthesia"),
    ],
)
def test_hypotheticals_are_set_apart(detector, text, sign):
    detection = detector.detect(text)
    assert detection.level == "none", detection.to_dict()
    assert sign in {match.sign_id for match in detection.hypothetical}


@pytest.mark.parametrize(
    "text, level",
    [
        ("Ik heb ooit borstkanker gehad", "soon"),  # "ooit" + past: history, not hypothetical
        ("Als ik lang zit krijg ik tintelingen in mijn been", "soon"),  # habitual, real
        ("Wat als het erger wordt? Ik kan nu al niet meer plassen.", "urgent_now"),
        ("Ik heb koorts, wat als het erger wordt?", "soon"),
        ("Wat moet ik doen als ik niet meer kan plassen?", "urgent_now"),  # unsure: escalate
        ("Als mijn been tintelt, wat moet ik doen?", "soon"),  # no future verb: a real symptom
        # passed-on advice is general; the writer's own sign after "en" is real
        ("De huisarts zei dat je bij koorts moet bellen en ik heb nu koorts", "soon"),
    ],
)
def test_hypothetical_scope_is_limited(detector, text, level):
    assert detector.detect(text).level == level


# --------------------------------------------------------------------------------------------
# Combinations and conversation memory
# --------------------------------------------------------------------------------------------


def test_fever_alone_is_soon_and_with_feeling_ill_urgent(detector):
    assert detector.detect("Ik heb koorts").level == "soon"
    assert detector.detect("Ik voel me ziek").level == "soon"
    assert detector.detect("Ik heb koorts en ik voel me echt heel ziek").level == "urgent_now"


def remember_after(detector, earlier: str, now: str) -> ConversationSigns:
    """The conversation's memory after two messages."""
    return remember([], [detector.detect(earlier).to_dict()], detector.detect(now).to_dict())


def test_memory_fever_then_feeling_ill(detector, book):
    first = detector.detect("ik heb koorts")
    assert first.level == "soon"
    second = detector.detect("ik voel me echt heel ziek")
    memory = remember([], [first.to_dict()], second.to_dict())
    assert memory.level == "urgent_now"
    assert memory.signs[0] == "fever" and "feeling_ill" in memory.signs
    assert "fever_and_feeling_ill" in {c.id for c in book.conversation_combinations(memory.signs)}


def test_memory_spec_example(detector):
    earlier = detector.detect("ik heb rugpijn")
    assert "back_pain" in earlier.sign_ids
    later = detector.detect("en nu ook koorts en ik voel me echt ziek")
    memory = remember([], [earlier.to_dict()], later.to_dict())
    assert memory.level == "urgent_now"
    assert memory.signs[0] == "back_pain"  # a context sign of level none is remembered


def test_memory_procedure_then_fever(detector):
    assert detector.detect("Ik heb nu koorts").level == "soon"
    memory = remember_after(detector, "Ik ben vorige week aan mijn rug geopereerd", "Ik heb nu koorts")
    assert memory.level == "urgent_now"


def test_memory_one_leg_then_other_leg(detector):
    memory = remember_after(detector, "Mijn linkerbeen is gevoelloos", "En nu zit het ook in mijn andere been")
    assert memory.level == "urgent_now"


def test_memory_first_episode_and_age(detector):
    assert remember_after(detector, "Ik ben 61 jaar oud", "Ik heb voor het eerst rugpijn").level == "soon"
    assert detector.detect("Ik heb voor het eerst rugpijn").level == "none"


def test_message_scope_combination_needs_one_message(detector):
    assert remember_after(detector, "Het begon plotseling", "Ik heb wat minder kracht in mijn been").level == "soon"
    assert detector.detect("Ik heb plotseling minder kracht in mijn been").level == "urgent_now"


def test_memory_does_not_replay_old_signs(detector):
    # the conversation's earlier urgent sign is not this message's level
    detection = detector.detect("Welke oefeningen kan ik doen?")
    assert detection.level == "none"
    assert not detection.signs
    kept = ["urinary_retention", "fever", "feeling_ill"]
    assert remember(kept, [], detection.to_dict()).signs == tuple(kept)


def test_unknown_or_odd_memory_ids_are_ignored(detector):
    detection = detector.detect("ik heb koorts").to_dict()
    assert remember(["nonsense", "", None, 3], [], detection).level == "soon"  # type: ignore[list-item]
    assert remember(None, [], detection).level == "soon"  # type: ignore[arg-type]
    odd_earlier = [{}, {"signs": None}, {"signs": ["fever", None]}, {"signs": [{"sign_id": 3}]}]
    assert remember([], odd_earlier, detection).signs == ("fever",)


def test_remember_keeps_the_order_signs_were_first_reported():
    earlier = [{"signs": [{"sign_id": "back_pain"}, {"sign_id": "fever"}]}]
    now = {"signs": [{"sign_id": "fever"}, {"sign_id": "feeling_ill"}]}
    memory = remember(["age_over_50", "back_pain"], earlier, now, extra=["learned_symptom_report"])
    assert memory == ConversationSigns(
        ("age_over_50", "back_pain", "fever", "feeling_ill", "learned_symptom_report"), "urgent_now"
    )


def test_radiating_pain_alone_is_none_with_numbness_soon(detector):
    assert detector.detect("Ik heb pijn die uitstraalt naar mijn kuit").level == "none"
    assert detector.detect("De pijn straalt uit naar mijn been en mijn voet tintelt").level == "soon"


def test_one_leg_soon_both_legs_urgent(detector):
    assert detector.detect("Mijn rechterbeen is gevoelloos").level == "soon"
    assert detector.detect("Mijn benen zijn gevoelloos").level == "urgent_now"
    detection = detector.detect("Mijn benen en mijn voet tintelen")
    assert "both_legs_numb_or_weak" in found(detection)
    assert "one_leg_numbness" not in found(detection)  # suppressed by the more specific sign


def test_combine_level_for_the_action_server():
    assert conversation_level([]) == "none"
    assert conversation_level(["back_pain"]) == "none"
    assert conversation_level(["fever"]) == "soon"
    assert conversation_level(["fever", "feeling_ill"]) == "urgent_now"
    assert conversation_level(["back_pain", "chest_pain"]) == "urgent_112"
    assert conversation_level(["age_over_50", "first_episode"]) == "soon"
    assert conversation_level(["recent_back_procedure", "worsening"]) == "urgent_now"
    # message-scope combinations count only through their stored id
    assert conversation_level(["one_leg_weakness", "sudden_onset"]) == "soon"
    assert conversation_level(["leg_weakness_worsening_fast"]) == "urgent_now"
    assert conversation_level(["unknown", None, 5]) == "none"  # type: ignore[list-item]
    assert conversation_level(None) == "none"  # type: ignore[arg-type]


def test_detection_level_equals_combine_level_of_its_signs(detector):
    for text in ["Ik heb koorts en voel me heel ziek", "Ik kan niet plassen", "Ik heb rugpijn", "Ik heb koorts"]:
        detection = detector.detect(text)
        assert conversation_level(detection.sign_ids) == detection.level


# --------------------------------------------------------------------------------------------
# Output, robustness, determinism
# --------------------------------------------------------------------------------------------


def test_to_dict_shape(detector):
    detection = detector.detect("Ik heb geen koorts maar kan niet plassen. Wat als ik ooit gevoelloos word?")
    data = detection.to_dict()
    assert set(data) == {"level", "signs", "hypothetical", "negated", "scope", "scoped"}
    assert data["level"] == "urgent_now"
    assert data["signs"][0] == {"sign_id": "urinary_retention", "level": "urgent_now", "text": "niet plassen"}
    assert [m["sign_id"] for m in data["negated"]] == ["fever"]
    assert [m["sign_id"] for m in data["hypothetical"]] == ["numbness_unspecified"]
    assert isinstance(detection.signs[0], SignMatch)
    with pytest.raises(Exception):
        detection.level = "none"  # frozen


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\n\n\t",
        None,
        b"ik heb koorts",
        12345,
        "😀😀😀 🤕🔥",
        "<p>ik heb <b>koorts</b></p><script>alert(1)</script>",
        "&lt;b&gt;koorts&lt;/b&gt; &amp; &#x1F600;",
        "腰痛があります。足がしびれています。",
        "У меня болит спина и температура",
        "ظهري يؤلمني",
        "\x00\x01\x02 koorts \x7f",
        "?!?!?!...,,,;;;:::",
        "a" * 10000,
        "koorts " * 2000,
        ("Ik heb rugpijn en geen koorts. " * 400)[:10000],
        "ik kan niet plassen\u200b\u200d\ufeff",
        "'s'-'n'-''''",
        "niet niet niet geen geen nooit zonder",
        "wat als wat als stel dat ooit ooit",
    ],
)
def test_never_raises(detector, text):
    detection = detector.detect(text)  # type: ignore[arg-type]
    assert detection.level in LEVELS
    assert isinstance(detection.to_dict(), dict)


def test_markup_and_unicode_do_not_hide_signs(detector):
    assert detector.detect("<p>Ik kan <b>niet</b> meer plassen</p>").level == "urgent_now"
    assert detector.detect("Ik heb koorts&nbsp;en voel me ziek").level == "urgent_now"
    assert detector.detect("Ik kan niet plassen!!Help").level == "urgent_now"
    assert detector.detect("koorts,rillingen en ik voel me ziek").level == "urgent_now"
    assert detector.detect("IK KAN NIET MEER PLASSEN").level == "urgent_now"
    assert detector.detect("ik heb koooorts").level == "soon"
    assert detector.detect("mijn knieën en benen zijn gevoelloos").level == "urgent_now"


def test_long_message_with_sign_at_the_end(detector):
    text = "Ik heb een vraag over oefeningen. " * 250 + "Ik kan sinds gisteren niet meer plassen."
    assert len(text) > 8000
    assert detector.detect(text).level == "urgent_now"


def test_deterministic(detector):
    texts = [
        "Ik heb geen koorts maar voel me wel ziek en kan niet plassen, mijn benen tintelen",
        "Plotseling hevige pijn in mijn rug en buik, ik ben bleek en zweet",
        "wat als ik ooit gevoelloos word? ik ben 55 en heb voor het eerst rugpijn",
    ]
    first = [detector.detect(text).to_dict() for text in texts]
    for _ in range(3):
        assert [detector.detect(text).to_dict() for text in texts] == first
    fresh = SignDetector.from_file(SIGNS, nlp=detector.nlp)
    assert [fresh.detect(text).to_dict() for text in texts] == first


def test_typo_check_accepts_exactly_the_words_difflib_accepts():
    """`looks_like_a_typo` (rapidfuzz prefilter, difflib's ratio) against the plain difflib scan it
    replaced, on typos of the listed words (one to three random edits, seeded) and on other words."""
    cutoff = segmentation_settings()["typo_similarity"]
    rng = random.Random(7)
    listed = sorted(known_words())
    letters = "abcdefghijklmnopqrstuvwxyzëé"
    words = set()
    for word in rng.sample(listed, 300):
        for edits in (1, 2, 3):
            typo = list(word)
            for _ in range(edits):
                position = rng.randrange(len(typo) + 1)
                kind = rng.choice(("insert", "delete", "replace", "swap"))
                if kind == "insert":
                    typo.insert(position, rng.choice(letters))
                elif typo and kind == "delete":
                    del typo[min(position, len(typo) - 1)]
                elif typo and kind == "replace":
                    typo[min(position, len(typo) - 1)] = rng.choice(letters)
                elif len(typo) > 1:
                    index = min(position, len(typo) - 2)
                    typo[index], typo[index + 1] = typo[index + 1], typo[index]
            words.add("".join(typo))
    words |= {"fysiotherapiebehandeling", "kanplasnie", "tenenslepenoverdegrond", "gevoelloss", "gevalen", "rugpijnn"}
    expected = {word: bool(difflib.get_close_matches(word, _typo_candidates(len(word)), n=1, cutoff=cutoff)) for word in words}
    assert {word: looks_like_a_typo(word) for word in words} == expected
    assert 0.2 < sum(expected.values()) / len(expected) < 0.95  # both answers are exercised
