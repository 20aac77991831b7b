"""Secret values never shown: a registry of secrets to mask, and credentials stripped from URIs.

Secrets are (1) values registered with :func:`register_secret` (the loader registers every ``SecretStr``
of a loaded config) and (2) environment variables whose names end in ``_KEY``, ``_SECRET``,
``_PASSWORD``, ``_TOKEN`` or ``_PASSPHRASE``, plus the password inside any environment variable holding a
URI (``NEO4J_URI=bolt://neo4j:pw@host``). Values shorter than :data:`MIN_SECRET_LENGTH` characters are
not masked (they would blank out ordinary words).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import quote

MASK = "***"
MIN_SECRET_LENGTH = 4
SECRET_ENV_SUFFIXES: tuple[str, ...] = ("_KEY", "_SECRET", "_PASSWORD", "_TOKEN", "_PASSPHRASE")

_REGISTERED: set[str] = set()
_LOCK = threading.Lock()
# scheme://userinfo@ ; userinfo runs to the last '@' before the host (passwords may hold '@')
_URI_CREDENTIALS_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#'\"<>]*@)")


def register_secret(value: object) -> None:
    """Remember ``value`` (a ``str`` or a pydantic ``SecretStr``) so that it is masked wherever it is logged."""
    if value is None:
        return
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    text = str(value)
    if len(text) >= MIN_SECRET_LENGTH:
        with _LOCK:
            _REGISTERED.add(text)


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    with _LOCK:
        _REGISTERED.clear()


def _userinfo(uri: str) -> tuple[str, str, str] | None:
    """(``scheme://``, ``user:password``, rest) of one URI, or None when it holds no credentials.

    Follows RFC 3986 (userinfo ends at the authority's last ``@``), and also catches an unencoded ``/``
    in a password (``bolt://u:pa/ss@host``): a ``user:...@`` before the last ``@`` counts as credentials.
    """
    m = _URI_CREDENTIALS_RE.match(uri.strip())
    if m:
        return m.group("scheme"), m.group("userinfo")[:-1], uri.strip()[m.end():]
    head, sep, tail = uri.strip().partition("://")
    if not sep or "@" not in tail or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", head):
        return None
    userinfo, _, rest = tail.rpartition("@")
    if ":" in userinfo and not any(ch.isspace() for ch in userinfo):
        return head + sep, userinfo, rest
    return None


def _uri_password(value: str) -> str | None:
    parts = _userinfo(value)
    if parts is None:
        return None
    _, sep, password = parts[1].partition(":")
    return password if sep and password else None


def env_secrets(environ: Mapping[str, str] | None = None) -> set[str]:
    """Values of secret-named environment variables, and passwords inside URI-valued ones."""
    env = os.environ if environ is None else environ
    out: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if name.upper().endswith(SECRET_ENV_SUFFIXES):
            out.add(value)
        elif "://" in value:
            pw = _uri_password(value)
            if pw:
                out.add(pw)
    return {v for v in out if len(v) >= MIN_SECRET_LENGTH}


def known_secrets(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every value to mask now: registered secrets and secret environment variables."""
    with _LOCK:
        registered = set(_REGISTERED)
    return frozenset(registered | env_secrets(environ))


@lru_cache(maxsize=8)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    variants: set[str] = set()
    for s in secrets:
        variants.add(s)
        variants.add(quote(s, safe=""))  # as it appears in a URL
    if not variants:
        return None
    # longest first, so a secret that contains another is masked whole
    return re.compile("|".join(re.escape(v) for v in sorted(variants, key=len, reverse=True)))


def mask_secrets(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret replaced by ``***`` and credentials stripped from every URI in it."""
    if not text:
        return text
    pattern = _pattern(frozenset(known_secrets() if secrets is None else secrets))
    out = pattern.sub(MASK, text) if pattern is not None else text
    return redact_uris(out)


def redact_uri(uri: object) -> str:
    """``bolt://neo4j:pw@host:7687/db`` -> ``bolt://host:7687/db``: the URI without its user and password.

    Anything that is not a URI with credentials comes back unchanged (as text).
    """
    text = "" if uri is None else str(uri)
    parts = _userinfo(text)
    if parts is not None:
        return parts[0] + parts[2]
    return redact_uris(text)


def redact_uris(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` becomes ``scheme://`` (free text, tracebacks, messages)."""
    if "://" not in text:
        return text
    return _URI_CREDENTIALS_RE.sub(lambda m: m.group("scheme"), text)


def scrub_exception(exc: BaseException) -> BaseException:
    """``exc`` (and the exceptions it chains) with secrets masked and URI credentials stripped from their args,
    so a traceback that shows the cause never repeats a password. Returns ``exc`` for ``raise ... from``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        try:
            cur.args = tuple(mask_secrets(a) if isinstance(a, str) else a for a in cur.args)
        except (AttributeError, TypeError):  # an exception type with read-only args keeps them
            pass
        cur = cur.__cause__ or cur.__context__
    return exc
