"""API keys of the service: stored as SHA-256 digests, compared in constant time, with scopes.

A key is a random URL-safe token (:func:`new_api_key`). Only its SHA-256 hex digest is stored, one line per
key ``<sha256 hex> <scope> <name>`` in a keys file (``api.keys_file``) or inline (``api.keys``). A presented
key is hashed and its digest compared with **every** stored digest by :func:`hmac.compare_digest`, without
stopping at a match, so the time taken does not tell which key (or whether any) matched.

Scopes: ``read`` (every GET route) and ``trade`` (pause, resume, kill; implies ``read``).
Keys come in the ``X-API-Key`` header or as ``Authorization: Bearer <key>``. A key is never logged, never put
in a response or an error message; logs name the key's ``name`` only.

Make a key from the shell::

    python -m graphwiz_trader.service.auth --scope read --name grafana

prints the key once (give it to the client) and the digest line (put it in the keys file).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from graphwiz_trader.errors import ConfigError, GraphwizError

Scope = Literal["read", "trade"]
SCOPES: tuple[str, ...] = ("read", "trade")
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class AuthError(GraphwizError):
    """A request without a valid key (HTTP 401) or with too narrow a scope (HTTP 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiKey:
    """One stored key: its SHA-256 hex ``digest``, ``scope`` and a ``name`` (shown in logs instead of the key)."""

    digest: str
    scope: str
    name: str

    def allows(self, scope: str) -> bool:
        """True when this key may use a route of ``scope`` (``trade`` implies ``read``)."""
        return self.scope == "trade" or scope == "read"


def key_digest(key: str) -> str:
    """SHA-256 hex digest of a key (UTF-8)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key_line(line: str, where: str) -> ApiKey | None:
    """One ``<sha256 hex> <scope> <name>`` line (None for a blank line or a ``#`` comment).

    Raises
    ------
    ConfigError
        A malformed line, naming ``where`` (file and line number); the line itself is not echoed.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split()
    if len(parts) != 3:
        raise ConfigError(f"{where}: expected '<sha256 hex digest> <scope> <name>', got {len(parts)} field(s)")
    digest, scope, name = parts
    digest = digest.lower()
    if not _DIGEST_RE.match(digest):
        raise ConfigError(f"{where}: the first field must be a 64-digit SHA-256 hex digest of the key (never the "
                          "key itself; make one with `python -m graphwiz_trader.service.auth`)")
    if scope not in SCOPES:
        raise ConfigError(f"{where}: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}: name must be 1-64 characters of letters, digits, '_.@-', got {name!r}")
    return ApiKey(digest, scope, name)


class ApiKeyStore:
    """The service's keys (digests only) and the constant-time check of a presented key.

    Parameters
    ----------
    keys : iterable of ApiKey
        The stored keys; two keys with the same digest are refused.
    """

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys: tuple[ApiKey, ...] = tuple(keys)
        seen: set[str] = set()
        for k in self._keys:
            if k.digest in seen:
                raise ConfigError(f"API key {k.name!r}: the same key digest is listed twice")
            seen.add(k.digest)

    @classmethod
    def from_lines(cls, lines: Sequence[str], where: str) -> ApiKeyStore:
        """Keys from digest lines; ``where`` names their source in errors."""
        parsed = [parse_key_line(line, f"{where} line {i}") for i, line in enumerate(lines, 1)]
        return cls(k for k in parsed if k is not None)

    @classmethod
    def from_settings(cls, api: Any) -> ApiKeyStore:
        """Keys of an :class:`~graphwiz_trader.config.settings.ApiSettings`: its ``keys_file`` and ``keys`` lines.

        Raises
        ------
        ConfigError
            The keys file cannot be read, or a line is malformed.
        """
        lines_from: list[ApiKey] = []
        if api.keys_file is not None:
            path = Path(api.keys_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"api.keys_file {path}: cannot read it ({exc.strerror or exc})") from None
            lines_from.extend(cls.from_lines(text.splitlines(), f"api.keys_file {path}")._keys)
        lines_from.extend(cls.from_lines(list(api.keys), "api.keys")._keys)
        return cls(lines_from)

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, presented: str) -> ApiKey | None:
        """The stored key whose digest equals the presented key's digest, or None.

        Every stored digest is compared with :func:`hmac.compare_digest`, and the loop never exits early.
        """
        digest = key_digest(presented).encode("ascii")
        found: ApiKey | None = None
        for k in self._keys:
            same = hmac.compare_digest(digest, k.digest.encode("ascii"))
            if same and found is None:
                found = k
        return found

    def authenticate(self, presented: str | None, scope: str) -> ApiKey:
        """The key allowed to use a route of ``scope``.

        Raises
        ------
        AuthError
            401 when no key was sent or it is unknown, 403 when the key's scope is too narrow.
        """
        if scope not in SCOPES:
            raise GraphwizError(f"route scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if not presented:
            raise AuthError("an API key is required: send it as 'X-API-Key: <key>' or "
                            "'Authorization: Bearer <key>'", 401)
        key = self.match(presented)
        if key is None:
            raise AuthError("the API key is not valid", 401)
        if not key.allows(scope):
            raise AuthError(f"the API key {key.name!r} has scope {key.scope!r}; this route needs {scope!r}", 403)
        return key


def presented_key(headers: Any) -> str | None:
    """The key of a request's headers: ``X-API-Key``, else ``Authorization: Bearer <key>``; None when absent."""
    direct = headers.get("x-api-key")
    if direct:
        return str(direct).strip() or None
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = str(auth).strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def new_api_key(scope: str, name: str) -> tuple[str, str]:
    """A new key and its digest line ``<sha256 hex> <scope> <name>`` (store only the line).

    Raises
    ------
    ConfigError
        An unknown scope or a name that is not 1-64 characters of letters, digits, ``_.@-``.
    """
    key = secrets.token_urlsafe(32)
    line = f"{key_digest(key)} {scope} {name}"
    parse_key_line(line, "new key")  # validates scope and name
    return key, line


def main(argv: Sequence[str] | None = None) -> int:
    """Print a new key (once) and the digest line for the keys file."""
    parser = argparse.ArgumentParser(prog="python -m graphwiz_trader.service.auth",
                                     description="Make a new API key for the service's HTTP API.")
    parser.add_argument("--scope", choices=SCOPES, default="read", help="read (GET routes) or trade (also "
                        "pause/resume/kill); default read")
    parser.add_argument("--name", required=True, help="a label for the key, shown in logs instead of the key")
    args = parser.parse_args(argv)
    try:
        key, line = new_api_key(args.scope, args.name)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"key (give it to the client; it is not stored anywhere): {key}")
    print(f"digest line (append to api.keys_file):\n{line}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
