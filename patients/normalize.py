"""Normalizers for patient demographics, re-implementing Metriport's patient-import rules.

Pure functions, no Django. Each returns the normalized value, or None when the value is invalid (or
empty, where emptiness is meaningful). Every normalizer is idempotent: a normalized value normalizes
to itself, so re-processing a request can never drift.

Where Metriport accepts something ambiguous or lossy, this module is stricter, and where Metriport
rejects something unambiguous in practice (US spreadsheet dates), it accepts it; each such place
says so. Nothing here logs or raises with the input value: these values are PHI.
"""

from __future__ import annotations

import datetime
import enum
import re

from patients.identity import ascii_digits, clean_text

__all__ = [
    "INVISIBLE_CHARACTERS",
    "DobProblem",
    "clean_text",
    "US_STATES",
    "US_TERRITORIES",
    "normalize_address_line",
    "normalize_city",
    "normalize_dob",
    "normalize_drivers_license_value",
    "normalize_email",
    "normalize_external_id",
    "normalize_gender",
    "normalize_hie_opt_out",
    "normalize_name",
    "normalize_phone",
    "normalize_ssn",
    "normalize_state",
    "normalize_zip",
    "parse_dob",
    "parse_dob_text",
    "split_address_unit",
    "title_case",
    "title_case_if_not_multi_case",
]

_ASCII_DIGITS = frozenset("0123456789")
_ASCII_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")

# Bounded memo tables for low-cardinality columns (state, gender). A plain dict lookup is cheaper than
# lru_cache's wrapper, and the cap keeps a hostile file full of distinct junk from growing memory.
_MEMO_CAP = 4096


# --- Unicode --------------------------------------------------------------------------------------------

# The five invisible characters a header name drops (patients.header); cells lose every default-ignorable
# code point (patients.identity.clean_text).
INVISIBLE_CHARACTERS = "\u200b\u200c\u200d\u2060\ufeff"


# --- names and casing -------------------------------------------------------------------------------


def _capitalize_word(word: str) -> str:
    # Metriport capitalizes each apostrophe-separated part (D'Angelo, O'Neil) and nothing else, so
    # hyphenated names keep their second part as typed in lower case ("Mary-jane"), unlike str.title().
    if "'" in word:
        return "'".join(part.capitalize() for part in word.split("'"))
    return word.capitalize()


def title_case(value: str) -> str:
    """Metriport's toTitleCase: trim, lower-case, collapse whitespace, capitalize each word."""
    return " ".join(_capitalize_word(word) for word in value.lower().split())


def _is_single_case(value: str) -> bool:
    return value.lower() == value or value.upper() == value


def title_case_if_not_multi_case(value: str) -> str:
    """Title-case values typed in one case (JOHN, john); keep mixed case as typed (McDonald, DeShawn)."""
    value = value.strip()
    if not _is_single_case(value):
        return value
    result = title_case(value)
    if not result.isascii():
        # A few Unicode letters change length or case class when capitalized (the "ﬀ" ligature, "ŉ");
        # iterate to a fixed point so normalizing twice never gives a different answer.
        for _ in range(4):
            if not _is_single_case(result):
                break
            again = title_case(result)
            if again == result:
                break
            result = again
    return result


def normalize_name(value: str) -> str | None:
    """First or last name: whitespace (line breaks, tabs, runs of spaces) collapsed to single spaces as
    Metriport's importer does to every cell, then title-cased unless mixed case (normalizeNameOrFail).
    Unicode-cleaned first (clean_text) so callers other than the CSV import match the same way."""
    result = title_case_if_not_multi_case(" ".join(clean_text(value).split()))
    return result or None


def normalize_external_id(value: str) -> str | None:
    """External id: trimmed, kept exactly otherwise (ids are case-sensitive)."""
    return value.strip() or None


# --- date of birth ------------------------------------------------------------------------------------


class DobProblem(enum.StrEnum):
    """Why a date of birth was not accepted (the caller turns it into a row error)."""

    MISSING = "missing"
    INVALID = "invalid"
    AMBIGUOUS = "ambiguous"
    BEFORE_1900 = "before_1900"
    FUTURE = "future"
    MONTH_OUT_OF_RANGE = "month_out_of_range"  # in a valid form, but no such month (1975-13-01)
    DAY_OUT_OF_RANGE = "day_out_of_range"  # in a valid form, but no such day in that month (2001-02-30)


_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
MIN_DOB = "1900-01-01"  # Metriport's validateDateIsAfter1900


