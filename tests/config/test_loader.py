"""Config loading: ${ENV} substitution, unknown keys, secrets never shown."""

from pathlib import Path

import pytest

from graphwiz_trader.config import TradingSettings, load_config
from graphwiz_trader.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_the_shipped_config_loads_with_an_empty_environment():
    cfg = load_config(REPO / "config" / "trading_config.yaml", env={})
    assert isinstance(cfg, TradingSettings)
    assert cfg.qlib.freq == "60min"
    assert cfg.graph.uri is None  # ${NEO4J_URI:-} -> embedded server
    assert cfg.exchanges["binance"].api_key is None
    assert cfg.risk.max_position_weight == 0.25


def test_env_values_are_substituted(tmp_path):
    p = write(tmp_path, "exchanges:\n  binance:\n    api_key: ${BINANCE_API_KEY}\n    secret: ${S:-fallback}\n")
    cfg = load_config(p, env={"BINANCE_API_KEY": "k-123"})
    assert cfg.exchanges["binance"].api_key.get_secret_value() == "k-123"
    assert cfg.exchanges["binance"].secret.get_secret_value() == "fallback"


def test_an_unknown_key_fails_with_its_dotted_path(tmp_path):
    p = write(tmp_path, "risk:\n  max_position_weight: 0.2\n  max_positon_wieght: 0.3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'risk\.max_positon_wieght'"):
        load_config(p, env={})


def test_an_unknown_nested_key_under_a_named_exchange_is_reported_in_full(tmp_path):
    p = write(tmp_path, "exchanges:\n  binance:\n    apikey: x\n")
    with pytest.raises(ConfigError, match=r"unknown key 'exchanges\.binance\.apikey'"):
        load_config(p, env={})


def test_a_missing_env_var_fails_naming_it_and_where_it_is_used(tmp_path):
    p = write(tmp_path, "graph:\n  password: ${NEO4J_PASSWORD}\n")
    with pytest.raises(ConfigError, match=r"NEO4J_PASSWORD is not set \(used at 'graph\.password'\)"):
        load_config(p, env={})


def test_secrets_never_appear_in_reprs(tmp_path):
    p = write(tmp_path, "exchanges:\n  binance:\n    api_key: ${K}\n    secret: ${S}\ngraph:\n  password: ${P}\n")
    cfg = load_config(p, env={"K": "supersecretkey", "S": "supersecretsecret", "P": "hunter2hunter2"})
    text = repr(cfg) + str(cfg) + str(cfg.model_dump())
    for secret in ("supersecretkey", "supersecretsecret", "hunter2hunter2"):
        assert secret not in text


def test_a_bad_qlib_freq_is_rejected_with_a_hint(tmp_path):
    p = write(tmp_path, "qlib:\n  freq: 1h\n")
    with pytest.raises(ConfigError, match=r"'qlib\.freq'.*60min"):
        load_config(p, env={})


def unset_after_test(monkeypatch, *names):
    """Make ``names`` absent now and restore their absence after the test (.env loading sets them)."""
    for name in names:
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def test_dotenv_in_the_working_folder_supplies_missing_variables(tmp_path, monkeypatch):
    unset_after_test(monkeypatch, "GWZ_TEST_NEO4J_PASSWORD")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text("GWZ_TEST_NEO4J_PASSWORD=from-dotenv-in-cwd\n")
    cfg_file = write(tmp_path, "graph:\n  password: ${GWZ_TEST_NEO4J_PASSWORD}\n")
    monkeypatch.chdir(work)
    cfg = load_config(cfg_file)
    assert cfg.graph.password.get_secret_value() == "from-dotenv-in-cwd"


def test_dotenv_never_overrides_a_variable_already_set(tmp_path, monkeypatch):
    monkeypatch.setenv("GWZ_TEST_API_KEY", "from-the-environment")
    (tmp_path / ".env").write_text("GWZ_TEST_API_KEY=from-dotenv\n")
    cfg_file = write(tmp_path, "exchanges:\n  binance:\n    api_key: ${GWZ_TEST_API_KEY}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(cfg_file)
    assert cfg.exchanges["binance"].api_key.get_secret_value() == "from-the-environment"


def test_dotenv_beside_the_config_file_is_read_and_the_working_folders_wins(tmp_path, monkeypatch):
    unset_after_test(monkeypatch, "GWZ_TEST_A", "GWZ_TEST_B")
    conf_dir, work = tmp_path / "conf", tmp_path / "work"
    conf_dir.mkdir()
    work.mkdir()
    (conf_dir / ".env").write_text("GWZ_TEST_A=conf-a\nGWZ_TEST_B=conf-b\n")
    (work / ".env").write_text("GWZ_TEST_A=work-a\n")
    cfg_file = conf_dir / "c.yaml"
    cfg_file.write_text("graph:\n  user: ${GWZ_TEST_A}\n  password: ${GWZ_TEST_B}\n")
    monkeypatch.chdir(work)
    cfg = load_config(cfg_file)
    assert cfg.graph.user == "work-a"
    assert cfg.graph.password.get_secret_value() == "conf-b"


def test_the_missing_variable_error_still_names_it_when_no_dotenv_has_it(tmp_path, monkeypatch):
    unset_after_test(monkeypatch, "GWZ_TEST_MISSING")
    monkeypatch.chdir(tmp_path)
    p = write(tmp_path, "graph:\n  password: ${GWZ_TEST_MISSING}\n")
    with pytest.raises(ConfigError, match=r"GWZ_TEST_MISSING is not set \(used at 'graph\.password'\); "
                                          r"export it or add it to \.env"):
        load_config(p)


def test_loading_a_config_registers_its_secrets_for_masking(tmp_path):
    from graphwiz_trader.core.secrets import forget_secrets, known_secrets

    forget_secrets()
    p = write(tmp_path, "exchanges:\n  binance:\n    api_key: ${K}\n    secret: ${S}\ngraph:\n  password: ${P}\n")
    load_config(p, env={"K": "registered-key-1", "S": "registered-secret-2", "P": "pw"})
    try:
        secrets = known_secrets(environ={})
        assert {"registered-key-1", "registered-secret-2"} <= secrets
        assert "pw" not in secrets  # shorter than 4 characters: would blank out ordinary words
    finally:
        forget_secrets()
