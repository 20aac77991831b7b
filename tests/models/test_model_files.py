"""Saved LightGBM models are checked before LightGBM reads them: checksum, feature names, clear errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.models.files import ModelFileError, atomic_output, check_lightgbm_features
from graphwiz_trader.models.generator import QlibSignalGenerator
from graphwiz_trader.models.targets import LabelSpec

COLUMNS = ["KMID", "ROC5", "STD20", "graph deg"]  # one name with a space: LightGBM stores it as graph_deg


def _frame(n_dates: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2022-01-01", periods=n_dates, freq="h", tz="UTC")
    idx = pd.MultiIndex.from_product([dates, ["BTCUSDT", "ETHUSDT"]], names=["datetime", "instrument"])
    x = pd.DataFrame(rng.normal(size=(len(idx), len(COLUMNS))), index=idx, columns=COLUMNS)
    y = pd.Series(2.0 * x["KMID"] - x["ROC5"] + 0.5 * rng.normal(size=len(idx)), index=idx)
    return x, y


@pytest.fixture(scope="module")
def fitted() -> tuple[QlibSignalGenerator, pd.DataFrame]:
    x, y = _frame(1500, seed=1)
    gen = QlibSignalGenerator(label=LabelSpec("regression", 1), seed=5, num_boost_round=40)
    dates = x.index.get_level_values("datetime").unique()
    gen.fit(x, y, dates, None, cross_sectional=False)
    test_x, _ = _frame(50, seed=2)
    return gen, test_x


@pytest.fixture
def saved(fitted, tmp_path) -> Path:
    gen, _ = fitted
    return gen.save_model(tmp_path / "m")


def _meta(path: Path) -> dict:
    return json.loads((path / "meta.json").read_text())


def _write_meta(path: Path, meta: dict) -> None:
    (path / "meta.json").write_text(json.dumps(meta))


def test_a_saved_model_records_the_checksum_of_model_txt_and_loads_to_identical_predictions(fitted, saved):
    gen, test_x = fitted
    meta = _meta(saved)
    assert meta["model_file"]["sha256"] == hashlib.sha256((saved / "model.txt").read_bytes()).hexdigest()
    assert meta["model_file"]["size_bytes"] == (saved / "model.txt").stat().st_size
    loaded = QlibSignalGenerator.load_model(saved)
    pd.testing.assert_series_equal(loaded.predict(test_x), gen.predict(test_x))
    assert not [p.name for p in saved.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind


def test_a_rotated_feature_list_in_meta_json_is_refused_naming_the_positions(fitted, saved):
    gen, test_x = fitted
    meta = _meta(saved)
    meta["feature_columns"] = meta["feature_columns"][1:] + meta["feature_columns"][:1]
    _write_meta(saved, meta)
    with pytest.raises(ModelFileError, match=r"same names in another order, 4 positions differ "
                                             r"\(position 0: model KMID, metadata ROC5"):
        QlibSignalGenerator.load_model(saved)


def test_a_feature_list_with_other_names_is_refused_naming_them(saved):
    meta = _meta(saved)
    meta["feature_columns"] = ["KMID", "ROC5", "STD20", "VSUMP5"]
    _write_meta(saved, meta)
    with pytest.raises(ModelFileError, match="only in the model: graph_deg; only in the metadata: VSUMP5"):
        QlibSignalGenerator.load_model(saved)


def test_a_truncated_model_txt_is_refused_before_lightgbm_reads_it(saved):
    text = (saved / "model.txt").read_bytes()
    (saved / "model.txt").write_bytes(text[: len(text) // 2])
    with pytest.raises(ModelFileError, match=r"model.txt: SHA-256 [0-9a-f]{64} differs from the recorded"):
        QlibSignalGenerator.load_model(saved)


def test_a_truncated_model_txt_does_not_abort_the_python_process(saved):
    # before the checksum, LightGBM hit a fatal check on this file and the interpreter aborted (SIGABRT, 134)
    text = (saved / "model.txt").read_bytes()
    (saved / "model.txt").write_bytes(text[: len(text) // 2])
    code = ("import sys\nfrom graphwiz_trader.models.generator import QlibSignalGenerator\n"
            "from graphwiz_trader.errors import GraphwizError\n"
            "try:\n    QlibSignalGenerator.load_model(sys.argv[1])\n"
            "except GraphwizError as e:\n    print('refused:', e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True,
                          errors="replace", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "differs from the recorded" in done.stdout


def test_a_wrong_recorded_checksum_is_refused(saved):
    meta = _meta(saved)
    meta["model_file"]["sha256"] = "0" * 64
    _write_meta(saved, meta)
    with pytest.raises(ModelFileError, match="differs from the recorded 0000"):
        QlibSignalGenerator.load_model(saved)


def test_a_model_without_a_recorded_checksum_is_refused(saved):
    meta = _meta(saved)
    del meta["model_file"]
    _write_meta(saved, meta)
    with pytest.raises(ModelFileError, match="no SHA-256 checksum is recorded"):
        QlibSignalGenerator.load_model(saved)


def test_a_missing_meta_json_is_refused_naming_it(saved):
    (saved / "meta.json").unlink()
    with pytest.raises(GraphwizError, match=r"is not a saved model: meta.json missing"):
        QlibSignalGenerator.load_model(saved)


def test_unreadable_meta_json_is_refused(saved):
    (saved / "meta.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="model metadata .*meta.json is not readable JSON"):
        QlibSignalGenerator.load_model(saved)


def test_a_lightgbm_parse_error_becomes_a_model_file_error_naming_the_path(saved):
    # a model.txt LightGBM rejects with an exception, saved with a matching checksum (the check passes)
    lines = (saved / "model.txt").read_text().splitlines(keepends=True)
    lines = [("feature_infos=[-1:1]\n" if ln.startswith("feature_infos=") else ln) for ln in lines]
    data = "".join(lines).encode()
    (saved / "model.txt").write_bytes(data)
    meta = _meta(saved)
    meta["model_file"]["sha256"] = hashlib.sha256(data).hexdigest()
    _write_meta(saved, meta)
    with pytest.raises(ModelFileError, match=r"LightGBM cannot read .*model.txt: .*feature_infos"):
        QlibSignalGenerator.load_model(saved)


def test_the_feature_check_maps_spaces_like_lightgbm():
    check_lightgbm_features(["a_b", "c"], ["a b", "c"], Path("m/model.txt"), Path("m/meta.json"))
    with pytest.raises(ModelFileError, match="repeated a different number of times"):
        check_lightgbm_features(["c", "c"], ["c"], Path("m/model.txt"), Path("m/meta.json"))


def test_a_failed_write_leaves_the_previous_file_and_no_temp_file(tmp_path):
    target = tmp_path / "model.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.txt"]
