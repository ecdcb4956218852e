"""A real SMTP server for e-mail tests: aiosmtpd on a free port, in a thread of this process.

    with smtp_server() as inbox:                        # or smtp_server(login=("u", "p"))
        ...  # anything, in this process or another, sending to inbox.url
        [message] = inbox.wait_for(1)                   # email.message.EmailMessage

The app sends after COMMIT, possibly from another process (a gunicorn worker), so `wait_for`
waits a bounded time for the messages to arrive instead of assuming they already have.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers import free_port


@dataclass
class Inbox:
    """What the server accepted: each message with its envelope recipients."""

    url: str = ""
    login: tuple[str, str] | None = None
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    # Every AUTH attempt: (user, accepted?)
    logins: list[tuple[str, bool]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.arrived:
            self.messages.append(message)
            self.recipients.append(list(envelope.rcpt_tos))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        accepted = (user, password) == self.login
        self.logins.append((user, accepted))
        return AuthResult(success=accepted)

    def wait_for(self, count: int, timeout: float = 20) -> list[EmailMessage]:
        """The first `count` messages, once they have arrived; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.messages)} message(s) arrived in {timeout} s, not {count}"
                    )
                self.arrived.wait(left)
            return self.messages[:count]


@contextmanager
def smtp_server(login: tuple[str, str] | None = None):
    """Yields an Inbox whose `url` is the DJANGO_EMAIL_URL that reaches this server. With
    `login`, the server refuses mail from clients that did not authenticate as that user
    (plain AUTH, no TLS: it is on 127.0.0.1), and the URL carries the credentials."""
    inbox = Inbox(login=login)
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate if login else None,
        auth_required=login is not None,
        auth_require_tls=False,
    )
    credentials = f"{quote(login[0], safe='')}:{quote(login[1], safe='')}@" if login else ""
    inbox.url = f"smtp://{credentials}127.0.0.1:{port}"
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
