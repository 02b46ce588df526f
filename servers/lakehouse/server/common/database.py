"""SQLAlchemy engines for the services' own databases (the catalog's, and memory's tables in it):
SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

READ_ONLY = "lakehouse_read_only"
"""Execution option marking a transaction that only reads (SQLite then begins it deferred)."""


def create_engine(url: str, *, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    """An engine for `url`; SQLite gets WAL, full sync (a write is on disk when the call returns),
    a busy timeout and serialized writers. Statement parameters (lineage, descriptions, trace
    text) never appear in SQLAlchemy's errors or logs."""
    if not url.startswith("sqlite:///"):
        return sa.create_engine(
            url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow, hide_parameters=True
        )
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's legacy mode begins transactions only before DML, so reads ran outside
        # them; with the driver in autocommit, the "begin" hook below decides instead.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _switch_to_wal(cursor)
        for pragma in ("synchronous=FULL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A writer takes the write lock before its first read, so read-modify-write
        # transactions run one after another; readers keep WAL snapshots and never wait.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _switch_to_wal(cursor: Any, attempts: int = 100) -> None:
    """Turns on WAL. On a new file two processes opening it at once can get "database is locked"
    here without SQLite's busy handler waiting (the switch needs an exclusive lock), so retry."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
