"""Card data protection: the full card number never goes past extract (PCI DSS).

A card is identified downstream by a keyed token (HMAC-SHA256 with a secret key, so it cannot be
reversed by hashing all 16-digit numbers) and shown by its last four digits only.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd


def _digits(card_number: object) -> str:
    text = str(card_number).strip()
    if text.endswith(".0"):  # a number that went through a float column
        text = text[:-2]
    if not text.isdigit() or not 11 <= len(text) <= 19:
        raise ValueError("card number must be 11 to 19 digits")
    return text


def card_token(card_number: object, key: bytes) -> str:
    """Keyed, irreversible token of a card number: the same card always gives the same token."""
    return hmac.new(key, _digits(card_number).encode(), hashlib.sha256).hexdigest()


def card_last4(card_number: object) -> str:
    return _digits(card_number)[-4:]


def mask_last4(last4: str) -> str:
    """How a card is shown to people: only the last four digits."""
    return f"**** **** **** {last4}"


def tokenise_frame(frame: pd.DataFrame, key: bytes, column: str = "cc_num") -> pd.DataFrame:
    """Replace the card-number column by `card_token` and `card_last4` (a new frame)."""
    numbers = frame[column].map(_digits)
    out = frame.drop(columns=[column])
    out.insert(0, "card_last4", numbers.str[-4:])
    out.insert(
        0, "card_token", [hmac.new(key, n.encode(), hashlib.sha256).hexdigest() for n in numbers]
    )
    return out
