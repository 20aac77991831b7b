"""The journal's migration scripts, oldest first (``j0001_...``); Alembic reads them by revision id."""
