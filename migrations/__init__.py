"""Alembic migrations of the event log; run with `watchfloor migrate` (or `alembic upgrade head`)."""
