"""The demographic match rule of Bulk Patient Create (pure, no Django).

Two patients of one customer are the same person when first and last name (case-insensitive), date of
birth and gender at birth are equal and they share at least one zip code.
"""

from __future__ import annotations

from collections.abc import Iterable


def match_key(*, first_name: str, last_name: str, dob: str, gender_at_birth: str) -> str:
    return "|".join((" ".join(first_name.lower().split()), " ".join(last_name.lower().split()), dob, gender_at_birth))


def shares_zip(zips_a: Iterable[str], zips_b: Iterable[str]) -> bool:
    return not set(zips_a).isdisjoint(zips_b)
