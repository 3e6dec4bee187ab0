"""One payment at a time: what extract and validate check per row, so that one bad row never
decides for, nor blocks, the others.

A payment from the API is a JSON object with the Sparkov fields. Per row and per field:
- something that is not an object is kept aside, its reason "payment is not an object: int";
- unknown fields are dropped (their names logged, their values never stored);
- text fields hold text (a number is read as its text), number fields hold numbers or numeric
  text, never a boolean, a list or an object: anything else is the row's reason
  ("street: expected text, got list");
- the event time is read per row: "YYYY-MM-DD HH:MM[:SS[.ffffff]]" (wall-clock time in the
  business time zone), ISO 8601 with an offset or Z (the offset is honoured), or epoch seconds
  or milliseconds (a number or numeric text).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from fraud_pipeline.ingest.cards import mask_card_numbers, mask_value
from fraud_pipeline.schema import NUMBER_FIELDS, TEXT_FIELDS

log = logging.getLogger(__name__)

TIME_FIELDS: Final = ("trans_date_trans_time", "trans_time")
CARD_FIELD: Final = "cc_num"
API_FIELDS: Final = frozenset((*TEXT_FIELDS, *NUMBER_FIELDS, *TIME_FIELDS, CARD_FIELD))
# Set by extract: `rejected` holds why a row cannot be read, `value` a non-object as received
# (masked). Validate quarantines such a row with that reason.
REJECTED: Final = "rejected"
VALUE: Final = "value"
# What is derived at extract (cards.tokenise_frame) and may be landed with a payment.
DERIVED_FIELDS: Final = frozenset(("card_token", "card_last4", "card_masked", REJECTED, VALUE))

_EPOCH = re.compile(r"-?\d{1,16}(\.\d+)?")
_EPOCH_MS_FROM = 1e11  # epoch seconds reach 1e11 in year 5138: larger numbers are milliseconds


def type_name(value: Any) -> str:
    """A value's type as a reason shows it (JSON's words where they differ from Python's)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def _native(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) and not isinstance(value, list | dict | str) else value


def field_problems(record: dict[str, Any]) -> list[str]:
    """Why this payment's fields cannot be typed (empty: every present field has a fit type)."""
    problems = []
    for field in TEXT_FIELDS:
        value = _native(record.get(field))
        if not is_missing(value) and not isinstance(value, str):
            problems.append(f"{field}: expected text, got {type_name(value)}")
    for field in NUMBER_FIELDS:
        value = _native(record.get(field))
        if is_missing(value) or isinstance(value, str):
            continue  # numeric text is read by validate ("amt is not a finite number")
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{field}: expected a number, got {type_name(value)}")
    return problems


def _all_text(values: pd.Series) -> bool:
    return bool(values.notna().all()) and pd.api.types.infer_dtype(values, skipna=False) == "string"


def _all_numbers(values: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_float_dtype(values.dtype):
        return True
    return pd.api.types.infer_dtype(values, skipna=False) in _NUMBERS


_NUMBERS: Final = frozenset(("integer", "floating", "mixed-integer-float", "string"))


def fields_typed(frame: pd.DataFrame) -> bool:
    """True when no row can have `field_problems`, seen per column: each text field all text,
    each number field all numbers (or numeric text). The usual batch skips the per-row check;
    any other column (a missing value, a list...) leaves every row to it."""
    return all(_all_text(frame[f]) for f in TEXT_FIELDS if f in frame) and all(
        _all_numbers(frame[f]) for f in NUMBER_FIELDS if f in frame
    )


def texts(values: pd.Series, mask: Callable[[str], str] = mask_card_numbers) -> pd.Series:
    """`as_text` over a column (object dtype); a column all of text is only masked."""
    if _all_text(values):
        return pd.Series([mask(v) for v in values.tolist()], index=values.index, dtype=object)
    return values.map(lambda v: as_text(v, mask)).astype(object)


def as_text(value: Any, mask: Callable[[str], str] = mask_card_numbers) -> Any:
    """A text field as received → its text, card numbers masked (other types are left for
    `field_problems` to name; a number, e.g. a zip code sent as 75001, becomes its text)."""
    value = _native(value)
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return mask(str(value))
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return mask(str(int(value)))
    return value


def parse_instant(value: Any) -> datetime:
    """A payment's event time → a datetime: aware when the value carries an offset or is an
    epoch, naive (wall-clock, business time zone) otherwise. ValueError when unreadable."""
    value = _native(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, datetime):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a time, got bool")
    if isinstance(value, str):
        text = value.strip()
        if _EPOCH.fullmatch(text):
            return _from_epoch(float(text))
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not a time format the payments API sends") from None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    raise ValueError(f"expected a time, got {type_name(value)}")


def _from_epoch(seconds: float) -> datetime:
    if not math.isfinite(seconds):
        raise ValueError("epoch is not finite")
    if abs(seconds) >= _EPOCH_MS_FROM:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("epoch out of range") from None


def event_times(values: Iterable[Any], tz: str) -> tuple[pd.Series, list[str | None]]:
    """Each row's event time (UTC; NaT when missing or unreadable) and its problem, if any."""
    instants: list[Any] = []
    problems: list[str | None] = []
    naive: list[int] = []
    for position, value in enumerate(values):
        if is_missing(value):
            instants.append(pd.NaT)
            problems.append(None)
            continue
        try:
            instant = parse_instant(value)
        except ValueError as error:
            shown = mask_card_numbers(str(value))[:40]
            instants.append(pd.NaT)
            problems.append(f"trans_time unreadable ({error}): {shown!r}")
            continue
        if not 1900 <= instant.year <= 2200:
            instants.append(pd.NaT)
            problems.append("trans_time out of range")
            continue
        if instant.tzinfo is None:
            naive.append(position)
            instants.append(instant)
        else:
            instants.append(pd.Timestamp(instant).tz_convert("UTC"))
        problems.append(None)
    if naive:
        # As ingest.payments.localize: the spring gap shifted forward, the autumn hour standard.
        wall = pd.to_datetime(pd.Series([instants[i] for i in naive]))
        local = wall.dt.tz_localize(
            tz, ambiguous=np.zeros(len(wall), dtype=bool), nonexistent="shift_forward"
        )
        for i, stamp in zip(naive, local.dt.tz_convert("UTC"), strict=True):
            instants[i] = stamp
    return pd.Series(instants, dtype="datetime64[ns, UTC]"), problems


def from_api(items: list[Any]) -> list[dict[str, Any]]:
    """The API's `payments` list → one dict per row: unknown fields dropped (names logged once),
    anything that is not an object kept as {"rejected": ..., "value": masked}."""
    records: list[dict[str, Any]] = []
    unknown: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            reason = f"payment is not an object: {type_name(item)}"
            records.append({REJECTED: reason, VALUE: mask_value(item)})
            continue
        extra = [key for key in item if key not in API_FIELDS]
        if extra:
            unknown.update(map(str, extra))
            item = {key: value for key, value in item.items() if key in API_FIELDS}
        records.append(item)
    if unknown:
        log_unknown(sorted(unknown))
    return records


def log_unknown(names: list[str]) -> None:
    """Say which unknown fields were dropped: their names only (masked), never their values."""
    shown = mask_card_numbers(", ".join(repr(name[:60]) for name in names[:20]))
    log.warning("payments API sent unknown fields, dropped: %s", shown)
