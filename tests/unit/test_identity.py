"""The match skeleton and the text cleaning of patients.identity: what makes two spellings one person, and
what keeps the stored value as the customer sent it."""

from __future__ import annotations

import datetime
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patients.identity import _skeleton_slow, ascii_digits, bounded_key, clean_text, skeleton
from patients.matching import MATCH_KEY_LIMIT, match_key
from patients.normalize import normalize_dob, normalize_phone, normalize_ssn, normalize_zip

# Default_Ignorable_Code_Point samples: the ones the issue names, and others of the property.
IGNORABLES = [
    "\u200e",  # LEFT-TO-RIGHT MARK
    "\u200f",  # RIGHT-TO-LEFT MARK
    "\u00ad",  # SOFT HYPHEN
    "\u034f",  # COMBINING GRAPHEME JOINER
    "\u2062",  # INVISIBLE TIMES
    "\u202d",  # LEFT-TO-RIGHT OVERRIDE
    "\u180e",  # MONGOLIAN VOWEL SEPARATOR
    "\u3164",  # HANGUL FILLER
    "\u200b",  # ZERO WIDTH SPACE
    "\u200c",  # ZERO WIDTH NON-JOINER
    "\u200d",  # ZERO WIDTH JOINER
    "\u2060",  # WORD JOINER
    "\ufeff",  # BOM
    "\ufe0f",  # VARIATION SELECTOR-16
    "\U000e0041",  # TAG LATIN CAPITAL LETTER A
]


@pytest.mark.parametrize(
    "spelling",
    [
        "José",
        "Jose",
        "JOSE",
        "jose",
        "Jose\u0301",  # decomposed accent
        "J\u043es\u00e9",  # Cyrillic о
        "\uff2a\uff4f\uff53\u00e9",  # fullwidth Ｊｏｓé
        "\u0408ose",  # Cyrillic Ј
        "J\u200eo\u00ads\u034fe\u3164",
        "  Jose ",
        "JOSÉ",
    ],
)
def test_every_spelling_of_jose_has_one_skeleton(spelling: str) -> None:
    assert skeleton(spelling) == "jose"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Ann", "Anna"),
        ("Jose", "Josh"),
        ("Maria", "Mario"),
        ("Lee", "Li"),
        ("Mary Jane", "Mary-Jane"),  # a hyphen is not a space
        ("Ian", "Lan"),  # case folding first: "I" is "i", not the prototype "l"
    ],
)
def test_different_names_keep_different_skeletons(a: str, b: str) -> None:
    assert skeleton(a) != skeleton(b)


def test_whitespace_runs_and_other_spaces_collapse() -> None:
    assert skeleton("Mary\u00a0\u3000 Jane\t") == skeleton("mary jane") == "rnary jane"


def test_diacritics_and_letters_with_overlays_fold() -> None:
    assert skeleton("Søren Ñúñez") == skeleton("Soren Nunez")
    assert skeleton("Straße") == skeleton("STRASSE")


def test_look_alike_letters_map_to_their_prototype() -> None:
    # Greek omicron, Cyrillic о and Latin o look alike: one skeleton (Unicode TS #39 confusables).
    assert skeleton("R\u03bfse") == skeleton("R\u043ese") == skeleton("Rose")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_skeleton_is_idempotent(value: str) -> None:
    once = skeleton(value)
    assert skeleton(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(IGNORABLES)), max_size=6))
def test_skeleton_ignores_inserted_default_ignorables(value: str, inserts: list[tuple[int, str]]) -> None:
    spiked = value
    for position, char in inserts:
        at = position % (len(spiked) + 1)
        spiked = spiked[:at] + char + spiked[at:]
    assert skeleton(spiked) == skeleton(value)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_skeleton_ignores_case_and_normalization_form(value: str) -> None:
    expected = skeleton(value)
    assert skeleton(value.upper()) == skeleton(value.lower()) == skeleton(expected)
    assert skeleton(unicodedata.normalize("NFD", value)) == expected
    assert skeleton(unicodedata.normalize("NFKC", value)) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_the_ascii_fast_path_equals_the_unicode_path(value: str) -> None:
    assert skeleton(value) == _skeleton_slow(value)


