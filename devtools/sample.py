"""Seeded synthetic patient CSVs for demos, tests and benchmarks (no Django).

The data looks like a real clinic export, messy formatting included (upper-case names, US
M/D/YYYY dates, ZIP+4, zips that lost their leading zero in a spreadsheet, phones in every format,
state names instead of codes), and a chosen share of rows is broken the way real files are broken
(missing or future birth dates, bad gender, incomplete addresses, unknown states, ...).

Nothing here can be a real person's identifiers: phones use the 555-01xx range reserved for
fiction, emails use the reserved example.* domains, and SSNs use area numbers 900-999, which the SSA
never issues.
"""

from __future__ import annotations

import csv
import datetime
import io
import random
import typing
from collections.abc import Iterator

__all__ = [
    "INVALID_KINDS",
    "SAMPLE_FACILITY_ADDRESS",
    "SAMPLE_HEADER",
    "sample_rows",
    "sample_rows_with_truth",
    "write_sample_csv",
]

# The facility demos and tests import into (a real-looking clinic address, not a patient's).
SAMPLE_FACILITY_ADDRESS = {
    "addressLine1": "1 Main St",
    "addressLine2": None,
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "country": "USA",
}
SAMPLE_HEADER: list[str] = [
    "externalId",
    "firstName",
    "lastName",
    "dob",
    "gender",
    "addressLine1",
    "addressLine2",
    "city",
    "state",
    "zip",
    "phone-1",
    "phone-2",
    "email-1",
    "ssn",
    "driversLicenseNo",
    "driversLicenseState",
    "hieOptOut",
]
_COL = {name: i for i, name in enumerate(SAMPLE_HEADER)}

_FEMALE = [
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Nancy",
    "Lisa",
    "Betty",
    "Sandra",
    "Ashley",
    "Emily",
    "Donna",
    "Michelle",
    "Carol",
    "Amanda",
    "Melissa",
    "Deborah",
    "Stephanie",
    "Maria",
    "Guadalupe",
    "Sofia",
    "Aaliyah",
    "Mei",
    "Priya",
    "Fatima",
    "Olga",
    "Siobhan",
    "Chloe",
    "Zoe",
    "Keisha",
    "Ana-Lucia",
]
_MALE = [
    "James",
    "Robert",
    "John",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Christopher",
    "Charles",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Donald",
    "Steven",
    "Andrew",
    "Joshua",
    "Kevin",
    "Brian",
    "George",
    "Jose",
    "Luis",
    "Carlos",
    "Wei",
    "Raj",
    "Mohammed",
    "Dmitri",
    "Sean",
    "Jamal",
    "DeShawn",
    "Hiroshi",
    "Kwame",
    "Mateo",
    "Jean-Luc",
]
_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Chen",
    "Patel",
    "Kim",
    "O'Neil",
    "McDonald",
    "MacArthur",
    "D'Angelo",
    "Okafor",
    "Kowalski",
    "Yamamoto",
    "Schmidt",
    "Ivanova",
    "Haddad",
]
_LAST += ["Van der Berg", "de la Cruz", "St. John"]  # multi-word surnames
_STREETS = [
    "Main",
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Pine",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "Lincoln",
    "Jefferson",
    "Madison",
    "Church",
    "Highland",
    "Meadow",
    "River",
    "Forest",
    "Spring",
    "Ridge",
    "Valley",
    "Franklin",
    "Chestnut",
    "Walnut",
    "Willow",
    "Dogwood",
    "Magnolia",
]
_STREET_TYPES = (
    "St",
    "Street",
    "Ave",
    "Avenue",
    "Rd",
    "Road",
    "Dr",
    "Drive",
    "Ln",
    "Blvd",
    "Ct",
    "Way",
    "Pl",
)
_DIRECTIONS = ("", "", "", "", "N ", "S ", "E ", "W ")
_UNITS = ("Apt 4B", "Apt 12", "Unit 3", "Suite 200", "#7", "Apt 1A", "Fl 2")

