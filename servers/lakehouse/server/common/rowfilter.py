"""Row filters of AI-safe views: one boolean SQL expression over the columns of a base dataset.

A filter is stored as text and spliced into SQL by the query service as `WHERE (<filter>)`, so the
text must be exactly one expression there and nothing else. It is checked the way the SQL sandbox
checks statements (query/sandbox.py), with the same deny lists (common/sqlrules.py):

1. DuckDB parses `SELECT 1 FROM __base WHERE (<filter>)` on a parse-only connection, and the tree
   from `json_serialize_sql` must equal the tree of `... WHERE (TRUE)` everywhere but the WHERE
   clause. Text that closes the parenthesis and adds a UNION, a clause or a statement fails here.
   Comments are refused outright: a `--` could swallow the closing parenthesis wherever the query
   service splices the text.
2. Inside the WHERE clause: no subqueries, parameters, stars, window functions or lambdas, no
   denied function, and column references only to base columns by their plain names.
3. The expression is bound against an empty table of the base schema on a locked-down
   connection: `WHERE (<filter>)` must bind (no aggregates, types that fit) and the expression's
   type must be BOOLEAN (DuckDB would otherwise cast an integer to a truth value silently).

Blocking: callers run it in an executor.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import duckdb
import pyarrow as pa

from lakehouse.server.common.errors import InvalidArgument, invalid_field
from lakehouse.server.common.sqlrules import DENIED_FUNCTION_PREFIXES, DENIED_FUNCTIONS

MAX_ROW_FILTER_CHARS = 4096
REASON = "INVALID_ROW_FILTER"
_BASE = "__base"
_WRAP = "SELECT 1 FROM __base WHERE ({})"
_LOCKED: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
    "lock_configuration": True,
}
_REFUSED_CLASSES = {
    "SUBQUERY": "subqueries",
    "STAR": "* and COLUMNS(...)",
    "PARAMETER": "parameters",
    "WINDOW": "window functions",
    "LAMBDA": "lambdas",
}
_MAX_LISTED = 50

# Parse-only: json_serialize_sql is the only thing it runs, with the text as a bound parameter.
_PARSER = duckdb.connect(config=_LOCKED)
_PARSER_LOCK = threading.Lock()


def validate_row_filter(expression: str, schema: pa.Schema, *, field: str = "view.row_filter") -> str:
    """The filter to store (trimmed; "" keeps every row), or INVALID_ARGUMENT/INVALID_ROW_FILTER."""
    text = expression.strip()
    if not text:
        return ""
    _check_text(text, field)
    statement = _parse(_WRAP.format(text), field)
    _check_expression(statement["node"]["where_clause"], schema, field)
    if _skeleton(statement) != _REFERENCE:
        raise _refused(field, "must be one expression: it may not add clauses or statements")
    _check_type(text, schema, field)
    return text


def _refused(field: str, why: str) -> InvalidArgument:
    return invalid_field(field, why, reason=REASON)


def _check_text(text: str, field: str) -> None:
    if len(text) > MAX_ROW_FILTER_CHARS:
        raise _refused(field, f"must be at most {MAX_ROW_FILTER_CHARS} characters")
    if "\x00" in text:
        raise _refused(field, "must not contain NUL characters")
    depth = 0
    for kind, token in _tokens(text):
        if kind == duckdb.token_type.comment:
            raise _refused(field, "must not contain comments")
        if kind == duckdb.token_type.operator:
            depth += token.count("(") - token.count(")")
            if depth < 0:
                # "a) OR (b" is one expression inside WHERE (...), but changes meaning wherever
                # the filter is combined with other conditions.
                raise _refused(field, "closes a parenthesis it did not open")
    if depth:
        raise _refused(field, "leaves a parenthesis open")


def _tokens(text: str) -> list[tuple[Any, str]]:
    """(token type, token text) pairs; duckdb reports token starts as UTF-8 byte offsets."""
    raw = text.encode()
    found = duckdb.tokenize(text)
    ends = [pos for pos, _ in found[1:]] + [len(raw)]
    return [(kind, raw[pos:end].decode(errors="replace")) for (pos, kind), end in zip(found, ends, strict=True)]


def _parse(sql: str, field: str) -> dict[str, Any]:
    """The one statement of `sql` as DuckDB's parser sees it."""
    with _PARSER_LOCK:
        try:
            row = _PARSER.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        except duckdb.Error as exc:
            raise _refused(field, f"is not valid SQL: {_first_line(exc)}") from None
    try:
        doc = json.loads(row[0]) if row else {}
    except RecursionError:  # Python's json nests about 300 expression levels deep at most
        raise _refused(field, "is nested too deeply") from None
    if doc.get("error"):
        raise _refused(field, f"is not valid SQL: {_first_line(doc.get('error_message', ''))}")
    statements = doc.get("statements") or []
    if len(statements) != 1 or not isinstance(statements[0], dict):
        raise _refused(field, "must be one expression, not several statements")
    return dict(statements[0])


