"""Reading ingest sources into a staged Arrow stream on local disk. Blocking; run in an executor.

Every ingest goes source -> stage -> one Delta commit. Staging reads the whole input once
before anything is written, so malformed rows and schema mismatches fail with nothing
committed, and the row count, a PII sample and the content hash are known up front.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.server.common.errors import InvalidArgument, invalid_field
from lakehouse.server.query.errors import MalformedInput, SchemaMismatch, UnknownFormat

FORMATS = ("csv", "tsv", "json", "ndjson", "parquet")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
}
SAMPLE_ROWS = 1000
Progress = Callable[[int, int], None]
"""Called with (rows, bytes) staged so far."""


@dataclass(frozen=True)
class FileOptions:
    """How to parse an ingested file; unset fields are detected."""

    format: str = ""
    delimiter: str = ""
    quote: str = ""
    escape: str = ""
    header: bool | None = None
    null_strings: tuple[str, ...] = ()
    column_types: Mapping[str, str] = field(default_factory=dict)
    skip_bad_rows: bool = False


@dataclass(frozen=True)
class Stage:
    """A staged input: an Arrow IPC stream file plus what was learned while writing it."""

    path: Path
    schema: pa.Schema
    rows: int
    bytes: int
    sample: pa.Table
    rows_skipped: int = 0
    warnings: tuple[str, ...] = ()

    def reader(self) -> pa.RecordBatchReader:
        return pa.ipc.open_stream(pa.memory_map(str(self.path)))

    @property
    def failure(self) -> Exception | None:
        return None  # everything was read and checked while staging

    def close(self) -> None:
        """Nothing to release: the stage file is removed by its owner."""


class StreamStage:
    """A file read straight into the Delta commit, without a staging copy.

    Used where the content hash is known before reading (uploaded files): a malformed row or a
    bad value stops the stream, and since a Delta commit only happens at the end, nothing
    becomes visible. Counts and the PII sample are known once the stream has been consumed.
    """

    def __init__(
        self,
        source: Any,
        reader: pa.RecordBatchReader,
        target: pa.Schema | None,
        progress: Progress,
        on_close: Callable[[], None],
    ) -> None:
        self.schema = fit_schema(delta_schema(reader.schema), target, allow_new_columns=False)
        self._reader = reader
        self._progress = progress
        self._on_close = on_close
        self.source = source
        self.rows = self.bytes = self.rows_skipped = 0
        self.warnings: tuple[str, ...] = ()
        self._sample: list[pa.RecordBatch] = []
        self.failure: Exception | None = None
        self.dataset_columns = frozenset(target.names) if target is not None else frozenset()

    @property
    def sample(self) -> pa.Table:
        return (
            pa.Table.from_batches(self._sample, self.schema).slice(0, SAMPLE_ROWS)
            if self._sample
            else self.schema.empty_table()
        )

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for raw in self._reader:
                batch = _cast(raw, self.schema)
                self.rows += batch.num_rows
                self.bytes += batch.nbytes
                if sum(b.num_rows for b in self._sample) < SAMPLE_ROWS:
                    self._sample.append(batch.slice(0, SAMPLE_ROWS))
                self._progress(self.rows, self.bytes)
                yield batch
        except SchemaMismatch as exc:
            self.failure = exc
            raise
        except (duckdb.Error, pa.ArrowException, OSError) as exc:  # DuckDB's errors arrive through Arrow's C stream
            self.failure = _read_failure(_first_lines(str(exc).removeprefix("IOError: ")), self.dataset_columns)
            raise

    def close(self) -> None:
        self._on_close()


def infer_format(explicit: str, file_name: str) -> str:
    if explicit:
        return explicit
    suffix = Path(file_name).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    raise UnknownFormat(
        f"cannot tell the format of {file_name or 'the upload'!r}; set options.format "
        f"(one of {', '.join(FORMATS)}) or use a file name ending in .csv, .tsv, .json, .ndjson or .parquet"
    )


def delta_type(arrow_type: pa.DataType) -> pa.DataType:
    """The nearest type Delta Lake stores (no unsigned ints, microsecond timestamps, ...)."""
    if isinstance(arrow_type, pa.BaseExtensionType):
        # uuid becomes its text form; other extensions (PostgreSQL numeric arrives as an opaque
        # type over text) keep their storage unless a numeric reading is possible.
        if getattr(arrow_type, "extension_name", "") == "arrow.opaque" and "numeric" in str(
            getattr(arrow_type, "type_name", "")
        ):
            return pa.float64()
        return (
            pa.string()
            if getattr(arrow_type, "extension_name", "") == "arrow.uuid"
            else delta_type(arrow_type.storage_type)
        )
    if pa.types.is_unsigned_integer(arrow_type):
        return pa.decimal128(20, 0) if arrow_type.bit_width == 64 else pa.int64()
    if pa.types.is_timestamp(arrow_type):
        return pa.timestamp("us", tz="UTC" if arrow_type.tz else None)
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_large_binary(arrow_type) or pa.types.is_binary_view(arrow_type):
        return pa.binary()
    if pa.types.is_time(arrow_type) or pa.types.is_interval(arrow_type) or pa.types.is_null(arrow_type):
        return pa.string()
    if pa.types.is_dictionary(arrow_type):
        return delta_type(arrow_type.value_type)
    if pa.types.is_float16(arrow_type):
        return pa.float32()
    if pa.types.is_large_list(arrow_type) or pa.types.is_list(arrow_type):
        return pa.list_(delta_type(arrow_type.value_type))
    if pa.types.is_struct(arrow_type):
        return pa.struct([pa.field(f.name, delta_type(f.type), f.nullable) for f in arrow_type])
    return arrow_type


def delta_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, delta_type(f.type), nullable=True) for f in schema])


def fit_schema(incoming: pa.Schema, target: pa.Schema | None, allow_new_columns: bool) -> pa.Schema:
    """The schema staged rows are cast to: the dataset's own when it exists, else the input's.

    Appends must carry every existing column under a castable type; extra columns are an
    additive change, allowed only when asked for.
    """
    names = [f.name for f in incoming]
    if not names:
        raise InvalidArgument("the input has no columns; nothing was written", reason="NO_COLUMNS")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidArgument(
            f"the input repeats column names: {', '.join(repeated)}; nothing was written", reason="DUPLICATE_COLUMNS"
        )
    if target is None:
        return incoming
    missing = [f.name for f in target if f.name not in incoming.names]
    extra = [f.name for f in incoming if f.name not in target.names]
    if missing or (extra and not allow_new_columns):
        parts = []
        if missing:
            parts.append(f"missing columns: {', '.join(missing)}")
        if extra:
            parts.append(f"columns not in the dataset: {', '.join(extra)}")
        raise SchemaMismatch(
            f"the input does not fit the dataset's schema ({'; '.join(parts)}); nothing was written. "
            "Use mode overwrite to replace the schema.",
            metadata={"missing": ",".join(missing), "extra": ",".join(extra)},
        )
    return pa.schema([*target, *(incoming.field(name) for name in extra)])


def stage_batches(
    batches: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    target: pa.Schema | None,
    path: Path,
    progress: Progress | None = None,
    allow_new_columns: bool = False,
) -> Stage:
    """Writes batches, cast to the staged schema, to an Arrow IPC file."""
    staged = fit_schema(delta_schema(schema), target, allow_new_columns)
    rows = size = 0
    sample: list[pa.RecordBatch] = []
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, staged) as writer:
        for batch in batches:
            batch = _cast(batch, staged)
            writer.write_batch(batch)
            rows += batch.num_rows
            size += batch.nbytes
            if sum(b.num_rows for b in sample) < SAMPLE_ROWS:
                sample.append(batch.slice(0, SAMPLE_ROWS))
            if progress:
                progress(rows, size)
    table = pa.Table.from_batches(sample, staged).slice(0, SAMPLE_ROWS) if sample else staged.empty_table()
    return Stage(path, staged, rows, size, table)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(8 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _convert(column: pa.Array, target: pa.DataType) -> pa.Array:
    if column.type == target:
        return column
    if isinstance(column.type, pa.BaseExtensionType):
        if getattr(column.type, "extension_name", "") == "arrow.uuid" and pa.types.is_string(target):
            return pa.array(
                [None if v is None else str(uuid.UUID(bytes=v)) for v in column.storage.to_pylist()], pa.string()
            )
        column = column.storage
    try:
        return column.cast(target)
    except pa.ArrowNotImplementedError:
        if not pa.types.is_string(target):
            raise
        # Types Arrow cannot cast to text (intervals, for one) are kept as their readable form.
        return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = []
    for target in schema:
        if target.name in batch.schema.names:
            column = batch.column(target.name)
            try:
                columns.append(_convert(column, target.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatch(
                    f"column {target.name!r}: values of type {column.type} do not fit the dataset's type {target.type} ({exc}); nothing was written"
                ) from None
        else:
            columns.append(pa.nulls(batch.num_rows, target.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def read_file(
    path: Path, options: FileOptions, target: pa.Schema | None, batch_rows: int
) -> tuple[duckdb.DuckDBPyConnection, pa.RecordBatchReader]:
    """DuckDB's reader for a local file, typed after `target` where the dataset already has columns.

    The returned connection must stay open while the reader is used.
    """
    con = duckdb.connect(":memory:", config={"threads": 2})
    try:
        relation = _relation(con, path, options, target)
        return con, relation.to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        failure = _parse_failure(exc, con, path, options, target)
        con.close()
        raise failure from None


def _parse_failure(
    exc: duckdb.Error, con: duckdb.DuckDBPyConnection, path: Path, options: FileOptions, target: pa.Schema | None
) -> Exception:
    """DuckDB's complaint about a file, naming lines where its CSV sniffer gave up."""
    message = _first_lines(str(exc))
    if options.format in ("csv", "tsv") and "sniffing" in message:
        message = _diagnose_csv(con, path, options) or message
    return _read_failure(message, frozenset(target.names) if target is not None else frozenset())