def _is_ascii_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _iso(year: int, month: int, day: int) -> tuple[str | None, DobProblem | None]:
    """The ISO date, or the reason a date written in an accepted form does not exist."""
    if not 1 <= month <= 12:
        return None, DobProblem.MONTH_OUT_OF_RANGE
    try:
        return datetime.date(year, month, day).isoformat(), None
    except ValueError:
        # Metriport (dayjs) silently rolls 2000-02-30 over to March; an impossible date is a typo.
        return None, DobProblem.DAY_OUT_OF_RANGE


def _parse_year_first(parts: list[str]) -> tuple[str | None, DobProblem | None]:
    year, month, day = parts
    if len(year) != 4 or not (1 <= len(month) <= 2 and 1 <= len(day) <= 2):
        return None, DobProblem.INVALID
    if not (_is_ascii_digits(year) and _is_ascii_digits(month) and _is_ascii_digits(day)):
        return None, DobProblem.INVALID
    return _iso(int(year), int(month), int(day))


def _parse_month_first(parts: list[str]) -> tuple[str | None, DobProblem | None]:
    # US spreadsheets export M/D/YYYY and MM/DD/YYYY; Metriport's validator does not accept them.
    first, second, year = parts
    if not (_is_ascii_digits(first) and _is_ascii_digits(second) and _is_ascii_digits(year)):
        return None, DobProblem.INVALID
    if not (1 <= len(first) <= 2 and 1 <= len(second) <= 2):
        return None, DobProblem.INVALID
    if len(year) == 2:
        # 3/4/05: 1905 or 2005? A birth date cannot be guessed; the customer must say.
        return None, DobProblem.AMBIGUOUS
    if len(year) != 4:
        return None, DobProblem.INVALID
    month, day = int(first), int(second)
    if month > 12 and day <= 12:
        # 25/12/1990 is day-first: the file follows another convention, so its other dates with both
        # parts <= 12 cannot be trusted either. Ask for ISO dates rather than guess.
        return None, DobProblem.AMBIGUOUS
    return _iso(int(year), month, day)


def _parse_month_name(text: str) -> tuple[str | None, DobProblem | None]:
    # "Jan 1, 1951" (a Metriport test case), "January 1 1951", "1 Jan 1951", "01-Jan-1951" (Excel).
    tokens = text.replace(",", " ").replace("-", " ").replace(".", " ").split()
    if len(tokens) != 3:
        return None, DobProblem.INVALID
    month = 0
    numbers: list[str] = []
    for token in tokens:
        lowered = token.lower()
        if lowered in _MONTHS and not month:
            month = _MONTHS[lowered]
        elif _is_ascii_digits(token):
            numbers.append(token)
        else:
            return None, DobProblem.INVALID
    if not month or len(numbers) != 2:
        return None, DobProblem.INVALID
    years = [n for n in numbers if len(n) == 4]
    days = [n for n in numbers if len(n) <= 2]
    if len(years) != 1 or len(days) != 1:
        # "Jan 1 51": two-digit years are ambiguous for birth dates.
        return None, DobProblem.AMBIGUOUS if len(days) == 2 else DobProblem.INVALID
    return _iso(int(years[0]), month, int(days[0]))


def parse_dob_text(text: str) -> tuple[str | None, DobProblem | None]:
    """Parse a trimmed, non-empty date of birth (no range checks). Deliberately not memoized: birth
    dates are high-cardinality, so a cache big enough to hit would make memory grow with the file.
    Fullwidth and other Unicode digits and dashes read as ASCII ones (patients.identity.ascii_digits)."""
    text = ascii_digits(text)
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        return _parse_year_first([text[:4], text[5:7], text[8:]])
    # Drop a time of day exported with the date ("1990-05-12T00:00:00.000Z", "3/4/1990 0:00").
    if "T" in text and text[:4].isdigit():
        text = text.partition("T")[0]
    tokens = text.split()
    if len(tokens) >= 3 and tokens[-1].upper() in ("AM", "PM") and ":" in tokens[-2]:
        tokens = tokens[:-2]
    elif len(tokens) >= 2 and ":" in tokens[-1]:
        tokens = tokens[:-1]
    text = " ".join(tokens)
    if len(text) == 8 and _is_ascii_digits(text):
        # YYYYMMDD (HL7 style); only year-first is unambiguous.
        if text[:2] in ("19", "20"):
            return _parse_year_first([text[:4], text[4:6], text[6:]])
        return None, DobProblem.INVALID
    for separator in ("-", "/", "."):
        parts = text.split(separator)
        if len(parts) == 3 and all(parts):
            if len(parts[0]) == 4:
                return _parse_year_first(parts)
            if not any(c.isalpha() for c in text):
                return _parse_month_first(parts)
            break
    if any(c.isalpha() for c in text):
        return _parse_month_name(text)
    return None, DobProblem.INVALID


