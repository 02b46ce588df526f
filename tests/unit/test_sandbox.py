from __future__ import annotations

import dataclasses
import threading
from typing import Any

import duckdb
import pytest

from lakehouse.server.common.errors import InvalidArgument, LakehouseError, NotFound, PermissionDenied
from lakehouse.server.query import sandbox
from lakehouse.server.query.sandbox import (
    ALLOWED_TABLE_FUNCTIONS,
    DENIED_FUNCTIONS,
    CheckedStatement,
    check_statement,
)

VISIBLE = ("workers", "orders", "Events")


def tables(*names: str) -> frozenset[str]:
    return frozenset(names)


# --- allowed --------------------------------------------------------------------------------

ALLOWED = [
    # plain reads, case and quoting
    pytest.param("select 1", "SELECT", tables(), id="constant"),
    pytest.param("SELECT * FROM workers", "SELECT", tables("workers"), id="visible-table"),
    pytest.param("select * from WORKERS", "SELECT", tables("workers"), id="upper-case-name"),
    pytest.param('select * from "WORKERS"', "SELECT", tables("workers"), id="quoted-upper-case-name"),
    pytest.param('select w.id from "Workers" as w', "SELECT", tables("workers"), id="quoted-mixed-case-alias"),
    pytest.param("select * from events", "SELECT", tables("events"), id="visible-name-given-mixed-case"),
    pytest.param("from workers", "SELECT", tables("workers"), id="from-first"),
    pytest.param("FROM workers SELECT id WHERE id > 1", "SELECT", tables("workers"), id="from-first-with-select"),
    pytest.param("table workers", "SELECT", tables("workers"), id="table-statement"),
    pytest.param("values (1, 'a'), (2, 'b')", "SELECT", tables(), id="values"),
    pytest.param("select * from (values (1)) v(x)", "SELECT", tables(), id="values-in-from"),
    # joins and set operations
    pytest.param(
        "select * from workers w join orders o on w.id = o.worker_id", "SELECT", tables("workers", "orders"), id="join"
    ),
    pytest.param("select * from workers natural join orders", "SELECT", tables("workers", "orders"), id="natural-join"),
    pytest.param(
        "select * from workers asof join orders on workers.t >= orders.t",
        "SELECT",
        tables("workers", "orders"),
        id="asof-join",
    ),
    pytest.param(
        "select * from workers positional join orders", "SELECT", tables("workers", "orders"), id="positional-join"
    ),
    pytest.param(
        "select * from workers semi join orders using (id)", "SELECT", tables("workers", "orders"), id="semi-join"
    ),
    pytest.param(
        "select id from workers union select id from orders", "SELECT", tables("workers", "orders"), id="union"
    ),
    pytest.param("select 1 intersect select 2 except select 3", "SELECT", tables(), id="intersect-except"),
    pytest.param(
        "select id from workers union all by name select id from orders",
        "SELECT",
        tables("workers", "orders"),
        id="union-by-name",
    ),
    # subqueries
    pytest.param(
        "select (select count(*) from orders) from workers", "SELECT", tables("workers", "orders"), id="scalar-subquery"
    ),
    pytest.param(
        "select * from workers where id in (select worker_id from orders)",
        "SELECT",
        tables("workers", "orders"),
        id="in-subquery",
    ),
    pytest.param(
        "select * from workers w where exists (from orders o where o.worker_id = w.id)",
        "SELECT",
        tables("workers", "orders"),
        id="correlated-exists",
    ),
    pytest.param(
        "select * from workers w, lateral (select * from orders o where o.worker_id = w.id)",
        "SELECT",
        tables("workers", "orders"),
        id="lateral",
    ),
    pytest.param(
        "select * from (select * from (select * from workers))", "SELECT", tables("workers"), id="nested-subqueries"
    ),
    pytest.param(
        "select dept, count(*) from workers group by all having count(*) > (select count(*) from orders)",
        "SELECT",
        tables("workers", "orders"),
        id="group-by-all-having",
    ),
    # CTEs
    pytest.param("with a as (select * from workers) select * from a", "SELECT", tables("workers"), id="cte"),
    pytest.param(
        "with a as (select 1 as x), b as (select * from a) select * from b", "SELECT", tables(), id="cte-chain"
    ),
    pytest.param(
        "with secret as (select 1 as x) select * from secret", "SELECT", tables(), id="cte-shadows-invisible-name"
    ),
    pytest.param(
        "with duckdb_settings as (select 1 as x) select * from duckdb_settings",
        "SELECT",
        tables(),
        id="cte-shadows-system-view",
    ),
    pytest.param(
        "with workers as (select 1 as x) select * from workers", "SELECT", tables(), id="cte-shadows-visible-name"
    ),
    # DuckDB binds a CTE's own name inside its (non-recursive) body to the catalog table.
    pytest.param(
        "with workers as (select * from workers where id > 0) select * from workers",
        "SELECT",
        tables("workers"),
        id="cte-wraps-same-name",
    ),
    pytest.param(
        "with recursive workers as (select * from workers) select * from workers",
        "SELECT",
        tables("workers"),
        id="recursive-without-union-reads-table",
    ),
    pytest.param(
        "with s as (select 1 as x) select * from workers where id in (select x from s)",
        "SELECT",
        tables("workers"),
        id="cte-in-subquery",
    ),
    pytest.param(
        "with s as materialized (select * from orders) select * from s",
        "SELECT",
        tables("orders"),
        id="materialized-cte",
    ),
    pytest.param(
        "select * from (with s as (select 1 as x) select * from s)", "SELECT", tables(), id="cte-inside-subquery"
    ),
    pytest.param(
        "with s as (select 1 as x) select * from s union all select * from s",
        "SELECT",
        tables(),
        id="cte-over-set-operation",
    ),
    pytest.param(
        "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select * from r",
        "SELECT",
        tables(),
        id="recursive-cte",
    ),
    pytest.param(
        "with recursive r(n) as (select id from workers union all select r.n from r join orders on orders.id = r.n) select * from r",
        "SELECT",
        tables("workers", "orders"),
        id="recursive-cte-reading-visible-tables",
    ),
    # windows, lambdas and expressions
    pytest.param(
        "select id, row_number() over (partition by dept order by salary desc) from workers",
        "SELECT",
        tables("workers"),
        id="window",
    ),
    pytest.param(
        "select sum(salary) over w from workers window w as (partition by dept)",
        "SELECT",
        tables("workers"),
        id="named-window",
    ),
    pytest.param(
        "select * from workers qualify row_number() over (partition by dept) = 1",
        "SELECT",
        tables("workers"),
        id="qualify",
    ),
    pytest.param("select list_transform([1, 2], x -> x + 1)", "SELECT", tables(), id="lambda"),
    pytest.param(
        "select list_filter(tags, t -> t like 'a%') from workers", "SELECT", tables("workers"), id="lambda-over-column"
    ),
    pytest.param("select [x * 2 for x in [1, 2] if x > 1]", "SELECT", tables(), id="list-comprehension"),
    pytest.param("select columns(c -> c like 'a%') from workers", "SELECT", tables("workers"), id="columns-lambda"),
    pytest.param(
        "select * exclude (salary) replace (id + 1 as id) from workers",
        "SELECT",
        tables("workers"),
        id="star-exclude-replace",
    ),
    pytest.param("select {'a': 1}.a, map {'k': 1}, struct_pack(b := 2)", "SELECT", tables(), id="struct-and-map"),
    pytest.param(
        "select lower(name), now(), strftime(now(), '%Y'), current_database(), version() from workers",
        "SELECT",
        tables("workers"),
        id="ordinary-functions",
    ),
    pytest.param("select 'read_csv(''/etc/passwd'')' as s", "SELECT", tables(), id="forbidden-name-in-string"),
    pytest.param("select 1 /* read_csv('/etc/passwd') */", "SELECT", tables(), id="forbidden-name-in-comment"),
    # parameters
    pytest.param("select * from workers where id = ?", "SELECT", tables("workers"), id="question-parameter"),
    pytest.param("select * from workers where id = $1 limit $2", "SELECT", tables("workers"), id="numbered-parameters"),
    pytest.param("select * from workers where name = $name", "SELECT", tables("workers"), id="named-parameter"),
    # allowlisted table functions
    pytest.param("select * from range(3)", "SELECT", tables(), id="range"),
    pytest.param("select * from RANGE(3) with ordinality", "SELECT", tables(), id="range-upper-case"),
    pytest.param("select * from generate_series(1, 3)", "SELECT", tables(), id="generate-series"),
    pytest.param("select * from workers, unnest([1, 2])", "SELECT", tables("workers"), id="unnest"),
    pytest.param("""select * from json_each('{"a": 1}')""", "SELECT", tables(), id="json-each"),
    # PIVOT / UNPIVOT that parse as SELECT
    pytest.param(
        "pivot workers on dept in ('a', 'b') using sum(salary)", "SELECT", tables("workers"), id="pivot-with-in-list"
    ),
    pytest.param(
        "select * from workers pivot (sum(salary) for dept in ('a'))", "SELECT", tables("workers"), id="pivot-in-from"
    ),
    pytest.param("unpivot workers on a, b into name k value v", "SELECT", tables("workers"), id="unpivot"),
    # samples
    pytest.param("select * from workers using sample 10%", "SELECT", tables("workers"), id="using-sample"),
    pytest.param(
        "select * from workers tablesample reservoir(5 rows) repeatable (1)",
        "SELECT",
        tables("workers"),
        id="tablesample",
    ),
    # DESCRIBE / SHOW / SUMMARIZE
    pytest.param("describe workers", "DESCRIBE", tables("workers"), id="describe"),
    pytest.param("DESCRIBE select * from orders", "DESCRIBE", tables("orders"), id="describe-select"),
    pytest.param('show "Workers"', "SHOW", tables("workers"), id="show-table"),
    pytest.param("summarize workers", "SUMMARIZE", tables("workers"), id="summarize"),
    pytest.param("summarize select * from orders where id > 1", "SUMMARIZE", tables("orders"), id="summarize-select"),
    pytest.param("select * from (describe workers)", "SELECT", tables("workers"), id="describe-as-subquery"),
    # EXPLAIN
    pytest.param("explain select * from workers", "EXPLAIN", tables("workers"), id="explain"),
    pytest.param("EXPLAIN ANALYZE select count(*) from orders", "EXPLAIN", tables("orders"), id="explain-analyze"),
    pytest.param("explain analyse select 1", "EXPLAIN", tables(), id="explain-analyse-spelling"),
    pytest.param(
        "EXPLAIN /* why */ ANALYZE select * from workers", "EXPLAIN", tables("workers"), id="explain-with-comment"
    ),
    pytest.param("explain (format json) select * from orders", "EXPLAIN", tables("orders"), id="explain-options"),
    pytest.param(
        "explain analyze (format json) (select * from orders)",
        "EXPLAIN",
        tables("orders"),
        id="explain-options-parenthesized-select",
    ),
    pytest.param(
        "explain (select 1) union select id from workers",
        "EXPLAIN",
        tables("workers"),
        id="explain-parenthesized-select",
    ),
    pytest.param("explain describe workers", "EXPLAIN", tables("workers"), id="explain-describe"),
    # trailing semicolons and comments
    pytest.param("select * from workers;", "SELECT", tables("workers"), id="trailing-semicolon"),
    pytest.param("select 1 -- ;drop table workers", "SELECT", tables(), id="comment-hides-nothing"),
    pytest.param("/* leading */ select 1; -- trailing", "SELECT", tables(), id="comments-around"),
]


