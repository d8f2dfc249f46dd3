"""Pure validators for facility fields."""

from __future__ import annotations


def npi_is_valid(npi: str) -> bool:
    """NPI: 10 digits whose last is the Luhn check digit of the first nine prefixed with 80840 (CMS rule).

    ASCII digits only: str.isdigit() and int() also take Arabic-Indic, fullwidth and other Unicode digits,
    which no NPI registry holds and which would be stored and sent on as they were typed."""
    if len(npi) != 10 or not (npi.isascii() and npi.isdigit()):
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    # Luhn: double every second digit from the right of the payload (the check digit is excluded).
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10 == int(npi[9])


def npi_with_check_digit(first_nine: str) -> str:
    """Completes a 9-digit NPI body with its check digit (used by demos and tests)."""
    for check in "0123456789":
        if npi_is_valid(first_nine + check):
            return first_nine + check
    raise ValueError("first_nine must be 9 digits")
