"""Exact marginal counts of large tables on existing engines (DuckDB locally, Spark on a cluster).

The marginal generators (aim, mst, independent) spend their time on exact counts before the
noise. Here those counts run as SQL ``GROUP BY`` over the Parquet/CSV file, with the
discretisation written in SQL from the PUBLIC schema only (:mod:`dpsynth.scale.sql`), the
counts zero-filled to the public domain and returned as whole cubes; the Gaussian noise is
added once, by the generator's measurer, on the final counts (never per partition). The table
is never loaded into pandas: only counts come back.

Modules: ``sql`` (schema -> SQL code expressions), ``covers`` (which GROUP BYs answer a set
of marginals), ``counts`` (the counter interface, the in-memory counter and the recoded view),
``duckdb_counts`` and ``spark_counts`` (the engines), ``source`` (a table on disk + its schema).
"""