def test_skeleton_is_what_match_key_compares() -> None:
    a = match_key(first_name="Jоsé", last_name="Garc\u00eda\u200e", dob="1980-01-02", gender_at_birth="M")
    b = match_key(first_name="JOSE", last_name="garcia", dob="1980-01-02", gender_at_birth="M")
    assert a == b
    assert a != match_key(first_name="JOSE", last_name="garcia", dob="1980-01-03", gender_at_birth="M")
    assert a != match_key(first_name="JOSE", last_name="garcia", dob="1980-01-02", gender_at_birth="F")


def test_a_very_long_key_is_stored_as_a_digest_that_fits_the_column() -> None:
    key = match_key(first_name="m" * 200, last_name="\ufdfa" * 50, dob="1980-01-02", gender_at_birth="M")
    assert len(key) <= MATCH_KEY_LIMIT and key.startswith("#")
    assert key == match_key(first_name="M" * 200, last_name="\ufdfa" * 50, dob="1980-01-02", gender_at_birth="M")
    assert bounded_key("short", 10) == "short"


# --- what is stored ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("char", IGNORABLES)
def test_clean_text_removes_every_default_ignorable(char: str) -> None:
    assert clean_text(f"{char}Ja{char}ne{char}") == "Jane"


def test_clean_text_keeps_case_accents_and_look_alikes_as_sent() -> None:
    # Stored values are what the customer sent, normalized: never the skeleton.
    assert clean_text("J\u043eSE\u0301") == "J\u043eS\u00c9"
    assert clean_text("\uff2a\uff4f") == "\uff2a\uff4f"


# --- digits in dates and zips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\uff11\uff19\uff18\uff10\uff0d\uff10\uff11\uff0d\uff10\uff12", "1980-01-02"),  # fullwidth, fullwidth dashes
        ("\u0661\u0669\u0668\u0660-\u0660\u0661-\u0660\u0662", "1980-01-02"),  # Arabic-Indic digits
        ("\u0967\u096f\u096e\u0966/\u0966\u0967/\u0966\u0968", "1980-01-02"),  # Devanagari digits
        ("1980\u201001\u201002", "1980-01-02"),  # U+2010 HYPHEN
        ("1980\u2013\u200e01\u201302", "1980-01-02"),  # en dash, a bidi mark
        ("\uff10\uff11/\uff10\uff12/\uff11\uff19\uff18\uff10", "1980-01-02"),  # fullwidth US form
    ],
)
def test_dob_in_other_digits_reads_as_ascii(value: str, expected: str) -> None:
    assert normalize_dob(value, today=datetime.date(2026, 1, 1)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\uff11\uff10\uff10\uff10\uff11", "10001"),
        ("\u0661\u0660\u0660\u0660\u0661", "10001"),
        ("\uff11\uff10\uff10\uff10\uff11\uff0d\uff11\uff12\uff13\uff14", "10001"),
        ("\u200b10001\u200e", "10001"),
        ("\uff12\uff11\uff10", "00210"),
    ],
)
def test_zip_in_other_digits_reads_as_ascii(value: str, expected: str) -> None:
    assert normalize_zip(value) == expected


def test_phone_and_ssn_in_fullwidth_digits_read_as_ascii() -> None:
    assert normalize_phone("\uff12\uff11\uff12-\uff15\uff15\uff15-\uff10\uff11\uff10\uff10") == "2125550100"
    assert normalize_ssn("\uff11\uff12\uff13-\uff14\uff15-\uff16\uff17\uff18\uff19") == "123456789"


def test_ascii_digits_leaves_ascii_and_letters_alone() -> None:
    value = "".join(["Jan 1, ", "1980"])
    assert ascii_digits(value) is value
    assert ascii_digits("\uff2a\uff41\uff4e \uff11") == "Jan 1"
    assert normalize_zip("\uff41\uff42\uff43\uff44\uff45") is None  # fullwidth letters are still no zip
