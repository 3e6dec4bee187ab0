"""Card numbers for tests: numbers to plant, and a scan for them and for anything card-like.

The reliability suite plants the numbers of `PLANTED` (an unexpected field, free text, a
malformed page, an API error body) among the generator's own; after each of its tests,
`scan` looks for every input card number in what the test left behind (every table of the
database, every log record, exception text included, and every mail received), and
`broad_scan` for any digit run the masking rule (`security.masking.DIGIT_RUN`: 12 or more
digits, any separators, Luhn-valid or not) would have masked, in every log record, every mail
and every text column but the digests (`DIGEST_COLUMNS`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import psycopg2
from psycopg2 import sql

from fraud_devstack.stack.mailcatcher import read_maildir
from fraud_pipeline.config import get_settings
from fraud_pipeline.ingest.cards import identifier_token
from fraud_pipeline.security.masking import DIGIT_RUN, SEPARATOR

Place = tuple[str, str]  # (where, the text found there)
# Any run of 11+ digits with the masking rule's separators: a known number is found even one
# digit shorter than the rule's minimum, or inside a longer run.
_DIGIT_RUN = re.compile(r"\d(?:[ ./-]{0,3}\d){10,}")
# Text columns holding hex digests (keyed card tokens, payload hashes, email ids, the audit
# chain): their digit runs are hash output, not input. The known-number scan still reads them.
DIGEST_COLUMNS = re.compile(r".*(_token|_hash|_id|_digest|checksum|sha256)$")  # hashes, not text


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


# Planted by the reliability scenarios; the scan looks for every one of them after every test.
IN_UNKNOWN_FIELD = luhn_number("4916")
IN_FREE_TEXT = luhn_number("5425")
IN_MALFORMED_PAGE = luhn_number("3782", 15)
IN_ERROR_BODY = luhn_number("6011")
# Card numbers in eight shapes (Luhn-valid or not, 12 to 19 digits), planted in free-text
# fields, transaction ids and error bodies by tests/reliability/test_card_shapes.py.
SHAPED: dict[str, tuple[str, list[int], list[str]]] = {  # number, group sizes, separators
    "plain, 16 digits": ("4532015112830366", [16], []),
    "spaces in fours": ("5425233430109903", [4, 4, 4, 4], [" ", " ", " "]),
    "several spaces": ("4916338506082832", [4, 4, 4, 4], ["   ", "  ", "   "]),
    "dashes, not Luhn": ("6011000990139425", [4, 4, 4, 4], ["-", "-", "-"]),
    "dots, 15 digits": ("378282246310005", [4, 6, 5], [".", "."]),
    "slashes, 19 digits": ("6304000000000000007", [6, 7, 6], ["/", "/"]),
    "12 digits, mixed": ("501899453424", [3, 3, 6], [" -", "./"]),
    "14 digits in a word": ("30569309025904", [14], []),
    "Sparkov 13 digits, not Luhn": ("4988304376505", [1, 12], [" "]),
}
PLANTED = (
    IN_UNKNOWN_FIELD,
    IN_FREE_TEXT,
    IN_MALFORMED_PAGE,
    IN_ERROR_BODY,
    *(number for number, _, _ in SHAPED.values()),
)


def written(shape: str) -> str:
    """The card number of `SHAPED[shape]` as that shape writes it."""
    number, sizes, separators = SHAPED[shape]
    ends = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    groups = [number[end - size : end] for size, end in zip(sizes, ends, strict=True)]
    text = groups[0] + "".join(
        sep + group for sep, group in zip(separators, groups[1:], strict=True)
    )
    return f"ref{text}x" if "word" in shape else text


def stored_id(trans_num: str) -> str:
    """A transaction id as extract stores it (`cards.identifier_token` with the settings' key)."""
    return identifier_token(trans_num, get_settings().card_token_key.get_secret_value().encode())


def found_in(numbers: Iterable[str], text: str) -> set[str]:
    """The numbers in `text`: alone, grouped by spaces or dashes, or inside a longer digit run."""
    wanted = set(numbers)
    sizes = {len(n) for n in wanted}
    hits = set()
    for match in _DIGIT_RUN.finditer(text):
        digits = SEPARATOR.sub("", match.group())
        for size in sizes:
            hits.update(
                digits[i : i + size]
                for i in range(len(digits) - size + 1)
                if digits[i : i + size] in wanted
            )
    return hits


def leaks(numbers: Iterable[str], text: str) -> list[str]:
    """The numbers found in `text` (`found_in`), in the order given."""
    hits = found_in(numbers, text)
    return [number for number in numbers if number in hits]


def scan(numbers: Iterable[str], places: Iterable[Place]) -> list[str]:
    """Where each number was found, as "<place>: card ending 1234" (never the number itself)."""
    wanted = set(numbers)
    return [
        f"{where}: card ending {number[-4:]}"
        for where, text in places
        for number in sorted(found_in(wanted, text))
    ]


def broad_scan(places: Iterable[Place]) -> list[str]:
    """Where a digit run the masking rule would mask was left, as "<place>: 16 digits ending
    1234" (never the run itself)."""
    hits = []
    for where, text in places:
        for match in DIGIT_RUN.finditer(text):
            digits = SEPARATOR.sub("", match.group())
            hits.append(f"{where}: {len(digits)} digits ending {digits[-4:]}")
    return hits


def json_text(value: object) -> str:
    """The keys, strings and integers of a JSON value, one a line: its fractional numbers
    (model scores, reasons' weights at full precision) are measurements, not text."""
    if isinstance(value, dict):
        return "\n".join(f"{k}\n{json_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(json_text(v) for v in value)
    return "" if isinstance(value, float) else str(value)


def text_column_places(url: str) -> list[Place]:
    """Every text, varchar and JSON column of every table (one place a column), digests left
    out (`DIGEST_COLUMNS`), JSON read as `json_text`."""
    places = []
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN pg_tables t ON t.tablename = c.table_name AND t.schemaname = c.table_schema "
            "WHERE c.table_schema = 'public' "
            "AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb') "
            "ORDER BY 1, 2"
        )
        for table, column, kind in cur.fetchall():
            if DIGEST_COLUMNS.fullmatch(column):
                continue
            cur.execute(
                sql.SQL("SELECT {}::text FROM {} WHERE {} IS NOT NULL").format(
                    sql.Identifier(column), sql.Identifier(table), sql.Identifier(column)
                )
            )
            values = [v for (v,) in cur.fetchall()]
            if kind in ("json", "jsonb"):
                values = [json_text(json.loads(v)) for v in values]
            places.append((f"table {table} column {column}", "\n".join(values)))
    conn.close()
    return places


def database_places(url: str) -> list[Place]:
    """Every row of every table of the database, as PostgreSQL prints it (one place a table)."""
    places = []
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        for (table,) in cur.fetchall():
            cur.execute(
                sql.SQL("SELECT coalesce(string_agg(t::text, chr(10)), '') FROM {} t").format(
                    sql.Identifier(table)
                )
            )
            row = cur.fetchone()
            places.append(
                (f"database {url.rsplit('/', 1)[-1]} table {table}", row[0] if row else "")
            )
    conn.close()
    return places


def database_text(url: str) -> str:
    return "\n".join(text for _, text in database_places(url))


_FORMAT = logging.Formatter("%(levelname)s %(name)s: %(message)s")


def log_places(records: Iterable[logging.LogRecord]) -> list[Place]:
    """Every record as a handler writes it: message, exception and its chain, stack."""
    return [(f"log record of {r.name} ({r.levelname})", _FORMAT.format(r)) for r in records]


def mail_places(maildir: Path) -> list[Place]:
    """Every mail received: the file as sent and each of its parts decoded (base64, QP)."""
    places = [
        (f"mail {path.name}", path.read_bytes().decode("latin-1")) for path in maildir.glob("*.eml")
    ]
    for number, message in enumerate(read_maildir(maildir)):
        places.append((f"mail #{number} subject", str(message["Subject"])))
        for part in message.walk():
            if not part.is_multipart():
                payload = part.get_payload(decode=True) or b""
                places.append(
                    (
                        f"mail #{number} part {part.get_content_type()}",
                        payload.decode("utf-8", "replace"),
                    )
                )
    return places


class Recorder(logging.Handler):
    """Keeps every record it is handed (the scan reads them after the test)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
