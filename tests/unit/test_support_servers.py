"""Self-check for tests/support/servers.py: each real server starts and works."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import psycopg
import pytest

from tests.support.servers import (
    free_port,
    moto_s3_server,
    port_open,
    postgres_server,
    s3_env,
    wait_for_port,
)


def test_free_port_and_wait_for_port() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    assert not port_open("127.0.0.1", port)
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", port, timeout=0.2)


def test_moto_s3_server_roundtrip() -> None:
    started = time.monotonic()
    with moto_s3_server() as s3:
        print(f"moto S3 server ready in {time.monotonic() - started:.2f}s")
        env = s3_env(s3)
        assert env["AWS_ENDPOINT_URL"] == s3.endpoint_url
        assert env["AWS_EC2_METADATA_DISABLED"] == "true"
        client = boto3.client("s3", **s3.client_kwargs())
        client.create_bucket(Bucket="selfcheck")
        client.put_object(Bucket="selfcheck", Key="a/b.txt", Body=b"hello lakehouse")
        body = client.get_object(Bucket="selfcheck", Key="a/b.txt")["Body"].read()
        assert body == b"hello lakehouse"
        port = int(s3.endpoint_url.rsplit(":", 1)[1])
    # Stopping must release the port so nothing leaks between tests.
    assert not port_open("127.0.0.1", port)


def test_postgres_server_roundtrip(tmp_path: Path) -> None:
    started = time.monotonic()
    with postgres_server(tmp_path) as pg:
        print(f"PostgreSQL ready in {time.monotonic() - started:.2f}s")
        assert pg.url == (f"postgresql+psycopg://lakehouse:{pg.password}@127.0.0.1:{pg.port}/lakehouse_test")
        with psycopg.connect(pg.conninfo) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table t (id int primary key, name text)")
            conn.execute("insert into t values (1, 'a'), (2, 'b')")
            rows = conn.execute("select id, name from t order by id").fetchall()
            assert rows == [(1, "a"), (2, "b")]
        # A wrong password must be rejected: auth really is scram, not trust.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.conninfo.replace(pg.password, "wrong"), connect_timeout=5)
        port = pg.port
    assert not port_open("127.0.0.1", port)
