"""A local SMTP server that keeps every email it receives as a `.eml` file.

Used by `make run` (the local inbox, `.local/mail/`) and by the tests (a real SMTP server on
loopback). Production sends to a real SMTP server instead; nothing here is used there.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _SaveToMaildir:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        final = self.maildir / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = final.with_suffix(".tmp")
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(final)  # readers never see half a message
        return "250 Message accepted for delivery"


class MailCatcher:
    """SMTP server on `host:port` saving messages to `maildir`; use as a context manager."""

    def __init__(self, maildir: Path, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.maildir = Path(maildir)
        self.maildir.mkdir(parents=True, exist_ok=True)
        self.host, self._port = host, port
        self._controller: Controller | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> MailCatcher:
        """Start serving (again: a stopped catcher can be restarted, as a real server would)."""
        self._controller = Controller(
            _SaveToMaildir(self.maildir), hostname=self.host, port=self._port
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self) -> list[EmailMessage]:
        return read_maildir(self.maildir)


def read_maildir(maildir: Path) -> list[EmailMessage]:
    """Every saved message, oldest first."""
    messages = []
    for path in sorted(Path(maildir).glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        messages.append(parsed)
    return messages
