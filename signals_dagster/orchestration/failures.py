"""How our errors become Dagster failures."""

import dagster as dg

from signals_dagster.errors import CollectorError


def as_failure(exc: CollectorError) -> Exception:
    """Transient faults stay plain (the RetryPolicy retries them); others fail at once."""
    if exc.transient:
        return exc
    return dg.Failure(description=str(exc), allow_retries=False)
