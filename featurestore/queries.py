"""The SQL the feature store runs itself (values bound as `?`, identifiers through `quote`)."""

from __future__ import annotations

# One view per table over the files its manifests name (never a glob: uncommitted parts stay invisible).
# DuckDB cannot bind parameters in a CREATE VIEW, so the file list goes in as quoted literals (`literals`).
TABLE_VIEW = "CREATE VIEW {view} AS SELECT * FROM read_parquet({files}, union_by_name = true)"
# Per model: the vector cast to a fixed-size FLOAT[d] array, what array_cosine_distance and friends take.
EMBEDDING_VIEW = ("CREATE VIEW {view} AS SELECT * REPLACE (CAST(embedding AS FLOAT[{width}]) AS embedding) "
                  "FROM read_parquet({files})")
# All models' rows without the vectors (their widths differ): counts, coverage, joins on keys.
EMBEDDINGS_INDEX_VIEW = ("CREATE VIEW embeddings AS SELECT * EXCLUDE (embedding) "
                         "FROM read_parquet({files}, union_by_name = true)")
# Exact cosine top-k of one item among a model's embeddings (the query item itself excluded).
KNN = ("SELECT key, label, array_cosine_distance(embedding, (SELECT embedding FROM {view} WHERE key = ? LIMIT 1)) "
       "AS distance FROM {view} WHERE key <> ? ORDER BY distance, key LIMIT ?")


def quote(name: str) -> str:
    """A SQL identifier, quoted (the one helper that does it)."""
    return '"' + name.replace('"', '""') + '"'


def literals(values: list[str]) -> str:
    """A SQL list of string literals, each quoted (for file lists in view definitions)."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"