def parse_dob(value: str, *, today: datetime.date) -> tuple[str | None, DobProblem | None]:
    """Date of birth -> (YYYY-MM-DD, None) or (None, problem).

    Accepted: YYYY-MM-DD (also / or . separated, one-digit month/day, a trailing time), YYYYMMDD,
    M/D/YYYY and MM/DD/YYYY (US month-first, also with dashes), and month names ("Jan 1, 1951").
    Rejected as ambiguous: two-digit years and day-first dates. Not after today, not before 1900.
    """
    text = value.strip()
    if not text:
        return None, DobProblem.MISSING
    iso, problem = parse_dob_text(text)
    if iso is None:
        return None, problem
    problem = dob_range_problem(iso, today.isoformat())
    return (None, problem) if problem else (iso, None)


def dob_range_problem(iso: str, today_iso: str) -> DobProblem | None:
    """Why an existing date (YYYY-MM-DD) is no date of birth: before 1900 or after today; None when it is one."""
    if iso < MIN_DOB:
        return DobProblem.BEFORE_1900
    if iso > today_iso:
        return DobProblem.FUTURE
    return None


def normalize_dob(value: str, *, today: datetime.date | None = None) -> str | None:
    """Date of birth as YYYY-MM-DD, or None when missing, invalid, ambiguous or out of range."""
    iso, _ = parse_dob(value, today=today or datetime.date.today())
    return iso


# --- gender -------------------------------------------------------------------------------------------

# Exactly the spellings Metriport's normalizeGenderSafe maps (note "un" means other, not unknown).
_GENDERS = {
    "m": "M",
    "male": "M",
    "f": "F",
    "female": "F",
    "o": "O",
    "other": "O",
    "un": "O",
    "u": "U",
    "unk": "U",
    "unknown": "U",
}
_gender_memo: dict[str, str | None] = {}


def normalize_gender(value: str) -> str | None:
    """Gender at birth -> M, F, O or U."""
    try:
        return _gender_memo[value]
    except KeyError:
        pass
    result = _GENDERS.get(value.strip().lower())
    if len(_gender_memo) < _MEMO_CAP:
        _gender_memo[value] = result
    return result


# --- address ------------------------------------------------------------------------------------------

US_STATES: dict[str, str] = {
    "AL": "Alabama",
    "AK": "Alaska",
    "AZ": "Arizona",
    "AR": "Arkansas",
    "CA": "California",
    "CO": "Colorado",
    "CT": "Connecticut",
    "DE": "Delaware",
    "DC": "District of Columbia",
    "FL": "Florida",
    "GA": "Georgia",
    "HI": "Hawaii",
    "ID": "Idaho",
    "IL": "Illinois",
    "IN": "Indiana",
    "IA": "Iowa",
    "KS": "Kansas",
    "KY": "Kentucky",
    "LA": "Louisiana",
    "ME": "Maine",
    "MD": "Maryland",
    "MA": "Massachusetts",
    "MI": "Michigan",
    "MN": "Minnesota",
    "MS": "Mississippi",
    "MO": "Missouri",
    "MT": "Montana",
    "NE": "Nebraska",
    "NV": "Nevada",
    "NH": "New Hampshire",
    "NJ": "New Jersey",
    "NM": "New Mexico",
    "NY": "New York",
    "NC": "North Carolina",
    "ND": "North Dakota",
    "OH": "Ohio",
    "OK": "Oklahoma",
    "OR": "Oregon",
    "PA": "Pennsylvania",
    "RI": "Rhode Island",
    "SC": "South Carolina",
    "SD": "South Dakota",
    "TN": "Tennessee",
    "TX": "Texas",
    "UT": "Utah",
    "VT": "Vermont",
    "VA": "Virginia",
    "WA": "Washington",
    "WV": "West Virginia",
    "WI": "Wisconsin",
    "WY": "Wyoming",
}
# Metriport's USTerritory: the only territories its address schema accepts.
US_TERRITORIES: dict[str, str] = {
    "AS": "American Samoa",
    "GU": "Guam",
    "PR": "Puerto Rico",
    "VI": "Virgin Islands",
}
_STATE_LOOKUP: dict[str, str] = {}
for _code, _name in (*US_STATES.items(), *US_TERRITORIES.items()):
    _STATE_LOOKUP[_code.lower()] = _code
    _STATE_LOOKUP[_name.lower()] = _code
