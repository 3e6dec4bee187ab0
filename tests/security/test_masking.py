"""One masking rule (`security.masking`), every shape, every sink: property-based.

Hypothesis writes card numbers (12 to 19 digits, Luhn-valid or not) in random shapes (plain,
grouped by spaces, several spaces, dashes, dots, slashes, mixed), at random places of random
text, and sends them to each sink: free text and ids as extract lands them, quarantine
payloads, log records (message, arguments, exception and its chain, through a real handler),
mail subjects and bodies, CSV exports. None survives; what the rule costs (legitimate values it
masks) and what it keeps are shown by the last tests.
"""

from __future__ import annotations

import io
import json
import logging

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_pipeline.alerting.mail import compose
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.extract import to_records
from fraud_pipeline.report.queries import to_csv
from fraud_pipeline.security import log_masking
from fraud_pipeline.security.masking import mask_card_numbers, mask_value
from tests.support.cards import found_in
from tests.support.factories import real_rows

numbers = st.text(alphabet="0123456789", min_size=12, max_size=19)
separators = st.text(alphabet=" -./", min_size=1, max_size=3)
# Text around a number: anything but a digit or a separator next to it (those would extend it).
around = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Nd")), max_size=30)


@st.composite
def shaped(draw: st.DrawFn) -> tuple[str, str]:
    """(the number, the number as written): plain, or cut in groups joined by separators."""
    number = draw(numbers)
    if draw(st.booleans()):
        return number, number
    cuts = sorted(draw(st.sets(st.integers(1, len(number) - 1), min_size=1, max_size=6)))
    groups = [number[a:b] for a, b in zip([0, *cuts], [*cuts, len(number)], strict=True)]
    same = draw(st.booleans())
    first = draw(separators)
    written = groups[0]
    for group in groups[1:]:
        written += (first if same else draw(separators)) + group
    return number, written


@st.composite
def in_text(draw: st.DrawFn) -> tuple[str, str]:
    number, written = draw(shaped())
    before, after = draw(around), draw(around)
    return number, f"{before.rstrip(' -./')} {written} {after.lstrip(' -./')}"


def leaked(number: str, text: str) -> bool:
    return bool(found_in([number], text)) or number in text


@given(in_text())
def test_no_shape_in_any_text_survives(case):
    number, text = case
    masked = mask_card_numbers(text)
    assert not leaked(number, masked), masked
    assert number[-4:] in masked and mask_card_numbers(masked) == masked  # idempotent


@given(shaped(), st.sampled_from(["merchant", "street", "city", "job", "first", "last"]))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_shape_survives_extract_in_a_field_or_the_id(case, field):
    number, written = case
    record = json.loads(real_rows().head(1).to_json(orient="records"))[0]
    record[field] = f"at {written} here"
    record["trans_num"] = f"ab{written}cd"
    landed = to_records(pd.DataFrame([record]))
    assert not leaked(number, landed.drop(columns=["card_token"]).to_json()), landed


@given(shaped(), st.integers(0, 3))
def test_no_shape_survives_in_a_quarantine_payload(case, depth):
    number, written = case
    payload: object = {f"key {written}": written, "n": int(number), "f": float(number)}
    for _ in range(depth):
        payload = {"inner": [payload, written]}
    assert not leaked(number, json.dumps(mask_value(payload)))


@pytest.fixture
def handler_output():
    """A real handler on a real logger, as the CLI's `basicConfig` sets one up."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("fraud_pipeline.test_masking")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    log_masking.install()
    assert log_masking.CardNumberFilter in {type(f) for f in handler.filters}
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


@given(in_text(), st.sampled_from(["msg", "arg", "int", "dict", "exception", "chain"]))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_shape_survives_a_log_record(handler_output, case, where):
    logger, stream = handler_output
    number, text = case
    stream.truncate(0)
    if where == "msg":
        logger.warning(text.replace("%", "%%"))
    elif where == "arg":
        logger.warning("payments API answered 500: %s", text)
    elif where == "int":
        logger.warning("card %d", int(number))
    elif where == "dict":
        logger.warning("card %(card)s", {"card": text})
    else:
        try:
            try:
                raise KeyError(text)
            except KeyError as error:
                if where == "chain":
                    raise RuntimeError("wrapped") from error
                raise
        except Exception:
            logger.exception("task failed")
    assert not leaked(number, stream.getvalue()), stream.getvalue()


@given(in_text())
@settings(max_examples=40, deadline=None)
def test_no_shape_survives_a_mail_subject_or_body(case):
    number, text = case
    context = {"frauds": [], "alert_id": text, "report_url": text, "generated_at": text}
    subject = " ".join(text.splitlines())  # a header holds one line
    message = compose(get_settings(), f"[fraud] {subject}", "id", "alert", context)
    assert not leaked(number, str(message["Subject"]))
    for part in message.walk():
        if not part.is_multipart():
            assert not leaked(number, part.get_content())


@given(in_text())
@settings(max_examples=40, deadline=None)
def test_no_shape_survives_a_csv_export(case):
    number, text = case
    csv = to_csv(pd.DataFrame({"merchant": [text], "amt": [12.5]})).decode()
    assert not leaked(number, csv)


KEPT = [  # what the rule leaves alone
    "12345678901",  # 11 digits
    "2026-12-06 22:19:06",  # a timestamp: colons end a run
    "2026-12-06T22:19:06+01:00",
    "lat 40.712776 long -74.005974",
    "amt 1234567.89, zip 75001",
    "2da90c7d74bd46a0caf3777415b3ebd3",  # a Sparkov transaction id
    "+33 6 12 34 56 7",  # 10 digits
    "1234 5678    9012 3456",  # four spaces end a run: 8 + 8 digits
]
MASKED_TOO = [  # the false-positive cost: legitimate values with 12+ digits in one run
    "current_time 1773100802000",  # epoch milliseconds
    "order id 100000000000123",  # a long numeric id
    "+44 20 7946 0958 12",  # a phone number with its extension
    "score 0.123456789012",  # a decimal with 12 digits
    "from 2026-12-06 2026-12-07",  # two dates side by side
    "on 2026-12-06 1234 payments",  # a date then a number
    "IBAN FR76 3000 6000 0112 3456 7890 189",  # the digit groups after the letters
]


@pytest.mark.parametrize("text", KEPT)
def test_the_rule_keeps_short_runs_times_amounts_and_hex_ids(text):
    assert mask_card_numbers(text) == text


@pytest.mark.parametrize("text", MASKED_TOO)
def test_the_rule_masks_long_legitimate_numbers_too(text):
    masked = mask_card_numbers(text)
    assert masked != text and "****" in masked


def test_an_argument_changed_after_logging_is_masked_as_it_was_logged(handler_output):
    """botocore logs its request dict, then adds a retry id to it before any handler formats
    the record: the record keeps what was logged, masked."""
    logger, _ = handler_output
    recorded: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = recorded.append  # type: ignore[method-assign]
    logger.addHandler(keep)
    try:
        request = {"url": "/invocations", "context": {}}
        logger.debug("Making request with params: %s", request)
    finally:
        logger.removeHandler(keep)
    request["context"]["retries"] = "invocation-id 4970-8408-4041-5555"
    (record,) = recorded
    assert "8408" not in logging.Formatter().format(record)
