"""Alembic migrations of the trade journal (``script_location`` of :func:`..engine.alembic_config`).

``TradeJournal.open`` runs ``upgrade head``. A new migration: change ``journal/models.py``, then write
``versions/j00NN_<what>.py`` by hand (or draft it with alembic's autogenerate against a database at the
previous head, using ``engine.alembic_config``) and keep ``tests/trading/test_journal_schema.py`` green: it
checks that the migrations create exactly the models' schema.
"""