def _diagnose_csv(con: duckdb.DuckDBPyConnection, path: Path, options: FileOptions) -> str:
    """When DuckDB cannot work out a CSV's layout, find the first rows that break it (a second,
    lenient read that records rejects) so the error can name lines instead of the dialect search."""
    lenient = FileOptions(
        options.format, options.delimiter, options.quote, options.escape, options.header, options.null_strings, {}, True
    )
    try:
        _relation(con, path, lenient, None).fetchall()
        rejects = con.sql("SELECT line, error_type, error_message FROM reject_errors ORDER BY line LIMIT 3").fetchall()
    except duckdb.Error:
        return ""
    if not rejects:
        return ""
    lines = "; ".join(f"line {line}: {kind.lower().replace('_', ' ')} ({detail})" for line, kind, detail in rejects)
    return f"the CSV does not parse: {lines}. Fix those rows, or ingest with bad-row skipping to leave them out"


def _relation(con: duckdb.DuckDBPyConnection, path: Path, options: FileOptions, target: pa.Schema | None) -> Any:
    if options.format in ("csv", "tsv"):
        kwargs = _csv_kwargs(options)
        # The dataset's types guide parsing, but only for columns the file has: a missing column
        # must surface as a schema mismatch, not as DuckDB refusing the hint.
        present = set(con.read_csv(str(path), **kwargs).columns) if target is not None else set()
        types = {**{c: t for c, t in _duckdb_types(target).items() if c in present}, **options.column_types}
        if types:
            kwargs["dtype"] = types
        if options.skip_bad_rows:
            kwargs.update(ignore_errors=True, store_rejects=True)
        return con.read_csv(str(path), **kwargs)
    if options.format in ("json", "ndjson"):
        fmt = "array" if options.format == "json" else "newline_delimited"
        json_kwargs: dict[str, Any] = {"format": fmt}
        if options.skip_bad_rows:
            json_kwargs["ignore_errors"] = True
        return con.read_json(str(path), **json_kwargs)
    return con.read_parquet(str(path))


