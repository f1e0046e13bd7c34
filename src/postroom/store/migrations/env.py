"""Alembic environment for the store.

At runtime `postroom.store.migrate` passes an open connection (inside its own transaction)
through `config.attributes["connection"]`. For development, `alembic -x url=sqlite:///x.db
revision --autogenerate` also works from a hand-written ini that points script_location here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from postroom.store.engine import make_engine, normalize_url
from postroom.store.schema import metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run() -> None:
    config = context.config
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if context.is_offline_mode():
        context.configure(url=normalize_url(url or ""), target_metadata=metadata,
                          literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url or "")
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run()
