"""SMTP: a real server on loopback (aiosmtpd) that keeps the mail it accepts."""

from __future__ import annotations

import asyncio
import email.policy
import socket
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import Any, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from localenv.standins.core import _LoopThread


class ReceivedEmail(EmailMessage):
    """A message the SMTP stand-in accepted, parsed with `email.policy.default`.

    Besides the headers and parts, it carries the SMTP envelope: `mail_from`, `rcpt_tos` (every
    recipient, Bcc included, which the headers do not show) and `auth_login` (the user name of an
    SMTP AUTH, if the client logged in). `at` is when it arrived (`time.time()`).
    """

    def __init__(self, policy: email.policy.Policy | None = None) -> None:
        super().__init__(policy)
        self.mail_from: str = ""
        self.rcpt_tos: list[str] = []
        self.auth_login: str | None = None
        self.at: float = 0.0


# email.policy.default (which is EmailPolicy()), except that it builds ReceivedEmail objects.
_EMAIL_POLICY = EmailPolicy(message_factory=ReceivedEmail)


def _accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    return AuthResult(success=True, auth_data=auth_data)


class _SmtpHandler:
    def __init__(self, deliver: Callable[[ReceivedEmail], None]) -> None:
        self._deliver = deliver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        content = envelope.original_content or envelope.content or b""
        data = content.encode("utf-8") if isinstance(content, str) else content
        message = BytesParser(policy=_EMAIL_POLICY).parsebytes(data)
        message.mail_from = envelope.mail_from or ""
        message.rcpt_tos = list(envelope.rcpt_tos)
        login = session.auth_data
        message.auth_login = login.login.decode("utf-8", errors="replace") if isinstance(login, LoginPassword) else None
        message.at = time.time()
        self._deliver(message)
        return "250 Message accepted for delivery"


class SmtpStandIn:
    """A real SMTP server on loopback that keeps every message it accepts, for the operator's email channel.

    Plain SMTP only: STARTTLS is not offered (configure the client without TLS). AUTH PLAIN and
    LOGIN are offered without TLS and accept any credentials, so a client configured with a user
    name works too. `on_receive` is called (on the server's thread) with every message.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_receive: Callable[[ReceivedEmail], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._on_receive = on_receive
        self._cond = threading.Condition()
        self._messages: list[ReceivedEmail] = []
        self._thread: _LoopThread | None = None
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        """Bind (port 0: a free port the OS picks) and serve in a daemon thread; `port` is the bound port afterwards."""
        if self._thread is not None:
            raise RuntimeError("SMTP stand-in already started")
        # Binding the socket here, rather than letting aiosmtpd's Controller bind a port we guessed,
        # means port 0 works and no other process can take the port in between.
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        thread = _LoopThread(f"standins-smtp-{self.port}")
        thread.start()
        try:
            self._server = thread.run(self._serve(sock))
        except BaseException:
            sock.close()
            thread.stop()
            raise
        self._thread = thread

    async def _serve(self, sock: socket.socket) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        handler = _SmtpHandler(self._deliver)

        def protocol() -> SMTP:
            return SMTP(
                handler,
                hostname="standins.localhost",
                loop=loop,
                authenticator=_accept_any_login,
                auth_require_tls=False,
            )

        return await loop.create_server(protocol, sock=sock)

    def stop(self) -> None:
        """Close the server and end its thread (idempotent)."""
        thread, server = self._thread, self._server
        self._thread = self._server = None
        if thread is None:
            return
        if server is not None:
            server.close()
        thread.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _deliver(self, message: ReceivedEmail) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
        if self._on_receive is not None:
            self._on_receive(message)

    def messages(self) -> list[ReceivedEmail]:
        """A snapshot of the messages accepted so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedEmail]:
        """Block until `count` messages were accepted and return them all; AssertionError listing them on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = [f"  to {', '.join(m.rcpt_tos)}: {m['Subject']}" for m in self._messages] or ["  (nothing)"]
                    raise AssertionError(
                        "\n".join([f"expected {count} email(s) within {timeout:g}s, got {len(self._messages)}:", *got])
                    )
                self._cond.wait(remaining)
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._cond:
            self._messages.clear()
