"""The Dagster layer: partitions, assets, IO managers. Knows no particular database."""
