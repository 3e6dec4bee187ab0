"""The local SMTP server really speaks SMTP and keeps each message once."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from fraud_devstack.stack.mailcatcher import MailCatcher
from fraud_pipeline.net import free_port


def test_messages_sent_over_smtp_are_saved_as_eml(tmp_path):
    with MailCatcher(tmp_path / "mail", port=free_port()) as catcher:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@x", "b@x", "Fraud alert"
        message.set_content("plain")
        message.add_alternative("<p>html</p>", subtype="html")
        with smtplib.SMTP("127.0.0.1", catcher.port) as smtp:
            smtp.send_message(message)
        saved = catcher.messages()
    assert [m["Subject"] for m in saved] == ["Fraud alert"]
    assert saved[0].get_body(("html",)).get_content().strip() == "<p>html</p>"
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
