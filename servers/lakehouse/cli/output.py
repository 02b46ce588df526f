"""Readable CLI output: tables for lists, key/value panels for single resources, clear errors."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from google.protobuf import timestamp_pb2
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lakehouse.client.errors import LakehouseClientError

console = Console()
errors = Console(stderr=True)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    out = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        out.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        out.add_row(*(str(v) for v in row))
        count += 1
    if count:
        console.print(out)
    else:
        console.print(f"{title}: none")


def fields(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    out = Table(title=title, title_justify="left", show_header=False)
    out.add_column("field", style="bold")
    out.add_column("value", overflow="fold")
    for key, value in pairs:
        out.add_row(key, str(value))
    console.print(out)


def when(stamp: timestamp_pb2.Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToDatetime(tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def now() -> str:
    return datetime.now(UTC).isoformat()


def fail(error: LakehouseClientError) -> NoReturn:
    """Prints the server's reason (and bad fields) and exits non-zero.

    Everything after "error:" is server text and printed as plain text: a reason or message
    holding "[/]" must not be read as rich markup (which would raise and print a traceback).
    """
    head = Text("error:", style="bold red")
    head.append(f" {error.code.name} {error.reason}".rstrip())
    errors.print(head, highlight=False)
    for violation in error.violations:
        errors.print(f"  field {violation.field}: {violation.description}", highlight=False, markup=False)
    if not error.violations:
        errors.print(f"  {error.message}", highlight=False, markup=False)
    if error.code.name == "UNAVAILABLE" and not error.reason:  # no ErrorInfo: the server itself was not reached
        errors.print("  is the server running? start it with: lakehouse serve", highlight=False)
    sys.exit(1)
