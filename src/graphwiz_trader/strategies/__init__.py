"""Strategies: scores to fills, one cycle at a time, on any trading engine (replay, paper, live).

```python
from graphwiz_trader.strategies import create_qlib_strategy_v2
from graphwiz_trader.trading.engines.replay import ReplayEngine

s = create_qlib_strategy_v2(ReplayEngine(bars, start="2024-03-01"), ["BTC/USDT", "ETH/USDT"],
                            config={"optimization_method": "max_sharpe", "max_position_weight": 0.3})
await s.start()          # warm-up history, the model (loaded or trained on that history), reconcile
res = await s.run_cycle()  # {cycle, as_of, signals_generated, trades_executed, orders, rejected, target_weights,
                           #  equity, risk_state, timings}
```

Modules: :mod:`.factory` (the two factories and the config they read), :mod:`.core` (the cycle),
:mod:`.signals` (score panel or model), :mod:`.planning` (weights and orders), :mod:`.live_graph` (the graph
one bar at a time), :mod:`.alpha_last` (Alpha158 of the newest bar), :mod:`.bars` (the bounded bar memory).
"""

from graphwiz_trader.strategies.core import Strategy
from graphwiz_trader.strategies.factory import create_qlib_strategy, create_qlib_strategy_v2, resolve_settings
from graphwiz_trader.strategies.signals import ModelScores, PanelScores

__all__ = ["ModelScores", "PanelScores", "Strategy", "create_qlib_strategy", "create_qlib_strategy_v2",
           "resolve_settings"]
