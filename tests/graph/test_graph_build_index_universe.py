"""`graphwiz graph build --format qlib --market M`: an instrument is a node only in snapshots while it is a member."""

import json

import numpy as np
import pandas as pd

from graphwiz_trader.cli import main
from graphwiz_trader.data.calendars import expected_opens
from graphwiz_trader.data.qlib_bins import write_qlib_bins

SESSIONS = expected_opens("XSHG", "1d", pd.Timestamp("2023-01-03", tz="UTC"), pd.Timestamp("2023-09-28", tz="UTC"))
CODES = ["SH600000", "SH600001", "SH600002", "SZ000001"]


def bars(seed, common):
    rng = np.random.default_rng(seed)
    c = 10 * np.exp(np.cumsum(0.7 * common + rng.normal(0, 0.01, len(SESSIONS))))
    return pd.DataFrame({"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": 1e5},
                        index=pd.DatetimeIndex(SESSIONS, name="datetime"))


def test_snapshots_hold_the_members_of_their_day_only(tmp_path, graph_settings, graph_store, monkeypatch):
    monkeypatch.setenv("NEO4J_URI", graph_settings.uri)
    monkeypatch.setenv("NEO4J_USER", graph_settings.user)
    monkeypatch.setenv("NEO4J_PASSWORD", graph_settings.password.get_secret_value())
    common = np.random.default_rng(99).normal(0, 0.01, len(SESSIONS))
    provider = tmp_path / "cn"
    write_qlib_bins({c: bars(k, common) for k, c in enumerate(CODES)}, provider, "day", calendar="XSHG")
    (provider / "instruments" / "idx.txt").write_text(
        "SH600000\t2023-01-03\t2023-09-28\nSH600001\t2023-01-03\t2023-06-30\n"
        "SH600002\t2023-01-03\t2023-09-28\nSZ000001\t2023-07-03\t2023-09-28\n")
    assert main(["graph", "build", "--format", "qlib", "--provider", str(provider), "--market", "idx",
                 "--timeframe", "1d", "--window", "40", "--stride", "10", "--json", str(tmp_path / "g.json"),
                 "--no-progress"]) == 0
    build = json.loads((tmp_path / "g.json").read_text())["build"]
    from graphwiz_trader.graph.pipeline import read_graph

    snaps = read_graph(graph_store, build, None, regimes=False).snapshots
    assert snaps
    for snap in snaps:
        day = pd.Timestamp(snap.as_of).tz_convert("UTC").normalize()
        want = {"SH600000", "SH600002"} | ({"SH600001"} if day <= pd.Timestamp("2023-06-30", tz="UTC") else set()) \
            | ({"SZ000001"} if day >= pd.Timestamp("2023-07-03", tz="UTC") else set())
        assert set(snap.assets) <= want, (day, snap.assets)
        assert "SH600001" not in snap.assets or day <= pd.Timestamp("2023-06-30", tz="UTC")
    late = [s for s in snaps if pd.Timestamp(s.as_of) > pd.Timestamp("2023-07-03", tz="UTC")]
    assert late and all("SH600001" not in s.assets for s in late)
    assert any("SZ000001" in s.assets for s in late)