@pytest.mark.parametrize(("sql", "kind", "expected"), ALLOWED)
def test_allowed(sql: str, kind: str, expected: frozenset[str]) -> None:
    checked = check_statement(sql, VISIBLE)
    assert (checked.kind, checked.tables) == (kind, expected)


# --- refused --------------------------------------------------------------------------------

STATEMENT = "STATEMENT_NOT_ALLOWED"
QUALIFIED = "QUALIFIED_NAME_NOT_ALLOWED"
MISSING = "TABLE_NOT_FOUND"
TABLE_FN = "TABLE_FUNCTION_NOT_ALLOWED"
FUNCTION = "FUNCTION_NOT_ALLOWED"

FORBIDDEN = [
    # statement types
    pytest.param("pragma version", PermissionDenied, STATEMENT, id="pragma"),
    pytest.param("pragma table_info('workers')", PermissionDenied, STATEMENT, id="pragma-table-info"),
    pytest.param("set threads = 1", PermissionDenied, STATEMENT, id="set"),
    pytest.param("set enable_external_access = true", PermissionDenied, STATEMENT, id="set-external-access"),
    pytest.param("reset threads", PermissionDenied, STATEMENT, id="reset"),
    pytest.param("set variable x = 1", PermissionDenied, STATEMENT, id="set-variable"),
    pytest.param("copy workers to 'out.csv'", PermissionDenied, STATEMENT, id="copy-to"),
    pytest.param(
        "copy (select * from workers) to 'out.parquet' (format parquet)",
        PermissionDenied,
        STATEMENT,
        id="copy-query-to",
    ),
    pytest.param("copy workers from 'in.csv'", PermissionDenied, STATEMENT, id="copy-from"),
    pytest.param("attach 'other.db' as other", PermissionDenied, STATEMENT, id="attach"),
    pytest.param("detach other", PermissionDenied, STATEMENT, id="detach"),
    pytest.param("install httpfs", PermissionDenied, STATEMENT, id="install"),
    pytest.param("force install httpfs", PermissionDenied, STATEMENT, id="force-install"),
    pytest.param("load '/tmp/evil.duckdb_extension'", PermissionDenied, STATEMENT, id="load"),
    pytest.param("update extensions", PermissionDenied, STATEMENT, id="update-extensions"),
    pytest.param("call pragma_version()", PermissionDenied, STATEMENT, id="call"),
    pytest.param("export database '/tmp/out'", PermissionDenied, STATEMENT, id="export-database"),
    pytest.param("import database '/tmp/out'", PermissionDenied, STATEMENT, id="import-database"),
    pytest.param("use memory", PermissionDenied, STATEMENT, id="use"),
    pytest.param("prepare p as select 1", PermissionDenied, STATEMENT, id="prepare"),
    pytest.param("execute p", PermissionDenied, STATEMENT, id="execute"),
    pytest.param("deallocate p", PermissionDenied, STATEMENT, id="deallocate"),
    pytest.param("begin", PermissionDenied, STATEMENT, id="begin"),
    pytest.param("rollback", PermissionDenied, STATEMENT, id="rollback"),
    pytest.param("vacuum", PermissionDenied, STATEMENT, id="vacuum"),
    pytest.param("analyze", PermissionDenied, STATEMENT, id="analyze"),
    pytest.param("checkpoint", PermissionDenied, STATEMENT, id="checkpoint"),
    pytest.param("force checkpoint", PermissionDenied, STATEMENT, id="force-checkpoint"),
    pytest.param("create table x (a int)", PermissionDenied, STATEMENT, id="create-table"),
    pytest.param("create temp view v as select * from secret", PermissionDenied, STATEMENT, id="create-view"),
    pytest.param("create macro m(a) as a", PermissionDenied, STATEMENT, id="create-macro"),
    pytest.param("create secret (type s3)", PermissionDenied, STATEMENT, id="create-secret"),
    pytest.param("insert into workers values (1)", PermissionDenied, STATEMENT, id="insert"),
    pytest.param("update workers set salary = 0", PermissionDenied, STATEMENT, id="update"),
    pytest.param("delete from workers", PermissionDenied, STATEMENT, id="delete"),
    pytest.param("truncate workers", PermissionDenied, STATEMENT, id="truncate"),
    pytest.param("drop table workers", PermissionDenied, STATEMENT, id="drop"),
    pytest.param("alter table workers add column b int", PermissionDenied, STATEMENT, id="alter"),
    pytest.param("comment on table workers is 'x'", PermissionDenied, STATEMENT, id="comment-on"),
    pytest.param(
        "merge into workers using orders on workers.id = orders.id when matched then delete",
        PermissionDenied,
        STATEMENT,
        id="merge",
    ),
    pytest.param("pivot workers on dept using sum(salary)", PermissionDenied, STATEMENT, id="pivot-without-in-list"),
    pytest.param(
        "select * from (pivot workers on dept using sum(salary))",
        PermissionDenied,
        STATEMENT,
        id="pivot-without-in-list-in-subquery",
    ),
    pytest.param(
        "explain analyze insert into workers values (1)", PermissionDenied, STATEMENT, id="explain-analyze-insert"
    ),
    pytest.param("explain copy workers to 'x.csv'", PermissionDenied, STATEMENT, id="explain-copy"),
    pytest.param("explain (format json) delete from workers", PermissionDenied, STATEMENT, id="explain-options-delete"),
    # catalog listings
    pytest.param("show tables", PermissionDenied, STATEMENT, id="show-tables"),
    pytest.param("show all tables", PermissionDenied, STATEMENT, id="show-all-tables"),
    pytest.param("show databases", PermissionDenied, STATEMENT, id="show-databases"),
    pytest.param("show schemas", PermissionDenied, STATEMENT, id="show-schemas"),
    pytest.param("show variables", PermissionDenied, STATEMENT, id="show-variables"),
    pytest.param("show tables from main", PermissionDenied, STATEMENT, id="show-tables-from"),
    pytest.param("describe", PermissionDenied, STATEMENT, id="bare-describe"),
    pytest.param("show", PermissionDenied, STATEMENT, id="bare-show"),
    pytest.param("select * from (show tables)", PermissionDenied, STATEMENT, id="show-tables-subquery"),
    # one statement only
    pytest.param("select 1; select 2", InvalidArgument, "MULTIPLE_STATEMENTS", id="two-selects"),
    pytest.param("select 1; drop table workers", InvalidArgument, "MULTIPLE_STATEMENTS", id="select-then-drop"),
    pytest.param(
        "select * from workers;\nattach 'x.db'", InvalidArgument, "MULTIPLE_STATEMENTS", id="select-then-attach"
    ),
    pytest.param(
        "select 1; /* c */ update extensions", InvalidArgument, "MULTIPLE_STATEMENTS", id="select-then-unknown-type"
    ),
    pytest.param("", InvalidArgument, "EMPTY_SQL", id="empty"),
    pytest.param("  \n\t", InvalidArgument, "EMPTY_SQL", id="whitespace"),
    pytest.param("-- only a comment", InvalidArgument, "EMPTY_SQL", id="line-comment"),
    pytest.param("/* block */", InvalidArgument, "EMPTY_SQL", id="block-comment"),
    pytest.param(";;", InvalidArgument, "EMPTY_SQL", id="semicolons"),
    pytest.param("selec 1", InvalidArgument, "INVALID_SQL", id="syntax-error"),
    pytest.param("select 'unterminated", InvalidArgument, "INVALID_SQL", id="unterminated-string"),
    pytest.param("select $1, $name", InvalidArgument, "INVALID_SQL", id="mixed-parameters"),
    pytest.param("select 1\x00; drop table workers", InvalidArgument, "INVALID_SQL", id="nul-character"),
    pytest.param("select * from workers |> where id > 1", InvalidArgument, "INVALID_SQL", id="pipe-syntax"),
    # schemas and catalogs
    pytest.param("select * from main.workers", PermissionDenied, QUALIFIED, id="main-schema"),
    pytest.param("select * from temp.workers", PermissionDenied, QUALIFIED, id="temp-schema"),
    pytest.param('select * from "main"."workers"', PermissionDenied, QUALIFIED, id="quoted-schema"),
    pytest.param("select * from memory.workers", PermissionDenied, QUALIFIED, id="catalog"),
    pytest.param("select * from memory.main.workers", PermissionDenied, QUALIFIED, id="catalog-schema"),
    pytest.param("select * from system.main.duckdb_settings", PermissionDenied, QUALIFIED, id="system-catalog"),
    pytest.param("select * from information_schema.tables", PermissionDenied, QUALIFIED, id="information-schema"),
    pytest.param("select * from pg_catalog.pg_tables", PermissionDenied, QUALIFIED, id="pg-catalog"),
    pytest.param(
        "select * from workers join main.orders using (id)", PermissionDenied, QUALIFIED, id="qualified-in-join"
    ),
    pytest.param("show main.workers", PermissionDenied, QUALIFIED, id="show-qualified"),
    pytest.param("describe information_schema.columns", PermissionDenied, QUALIFIED, id="describe-qualified"),
    pytest.param("summarize temp.main.workers", PermissionDenied, QUALIFIED, id="summarize-qualified"),
    # names that are not visible, including files through replacement scans
    pytest.param("select * from secret", NotFound, MISSING, id="invisible-table"),
    pytest.param("select * from 'data.parquet'", NotFound, MISSING, id="replacement-scan-parquet"),
    pytest.param("select * from '/etc/passwd'", NotFound, MISSING, id="replacement-scan-absolute"),
    pytest.param("select * from 's3://bucket/key.parquet'", NotFound, MISSING, id="replacement-scan-s3"),
    pytest.param("from 'x.csv'", NotFound, MISSING, id="from-first-file"),
    pytest.param("from (from 'x.csv')", NotFound, MISSING, id="nested-from-first-file"),
    pytest.param("select * from read_parquet", NotFound, MISSING, id="function-name-as-table"),
    pytest.param("select * from duckdb_settings", NotFound, MISSING, id="system-view"),
    pytest.param("select * from duckdb_tables", NotFound, MISSING, id="system-view-tables"),
    pytest.param("select * from sqlite_master", NotFound, MISSING, id="sqlite-master"),
    pytest.param('select * from "work\u200bers"', NotFound, MISSING, id="zero-width-space"),
    pytest.param('select * from "w\u043erkers"', NotFound, MISSING, id="cyrillic-o"),
    pytest.param('select * from "\uff57\uff4f\uff52\uff4b\uff45\uff52\uff53"', NotFound, MISSING, id="full-width"),
    pytest.param('select * from "workers "', NotFound, MISSING, id="trailing-space"),
    pytest.param("describe secret", NotFound, MISSING, id="describe-invisible"),
    pytest.param("show secret", NotFound, MISSING, id="show-invisible"),
    pytest.param("show 'x.csv'", NotFound, MISSING, id="show-file"),
    pytest.param("summarize 'x.csv'", NotFound, MISSING, id="summarize-file"),
    pytest.param("describe select * from 'x.csv'", NotFound, MISSING, id="describe-select-file"),
    pytest.param("explain select * from secret", NotFound, MISSING, id="explain-invisible"),
    pytest.param("explain analyze select * from 'x.csv'", NotFound, MISSING, id="explain-analyze-file"),
    pytest.param("select * from workers where id in (select id from secret)", NotFound, MISSING, id="where-subquery"),
    pytest.param("select * from workers where exists (from '/etc/passwd')", NotFound, MISSING, id="exists-file"),
    pytest.param(
        "select list_transform([1], x -> (select count(*) from secret))", NotFound, MISSING, id="subquery-in-lambda"
    ),
    pytest.param(
        "select [x for x in [1] if x > (select 1 from secret)]", NotFound, MISSING, id="subquery-in-comprehension"
    ),
    pytest.param("select * from workers w, lateral (select * from secret)", NotFound, MISSING, id="lateral"),
    pytest.param("select id from workers union select id from secret", NotFound, MISSING, id="union-branch"),
    pytest.param("select * from workers order by (select 1 from secret)", NotFound, MISSING, id="order-by-subquery"),
    pytest.param("select * from workers limit (select 1 from secret)", NotFound, MISSING, id="limit-subquery"),
    pytest.param(
        "select count(*) over w from workers window w as (order by (select 1 from secret))",
        NotFound,
        MISSING,
        id="window-clause-subquery",
    ),
    pytest.param("select * from workers qualify (select 1 from secret) = 1", NotFound, MISSING, id="qualify-subquery"),
    pytest.param(
        "select sum(salary) filter (where id in (from secret)) from workers", NotFound, MISSING, id="aggregate-filter"
    ),
    pytest.param("values ((select 1 from secret))", NotFound, MISSING, id="values-subquery"),
    pytest.param("pivot secret on a in ('x') using sum(b)", NotFound, MISSING, id="pivot-source"),
    pytest.param("select * from unnest((select list(x) from secret))", NotFound, MISSING, id="table-function-argument"),
    pytest.param(
        """select * from json_each((select j from '/etc/x.json'))""", NotFound, MISSING, id="json-each-argument"
    ),
    pytest.param("with a as (select * from secret) select * from a", NotFound, MISSING, id="cte-body"),
    pytest.param(
        "with s as materialized (select * from 'x.csv') select * from s", NotFound, MISSING, id="materialized-cte-body"
    ),
    pytest.param(
        "with a as (select * from b), b as (select 1) select * from a", NotFound, MISSING, id="cte-forward-reference"
    ),
    pytest.param(
        "with sqlite_master as (select * from sqlite_master) select * from sqlite_master",
        NotFound,
        MISSING,
        id="cte-self-reference",
    ),
    pytest.param("select * from (with s as (select 1) select * from s), s", NotFound, MISSING, id="cte-scope-leak"),
    pytest.param(
        "with recursive r(n) as (select 1 union all select n + 1 from r, secret) select * from r",
        NotFound,
        MISSING,
        id="recursive-cte-invisible",
    ),
    # DuckDB binds the anchor's self-reference to the catalog table, not the CTE.
    pytest.param(
        "with recursive duckdb_tables as (select * from duckdb_tables union all select * from duckdb_tables) "
        "select * from duckdb_tables",
        NotFound,
        MISSING,
        id="recursive-cte-anchor-self-reference",
    ),
    # table functions
    pytest.param("select * from read_csv('/etc/passwd')", PermissionDenied, TABLE_FN, id="read-csv"),
    pytest.param("select * from READ_CSV_AUTO('x.csv')", PermissionDenied, TABLE_FN, id="read-csv-auto-upper"),
    pytest.param("""select * from "read_csv"('x.csv')""", PermissionDenied, TABLE_FN, id="read-csv-quoted"),
    pytest.param(
        "select * from read_parquet(['a.parquet', 'b.parquet'])", PermissionDenied, TABLE_FN, id="read-parquet"
    ),
    pytest.param("select * from parquet_scan('a.parquet')", PermissionDenied, TABLE_FN, id="parquet-scan"),
    pytest.param("select * from parquet_metadata('a.parquet')", PermissionDenied, TABLE_FN, id="parquet-metadata"),
    pytest.param("select * from read_json_auto('a.json')", PermissionDenied, TABLE_FN, id="read-json"),
    pytest.param("select * from read_ndjson('a.json')", PermissionDenied, TABLE_FN, id="read-ndjson"),
    pytest.param("select * from read_text('/etc/passwd')", PermissionDenied, TABLE_FN, id="read-text"),
    pytest.param("select * from read_blob('/etc/passwd')", PermissionDenied, TABLE_FN, id="read-blob"),
    pytest.param("select * from read_duckdb('x.db')", PermissionDenied, TABLE_FN, id="read-duckdb"),
    pytest.param("select * from glob('*')", PermissionDenied, TABLE_FN, id="glob"),
    pytest.param("select * from sniff_csv('x.csv')", PermissionDenied, TABLE_FN, id="sniff-csv"),
    pytest.param("select * from query('select 1')", PermissionDenied, TABLE_FN, id="query"),
    pytest.param("select * from query_table('secret')", PermissionDenied, TABLE_FN, id="query-table"),
    pytest.param(
        "select * from json_execute_serialized_sql('{}')", PermissionDenied, TABLE_FN, id="json-execute-serialized-sql"
    ),
    pytest.param("select * from duckdb_settings()", PermissionDenied, TABLE_FN, id="duckdb-settings"),
    pytest.param("select * from duckdb_tables()", PermissionDenied, TABLE_FN, id="duckdb-tables"),
    pytest.param("select * from duckdb_secrets()", PermissionDenied, TABLE_FN, id="duckdb-secrets"),
    pytest.param(
        "select * from pragma_table_info('workers')", PermissionDenied, TABLE_FN, id="pragma-table-info-function"
    ),
    pytest.param("select * from histogram(secret, x)", PermissionDenied, TABLE_FN, id="histogram-table-macro"),
    pytest.param("select * from iceberg_scan('x')", PermissionDenied, TABLE_FN, id="iceberg-scan"),
    pytest.param("select * from delta_scan('x')", PermissionDenied, TABLE_FN, id="delta-scan"),
    pytest.param("select * from sqlite_scan('x.db', 't')", PermissionDenied, TABLE_FN, id="sqlite-scan"),
    pytest.param("select * from postgres_scan('dsn', 'public', 't')", PermissionDenied, TABLE_FN, id="postgres-scan"),
    pytest.param("select * from arrow_scan(1, 2, 3)", PermissionDenied, TABLE_FN, id="arrow-scan"),
    pytest.param("select * from checkpoint()", PermissionDenied, TABLE_FN, id="checkpoint-function"),
    pytest.param("select * from system.main.range(3)", PermissionDenied, TABLE_FN, id="qualified-range"),
    pytest.param(
        "select * from workers, read_parquet('x.parquet')", PermissionDenied, TABLE_FN, id="joined-with-visible"
    ),
    pytest.param(
        "with read_csv as (select 1) select * from read_csv('x.csv')",
        PermissionDenied,
        TABLE_FN,
        id="cte-does-not-shadow-function",
    ),
    pytest.param(
        "select * from workers where id in (select * from read_csv('x.csv'))",
        PermissionDenied,
        TABLE_FN,
        id="in-subquery",
    ),
    # scalar functions
    pytest.param("select current_setting('allowed_directories')", PermissionDenied, FUNCTION, id="current-setting"),
    pytest.param(
        """select "CURRENT_SETTING"('threads')""", PermissionDenied, FUNCTION, id="current-setting-quoted-upper"
    ),
    pytest.param("select 'threads'.current_setting()", PermissionDenied, FUNCTION, id="current-setting-dot-call"),
    pytest.param("select getvariable('x')", PermissionDenied, FUNCTION, id="getvariable"),
    pytest.param("select getenv('HOME')", PermissionDenied, FUNCTION, id="getenv"),
    pytest.param("select json_serialize_plan('select 1')", PermissionDenied, FUNCTION, id="json-serialize-plan"),
    pytest.param("select nextval('s')", PermissionDenied, FUNCTION, id="nextval"),
    pytest.param("select setseed(0.5)", PermissionDenied, FUNCTION, id="setseed"),
    pytest.param("select write_log('x')", PermissionDenied, FUNCTION, id="write-log"),
    pytest.param("select read_csv('x.csv')", PermissionDenied, FUNCTION, id="table-function-in-select-list"),
    pytest.param("select duckdb_functions()", PermissionDenied, FUNCTION, id="duckdb-prefix-scalar"),
    pytest.param("select main.lower('a')", PermissionDenied, FUNCTION, id="schema-qualified-function"),
    pytest.param("select system.main.upper('a')", PermissionDenied, FUNCTION, id="catalog-qualified-function"),
    pytest.param("select pg_catalog.current_database()", PermissionDenied, FUNCTION, id="pg-catalog-function"),
    pytest.param(
        "select list_transform(['threads'], x -> current_setting(x))",
        PermissionDenied,
        FUNCTION,
        id="function-in-lambda",
    ),
    pytest.param(
        "with current_setting as (select 1) select current_setting('threads')",
        PermissionDenied,
        FUNCTION,
        id="cte-does-not-shadow-scalar",
    ),
    pytest.param(
        "select count(*) over (order by current_setting('threads')) from workers",
        PermissionDenied,
        FUNCTION,
        id="function-in-window",
    ),
    # time travel
    pytest.param("select * from workers at (version => 1)", PermissionDenied, "AT_CLAUSE_NOT_ALLOWED", id="at-version"),
    pytest.param(
        "select * from workers at (timestamp => now())", PermissionDenied, "AT_CLAUSE_NOT_ALLOWED", id="at-timestamp"
    ),
    pytest.param(
        "select * from (select * from orders at (version => 3))",
        PermissionDenied,
        "AT_CLAUSE_NOT_ALLOWED",
        id="at-in-subquery",
    ),
]


