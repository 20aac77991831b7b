"""Secrets: which values are masked, and credentials stripped from every URI that is shown."""

from __future__ import annotations

import pytest

from graphwiz_trader.core.secrets import (
    env_secrets,
    forget_secrets,
    known_secrets,
    mask_secrets,
    redact_uri,
    redact_uris,
    register_secret,
)


@pytest.mark.parametrize("uri, shown", [
    ("bolt://neo4j:s3cret@localhost:7687", "bolt://localhost:7687"),
    ("neo4j+s://admin:p@ss@db.example.com:7687/graph", "neo4j+s://db.example.com:7687/graph"),
    ("bolt://user:pa/ss@host:7687", "bolt://host:7687"),
    ("bolt://onlyuser@host", "bolt://host"),
    ("bolt://localhost:7687", "bolt://localhost:7687"),
    ("https://host/path?mail=a@b", "https://host/path?mail=a@b"),
])
def test_redact_uri_strips_user_and_password(uri, shown):
    assert redact_uri(uri) == shown


def test_uris_inside_free_text_lose_their_credentials():
    text = "failed to reach bolt://neo4j:hunter22@h:7687 (tried 'neo4j://u:p@h2') see http://x/y?m=a@b"
    assert redact_uris(text) == "failed to reach bolt://h:7687 (tried 'neo4j://h2') see http://x/y?m=a@b"


def test_secret_environment_variables_and_uri_passwords_are_known_secrets():
    env = {"BINANCE_API_KEY": "k" * 12, "BINANCE_API_SECRET": "s" * 12, "NEO4J_PASSWORD": "pw-1234",
           "SOME_TOKEN": "ab", "EXCHANGE_PASSPHRASE": "phrase-99", "NEO4J_URI": "bolt://neo4j:uri-pass@h:7687",
           "HOME": "/root", "PATH": "/usr/bin"}
    assert env_secrets(env) == {"k" * 12, "s" * 12, "pw-1234", "phrase-99", "uri-pass"}


def test_mask_secrets_masks_the_longest_match_and_url_encoded_forms():
    forget_secrets()
    register_secret("abc/def+ghi")
    try:
        secrets = known_secrets(environ={})
        assert mask_secrets("raw abc/def+ghi, in a URL abc%2Fdef%2Bghi", secrets) == "raw ***, in a URL ***"
    finally:
        forget_secrets()


def test_a_password_inside_the_graph_uri_never_appears_in_graph_errors():
    from graphwiz_trader.graph.store_errors import GraphAuthError, GraphStoreError, GraphUnavailableError

    uri = "bolt://neo4j:Sup3rS3cret@graph.internal:7687"
    errors = [GraphUnavailableError(uri, f"Couldn't connect to {uri}"), GraphAuthError(uri, "neo4j", "bad login"),
              GraphStoreError(f"invalid graph URI {uri!r}: port out of range")]
    for exc in errors:
        assert "Sup3rS3cret" not in str(exc)
        assert "bolt://graph.internal:7687" in str(exc)
    assert errors[0].uri == errors[1].uri == "bolt://graph.internal:7687"


@pytest.mark.parametrize("scheme", ["bolt", "bolt+bad"])
def test_a_traceback_of_a_failed_graph_connection_never_repeats_the_password_in_the_uri(scheme):
    import traceback

    from graphwiz_trader.config.settings import GraphSettings
    from graphwiz_trader.graph.store import GraphStore
    from graphwiz_trader.graph.store_errors import GraphStoreError

    secret = "hunter2-Sup3r"
    settings = GraphSettings(uri=f"{scheme}://neo4j:{secret}@127.0.0.1:1", user="neo4j", password=secret)
    try:
        GraphStore.connect(settings)
    except GraphStoreError as exc:
        text = "".join(traceback.format_exception(exc))
    else:  # pragma: no cover
        raise AssertionError("connecting to a bad URI must fail")
    assert secret not in text and "127.0.0.1:1" in text
