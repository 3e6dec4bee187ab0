"""The web inbox shows what the real SMTP catcher saved, and nothing outside its folder."""

from __future__ import annotations

import smtplib
import threading
from email.message import EmailMessage

import httpx

from fraud_devstack.stack.inbox_web import make_server
from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline.net import free_port


def test_emails_sent_over_smtp_are_listed_and_shown_sandboxed(tmp_path):
    maildir = tmp_path / "mail"
    (tmp_path / "secret.eml").write_text("Subject: outside the maildir\n\nno")
    web = make_server(maildir, port=free_port())
    threading.Thread(target=web.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{web.server_address[1]}"
    try:
        with MailCatcher(maildir, port=free_port()) as catcher:
            message = EmailMessage()
            message["From"], message["To"] = "fraud-pipeline@localhost", "fraud-team@localhost"
            message["Subject"] = "2 frauds <card ****1234>"
            message.set_content("plain")
            message.add_alternative("<p>Fraud <script>alert(1)</script></p>", subtype="html")
            with smtplib.SMTP("127.0.0.1", catcher.port) as smtp:
                smtp.send_message(message)

        listed = httpx.get(f"{base}/api/messages").json()
        assert [m["subject"] for m in listed] == ["2 frauds <card ****1234>"]
        page = httpx.get(f"{base}/").text
        assert "2 frauds &lt;card ****1234&gt;" in page  # escaped, not markup
        shown = httpx.get(f"{base}/messages/{listed[0]['id']}")
        assert shown.status_code == 200
        assert '<iframe sandbox=""' in shown.text and "<script>" not in shown.text
        raw = httpx.get(f"{base}/messages/{listed[0]['id']}.eml")
        assert raw.headers["content-type"] == "message/rfc822" and b"Subject:" in raw.content
        for outside in ("../secret", "..%2Fsecret", "%2e%2e/secret"):
            assert httpx.get(f"{base}/messages/{outside}").status_code == 404
    finally:
        web.shutdown()
        web.server_close()
