"""Card numbers for tests: Luhn-valid numbers to plant, and a scan for any of them.

The reliability suite plants the numbers of `PLANTED` (an unexpected field, free text, a
malformed page, an API error body) among the generator's own; after each of its tests,
`scan` looks for every input card number in what the test left behind: every table of the
database, every log record (exception text included) and every mail received.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import psycopg2
from psycopg2 import sql

from fraud_pipeline.devstack.mailcatcher import read_maildir

Place = tuple[str, str]  # (where, the text found there)
# A run of digits, possibly grouped by single spaces or dashes ("4111 1111 1111 1111").
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){10,}")


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
PLANTED = (IN_UNKNOWN_FIELD, IN_FREE_TEXT, IN_MALFORMED_PAGE, IN_ERROR_BODY)


def found_in(numbers: Iterable[str], text: str) -> set[str]:
    """The numbers in `text`: alone, grouped by spaces or dashes, or inside a longer digit run."""
    wanted = set(numbers)
    sizes = {len(n) for n in wanted}
    hits = set()
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
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
