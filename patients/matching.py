"""The demographic match rule of Bulk Patient Create (pure, no Django; docs/identity.md).

Two patients of one customer are the same person when their first and last names have the same skeleton
(patients.identity.skeleton: invisible characters, case, accents, look-alike letters and spacing do not tell
people apart), their dates of birth and genders at birth are equal, and they share at least one zip code.
Dates and zips are compared in their normalized form (YYYY-MM-DD, 5 ASCII digits: patients.normalize).
"""

from __future__ import annotations

from collections.abc import Iterable

from patients.identity import bounded_key, skeleton

# Patient.match_key's max_length, less a margin: longer keys are stored as a digest.
MATCH_KEY_LIMIT = 400


def match_key(*, first_name: str, last_name: str, dob: str, gender_at_birth: str) -> str:
    """The key patients are looked up by (indexed per customer): one function for bulk rows on both stores
    and for the single-patient API. Not PHI-free: it is never logged, shown nor sent."""
    key = "|".join((skeleton(first_name), skeleton(last_name), dob, gender_at_birth))
    return bounded_key(key, MATCH_KEY_LIMIT)


def shares_zip(zips_a: Iterable[str], zips_b: Iterable[str]) -> bool:
    return not set(zips_a).isdisjoint(zips_b)