# (city, state code, state name, zip prefix, area code): real cities with their real 3-digit zip
# prefixes and area codes, so addresses have true shapes (including 0-leading New England zips).
_PLACES = (
    ("Boston", "MA", "Massachusetts", "021", "617"),
    ("Worcester", "MA", "Massachusetts", "016", "508"),
    ("Providence", "RI", "Rhode Island", "029", "401"),
    ("Hartford", "CT", "Connecticut", "061", "860"),
    ("Burlington", "VT", "Vermont", "054", "802"),
    ("Portland", "ME", "Maine", "041", "207"),
    ("Manchester", "NH", "New Hampshire", "031", "603"),
    ("Newark", "NJ", "New Jersey", "071", "973"),
    ("New York", "NY", "New York", "100", "212"),
    ("Brooklyn", "NY", "New York", "112", "718"),
    ("Philadelphia", "PA", "Pennsylvania", "191", "215"),
    ("Pittsburgh", "PA", "Pennsylvania", "152", "412"),
    ("Baltimore", "MD", "Maryland", "212", "410"),
    ("Washington", "DC", "District of Columbia", "200", "202"),
    ("Richmond", "VA", "Virginia", "232", "804"),
    ("Charlotte", "NC", "North Carolina", "282", "704"),
    ("Atlanta", "GA", "Georgia", "303", "404"),
    ("Miami", "FL", "Florida", "331", "305"),
    ("Orlando", "FL", "Florida", "328", "407"),
    ("Nashville", "TN", "Tennessee", "372", "615"),
    ("Louisville", "KY", "Kentucky", "402", "502"),
    ("Columbus", "OH", "Ohio", "432", "614"),
    ("Detroit", "MI", "Michigan", "482", "313"),
    ("Chicago", "IL", "Illinois", "606", "312"),
    ("Indianapolis", "IN", "Indiana", "462", "317"),
    ("Milwaukee", "WI", "Wisconsin", "532", "414"),
    ("Minneapolis", "MN", "Minnesota", "554", "612"),
    ("Des Moines", "IA", "Iowa", "503", "515"),
    ("St. Louis", "MO", "Missouri", "631", "314"),
    ("New Orleans", "LA", "Louisiana", "701", "504"),
    ("Houston", "TX", "Texas", "770", "713"),
    ("Dallas", "TX", "Texas", "752", "214"),
    ("San Antonio", "TX", "Texas", "782", "210"),
    ("Oklahoma City", "OK", "Oklahoma", "731", "405"),
    ("Denver", "CO", "Colorado", "802", "303"),
    ("Albuquerque", "NM", "New Mexico", "871", "505"),
    ("Phoenix", "AZ", "Arizona", "850", "602"),
    ("Salt Lake City", "UT", "Utah", "841", "801"),
    ("Las Vegas", "NV", "Nevada", "891", "702"),
    ("Boise", "ID", "Idaho", "837", "208"),
    ("Seattle", "WA", "Washington", "981", "206"),
    ("Portland", "OR", "Oregon", "972", "503"),
    ("San Francisco", "CA", "California", "941", "415"),
    ("Los Angeles", "CA", "California", "900", "213"),
    ("San Diego", "CA", "California", "921", "619"),
    ("Anchorage", "AK", "Alaska", "995", "907"),
    ("Honolulu", "HI", "Hawaii", "968", "808"),
    ("San Juan", "PR", "Puerto Rico", "009", "787"),
    ("Hagatna", "GU", "Guam", "969", "671"),
)

INVALID_KINDS = (
    "missing_dob",
    "future_dob",
    "ambiguous_dob",
    "impossible_dob",
    "bad_gender",
    "missing_gender",
    "missing_first_name",
    "missing_last_name",
    "incomplete_address",
    "bad_state",
    "bad_zip",
    "no_address",
    "bad_phone",
    "bad_email",
    "drivers_license_without_state",
    "ragged_row",
)

_OLDEST = datetime.date(1930, 1, 1).toordinal()
_YOUNGEST = datetime.date(2022, 12, 31).toordinal()


