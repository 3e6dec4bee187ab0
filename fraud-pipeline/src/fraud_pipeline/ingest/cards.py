"""Card data protection: the full card number never goes past extract (PCI DSS).

A card is identified downstream by a keyed token (HMAC-SHA256 with a secret key, so it cannot be
reversed by hashing all 16-digit numbers) and shown by its last four digits only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string

import pandas as pd

from fraud_pipeline.security.masking import DIGIT_RUN, MIN_DIGITS
from fraud_pipeline.security.masking import mask_card_numbers as mask_card_numbers
from fraud_pipeline.security.masking import mask_value as mask_value

_CARD_NUMBER = re.compile(r"\d{11,19}")


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


# A card-like run in an id becomes this marker and 11 letters (a-z, A-Z: 62 bits of its keyed
# hash, no digit): 12 characters, no more than the shortest run, so an id never grows.
ID_RUN_MARKER = "*"
_ID_TOKEN_LETTERS = 11
_LETTERS = string.ascii_letters


def _as_letters(hexdigest: str) -> str:
    number, letters = int(hexdigest, 16), []
    for _ in range(_ID_TOKEN_LETTERS):
        number, index = divmod(number, len(_LETTERS))
        letters.append(_LETTERS[index])
    return "".join(letters)


def identifier_token(trans_num: str, key: bytes) -> str:
    """A transaction id as stored: each run the masking rule would mask (`DIGIT_RUN`: 12+
    digits, separators included) replaced by `ID_RUN_MARKER` and a keyed token of the run as
    written (`_token`, the card tokens' HMAC and key).

    Masking the run instead (last four kept) made two ids that differ only inside it one stored
    id, and the second payment was quarantined as a conflicting re-delivery. The token keeps
    ids apart (two distinct runs, separators included, share a token with probability 2^-62),
    maps every re-delivery of an id to the same stored id, and, keyed, cannot be
    reversed by hashing every card number. Ids without such a run are stored as sent."""
    if len(trans_num) < MIN_DIGITS or not DIGIT_RUN.search(trans_num):
        return trans_num

    def token(match: re.Match[str]) -> str:
        return ID_RUN_MARKER + _as_letters(_token(key, match.group()))

    return DIGIT_RUN.sub(token, trans_num)


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