def _skeleton(node: Any) -> Any:
    """The tree without its WHERE clause and source positions, for comparing shapes."""
    if isinstance(node, list):
        return [_skeleton(item) for item in node]
    if isinstance(node, dict):
        return {
            key: _skeleton(value)
            for key, value in node.items()
            if key != "where_clause" and not key.startswith("query_location")
        }
    return node


_REFERENCE = _skeleton(_parse(_WRAP.format("TRUE"), "reference"))


def _check_expression(root: Any, schema: pa.Schema, field: str) -> None:
    columns = {_fold(name) for name in schema.names}
    # Iterative: DuckDB allows expressions 1,000 deep, several dict/list levels each.
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            _check_node(node, columns, schema, field)
            stack.extend(node.values())


def _check_node(node: dict[str, Any], columns: set[str], schema: pa.Schema, field: str) -> None:
    kind = node.get("class")
    if kind in _REFUSED_CLASSES:
        raise _refused(field, f"{_REFUSED_CLASSES[kind]} are not allowed in a row filter")
    if kind is None and (("alias" in node and "sample" in node) or str(node.get("type", "")).endswith("_NODE")):
        raise _refused(field, "may not read tables: use the base dataset's columns only")
    if kind == "COLUMN_REF":
        _check_column(node.get("column_names") or [], columns, schema, field)
    if "function_name" in node:
        _check_function(node, field)


def _check_column(path: list[Any], columns: set[str], schema: pa.Schema, field: str) -> None:
    if len(path) != 1:
        dotted = ".".join(str(p) for p in path)
        raise _refused(field, f'refer to columns by their plain name, not "{dotted}"')
    if _fold(path[0]) not in columns:
        names = list(schema.names)
        listed = ", ".join(names[:_MAX_LISTED]) + (
            f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
        )
        raise _refused(field, f"unknown column {path[0]!r}; the base dataset's columns are {listed}")


def _check_function(node: dict[str, Any], field: str) -> None:
    name = _fold(node.get("function_name", ""))
    if node.get("schema") or node.get("catalog"):
        raise _refused(field, f'call functions without a schema or catalog prefix ("{name}")')
    if name in DENIED_FUNCTIONS or name.startswith(DENIED_FUNCTION_PREFIXES):
        raise _refused(field, f'function "{name}" is not allowed: it can read server settings or files, or run SQL')


def _check_type(text: str, schema: pa.Schema, field: str) -> None:
    """Binds the filter where it will run, and asks DuckDB for its type."""
    connection = duckdb.connect(config=_LOCKED)
    try:
        connection.register(_BASE, schema.empty_table())
        connection.execute(_WRAP.format(text)).fetchall()
        kind = str(connection.sql(f"SELECT ({text}) FROM {_BASE}").types[0])
    except duckdb.Error as exc:
        raise _refused(field, f"does not fit the base dataset: {_first_line(exc)}") from None
    finally:
        connection.close()
    if kind != "BOOLEAN":
        raise _refused(field, f"must be a boolean condition, but it is {kind}")


def _fold(name: Any) -> str:
    """DuckDB matches identifiers ignoring ASCII case only."""
    return "".join(c.lower() if c.isascii() else c for c in str(name))


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else "unknown error"
