"""The `lakehouse` command: `serve` runs the mesh; every other command is a client of it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from lakehouse.cli import chat, commands, data, governance, memory, vectors
from lakehouse.cli.index import index, index_status, recall
from lakehouse.cli.models import models
from lakehouse.cli.sample import sample_command
from lakehouse.server.common.config import SERVICE_NAMES, ConfigError, load_config
from lakehouse.server.common.errors import LakehouseError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CONFIG = Path("lakehouse.toml")


def _config_path(path: Path | None) -> Path | None:
    """--config, else $LAKEHOUSE_CONFIG, else ./lakehouse.toml when it exists, else defaults."""
    if path is not None:
        return path
    if os.environ.get("LAKEHOUSE_CONFIG"):
        return Path(os.environ["LAKEHOUSE_CONFIG"])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def run_async(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs `main` on uvloop when it is installed (faster under concurrency), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="lakehouse-mesh")
def cli() -> None:
    """Lakehouse mesh: tables, vectors, agent memory and LLM calls behind one set of gRPC contracts."""


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="lakehouse.toml to read (default: ./lakehouse.toml).",
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where data lives (overrides [server] data_dir).")
@click.option("--host", help="Address to bind (overrides [server] host).")
@click.option("--port", type=int, help="gRPC port; 0 picks a free one (overrides [server] port).")
@click.option("--flight-port", type=int, help="Arrow Flight port (overrides [server] flight_port).")
@click.option(
    "--service",
    "services",
    multiple=True,
    type=click.Choice(SERVICE_NAMES),
    help="Run only this service (repeatable); default all six.",
)
def serve(
    config_path: Path | None,
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    flight_port: int | None,
    services: tuple[str, ...],
) -> None:
    """Run the mesh: all six services on one port, or the ones named with --service."""
    import sqlalchemy.exc  # here, not at the top: every other command starts faster without it

    from lakehouse.server.common.auth import TokenAuthenticator, require_safe_binding
    from lakehouse.server.common.logs import configure_logging

    try:
        config = load_config(_config_path(config_path))
        overrides = {
            "data_dir": str(data_dir) if data_dir else None,
            "host": host,
            "port": port,
            "flight_port": flight_port,
        }
        config = config.with_server(**{k: v for k, v in overrides.items() if v is not None})
        # Refused before the services' libraries load (seconds), so a bad config fails at once.
        require_safe_binding(config.server.host, TokenAuthenticator.from_config(config.auth))
        configure_logging(config.server.log_level, config.server.log_format)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        from lakehouse.server.mesh import build_server

        server = build_server(config, services or SERVICE_NAMES)
    except (ConfigError, ValueError, LakehouseError, OSError, sqlalchemy.exc.ArgumentError) as exc:
        # Start-up problems are the operator's to fix: say what and where, without a traceback.
        click.echo(f"lakehouse serve: {_startup_problem(exc)}", err=True)
        sys.exit(2)

    def announce(started: Any) -> None:
        if config.server.log_format == "json":
            return  # the server's own log line says it; stderr stays one JSON object per line
        names = ", ".join(services or SERVICE_NAMES)
        extras = "".join(f", {name} on {uri}" for name, uri in started.endpoints.items())
        click.echo(
            f"lakehouse mesh serving {names} on {started.address}{extras} (data in {config.data_dir}); Ctrl-C stops",
            err=True,
        )

    from lakehouse.server.common.app import serve_until_signalled

    try:
        run_async(lambda: serve_until_signalled(server, announce))
    except OSError as exc:
        click.echo(f"lakehouse serve: {exc}", err=True)
        sys.exit(2)


def _startup_problem(exc: BaseException) -> str:
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.ArgumentError):
        return f"[catalog] url is not a database URL ({exc}); use sqlite:///path or postgresql+psycopg://user@host/db"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


commands.register(cli)
cli.add_command(sample_command)
cli.add_command(models)
cli.add_command(index)
cli.add_command(index_status)
cli.add_command(recall)
for command in (*data.COMMANDS, *governance.COMMANDS, *vectors.COMMANDS, *memory.COMMANDS, *chat.COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="lakehouse")


if __name__ == "__main__":
    main()