def _csv_kwargs(options: FileOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "sep": options.delimiter or ("\t" if options.format == "tsv" else ","),
        "quotechar": options.quote or '"',
    }
    if options.escape:
        kwargs["escapechar"] = options.escape
    if options.header is not None:
        kwargs["header"] = options.header
    if options.null_strings:
        kwargs["na_values"] = list(options.null_strings)
    return kwargs


def rejected_rows(con: duckdb.DuckDBPyConnection) -> tuple[int, list[int]]:
    """Rows DuckDB skipped under ignore_errors (CSV only), with the first line numbers."""
    try:
        lines = [row[0] for row in con.sql("SELECT DISTINCT line FROM reject_errors ORDER BY line").fetchall()]
    except duckdb.Error:
        return 0, []
    return len(lines), lines[:10]


@dataclass
class CopiedStage:
    """A file DuckDB has already parsed, cast and written as Parquet files in a spool directory;
    committing moves them into the table and records them in one Delta transaction. This is the
    fast path for files: DuckDB reads and writes in parallel, with no Arrow hop in between."""

    directory: Path
    files: tuple[Path, ...]
    schema: pa.Schema
    rows: int
    bytes: int
    sample: pa.Table
    rows_skipped: int = 0
    warnings: tuple[str, ...] = ()
    failure: Exception | None = None

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def copy_file(path: Path, options: FileOptions, target: pa.Schema | None, out_dir: Path) -> CopiedStage | None:
    """Parses `path` with DuckDB straight into Parquet files typed like the dataset, or returns
    None when a column type has no exact DuckDB equivalent (the caller then streams Arrow)."""
    con = duckdb.connect(":memory:")
    try:
        relation = _relation(con, path, options, target)
        staged = fit_schema(delta_schema(relation.limit(0).to_arrow_table().schema), target, allow_new_columns=False)
        select = _select_as(staged, set(relation.columns))
        if select is None:
            return None
        relation.create_view("source")
        out_dir.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"COPY (SELECT {select} FROM source) TO '{_quote_path(out_dir)}' (FORMAT parquet, PER_THREAD_OUTPUT true)"
        )
        skipped, lines = rejected_rows(con) if options.skip_bad_rows else (0, [])
    except duckdb.Error as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise _parse_failure(exc, con, path, options, target) from None
    finally:
        con.close()
    return _copied(out_dir, staged, skipped, lines)