@pytest.mark.parametrize(("sql", "error", "reason"), FORBIDDEN)
def test_forbidden(sql: str, error: type[LakehouseError], reason: str) -> None:
    with pytest.raises(LakehouseError) as info:
        check_statement(sql, VISIBLE)
    assert (type(info.value), info.value.reason) == (error, reason)
    assert_readable(info.value.message)


def assert_readable(message: str) -> None:
    assert message.strip()
    for fragment in ("{'", "': ", "SELECT_NODE", "BASE_TABLE", "query_location", "<", "Traceback"):
        assert fragment not in message


# --- every table function this DuckDB build has, and the denylist ---------------------------


def duckdb_table_functions() -> list[str]:
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type IN ('table', 'table_macro')"
        ).fetchall()
    return sorted(name for (name,) in rows if name not in ALLOWED_TABLE_FUNCTIONS)


def test_probe_sees_the_dangerous_table_functions() -> None:
    assert {"read_csv", "read_parquet", "glob", "query", "duckdb_settings", "read_text"} <= set(
        duckdb_table_functions()
    )


@pytest.mark.parametrize("name", duckdb_table_functions())
def test_every_other_table_function_is_refused(name: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        check_statement(f'select * from "{name}"()', VISIBLE)
    assert info.value.reason == TABLE_FN
    assert name in info.value.message


@pytest.mark.parametrize("name", sorted(DENIED_FUNCTIONS))
def test_every_denied_function_is_refused(name: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        check_statement(f"select {name}('x') from workers", VISIBLE)
    assert (info.value.reason, info.value.metadata["function"]) == (FUNCTION, name)


def test_denylist_names_functions_that_exist() -> None:
    with duckdb.connect() as con:
        existing = {name for (name,) in con.execute("SELECT function_name FROM duckdb_functions()").fetchall()}
    assert {
        "current_setting",
        "getvariable",
        "json_serialize_plan",
        "nextval",
        "setseed",
    } <= existing & DENIED_FUNCTIONS
    assert "getenv" not in existing  # CLI only: refused anyway in case a build adds it


# --- details of results and errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "text"),
    [
        pytest.param("select 1", "select 1", id="plain"),
        pytest.param("select 1;", "select 1", id="semicolon"),
        pytest.param("select 1 ; ;  \n", "select 1", id="semicolons-and-whitespace"),
        pytest.param("select 1; -- done", "select 1", id="trailing-line-comment"),
        pytest.param("select 1 -- ;drop table workers", "select 1", id="comment-with-semicolon"),
        pytest.param("select 'é;' /* x */ ;", "select 'é;'", id="multibyte-before-comment"),
        pytest.param("/* c */ select 1", "select 1", id="leading-comment"),
        pytest.param("select $$ -- not a comment $$", "select $$ -- not a comment $$", id="dollar-quoted"),
        pytest.param("explain analyze select 1; -- x", "explain analyze select 1", id="explain"),
    ],
)
def test_sql_is_the_trimmed_statement(sql: str, text: str) -> None:
    assert check_statement(sql, VISIBLE).sql == text


def test_statement_not_allowed_names_the_type() -> None:
    with pytest.raises(PermissionDenied) as info:
        check_statement("pragma version", VISIBLE)
    assert "PRAGMA" in info.value.message and "read-only" in info.value.message
    assert info.value.metadata == {"statement": "PRAGMA"}


def test_catalog_listing_points_to_list_tables() -> None:
    with pytest.raises(PermissionDenied) as info:
        check_statement("show all tables", VISIBLE)
    assert "ListTables" in info.value.message


def test_invalid_sql_carries_duckdb_position() -> None:
    with pytest.raises(InvalidArgument) as info:
        check_statement("select * from workers where", VISIBLE)
    assert "LINE 1" in info.value.message and "^" in info.value.message


def test_table_not_found_lists_visible_tables() -> None:
    with pytest.raises(NotFound) as info:
        check_statement('select * from "Secret"', ["workers", "Orders"])
    assert info.value.metadata == {"table": "Secret", "available": "orders,workers"}
    assert (
        info.value.message
        == 'Table "Secret" does not exist or is not visible to you; tables you can query: orders, workers'
    )


def test_table_not_found_truncates_long_lists() -> None:
    visible = [f"t{i:03d}" for i in range(60)]
    with pytest.raises(NotFound) as info:
        check_statement("select * from secret", visible)
    assert "t049" in info.value.message and "t050" not in info.value.message
    assert info.value.message.endswith("(and 10 more)")
    assert info.value.metadata["available"].split(",") == visible[:50]


def test_table_not_found_with_nothing_visible() -> None:
    with pytest.raises(NotFound) as info:
        check_statement("select * from workers", [])
    assert info.value.message.endswith("tables you can query: none")


def test_names_fold_ascii_case_only_like_duckdb() -> None:
    assert check_statement('select * from "Ä"', ["Ä"]).tables == {"Ä"}
    assert check_statement("select * from STRASSE", ["strasse"]).tables == {"strasse"}
    with pytest.raises(NotFound):
        check_statement('select * from "ä"', ["Ä"])  # DuckDB does not match these either


def test_deep_nesting_is_still_walked() -> None:
    sql = "select " + "abs(" * 250 + "(select 1 from secret)" + ")" * 250
    with pytest.raises(NotFound):
        check_statement(sql, VISIBLE)


def test_nesting_too_deep_for_python_json_is_refused() -> None:
    sql = "select " + "abs(" * 900 + "(select 1 from secret)" + ")" * 900  # DuckDB allows 1,000
    with pytest.raises(PermissionDenied) as info:
        check_statement(sql, VISIBLE)
    assert info.value.reason == "UNSUPPORTED_SQL" and "nested too deeply" in info.value.message


def test_concurrent_checks_share_the_parser_safely() -> None:
    results: list[CheckedStatement] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                results.append(check_statement("select * from workers join orders using (id)", VISIBLE))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert {r.tables for r in results} == {tables("workers", "orders")} and len(results) == 200


def test_checked_statement_is_frozen() -> None:
    checked = check_statement("select 1", VISIBLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.kind = "EXPLAIN"  # type: ignore[misc]


# --- failing closed ---------------------------------------------------------------------------


class FakeParser:
    def __init__(self, answer: str) -> None:
        self.answer = answer

    def execute(self, sql: str, params: list[Any]) -> FakeParser:
        return self

    def fetchone(self) -> tuple[str]:
        return (self.answer,)


def test_serializer_error_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = '{"error": true, "error_type": "not implemented", "error_message": "cannot serialize this"}'
    monkeypatch.setattr(sandbox, "_PARSER", FakeParser(answer))
    with pytest.raises(PermissionDenied) as info:
        check_statement("select 1", VISIBLE)
    assert info.value.reason == "UNSUPPORTED_SQL"
    assert "cannot serialize this" in info.value.message


def test_unknown_table_reference_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = '{"error": false, "statements": [{"node": {"type": "SELECT_NODE", "from_table": {"type": "NEW_SCAN", "alias": "", "sample": null}}}]}'
    monkeypatch.setattr(sandbox, "_PARSER", FakeParser(tree))
    with pytest.raises(PermissionDenied) as info:
        check_statement("select 1", VISIBLE)
    assert info.value.reason == "UNSUPPORTED_SQL" and "NEW_SCAN" in info.value.message


@pytest.mark.parametrize(
    "text", ["explain", "explain analyze", "explain (format json)", "explain verbose select 1", "select 1"]
)
def test_explain_without_a_select_after_it_is_refused(text: str) -> None:
    # DuckDB's parser rejects these before the sandbox looks inside; the helper must refuse them too.
    with pytest.raises(PermissionDenied) as info:
        sandbox._explained_select(text)
    assert info.value.reason == "UNSUPPORTED_SQL"
