"""Card numbers for tests: Luhn-valid numbers to plant, and a scan for any of them."""

from __future__ import annotations

from collections.abc import Iterable


def luhn_number(prefix: str, length: int = 16) -> str:
    """A Luhn-valid card number starting with `prefix` (padded with 7s)."""
    body = (prefix + "7" * length)[: length - 1]
    for check in "0123456789":
        digits = body + check
        total = 0
        for position, char in enumerate(reversed(digits)):
            value = int(char)
            if position % 2:
                value = value * 2 - 9 if value > 4 else value * 2
            total += value
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def leaks(numbers: Iterable[str], text: str) -> list[str]:
    """The numbers found in `text`, also as digits grouped by spaces or dashes."""
    found = []
    for number in numbers:
        grouped = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        if number in text or grouped in text or grouped.replace(" ", "-") in text:
            found.append(number)
    return found