def _phone(rng: random.Random, area: str) -> str:
    line = f"01{rng.randrange(100):02d}"  # 555-0100..0199: reserved for fiction
    style = rng.randrange(6)
    if style == 0:
        return f"{area}555{line}"
    if style == 1:
        return f"({area}) 555-{line}"
    if style == 2:
        return f"{area}-555-{line}"
    if style == 3:
        return f"+1 {area} 555 {line}"
    if style == 4:
        return f"1-{area}-555-{line}"
    return f"{area}.555.{line}"


def _dob_text(rng: random.Random, date: datetime.date) -> str:
    style = rng.random()
    if style < 0.75:
        return date.isoformat()
    if style < 0.92:
        return f"{date.month}/{date.day}/{date.year}"  # what a US spreadsheet exports
    if style < 0.97:
        return f"{date.month:02d}/{date.day:02d}/{date.year}"
    return f"{date.isoformat()} 00:00:00"


def _casing(rng: random.Random, name: str) -> str:
    roll = rng.random()
    if roll < 0.15:
        return name.upper()
    if roll < 0.2:
        return name.lower()
    if roll < 0.25:
        return f" {name} "
    return name


def _valid_row(rng: random.Random, number: int) -> list[str]:
    female = rng.random() < 0.52
    first = rng.choice(_FEMALE if female else _MALE)
    last = rng.choice(_LAST)
    date = datetime.date.fromordinal(rng.randint(_OLDEST, _YOUNGEST))
    gender_roll = rng.random()
    if gender_roll < 0.85:
        gender = "F" if female else "M"
    elif gender_roll < 0.95:
        gender = "Female" if female else "male"
    else:
        gender = rng.choice(("U", "O", "unknown", "Other"))

    city, state_code, state_name, zip_prefix, area = rng.choice(_PLACES)
    street = f"{rng.randint(1, 9999)} {rng.choice(_DIRECTIONS)}{rng.choice(_STREETS)} {rng.choice(_STREET_TYPES)}"
    line2 = ""
    unit_roll = rng.random()
    if unit_roll < 0.12:
        line2 = rng.choice(_UNITS)
    elif unit_roll < 0.18:
        street = f"{street}, {rng.choice(_UNITS)}"
    if rng.random() < 0.1:
        street = street.upper()
    state = state_code if rng.random() < 0.8 else rng.choice((state_name, state_code.lower(), state_name.upper()))
    zip_code = f"{zip_prefix}{rng.randrange(100):02d}"
    zip_roll = rng.random()
    if zip_roll < 0.1:
        zip_code = f"{zip_code}-{rng.randrange(10000):04d}"
    elif zip_roll < 0.2 and zip_code.startswith("0"):
        zip_code = zip_code.lstrip("0")  # a spreadsheet ate the leading zero

    phone1 = _phone(rng, area) if rng.random() < 0.85 else ""
    phone2 = _phone(rng, area) if rng.random() < 0.15 else ""
    email = ""
    if rng.random() < 0.6:
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        email = f"{local}{rng.randrange(100)}@{rng.choice(('example.com', 'example.org', 'example.net'))}"
        if rng.random() < 0.1:
            email = email.upper()
    ssn = ""
    if rng.random() < 0.3:
        area_number, group, serial = rng.randint(900, 999), rng.randint(1, 99), rng.randint(1, 9999)
        ssn = (
            f"{area_number}-{group:02d}-{serial:04d}" if rng.random() < 0.7 else f"{area_number}{group:02d}{serial:04d}"
        )
    license_number = license_state = ""
    if rng.random() < 0.1:
        license_number = f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randrange(10**7):07d}"
        license_state = state_code
    hie_roll = rng.random()
    hie_opt_out = "true" if hie_roll < 0.03 else "yes" if hie_roll < 0.05 else "false" if hie_roll < 0.3 else ""

    return [
        f"MRN-{number:07d}",
        _casing(rng, first),
        _casing(rng, last),
        _dob_text(rng, date),
        gender,
        street,
        line2,
        city,
        state,
        zip_code,
        phone1,
        phone2,
        email,
        ssn,
        license_number,
        license_state,
        hie_opt_out,
    ]


