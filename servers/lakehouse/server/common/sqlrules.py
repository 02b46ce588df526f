"""Functions no user-written SQL may call: the query sandbox and view row filters share them."""

from __future__ import annotations

# Scalar functions refused wherever they appear. Present in duckdb 2.0: current_setting (leaks
# settings such as allowed_directories), getvariable (server-side variables), json_serialize_plan
# (binds SQL given as a string), json_serialize_sql/json_deserialize_sql (dynamic-SQL plumbing),
# write_log, setseed, nextval, currval (session or catalog side effects). Not in the Python build
# but refused in case a later build or extension adds them: getenv (CLI only), query, query_table,
# sql_auto_complete, load_extension, install_extension.
DENIED_FUNCTIONS = frozenset(
    {
        "current_setting",
        "getvariable",
        "getenv",
        "json_serialize_plan",
        "json_serialize_sql",
        "json_deserialize_sql",
        "write_log",
        "setseed",
        "nextval",
        "currval",
        "query",
        "query_table",
        "sql_auto_complete",
        "load_extension",
        "install_extension",
    }
)
# Families of table functions that read the catalog, settings or files, refused in scalar position too.
DENIED_FUNCTION_PREFIXES = ("duckdb_", "pragma_", "read_", "parquet_", "json_execute", "__internal")