# Common spellings Metriport misses; each names exactly one state or territory.
_STATE_LOOKUP.update(
    {
        "washington dc": "DC",
        "washington d c": "DC",
        "us virgin islands": "VI",
        "u s virgin islands": "VI",
        "united states virgin islands": "VI",
    }
)
_state_memo: dict[str, str | None] = {}


def normalize_state(value: str) -> str | None:
    """US state or territory (code or name, any case; "N.Y." too) -> its 2-letter code."""
    try:
        return _state_memo[value]
    except KeyError:
        pass
    key = value.strip().lower()
    result = _STATE_LOOKUP.get(key)
    if result is None and key:
        result = _STATE_LOOKUP.get(" ".join(key.replace(".", " ").replace(",", " ").split()))
        if result is None:
            result = _STATE_LOOKUP.get(key.replace(".", "").replace(" ", ""))
    if len(_state_memo) < _MEMO_CAP:
        _state_memo[value] = result
    return result


def normalize_zip(value: str) -> str | None:
    """ZIP code -> 5 digits.

    ZIP+4 is cut to its 5-digit ZIP (12345-6789 and 123456789). Zips of 3 or 4 digits are
    zero-padded: spreadsheets drop the leading zeros of New England and Puerto Rico zips (Metriport
    does the same). 6 to 8 or over 9 digits are rejected: Metriport keeps the first 5, which turns a
    typo into a wrong address. Fullwidth and other Unicode digits read as ASCII ones.
    """
    text = ascii_digits(value).strip()
    if "-" in text:
        main, _, plus4 = text.partition("-")
        if not (_is_ascii_digits(main) and 3 <= len(main) <= 5):
            return None
        if plus4 and not (_is_ascii_digits(plus4) and len(plus4) <= 4):
            return None
        return main.zfill(5)
    if not _is_ascii_digits(text):
        return None
    length = len(text)
    if length == 5:
        return text
    if length == 9:
        return text[:5]
    if 3 <= length <= 4:
        return text.zfill(5)
    return None


def normalize_city(value: str) -> str | None:
    """City: whitespace collapsed, title-cased unless mixed case."""
    return title_case_if_not_multi_case(" ".join(value.split())) or None


# Metriport's unit-splitting patterns for address line 1 (packages/core .../csv/address.ts): a street
# type followed by a unit indicator and what follows it, or else an exact unit word followed by a
# number. Written as Metriport's (JavaScript, ASCII \w) patterns so the same lines split the same way.
_STREET_TYPES = (
    "street|st|road|rd|lane|ln|drive|dr|avenue|ave|boulevard|blvd|circle|cir|court|ct|place|pl|terrace"
    "|ter|trail|trl|way|highway|hwy|parkway|pkwy|crossing|xing|square|sq|loop|path|pike|alley|run"
)
_UNIT_INDICATORS = "apt|apartment|unit|suite|ste|#|number|floor|trlr|building|bldg|blg"
_UNIT_INDICATORS_EXACT = _UNIT_INDICATORS + "|no|fl|lot|rm|room"
_UNIT_AFTER_STREET = re.compile(
    rf"(.*?\W+({_STREET_TYPES})\W+.*?)\s*(({_UNIT_INDICATORS})\s*[#]?\s*[\w\s-]+)?$", re.I | re.A
)
_UNIT_EXACT = re.compile(rf"(.+?)\s*(({_UNIT_INDICATORS_EXACT})((\s*#\s*[\w\s-]+)|(\s*[\d\s-]+)))?$", re.I | re.A)
# Each pattern can only find a unit when the line holds one of its indicator words, and the exact
# pattern also needs the line to end in a number or hold a "#": cheap tests that skip the
# backtracking patterns for most lines ("Northwood Ave" holds "no" but cannot split).
_MAIN_HINTS = tuple(_UNIT_INDICATORS.split("|"))
_EXACT_HINTS = tuple(_UNIT_INDICATORS_EXACT.split("|"))
_EXACT_TAIL = frozenset("0123456789-")


def split_address_unit(line: str) -> tuple[str, str | None]:
    """Split "123 Main St Apt 4" into ("123 Main St", "Apt 4"), as Metriport does for addressLine1."""
    if not line:
        return line, None
    lowered = line.lower()
    if any(hint in lowered for hint in _MAIN_HINTS):
        match = _UNIT_AFTER_STREET.search(line + " ")
        if match and match.group(3):
            return match.group(1).strip(), match.group(3).strip() or None
    if (line[-1] in _EXACT_TAIL or "#" in line) and any(hint in lowered for hint in _EXACT_HINTS):
        match = _UNIT_EXACT.search(line)
        if match and match.group(2):
            return match.group(1).strip(), match.group(2).strip() or None
    return line, None


