"""A small web inbox over the mail catcher's folder of `.eml` files (`fraud-dev serve-mail`).

Locally the fraud alerts land in `.local/mail/` as `.eml` files (MailCatcher); this page lists them
newest first and shows each one as the analyst's mail client would (its HTML part in a sandboxed
frame). With Docker, Mailpit plays both roles. Read-only: the folder is the source of truth.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import html
import json
import re
import signal
import threading
import time
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline.config import get_settings

_MESSAGE_ID = re.compile(r"^[\w.-]+$")  # the .eml file's stem; nothing that could leave the folder


@dataclass(frozen=True)
class MessageSummary:
    id: str
    date: str
    sender: str
    to: str
    subject: str


def _parse(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _summary(path: Path, message: EmailMessage) -> MessageSummary:
    date = message.get("Date", "")
    with contextlib.suppress(TypeError, ValueError):
        date = parsedate_to_datetime(date).isoformat(timespec="seconds") if date else ""
    return MessageSummary(
        id=path.stem,
        date=date,
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "(no subject)")),
    )


class Inbox:
    """The maildir as a list of messages, newest first (file names start with a UTC stamp)."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = Path(maildir)

    def paths(self) -> list[Path]:
        return sorted(self.maildir.glob("*.eml"), reverse=True)

    def summaries(self) -> list[MessageSummary]:
        return [_summary(path, _parse(path)) for path in self.paths()]

    def path_of(self, message_id: str) -> Path | None:
        if not _MESSAGE_ID.match(message_id):
            return None
        path = self.maildir / f"{message_id}.eml"
        return path if path.is_file() else None


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>{refresh}
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933}}
table{{border-collapse:collapse;width:100%}} td,th{{padding:.4rem .6rem;text-align:left}}
tr:nth-child(even){{background:#f5f7fa}} th{{border-bottom:2px solid #cbd2d9}}
a{{color:#0b69a3;text-decoration:none}} .muted{{color:#7b8794}}
iframe{{width:100%;height:70vh;border:1px solid #cbd2d9}}
</style></head><body>{body}</body></html>"""


def render_list(summaries: list[MessageSummary], maildir: Path) -> str:
    rows = "".join(
        f"<tr><td class=muted>{html.escape(m.date)}</td><td>{html.escape(m.sender)}</td>"
        f"<td>{html.escape(m.to)}</td>"
        f'<td><a href="/messages/{html.escape(m.id)}">{html.escape(m.subject)}</a></td></tr>'
        for m in summaries
    )
    body = (
        f"<h1>Local inbox</h1><p class=muted>{len(summaries)} message(s) in "
        f"{html.escape(str(maildir))} · refreshes every 10 s</p>"
        "<table><tr><th>Date</th><th>From</th><th>To</th><th>Subject</th></tr>"
        f"{rows}</table>"
    )
    return _PAGE.format(
        title="Local inbox", refresh='<meta http-equiv="refresh" content="10">', body=body
    )


def render_message(message_id: str, message: EmailMessage) -> str:
    summary = _summary(Path(f"{message_id}.eml"), message)
    part = message.get_body(("html", "plain"))
    content = part.get_content() if part is not None else ""
    if part is not None and part.get_content_subtype() == "plain":
        content = f"<pre>{html.escape(content)}</pre>"
    # An empty sandbox: the email's HTML is shown, its scripts and forms never run.
    frame = f'<iframe sandbox="" srcdoc="{html.escape(content, quote=True)}"></iframe>'
    body = (
        f'<p><a href="/">&larr; inbox</a> · <a href="/messages/{html.escape(message_id)}.eml">'
        f"raw .eml</a></p><h2>{html.escape(summary.subject)}</h2>"
        f"<p class=muted>{html.escape(summary.date)} · from {html.escape(summary.sender)} "
        f"to {html.escape(summary.to)}</p>{frame}"
    )
    return _PAGE.format(title=html.escape(summary.subject), refresh="", body=body)


def make_handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class InboxHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request
            pass

        def _send(self, status: int, content_type: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                self._send(HTTPStatus.OK, "text/plain", b"ok")
            elif path == "/":
                page = render_list(inbox.summaries(), inbox.maildir)
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", page.encode())
            elif path == "/api/messages":
                payload = json.dumps([asdict(m) for m in inbox.summaries()]).encode()
                self._send(HTTPStatus.OK, "application/json", payload)
            elif path.startswith("/messages/"):
                self._message(path.removeprefix("/messages/"))
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

        def _message(self, name: str) -> None:
            raw = name.endswith(".eml")
            found = inbox.path_of(name.removesuffix(".eml"))
            if found is None:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"no such message")
            elif raw:
                self._send(HTTPStatus.OK, "message/rfc822", found.read_bytes())
            else:
                page = render_message(found.stem, _parse(found))
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", page.encode())

    return InboxHandler


def make_server(maildir: Path, host: str = "127.0.0.1", port: int = 8026) -> ThreadingHTTPServer:
    """The web inbox, bound but not yet serving (call serve_forever)."""
    server = ThreadingHTTPServer((host, port), make_handler(Inbox(maildir)))
    server.daemon_threads = True
    return server


def serve_mail(maildir: Path, host: str, smtp_port: int, web_port: int) -> None:
    """The SMTP catcher and its web inbox until SIGINT/SIGTERM."""
    signal.signal(signal.SIGTERM, _interrupt)  # same clean exit as Ctrl-C
    web = make_server(maildir, host, web_port)
    with MailCatcher(maildir, host=host, port=smtp_port) as catcher:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        print(
            f"SMTP on {host}:{catcher.port}, inbox http://{host}:{web_port}/, files in {maildir}",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            web.shutdown()
            web.server_close()


def _interrupt(signum: int, frame: object) -> None:
    # Raising is all a handler may do safely: no locks (an Event.set() here can deadlock).
    raise KeyboardInterrupt


def main(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    web_port: int | None = None,
    maildir: str | Path | None = None,
) -> int:
    """`fraud-dev serve-mail`: the SMTP catcher and web inbox, until interrupted.

    `port` defaults to SMTP_PORT, `web_port` to INBOX_PORT, `maildir` to `.local/mail`.
    """
    settings = get_settings()
    serve_mail(
        Path(maildir) if maildir else settings.local_state_dir / "mail",
        host,
        port if port is not None else settings.smtp_port,
        web_port if web_port is not None else settings.inbox_port,
    )
    return 0
