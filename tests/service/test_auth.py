"""API keys: stored as SHA-256 digests, matched with hmac.compare_digest against every stored digest, scopes
read < trade, keys from the X-API-Key header or a bearer token, a key maker that prints the digest line."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from graphwiz_trader.config.settings import ApiSettings
from graphwiz_trader.errors import ConfigError
from graphwiz_trader.service import auth
from graphwiz_trader.service.auth import (
    ApiKeyStore,
    AuthError,
    new_api_key,
    presented_key,
)


def _store(*pairs: tuple[str, str, str]) -> ApiKeyStore:
    return ApiKeyStore.from_lines([f"{hashlib.sha256(k.encode()).hexdigest()} {s} {n}" for k, s, n in pairs], "test")


def test_a_key_is_matched_by_its_sha256_digest_and_its_scope_decides_the_routes() -> None:
    keys = _store(("reader-key-1", "read", "grafana"), ("trader-key-2", "trade", "ops"))
    assert keys.authenticate("reader-key-1", "read").name == "grafana"
    assert keys.authenticate("trader-key-2", "read").name == "ops"      # trade implies read
    assert keys.authenticate("trader-key-2", "trade").name == "ops"
    with pytest.raises(AuthError) as too_narrow:
        keys.authenticate("reader-key-1", "trade")
    assert too_narrow.value.status == 403 and "'read'" in str(too_narrow.value)
    for bad in (None, "", "reader-key-2", "READER-KEY-1"):
        with pytest.raises(AuthError) as refused:
            keys.authenticate(bad, "read")
        assert refused.value.status == 401


def test_the_presented_digest_is_compared_with_every_stored_digest_by_compare_digest(monkeypatch) -> None:
    keys = _store(("k-one-1234", "read", "a"), ("k-two-1234", "read", "b"), ("k-three-1234", "trade", "c"))
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    assert keys.match("k-one-1234").name == "a"          # the first key matches: the loop still runs to the end
    assert len(calls) == 3
    assert {c[0] for c in calls} == {hashlib.sha256(b"k-one-1234").hexdigest().encode()}
    calls.clear()
    assert keys.match("nobody") is None
    assert len(calls) == 3


def test_keys_come_from_the_header_or_a_bearer_token_and_nothing_else() -> None:
    assert presented_key({"x-api-key": " abc "}) == "abc"
    assert presented_key({"authorization": "Bearer tok-1"}) == "tok-1"
    assert presented_key({"authorization": "bearer tok-1"}) == "tok-1"
    assert presented_key({"authorization": "Basic dXNlcjpwdw=="}) is None
    assert presented_key({"authorization": "Bearer "}) is None
    assert presented_key({}) is None


def test_keys_load_from_a_file_and_inline_lines_and_bad_lines_are_refused_without_echoing_them(tmp_path) -> None:
    key, line = new_api_key("trade", "ops")
    assert line.split() == [hashlib.sha256(key.encode()).hexdigest(), "trade", "ops"] and len(key) >= 40
    f = tmp_path / "keys.txt"
    f.write_text(f"# service keys\n\n{line}\n")
    other, other_line = new_api_key("read", "dash")
    keys = ApiKeyStore.from_settings(ApiSettings(keys_file=f, keys=[other_line]))
    assert len(keys) == 2 and keys.authenticate(key, "trade").name == "ops"
    assert keys.authenticate(other, "read").name == "dash"
    with pytest.raises(ConfigError, match="line 1.*SHA-256") as raw:
        ApiKeyStore.from_lines([f"{key} read x"], "api.keys")     # a raw key where a digest belongs
    assert key not in str(raw.value)
    with pytest.raises(ConfigError, match="scope must be one of read, trade"):
        ApiKeyStore.from_lines([f"{'a' * 64} admin x"], "api.keys")
    with pytest.raises(ConfigError, match="listed twice"):
        ApiKeyStore.from_lines([line, line.replace("ops", "ops2")], "api.keys")
    with pytest.raises(ConfigError, match="cannot read it"):
        ApiKeyStore.from_settings(ApiSettings(keys_file=tmp_path / "missing.txt"))


def test_the_key_maker_prints_the_key_once_and_its_digest_line(capsys) -> None:
    assert auth.main(["--scope", "trade", "--name", "ops"]) == 0
    out = capsys.readouterr().out.splitlines()
    key = out[0].rsplit(" ", 1)[1]
    assert out[-1] == f"{hashlib.sha256(key.encode()).hexdigest()} trade ops"
    assert auth.main(["--name", "bad name!"]) == 2