def _strip_instructions(text: str) -> str:
    # "PO BOX 666 (patient has no other address)": Metriport drops parenthesized notes.
    start = text.find("(")
    end = text.rfind(")")
    if 0 <= start < end:
        return text[:start] + " " + text[end + 1 :]
    return text


def normalize_address_line(value: str) -> str | None:
    """An address line: . , ; become spaces, "(notes)" dropped, whitespace collapsed, title-cased
    unless mixed case (Metriport's normalizeAddressLine without the unit split)."""
    text = value.replace(".", " ").replace(",", " ").replace(";", " ")
    text = " ".join(_strip_instructions(" ".join(text.split())).split())
    return title_case_if_not_multi_case(text) or None


# --- contact ------------------------------------------------------------------------------------------

# Formatting people put around phone digits; anything else (letters) makes the phone invalid.
_PHONE_FORMATTING = str.maketrans("", "", " \t()-.+/\u00a0")
_PHONE_EXTENSION_MARKERS = ("ext", "x", "#")


def normalize_phone(value: str) -> str | None:
    """US phone -> 10 digits: formatting stripped, a leading country code 1 dropped, an extension
    ("ext 12", "x12") dropped. Metriport instead keeps the 10 left-most digits of anything longer,
    which turns "1987654321 ext 555" into a different number; here that is 1987654321."""
    value = ascii_digits(value)
    digits = value.translate(_PHONE_FORMATTING)
    if not _is_ascii_digits(digits):
        lowered = value.lower()
        for marker in _PHONE_EXTENSION_MARKERS:
            if marker in lowered:
                digits = lowered.partition(marker)[0].translate(_PHONE_FORMATTING)
                break
        if not _is_ascii_digits(digits):
            return None
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return digits if len(digits) == 10 else None


_EMAIL_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_'+-.")
_EMAIL_LOCAL_LAST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_+-")
_EMAIL_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_EMAIL_LABEL_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_MAILTO = "mailto:"


def normalize_email(value: str) -> str | None:
    """Email: trimmed, lower-cased, "mailto:" stripped, then the same shape check as Metriport's
    (zod's email pattern): one @, a plain local part without leading/trailing/double dots, dotted
    domain labels and an alphabetic top-level domain of 2+ letters."""
    text = value.strip().lower()
    if text.startswith(_MAILTO):
        text = text[len(_MAILTO) :].strip()
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain or ".." in text:
        return None
    if local[0] == "." or local[-1] not in _EMAIL_LOCAL_LAST or not _EMAIL_LOCAL_CHARS.issuperset(local):
        return None
    labels = domain.split(".")
    if len(labels) < 2:
        return None
    tld = labels[-1]
    if len(tld) < 2 or not _ASCII_LOWER.issuperset(tld):
        return None
    for label in labels[:-1]:
        if not label or label[0] not in _EMAIL_LABEL_FIRST or not _EMAIL_LABEL_CHARS.issuperset(label):
            return None
    return text


# --- identifiers --------------------------------------------------------------------------------------


def normalize_ssn(value: str) -> str | None:
    """SSN -> 9 digits, as Metriport's CSV import does (normalizeSsn with zero padding): every
    non-digit is dropped, 2 to 8 digits are zero-padded (spreadsheets drop leading zeros), more
    than 9 keep the first 9, fewer than 2 are invalid."""
    if len(value) == 9 and _is_ascii_digits(value):
        return value
    value = ascii_digits(value)
    digits = "".join([c for c in value if c in _ASCII_DIGITS])
    if len(digits) < 2:
        return None
    if len(digits) < 9:
        return digits.zfill(9)
    return digits[:9]


def normalize_drivers_license_value(value: str) -> str | None:
    """Driver's licence number: trimmed and upper-cased (Metriport)."""
    return value.strip().upper() or None


# --- flags --------------------------------------------------------------------------------------------

_HIE_OPT_OUT = {
    "": "false",
    "false": "false",
    "no": "false",
    "n": "false",
    "0": "false",
    "true": "true",
    "yes": "true",
    "y": "true",
    "1": "true",
}


def normalize_hie_opt_out(value: str) -> str | None:
    """hieOptOut -> "true" or "false" (true/false/yes/no/y/n/1/0, any case; empty means false)."""
    return _HIE_OPT_OUT.get(value.strip().lower())
