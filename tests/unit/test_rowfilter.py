"""Row filters of views: one boolean expression over the base columns, and nothing that escapes it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.server.common.errors import Code, InvalidArgument
from lakehouse.server.common.rowfilter import MAX_ROW_FILTER_CHARS, validate_row_filter

WORKERS = pa.schema(
    [
        ("worker_id", pa.int64()),
        ("Email", pa.string()),
        ("hourly_rate", pa.float64()),
        ("active", pa.bool_()),
        ("hired", pa.date32()),
    ]
)


def refusal(expression: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as err:
        validate_row_filter(expression, WORKERS)
    error = err.value
    assert (error.code, error.reason) == (Code.INVALID_ARGUMENT, "INVALID_ROW_FILTER")
    assert [v.field for v in error.violations] == ["view.row_filter"]
    return error


@pytest.mark.parametrize(
    ("expression", "stored"),
    [
        ("", ""),
        ("   ", ""),
        ("  hourly_rate > 20 ", "hourly_rate > 20"),
        ("active", "active"),
        ("email LIKE '%@example.com' AND NOT active", "email LIKE '%@example.com' AND NOT active"),
        ('"Email" IS NOT NULL', '"Email" IS NOT NULL'),
        (
            "hired >= DATE '2020-01-01' OR worker_id IN (1, 2, 3)",
            "hired >= DATE '2020-01-01' OR worker_id IN (1, 2, 3)",
        ),
        ("lower(email) = ')(' OR (((worker_id > 1)))", "lower(email) = ')(' OR (((worker_id > 1)))"),
        ("coalesce(hourly_rate, 0) BETWEEN 10 AND 30", "coalesce(hourly_rate, 0) BETWEEN 10 AND 30"),
    ],
)
def test_boolean_expressions_over_base_columns_are_stored_trimmed(expression: str, stored: str) -> None:
    assert validate_row_filter(expression, WORKERS) == stored


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        # Closing the WHERE clause's parenthesis to bolt on more SQL.
        ("worker_id > 0) UNION SELECT 1 FROM secrets WHERE (true", "closes a parenthesis"),
        ("worker_id > 0) OR (true", "closes a parenthesis"),
        ("worker_id > 0) ORDER BY (1", "closes a parenthesis"),
        ("(worker_id > 0", "leaves a parenthesis open"),
        # Comments could swallow whatever the query service writes after the filter.
        ("worker_id > 0 --", "comments"),
        ("worker_id > 0 /* */", "comments"),
        # A second statement.
        ("true; DROP TABLE workers", "not valid SQL"),
        # Reading anything but the row itself.
        ("worker_id IN (SELECT worker_id FROM payroll)", "subqueries"),
        ("EXISTS (SELECT 1)", "subqueries"),
        ("read_csv('/etc/passwd') IS NOT NULL", 'function "read_csv"'),
        ("current_setting('allowed_directories') = ''", 'function "current_setting"'),
        ("getvariable('x') IS NULL", 'function "getvariable"'),
        ("json_serialize_sql('SELECT 1') <> ''", 'function "json_serialize_sql"'),
        ("duckdb_settings() IS NULL", 'function "duckdb_settings"'),
        ("main.lower(email) = 'x'", "without a schema"),
        ("payroll.salary > 0", "plain name"),
        ("salary > 1000", "unknown column 'salary'"),
        ("worker_id = ?", "parameters"),
        ("worker_id = $id", "parameters"),
        ("COLUMNS(*) IS NOT NULL", "COLUMNS"),
        ("row_number() OVER () < 10", "window functions"),
        ("list_filter([1], x -> x > 0) = [1]", "lambdas"),
        # Well-formed but not a per-row truth value.
        ("count(*) > 1", "aggregates"),
        ("hourly_rate", "boolean condition, but it is DOUBLE"),
        ("1", "boolean condition, but it is INTEGER"),
        ("email + 1 > 0", "does not fit"),
        ("x" * (MAX_ROW_FILTER_CHARS + 1), f"at most {MAX_ROW_FILTER_CHARS}"),
        ("email = 'a\x00'", "NUL"),
    ],
)
def test_anything_but_one_boolean_expression_over_the_row_is_refused(expression: str, says: str) -> None:
    assert says in refusal(expression).message


def test_an_unknown_column_is_named_with_the_base_columns() -> None:
    message = refusal("salary > 1000").message
    assert "worker_id, Email, hourly_rate, active, hired" in message


def test_identifiers_match_ignoring_ascii_case_as_duckdb_does() -> None:
    assert validate_row_filter("EMAIL = 'a' AND Worker_ID > 1", WORKERS) == "EMAIL = 'a' AND Worker_ID > 1"
