"""`graphwiz features --format qlib --market M`: an instrument has feature rows only while it is a member."""

import numpy as np
import pandas as pd

from graphwiz_trader.cli import main
from graphwiz_trader.data.calendars import expected_opens
from graphwiz_trader.data.qlib_bins import write_qlib_bins

SESSIONS = expected_opens("XSHG", "1d", pd.Timestamp("2023-01-03", tz="UTC"), pd.Timestamp("2023-09-28", tz="UTC"))


def bars(seed):
    rng = np.random.default_rng(seed)
    c = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, len(SESSIONS))))
    return pd.DataFrame({"open": c * (1 + rng.normal(0, 0.002, len(c))), "high": c * 1.01, "low": c * 0.99,
                         "close": c, "volume": rng.uniform(1e5, 2e5, len(c))},
                        index=pd.DatetimeIndex(SESSIONS, name="datetime"))


def test_rows_exist_only_inside_each_instruments_membership(tmp_path):
    provider = tmp_path / "cn"
    write_qlib_bins({c: bars(k) for k, c in enumerate(["SH600000", "SH600001", "SZ000001"])}, provider, "day",
                    calendar="XSHG")
    (provider / "instruments" / "idx.txt").write_text(
        "SH600000\t2023-01-03\t2023-09-28\nSH600001\t2023-01-03\t2023-06-30\nSZ000001\t2023-07-03\t2023-09-28\n")
    out = tmp_path / "f.parquet"
    assert main(["features", "--format", "qlib", "--provider", str(provider), "--market", "idx", "--timeframe", "1d",
                 "--start", "2023-05-04", "--qlib-dir", str(tmp_path / "q"), "--out", str(out), "--no-progress"]) == 0
    frame = pd.read_parquet(out)
    days = {c: frame.xs(c, level="instrument").index for c in ["SH600000", "SH600001", "SZ000001"]}
    assert days["SH600000"].min() == pd.Timestamp("2023-05-04") and days["SH600000"].max() == pd.Timestamp("2023-09-28")
    assert days["SH600001"].max() == pd.Timestamp("2023-06-30")             # gone after it leaves
    assert days["SZ000001"].min() == pd.Timestamp("2023-07-03")             # absent before it joins
    # a member's features use its history from before it joined (warm-up): no NaN in the first member rows
    first = frame.xs(pd.Timestamp("2023-07-03"), level="datetime").loc["SZ000001"]
    assert first.notna().mean() > 0.95
