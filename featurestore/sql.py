"""SQL over the store: `connect(root)` gives a DuckDB connection with one view per table, read-only.

DuckDB cannot install extensions offline (no httpfs), so on `s3://` roots the root's fsspec filesystem is
registered with DuckDB and the views read through it. Views name exactly the files of committed manifests
(docs/store.md), so a query never sees a half-written partition. Only SELECT (and EXPLAIN) statements are
run (EXPLAIN only of a SELECT: EXPLAIN ANALYZE executes what it explains): a statement that writes
(COPY, CREATE, INSERT, ATTACH, SET, ...) is refused with one line.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa

from featurestore import queries, tables
from shards.storage import Root

ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def view_name(model: str) -> str:
    """`embeddings_<model>` with every character outside [A-Za-z0-9_] as `_` (no quoting needed)."""
    return "embeddings_" + re.sub(r"[^A-Za-z0-9_]", "_", model)


def connect(root: Root) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose views are the store's committed tables."""
    con = duckdb.connect(":memory:")
    if not root.is_local:
        con.register_filesystem(root.fs)
    for table in tables.PARTITIONS:
        urls = tables.files(root, table)
        if not urls:
            continue
        if table == "embeddings":
            con.execute(queries.EMBEDDINGS_INDEX_VIEW.format(files=queries.literals(urls)))
            for part in tables.partitions(root, "embeddings"):
                model_urls = tables.files(root, "embeddings", model=part["model"])
                width = tables.manifest(root, "embeddings", part)["lineage"]["width"]
                view = view_name(part["model"])
                if view not in {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}:
                    con.execute(queries.EMBEDDING_VIEW.format(view=queries.quote(view), width=int(width),
                                                              files=queries.literals(model_urls)))
        else:
            con.execute(queries.TABLE_VIEW.format(view=queries.quote(table), files=queries.literals(urls)))
    return con


# `EXPLAIN [(options)] [ANALYZE]`: what precedes the explained statement. EXPLAIN ANALYZE *runs* it, so
# `EXPLAIN ANALYZE COPY ... TO 'file'` writes the file: the explained statement must itself be a SELECT.
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s*(\([^)]*\)\s*)?(ANALY[SZ]E\b\s*)?", re.IGNORECASE)


def _explained(statement) -> str:
    """The type name of the statement an EXPLAIN explains (unparseable: refused as EXPLAIN)."""
    try:
        inner = duckdb.extract_statements(_EXPLAIN.sub("", statement.query, count=1))
    except duckdb.Error:
        return "EXPLAIN"
    return inner[0].type.name if len(inner) == 1 else "EXPLAIN"


def check_read_only(sql: str) -> None:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise ValueError(f"SQL does not parse: {str(err).splitlines()[0]}") from None
    if not statements:
        raise ValueError("SQL is empty")
    for statement in statements:
        kind = statement.type.name
        if statement.type == duckdb.StatementType.EXPLAIN and _explained(statement) != "SELECT":
            kind = f"EXPLAIN {_explained(statement)}"
        elif statement.type in ALLOWED:
            continue
        elif statement.type == duckdb.StatementType.MULTI:  # DuckDB expands such a PIVOT with a CREATE TYPE
            raise ValueError("the store is read-only: a PIVOT that finds its own columns creates a type first; "
                             "name them instead: PIVOT ... ON col IN ('a', 'b') USING ...")
        raise ValueError(f"the store is read-only: {kind} statements are refused (only SELECT and EXPLAIN SELECT run)")


def query(root: Root, sql: str, params: list | None = None) -> pa.Table:
    """The result of one read-only statement as an Arrow table."""
    check_read_only(sql)
    con = connect(root)
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    except duckdb.Error as err:
        raise ValueError(f"SQL failed: {str(err).splitlines()[0]}") from None
    finally:
        con.close()


def write_result(result: pa.Table, out: str) -> Path:
    """`--out x.csv|x.parquet`: the format by suffix; anything else is refused."""
    path = Path(out)
    if path.suffix == ".csv":
        import pyarrow.csv as pcsv

        vectors = [c for c in result.column_names if pa.types.is_list(result[c].type)
                   or pa.types.is_fixed_size_list(result[c].type) or pa.types.is_large_list(result[c].type)]
        if vectors:
            raise ValueError(f"--out {out!r}: column(s) {vectors} hold vectors, which CSV cannot: write .parquet")
        pcsv.write_csv(result, path)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(result, path, compression="zstd")
    else:
        raise ValueError(f"--out {out!r}: expected a .csv or .parquet file")
    return path