def _break_row(rng: random.Random, row: list[str], kind: str) -> list[str]:
    """Break a valid row the way real exports are broken; every kind yields at least one row error."""
    if kind == "missing_dob":
        row[_COL["dob"]] = ""
    elif kind == "future_dob":
        # Far enough ahead to stay in the future for decades, and deterministic per seed.
        row[_COL["dob"]] = f"{rng.randint(2090, 2099)}-06-15"
    elif kind == "ambiguous_dob":
        row[_COL["dob"]] = rng.choice(("03/04/85", "25/12/1980", "7/8/99"))
    elif kind == "impossible_dob":
        row[_COL["dob"]] = rng.choice(("1980-02-30", "1975-13-01", "1899-12-31", "not known"))
    elif kind == "bad_gender":
        row[_COL["gender"]] = rng.choice(("X", "N/A", "Woman", "2"))
    elif kind == "missing_gender":
        row[_COL["gender"]] = ""
    elif kind == "missing_first_name":
        row[_COL["firstName"]] = rng.choice(("", "  "))
    elif kind == "missing_last_name":
        row[_COL["lastName"]] = ""
    elif kind == "incomplete_address":
        row[_COL[rng.choice(("addressLine1", "city", "state", "zip"))]] = ""
    elif kind == "bad_state":
        row[_COL["state"]] = rng.choice(("ZZ", "Calfornia", "Ontario", "XX"))
    elif kind == "bad_zip":
        row[_COL["zip"]] = rng.choice(("ABCDE", "123456", "12", "9021O"))
    elif kind == "no_address":
        for name in ("addressLine1", "addressLine2", "city", "state", "zip"):
            row[_COL[name]] = ""
    elif kind == "bad_phone":
        row[_COL["phone-1"]] = rng.choice(("555-01", "call mornings", "12345678901234"))
    elif kind == "bad_email":
        row[_COL["email-1"]] = rng.choice(("jane.doe@", "jane.doe@example", "jane doe@example.com", "@example.com"))
    elif kind == "drivers_license_without_state":
        row[_COL["driversLicenseNo"]] = f"D{rng.randrange(10**7):07d}"
        row[_COL["driversLicenseState"]] = ""
    elif kind == "ragged_row":
        # An unquoted comma inside a value shifts the row by one cell.
        row = [*row, "spill"]
    return row


def sample_rows_with_truth(
    rows: int, *, invalid_ratio: float = 0.05, seed: int = 0
) -> Iterator[tuple[list[str], str | None]]:
    """Like sample_rows, with each row's invalid kind (None for a valid row), for tests."""
    if not 0.0 <= invalid_ratio <= 1.0:
        raise ValueError("invalid_ratio must be between 0 and 1")
    rng = random.Random(seed)
    for number in range(1, rows + 1):
        row = _valid_row(rng, number)
        if rng.random() < invalid_ratio:
            kind = rng.choice(INVALID_KINDS)
            yield _break_row(rng, row, kind), kind
        else:
            yield row, None


def sample_rows(rows: int, *, invalid_ratio: float = 0.05, seed: int = 0) -> Iterator[list[str]]:
    """`rows` rows matching SAMPLE_HEADER, about `invalid_ratio` of them invalid; same seed, same rows."""
    for row, _ in sample_rows_with_truth(rows, invalid_ratio=invalid_ratio, seed=seed):
        yield row


def write_sample_csv(out: typing.BinaryIO, rows: int, *, invalid_ratio: float = 0.05, seed: int = 0) -> None:
    """Write SAMPLE_HEADER and `rows` rows to `out` as UTF-8 CSV with CRLF endings (as Excel saves)."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(SAMPLE_HEADER)
        writer.writerows(sample_rows(rows, invalid_ratio=invalid_ratio, seed=seed))
        text.flush()
    finally:
        # Hand the caller's stream back open: closing the wrapper would close it.
        text.detach()


def sample_bytes(rows: int, invalid_ratio: float = 0.1, seed: int = 3) -> bytes:
    """A sample CSV as bytes (tests and benches)."""
    out = io.BytesIO()
    write_sample_csv(out, rows, invalid_ratio=invalid_ratio, seed=seed)
    return out.getvalue()
