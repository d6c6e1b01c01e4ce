"""Who may talk to ``mmrec serve`` and how much they may send: a bearer token, the ``Host`` header
check (against DNS rebinding) and a cap on request bodies — one ASGI middleware, :class:`Guard`.

``/health`` and the page shell (``/``) are open; every other route needs ``Authorization: Bearer
<token>`` when a token is set. A server bound to a non-loopback address without a token refuses to
start unless told ``insecure`` (:func:`check_binding`).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrec.errors import ConfigError

__all__ = ["AccessPolicy", "Guard", "check_binding", "read_token", "TOKEN_ENV", "OPEN_PATHS",
           "DEFAULT_MAX_BODY"]

TOKEN_ENV = "MMREC_API_TOKEN"
OPEN_PATHS = frozenset({"/health", "/"})
DEFAULT_MAX_BODY = 8 * 2**20
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class AccessPolicy:
    """What :class:`Guard` enforces. ``allowed_hosts=None`` accepts any ``Host`` header (a library
    app behind its own proxy); ``token=None`` leaves the routes open."""

    token: str | None = None
    allowed_hosts: frozenset[str] | None = frozenset(LOOPBACK_HOSTS)
    max_body: int = DEFAULT_MAX_BODY

    @classmethod
    def for_binding(cls, host: str, *, token: str | None, allowed_hosts: list[str] | None = None,
                    max_body: int = DEFAULT_MAX_BODY) -> AccessPolicy:
        """The policy of a server bound to ``host``: the loopback names, the bound address (unless
        it is a wildcard) and ``allowed_hosts``."""
        hosts = {*LOOPBACK_HOSTS, *(name.lower().strip("[]") for name in allowed_hosts or [])}
        if host not in ("0.0.0.0", "::", ""):
            hosts.add(host.lower().strip("[]"))
        if max_body < 1:
            raise ConfigError(f"--max-body must be a positive number of bytes, got {max_body}.")
        return cls(token=token, allowed_hosts=frozenset(hosts), max_body=max_body)


def read_token(token_file: str | os.PathLike[str] | None = None) -> str | None:
    """The API token: the first line of ``token_file``, else ``$MMREC_API_TOKEN``, else None."""
    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text("utf-8").strip().splitlines()[0].strip() if path.stat().st_size else ""
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--token-file {path.name}: cannot read a token "
                              f"({type(exc).__name__}).") from None
        if not token:
            raise ConfigError(f"--token-file {path.name} is empty: write the token on its first line.")
        return token
    return os.environ.get(TOKEN_ENV) or None


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_binding(host: str, token: str | None, *, insecure: bool = False) -> None:
    """Refuse to serve every network interface (or any non-loopback address) without a token."""
    if token is None and not is_loopback(host) and not insecure:
        raise ConfigError(
            f"refusing to listen on {host} without an API token: anyone who can reach this machine "
            f"could read and change the served state. Set {TOKEN_ENV} (or --token-file PATH), or "
            "pass --insecure if another layer (a proxy, a firewall) guards it.")


class _TooLarge(Exception):
    """The streamed body passed the cap."""


def _host_name(header: str) -> str:
    """The name in a ``Host`` header, without the port (``[::1]:8000`` → ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware enforcing an :class:`AccessPolicy` before the app sees a request: a ``Host``
    not allowed → 400; a missing or wrong token → 401; a body over ``max_body`` → 413 (by
    ``Content-Length`` at once, or while a chunked body streams in — the rest is never read)."""

    def __init__(self, app: Callable[[Message, Receive, Send], Awaitable[None]],
                 policy: AccessPolicy) -> None:
        self.app, self.policy = app, policy
        self._expected = None if policy.token is None else f"Bearer {policy.token}".encode()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        allowed = self.policy.allowed_hosts
        if allowed is not None and _host_name(headers.get("host", "")) not in allowed:
            await _reply(send, 400, "this server does not answer to that Host name (see --allowed-hosts).")
            return
        if self._expected is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, self._expected):
                await _reply(send, 401, "missing or wrong API token: send 'Authorization: Bearer <token>'.",
                             [(b"www-authenticate", b"Bearer")])
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.policy.max_body):
            await self._too_large(send)
            return
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Message, receive: Receive, send: Send) -> None:
        received, over, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.policy.max_body:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app answers to the cut-off body is replaced by the 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await _reply(send, 413, f"request body over the {self.policy.max_body:,}-byte limit (--max-body).")


async def _reply(send: Send, status: int, detail: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
