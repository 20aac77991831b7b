"""The trade journal: SQLAlchemy 2 tables, Alembic migrations shipped here (``migrations/``), SQLite in WAL mode
by default and PostgreSQL through a URL.

```python
from graphwiz_trader.trading.journal import TradeJournal
j = TradeJournal.open("runs/x/journal.sqlite")   # or a Path, or "postgresql+psycopg://user:pw@host/db"
j.start_run(run_id, strategy, engine, config, started_utc)
j.begin_cycle(run_id, cycle, as_of); j.record_orders(orders)  # write-ahead, before submitting
j.record_fills(fills)                                         # once per fill_id; returns how many were new
```

Every method is one transaction and raises :class:`JournalError` (a ``GraphwizError`` naming the journal
without credentials and the operation). See ``journal.py`` for the writes and ``reads.py`` for the reads.
"""

from graphwiz_trader.trading.journal.engine import JournalError
from graphwiz_trader.trading.journal.journal import TradeJournal

__all__ = ["JournalError", "TradeJournal"]
