"""SQL sandbox: decide whether user SQL may run, and which tables it reads, before DuckDB runs it.

The query service exposes each dataset the principal may see as a temp view named after it. User
SQL may read those names and nothing else: no files, other schemas or catalogs, settings, or
dynamic SQL; one read-only statement only. DuckDB also runs locked down (external access off,
configuration locked), but this check is the primary gate, so it fails closed on anything it does
not recognise. Run `CheckedStatement.sql` (never the raw input): that is the exact text checked.

How it works (measured on duckdb 2.0):
- `duckdb.extract_statements` splits and types statements; DESCRIBE/SHOW/SUMMARIZE/VALUES/PIVOT
  with an IN list/FROM-first all type as SELECT. A PIVOT without an IN list types as MULTI (it
  expands into several statements) and is refused. Some types (UPDATE EXTENSIONS) are unknown to
  the Python enum, so reading `.type` raises ValueError: refused too.
- `json_serialize_sql` gives the parse tree of a SELECT only, so for EXPLAIN the inner statement
  is cut out of the text and checked. Every dict and list of the tree is walked, so subqueries,
  CTEs, lambdas, PIVOT sources, window clauses, etc. are all seen. (A named WINDOW that no
  expression uses is dropped by the parser and never bound, so its absence is not a gap.) Python's
  json decoder stops at about 300 nested expressions; deeper queries are refused.
- Identifiers keep their spelling in the tree; DuckDB's catalog matches them ignoring ASCII case
  only ("Ä" does not find "ä"), so names are compared after ASCII lower-casing.
- CTE scope mirrors DuckDB's binder, which is narrower than SQL suggests: a CTE sees only the CTEs
  defined before it (a forward or self reference reads the catalog table of that name), and a
  recursive CTE sees itself only in the recursive (right) branch of its UNION.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import duckdb

from lakehouse.server.common.errors import InvalidArgument, NotFound, PermissionDenied
from lakehouse.server.common.sqlrules import DENIED_FUNCTION_PREFIXES, DENIED_FUNCTIONS

# Pure generators over their arguments: no catalog, file or setting access.
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})


_TABLE_REF_TYPES = frozenset(
    {"BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "TABLE_FUNCTION", "EXPRESSION_LIST", "PIVOT", "SHOW_REF"}
)
_SHOW_KINDS = {"DESCRIBE": "DESCRIBE", "SHOW": "SHOW", "SUMMARY": "SUMMARIZE"}
_ALLOWED_KINDS = "SELECT, EXPLAIN, DESCRIBE, SHOW and SUMMARIZE"
_STATEMENT_LABELS = {
    "MULTI": "Statements that expand into several (such as PIVOT without an IN list) are",
    "UNKNOWN": "Statements of this type are",
}
_MAX_LISTED = 50
_COMMENT = duckdb.token_type.comment
_OPERATOR = duckdb.token_type.operator

# Parse-only connection: json_serialize_sql is the only thing ever executed on it, with user SQL
# as a bound parameter. Locked down anyway.
_PARSER = duckdb.connect(
    config={"enable_external_access": False, "autoload_known_extensions": False, "lock_configuration": True}
)
_PARSER_LOCK = threading.Lock()


@dataclass(frozen=True)
class CheckedStatement:
    kind: str  # "SELECT", "EXPLAIN", "DESCRIBE", "SHOW" or "SUMMARIZE"
    tables: frozenset[str]  # visible tables read (ASCII lower-case), CTE names excluded
    sql: str  # the single statement as DuckDB extracted it, trailing ';' and comments removed


def check_statement(sql: str, visible: Collection[str]) -> CheckedStatement:
    """Check one user statement against the names the principal may see; raise if refused."""
    statement = _single_statement(sql)
    text = _trim(statement.query)
    kind = _type_name(statement)
    if kind == "EXPLAIN":
        inner = _explained_select(text)
    elif kind == "SELECT":
        inner = text
    else:
        what = _STATEMENT_LABELS.get(kind, f"{kind.replace('_', ' ')} statements are")
        raise _not_allowed(what, statement=kind)
    tree = _parse_tree(inner)
    walker = _Walker(visible)
    walker.walk(tree)
    if kind == "SELECT":
        kind = _show_kind(tree)
    return CheckedStatement(kind, frozenset(walker.tables), text)


# --- statements and text --------------------------------------------------------------------


def _single_statement(sql: str) -> Any:
    if "\x00" in sql:
        raise InvalidArgument("SQL must not contain NUL characters", reason="INVALID_SQL")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidArgument(str(exc), reason="INVALID_SQL") from None
    if not statements:
        raise InvalidArgument("The SQL is empty: send one SELECT statement", reason="EMPTY_SQL")
    if len(statements) > 1:
        raise InvalidArgument(
            f"Send one statement at a time: found {len(statements)} statements", reason="MULTIPLE_STATEMENTS"
        )
    return statements[0]


def _type_name(statement: Any) -> str:
    try:
        return str(statement.type.name)
    except ValueError:  # a type the Python enum does not know, e.g. UPDATE EXTENSIONS (29)
        return "UNKNOWN"


def _tokens(text: str) -> list[tuple[int, Any, str]]:
    """(byte offset, token type, token text) for each token; offsets from duckdb are in UTF-8 bytes."""
    raw = text.encode()
    found = duckdb.tokenize(text)
    ends = [pos for pos, _ in found[1:]] + [len(raw)]
    return [(pos, kind, raw[pos:end].decode().strip()) for (pos, kind), end in zip(found, ends, strict=True)]


def _trim(text: str) -> str:
    """Drop trailing ';' and comments, so the text can be run or wrapped as-is."""
    end = len(text.encode())
    for pos, kind, token in reversed(_tokens(text)):
        if kind != _COMMENT and not (kind == _OPERATOR and not token.strip(";")):
            break
        end = pos
    return text.encode()[:end].decode().rstrip()


def _explained_select(text: str) -> str:
    """The statement after EXPLAIN [ANALYZE] [(options)], which must be one SELECT."""
    for candidate in _explain_candidates(text):
        try:
            statements = duckdb.extract_statements(candidate)
        except duckdb.Error:
            continue
        if len(statements) == 1:
            if (inner := _type_name(statements[0])) != "SELECT":
                raise _not_allowed(f"EXPLAIN of {inner.replace('_', ' ')} statements is", statement="EXPLAIN")
            return candidate
    raise PermissionDenied(
        "Could not read the statement after EXPLAIN: write EXPLAIN SELECT ...", reason="UNSUPPORTED_SQL"
    )


def _explain_candidates(text: str) -> list[str]:
    """The text after EXPLAIN [ANALYZE]; if that opens a '(', also the text after the options group."""
    raw = text.encode()
    words = [(pos, kind, token) for pos, kind, token in _tokens(text) if kind != _COMMENT]
    start = 2 if len(words) > 1 and words[1][2].lower() in ("analyze", "analyse") else 1
    if start >= len(words) or words[0][2].lower() != "explain":
        return []
    candidates = [raw[words[start][0] :].decode()]
    depth = 0
    for index in range(start, len(words)):
        _, kind, token = words[index]
        if kind == _OPERATOR:
            depth += token.count("(") - token.count(")")
        if depth <= 0:
            if index > start and index + 1 < len(words):
                candidates.append(raw[words[index + 1][0] :].decode())
            break
    return candidates


def _parse_tree(sql: str) -> Any:
    with _PARSER_LOCK:
        try:
            row = _PARSER.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        except duckdb.Error as exc:
            raise _unsupported(str(exc)) from None
    try:
        doc = json.loads(row[0]) if row else {}
    except RecursionError:  # Python's json nests about 300 expression levels deep at most
        raise _unsupported("the query is nested too deeply") from None
    if doc.get("error"):
        raise _unsupported(str(doc.get("error_message", "")))
    statements = doc.get("statements") or []
    if len(statements) != 1 or not isinstance(statements[0], dict):
        raise _unsupported("expected exactly one statement")
    return statements[0].get("node")


def _show_kind(tree: Any) -> str:
    source = tree.get("from_table") if isinstance(tree, dict) else None
    if isinstance(source, dict) and source.get("type") == "SHOW_REF":
        return _SHOW_KINDS.get(str(source.get("show_type")), "SELECT")
    return "SELECT"


def _fold(name: Any) -> str:
    """DuckDB matches identifiers ignoring ASCII case only."""
    return "".join(c.lower() if c.isascii() else c for c in str(name))


# --- the tree walk --------------------------------------------------------------------------


class _Walker:
    def __init__(self, visible: Collection[str]) -> None:
        self.visible = {_fold(name) for name in visible}
        self.tables: set[str] = set()

    def walk(self, root: Any) -> None:
        # Iterative: DuckDB allows expressions 1,000 deep, several dict/list levels each.
        stack: list[tuple[Any, frozenset[str]]] = [(root, frozenset())]
        while stack:
            node, scope = stack.pop()
            if isinstance(node, list):
                stack.extend((item, scope) for item in node)
            elif isinstance(node, dict):
                stack.extend(self._visit(node, scope))

    def _visit(self, node: dict[str, Any], scope: frozenset[str]) -> list[tuple[Any, frozenset[str]]]:
        children: list[tuple[Any, frozenset[str]]] = []
        cte_map = node.get("cte_map")
        for entry in (cte_map.get("map") or []) if isinstance(cte_map, dict) else []:
            children.append((entry, scope))  # a CTE sees only the ones before it
            scope = scope | {_fold(entry.get("key", ""))}
        self._check(node, scope)
        for key, value in node.items():
            if key == "cte_map":
                continue
            if key == "right" and node.get("type") == "RECURSIVE_CTE_NODE":
                children.append((value, scope | {_fold(node.get("cte_name", ""))}))
            else:
                children.append((value, scope))
        return children

    def _check(self, node: dict[str, Any], scope: frozenset[str]) -> None:
        if node.get("at_clause"):
            raise PermissionDenied(
                f'"{node.get("table_name", "")} AT (...)" is not allowed: ask for an older version with the request\'s as_of',
                reason="AT_CLAUSE_NOT_ALLOWED",
            )
        if "function_name" in node:
            _check_function(node)
        if "class" in node or "alias" not in node or "sample" not in node:
            return  # not a table reference
        ref_type = node.get("type")
        if ref_type not in _TABLE_REF_TYPES:
            raise _unsupported(f"{ref_type} table references are not supported")
        if ref_type == "BASE_TABLE":
            self._check_table(node, scope)
        elif ref_type == "TABLE_FUNCTION":
            _check_table_function(node.get("function"))
        elif ref_type == "SHOW_REF":
            self._check_show(node, scope)

    def _check_table(self, node: dict[str, Any], scope: frozenset[str]) -> None:
        name = str(node.get("table_name", ""))
        path = (node.get("qualified_name") or {}).get("path") or [name]
        if node.get("catalog_name") or node.get("schema_name") or len(path) > 1:
            dotted = ".".join(str(part) for part in path)
            raise PermissionDenied(
                f'"{dotted}" is not allowed: refer to tables by their plain name, without a schema or catalog',
                reason="QUALIFIED_NAME_NOT_ALLOWED",
                metadata={"table": dotted},
            )
        folded = _fold(name)
        if folded in scope:
            return
        if folded not in self.visible:
            raise _table_not_found(name, self.visible)
        self.tables.add(folded)

    def _check_show(self, node: dict[str, Any], scope: frozenset[str]) -> None:
        if node.get("show_type") not in _SHOW_KINDS:
            raise PermissionDenied(
                "Listing the catalog (SHOW TABLES, SHOW DATABASES, bare DESCRIBE, ...) is not allowed: "
                "only read-only queries on your tables run here; call ListTables to see the tables you can query",
                reason="STATEMENT_NOT_ALLOWED",
                metadata={"statement": "SHOW"},
            )
        if node.get("table_name") or node.get("schema_name") or node.get("catalog_name"):
            self._check_table(node, scope)


def _check_function(node: dict[str, Any]) -> None:
    name = _fold(node.get("function_name", ""))
    if node.get("schema") or node.get("catalog"):
        dotted = ".".join(str(p) for p in (node.get("catalog"), node.get("schema"), node.get("function_name")) if p)
        raise PermissionDenied(
            f'Function "{dotted}" is not allowed: call functions without a schema or catalog prefix',
            reason="FUNCTION_NOT_ALLOWED",
            metadata={"function": dotted},
        )
    if name in DENIED_FUNCTIONS or name.startswith(DENIED_FUNCTION_PREFIXES):
        raise PermissionDenied(
            f'Function "{name}" is not allowed here: it can read server settings or files, or run SQL',
            reason="FUNCTION_NOT_ALLOWED",
            metadata={"function": name},
        )


def _check_table_function(function: Any) -> None:
    if not isinstance(function, dict) or "function_name" not in function:
        raise _unsupported("this kind of table function call is not supported")
    name = _fold(function["function_name"])
    if name not in ALLOWED_TABLE_FUNCTIONS or function.get("schema") or function.get("catalog"):
        allowed = ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS))
        raise PermissionDenied(
            f'Table function "{name}" is not allowed: only {allowed} may be used in FROM; read your tables by name',
            reason="TABLE_FUNCTION_NOT_ALLOWED",
            metadata={"function": name},
        )


# --- errors ---------------------------------------------------------------------------------


def _not_allowed(what: str, *, statement: str) -> PermissionDenied:
    return PermissionDenied(
        f"{what} not allowed: only read-only queries ({_ALLOWED_KINDS}) run here",
        reason="STATEMENT_NOT_ALLOWED",
        metadata={"statement": statement},
    )


def _unsupported(detail: str) -> PermissionDenied:
    return PermissionDenied(f"This SQL cannot be checked, so it does not run: {detail}", reason="UNSUPPORTED_SQL")


def _table_not_found(name: str, visible: set[str]) -> NotFound:
    names = sorted(visible)
    listed = ", ".join(names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        listed += f" (and {len(names) - _MAX_LISTED} more)"
    return NotFound(
        f'Table "{name}" does not exist or is not visible to you; tables you can query: {listed or "none"}',
        reason="TABLE_NOT_FOUND",
        metadata={"table": name, "available": ",".join(names[:_MAX_LISTED])},
    )
