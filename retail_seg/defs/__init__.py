"""The thin Dagster layer: assets read, call core, write and describe."""
