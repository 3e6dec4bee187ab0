"""Card data protection: the full card number never goes past extract (PCI DSS).

A card is identified downstream by a keyed token (HMAC-SHA256 with a secret key, so it cannot be
reversed by hashing all 16-digit numbers) and shown by its last four digits only.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from typing import Any

import pandas as pd

_CARD_NUMBER = re.compile(r"\d{11,19}")
# A run of digits, possibly grouped by single spaces or dashes ("4111 1111 1111 1111").
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,}")


def _token(key: bytes, digits: str) -> str:
    """The one keyed hash of a card number (HMAC-SHA256): every token is made here."""
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()


def _digits(card_number: object) -> str:
    text = str(card_number).strip()
    if text.endswith(".0"):  # a number that went through a float column
        text = text[:-2]
    if not _CARD_NUMBER.fullmatch(text):
        raise ValueError("card number must be 11 to 19 digits")
    return text


def card_token(card_number: object, key: bytes) -> str:
    """Keyed, irreversible token of a card number: the same card always gives the same token."""
    return _token(key, _digits(card_number))


def card_last4(card_number: object) -> str:
    return _digits(card_number)[-4:]


def mask_last4(last4: str) -> str:
    """How a card is shown to people: only the last four digits."""
    return f"**** **** **** {last4}"


def tokenise_frame(frame: pd.DataFrame, key: bytes, column: str = "cc_num") -> pd.DataFrame:
    """Replace the card-number column by `card_token`, `card_last4` and `card_masked` (a new frame).

    A valid number (11 to 19 digits, also after a float column) gives its token and last four
    digits, `card_masked` empty. Anything else keeps no digit: token and last four empty,
    `card_masked` = "<invalid: N chars>" (validate quarantines it). No column: all empty.
    """
    out = frame.copy()
    numbers = out.pop(column) if column in out else pd.Series(None, index=out.index)
    digits = numbers.astype("string").str.strip().str.replace(r"\.0$", "", regex=True)
    valid = digits.str.fullmatch(_CARD_NUMBER.pattern).fillna(False).astype(bool)
    out["card_token"] = [
        _token(key, d) if ok else None for d, ok in zip(digits.fillna(""), valid, strict=True)
    ]
    out["card_last4"] = digits.str[-4:].where(valid).astype("str")
    out["card_masked"] = [
        None if ok or pd.isna(d) else f"<invalid: {len(str(d))} chars>"
        for d, ok in zip(digits, valid, strict=True)
    ]
    return out


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_like(digits: str) -> bool:
    if len(digits) <= 19:
        return len(digits) >= 13 and luhn_valid(digits)
    # A longer run may hold a card number: any 13-19 digit window passing Luhn masks it all.
    return any(
        luhn_valid(digits[start : start + size])
        for size in range(13, 20)
        for start in range(len(digits) - size + 1)
    )


def _mask_run(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    return "*" * (len(digits) - 4) + digits[-4:] if _card_like(digits) else match.group()


def mask_card_numbers(text: str) -> str:
    """THE masking of free text: every card-number-like digit run (13 to 19 digits, spaces or
    dashes allowed between them, passing Luhn) keeps only its last four digits ("****...1111").

    Used on whatever is stored, logged or mailed that may hold a card number: text fields of
    payments, quarantine payloads and reasons, log messages quoting the payments API.
    """
    if len(text) < 13 or not _DIGIT_RUN.search(text):
        return text
    return _DIGIT_RUN.sub(_mask_run, text)


def mask_identifier(text: str) -> str:
    """An identifier (`trans_num`): masked only when it is a card number as a whole. Digit runs
    inside an identifier are not masked: about 1 in 300 random hex keys holds a 13+ digit run
    passing Luhn, and a masked key would no longer name its payment."""
    return mask_card_numbers(text) if _DIGIT_RUN.fullmatch(text.strip()) else text


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
        return {
            mask_value(str(k)): mask_identifier(v)
            if k == "trans_num" and isinstance(v, str)
            else mask_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_value(item) for item in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return mask_value(item())
        except (TypeError, ValueError):
            pass
    return mask_card_numbers(str(value))
