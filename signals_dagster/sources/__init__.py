"""Sources: run a collector's aggregation at the source for one or more windows.

Nothing here imports Dagster. Heavy drivers are imported lazily by `open_source`.
"""

from signals_dagster.sources.base import Fetched, Source, SourceSession, open_source

__all__ = ["Fetched", "Source", "SourceSession", "open_source"]
