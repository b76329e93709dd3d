"""Alembic environment: runs against the engine the service hands it (workflow.db.upgrade)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import workflow.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
