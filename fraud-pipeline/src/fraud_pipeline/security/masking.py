"""THE masking of card numbers in text: one rule for every shape and every sink (PCI DSS 3.4.1).

Standard library only, so that every process (the CLI, Airflow's task processes, the uvicorn
servers, the report) can install it in its logging at import (`security.log_masking`).
"""

from __future__ import annotations

import math
import re
from typing import Any

# THE masking rule. A run of at least 12 digits, any two of them separated by at most three
# characters among space, dash, dot and slash ("4111 1111 1111 1111", "4111..1111/1111-1111",
# "4111   1111 1111 1111", "4111111111111111"), Luhn-valid or not, anywhere in any text,
# inside a word or an identifier too. 12 is the shortest card number (ISO/IEC 7812); a longer
# run may hold one, so it is masked whole. Letters, colons, commas, plus signs, four or more
# separators in a row end a run.
MIN_DIGITS = 12
DIGIT_RUN = re.compile(rf"\d(?:[ ./-]{{0,3}}\d){{{MIN_DIGITS - 1},}}")
SEPARATOR = re.compile(r"[ ./-]")


def _mask_run(match: re.Match[str]) -> str:
    digits = SEPARATOR.sub("", match.group())
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_card_numbers(text: str) -> str:
    """THE masking of text: every run of `MIN_DIGITS` or more digits, with or without
    separators (`DIGIT_RUN`), keeps only its last four digits ("************1111").

    Used on whatever is stored, logged or mailed that may hold a card number: every text field
    of a payment (its id gets a keyed token instead: `ingest.cards.identifier_token`), quarantine payloads and reasons, exception messages, HTTP error
    bodies, every log record (`security.log_masking`), mail subjects and bodies, CSV exports.

    Its false-positive cost: any legitimate value with 12 or more digits in such a run is
    masked too: epoch-millisecond times (13 digits), long numeric ids, international phone
    numbers written with spaces, IBAN digit groups, a decimal number with 12 or more digits
    (0.123456789012), two ISO dates or a date and a 2+ digit number side by side ("2026-12-06
    2026-12-07", "2026-12-06 1234"). Shorter runs, times with colons, amounts, zip codes and
    the generator's hex ids are kept (tests/security/test_masking.py shows both sides).
    """
    if len(text) < MIN_DIGITS or not DIGIT_RUN.search(text):
        return text
    return DIGIT_RUN.sub(_mask_run, text)


def mask_value(value: Any) -> Any:
    """`mask_card_numbers` through a JSON-like value (dict keys and values, lists, numbers).

    A number that looks like a card number becomes its masked text; a float that JSON cannot
    hold (NaN, infinity) becomes its text, so that the result can always be stored as JSON.
    """
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        masked = mask_card_numbers(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        masked = mask_card_numbers(repr(value))
        return value if masked == repr(value) else masked
    if isinstance(value, dict):
        return {mask_value(str(k)): mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(item) for item in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return mask_value(item())
        except (TypeError, ValueError):
            pass
    return mask_card_numbers(str(value))
