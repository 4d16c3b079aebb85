"""The pure core: plain functions over DuckDB connections, DataFrames and arrays. Never imports dagster."""