def _copied(out_dir: Path, schema: pa.Schema, skipped: int, lines: list[int]) -> CopiedStage:
    files = tuple(sorted(out_dir.glob("*.parquet")))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    sample = _first_rows(files[0], schema) if files else schema.empty_table()
    warnings: tuple[str, ...] = ()
    if skipped:
        more = ", ..." if skipped > len(lines) else ""
        warnings = (f"skipped {skipped} malformed rows (lines {', '.join(map(str, lines))}{more})",)
    size = sum(f.stat().st_size for f in files)
    return CopiedStage(out_dir, files, schema, rows, size, sample, skipped, warnings)


def _first_rows(path: Path, schema: pa.Schema) -> pa.Table:
    """The PII sample: only the first rows of one file are read."""
    first = next(pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_ROWS), None)
    return pa.Table.from_batches([first]).cast(schema) if first is not None else schema.empty_table()


def _select_as(schema: pa.Schema, present: set[str]) -> str | None:
    """SELECT items casting every column to the staged type (missing ones as NULL), or None."""
    items = []
    for f in schema:
        duck = _duckdb_type(f.type)
        if duck is None:
            return None
        name = '"' + f.name.replace('"', '""') + '"'
        value = name if f.name in present else "NULL"
        items.append(f"CAST({value} AS {duck}) AS {name}")
    return ", ".join(items)


def _duckdb_type(arrow_type: pa.DataType) -> str | None:
    if arrow_type in _DUCKDB_TYPES:
        return _DUCKDB_TYPES[arrow_type]
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
    return None


def _quote_path(path: Path) -> str:
    return str(path).replace("'", "''")


_DUCKDB_TYPES = {
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.string(): "VARCHAR",
    pa.date32(): "DATE",
    pa.timestamp("us"): "TIMESTAMP",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def _duckdb_types(target: pa.Schema | None) -> dict[str, str]:
    """Reader type hints from an existing dataset, so an append parses "007" as the text it was."""
    if target is None:
        return {}
    hints = {}
    for f in target:
        if f.type in _DUCKDB_TYPES:
            hints[f.name] = _DUCKDB_TYPES[f.type]
        elif pa.types.is_decimal(f.type):
            hints[f.name] = f"DECIMAL({f.type.precision},{f.type.scale})"
    return hints


_CONVERTING = re.compile(r'converting column "([^"]+)"|casting from source column "?([^"\s]+)"?')


def _read_failure(message: str, dataset_columns: frozenset[str]) -> Exception:
    """A value that cannot be read as the existing dataset's column type is a schema mismatch;
    anything else wrong with the file is malformed input."""
    found = _CONVERTING.search(message)
    column = (found.group(1) or found.group(2)) if found else ""
    if column in dataset_columns:
        return SchemaMismatch(
            f"column {column!r} holds values the dataset's type cannot take; nothing was written. {message}"
        )
    return MalformedInput(message)


def _first_lines(message: str, limit: int = 6) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    return "\n".join(lines[:limit])


_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_ ]{0,40}(\(\s*\d{1,3}\s*(,\s*\d{1,3}\s*)?\))?(\[\])?")


def check_column_types(types: Mapping[str, str]) -> None:
    """Column type overrides must be DuckDB type names; checked before any upload is read."""
    con = duckdb.connect(":memory:")
    try:
        for column, type_name in types.items():
            try:
                # The shape check comes first: only a bare type name ever reaches the SQL text.
                if not _TYPE_NAME.fullmatch(type_name):
                    raise duckdb.Error("not a type name")
                con.sql(f"SELECT CAST(NULL AS {type_name})")
            except duckdb.Error:
                raise invalid_field(
                    f"options.column_types[{column!r}]",
                    f"{type_name!r} is not a DuckDB type such as VARCHAR, BIGINT, DOUBLE, DATE or DECIMAL(12,2)",
                    reason="INVALID_COLUMN_TYPE",
                ) from None
    finally:
        con.close()
