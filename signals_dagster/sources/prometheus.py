"""Prometheus instant queries over the HTTP API, optionally post-processed by DuckDB SQL.

The query is evaluated at window_end. `$__range` is replaced by the length of the period it
measures — the window's real length unless `time_expression` starts it earlier — a constant
computed from the spec and the partition, never user input. requests and duckdb are imported
lazily: the shape helpers work without them.
"""

import json
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from signals_dagster.errors import CollectorError, SourceError
from signals_dagster.redact import redact
from signals_dagster.sources.base import Fetched
from signals_dagster.spec.fields import format_duration
from signals_dagster.spec.sources import PrometheusConfig
from signals_dagster.window import Window

log = logging.getLogger("signals_dagster")

QUERY_PATH = "/api/v1/query"
CONNECT_TIMEOUT = 10.0
# Grafana's spellings: `$__range` (a PromQL duration), `$__range_s` / `$__range_ms` (numbers).
_RANGE = re.compile(r"\$__range(_ms|_s)?\b")
PROM_TABLE = "CREATE TABLE prom_metrics (metric JSON, value DOUBLE, timestamp TIMESTAMPTZ)"
RESERVED_LABELS = ("value", "grain_datetime")
Series = tuple[dict[str, str], float | None, datetime]


def query_url(uri: str) -> str:
    """The instant-query endpoint: the URI as given when it ends in /api/v1/query, else appended."""
    parts = urlsplit(uri)
    path = parts.path.rstrip("/")
    if not path.endswith(QUERY_PATH):
        path += QUERY_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def uses_range(query: str) -> bool:
    """Whether the PromQL text uses $__range (or $__range_s / $__range_ms)."""
    return _RANGE.search(query) is not None


def prometheus_kind(config: PrometheusConfig) -> str:
    """windowed ($__range over the window) or as-of (evaluated at window_end)."""
    if uses_range(config.query) and config.time_expression in (None, "$window_start"):
        return "windowed"
    return "as-of"


def period_start(expression: str | None, window: Window, tz: ZoneInfo) -> datetime:
    """Where the period measured by `$__range` starts (the window's start by default)."""
    if expression in (None, "$window_start"):
        return window.start
    # The hour / day / week / month (in the collector's zone) holding the window's last instant.
    local = (window.end - timedelta(microseconds=1)).astimezone(tz)
    hour = local.replace(minute=0, second=0, microsecond=0)
    day = datetime(local.year, local.month, local.day, tzinfo=tz)
    starts = {
        "$start_of_hour": hour,
        "$start_of_day": day,
        "$start_of_week": day - timedelta(days=local.weekday()),
        "$start_of_month": datetime(local.year, local.month, 1, tzinfo=tz),
    }
    if expression not in starts:
        raise CollectorError(f"unknown time_expression {expression!r}")
    return starts[expression]


def render_query(query: str, length: timedelta) -> str:
    """The query with $__range (and its _s / _ms forms) replaced by `length`."""
    seconds = int(length.total_seconds())
    values = {"": format_duration(timedelta(seconds=seconds)), "_s": str(seconds)}
    values["_ms"] = str(seconds * 1000)
    return _RANGE.sub(lambda m: values[m.group(1) or ""], query)


def _number(text: object) -> float:
    """A sample value as Prometheus sends it: a string ('12', 'NaN', '+Inf')."""
    return float(str(text))


def result_series(data: Mapping[str, Any]) -> list[Series]:
    """The `data` of a query answer as (labels, value, timestamp) per series."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "vector" and isinstance(result, list):
        if any("value" not in item for item in result):
            raise CollectorError(
                "the query returns native histograms, not float samples: reduce them to numbers "
                "(histogram_count, histogram_sum, histogram_quantile...)"
            )
        return [
            (
                dict(item.get("metric") or {}),
                _number(item["value"][1]),
                datetime.fromtimestamp(float(item["value"][0]), UTC),
            )
            for item in result
        ]
    if kind == "scalar" and isinstance(result, list):
        return [({}, _number(result[1]), datetime.fromtimestamp(float(result[0]), UTC))]
    if kind == "matrix":
        raise CollectorError(
            "the query returns a range vector (matrix); an instant query needs an instant "
            "vector, e.g. increase(x_total[$__range]) rather than x_total[$__range]"
        )
    raise CollectorError(f"the query returns a {kind}, not an instant vector or a scalar")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def label_table(series: Sequence[Series]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One row per series: its labels as tag columns (`__name__` dropped) and its value.

    NaN and ±Inf values become NULL (dropped and counted like any NULL value).
    """
    names = sorted({k for labels, _, _ in series for k in labels if k != "__name__"})
    clashes = [n for n in names if n.lower() in RESERVED_LABELS]
    if clashes:
        raise CollectorError(
            f"label {clashes[0]!r} clashes with the record field of the same name: rename it "
            "(label_replace) or select columns with `sql`"
        )
    rows = [(*(labels.get(n) for n in names), _finite(value)) for labels, value, _ in series]
    return [*names, "value"], rows


def post_process(sql: str, series: Sequence[Series]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run the collector's DuckDB SQL over prom_metrics(metric JSON, value, timestamp)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(PROM_TABLE)
        if series:
            con.executemany(
                "INSERT INTO prom_metrics VALUES (?, ?, ?)",
                [(json.dumps(labels), value, at) for labels, value, at in series],
            )
        # The SQL only sees prom_metrics: no files, no network, no settings changes.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        cursor = con.execute(sql)
        columns = [str(d[0]) for d in cursor.description or []]
        rows = [tuple(row) for row in cursor.fetchall()]
    except duckdb.Error as exc:
        raise CollectorError(f"the sql post-processing over prom_metrics failed: {exc}") from None
    finally:
        con.close()
    return columns, rows


class PrometheusSource:
    """One PromQL instant query against one Prometheus HTTP API."""

    range_capable = False

    def __init__(self, config: PrometheusConfig, timezone: str = "UTC") -> None:
        self.config = config
        self.url = query_url(config.uri)
        self.tz = ZoneInfo(timezone)
        self.kind = prometheus_kind(config)
        self.timeout = config.timeout.total_seconds()
        self.secret = urlsplit(config.uri).password or ""

    def describe(self) -> dict[str, str]:
        """Redacted endpoint and the PromQL (plus the SQL post-processing when given)."""
        query = self.config.query
        if self.config.sql:
            query += f"\n-- post-processed by DuckDB:\n{self.config.sql}"
        return {"uri": self.redact(self.url), "query": query}

    def redact(self, text: str) -> str:
        """Text with the URI's password (in any form) replaced by ***."""
        if self.secret:
            text = text.replace(self.secret, "***")
        return redact(text)

    def evaluation(self, window: Window, now: datetime | None = None) -> tuple[datetime, str]:
        """When to evaluate (window_end; now while the window is still open) and the PromQL."""
        now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        at = min(window.end.astimezone(UTC), now)
        # In UTC: aware datetimes sharing a tzinfo subtract as wall clocks (a DST day is 23 h).
        start = period_start(self.config.time_expression, window, self.tz).astimezone(UTC)
        return at, render_query(self.config.query, max(at - start, timedelta(seconds=1)))

    def render(self, window: Window, now: datetime | None = None) -> str:
        """The PromQL for one window."""
        return self.evaluation(window, now)[1]

    @contextmanager
    def session(self) -> Iterator["PrometheusSession"]:
        """One HTTP session (kept-alive connection) for every window of a run."""
        import requests

        from signals_dagster.confine import check_egress, url_host

        check_egress(self.redact(self.url), *url_host(self.url), error=SourceError)
        with requests.Session() as http:
            yield PrometheusSession(self, http)

    def error(self, message: str, *, transient: bool = False) -> SourceError:
        """A failure naming the endpoint (password redacted)."""
        return SourceError(f"{self.redact(self.url)}: {self.redact(message)}", transient=transient)


class PrometheusSession:
    """An open HTTP session answering one window at a time."""

    def __init__(self, source: PrometheusSource, http: Any) -> None:
        self.source = source
        self.http = http

    def query(self, promql: str, at: datetime) -> Mapping[str, Any]:
        """POST an instant query; return the answer's `data` or fail with Prometheus's text."""
        import requests

        source = self.source
        form = {"query": promql, "time": f"{at.timestamp():.3f}", "timeout": f"{source.timeout:g}"}
        try:
            # Prometheus stops at `timeout` and says so; the client waits a little longer.
            response = self.http.post(
                source.url, data=form, timeout=(CONNECT_TIMEOUT, source.timeout + 5)
            )
        except requests.Timeout:
            waited = source.timeout + 5
            raise source.error(f"no answer within {waited:g}s", transient=True) from None
        except requests.RequestException as exc:
            raise source.error(f"request failed: {exc}", transient=True) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            text = " ".join(response.text.split())[:300]
            raise source.error(
                f"HTTP {response.status_code} {response.reason}: {text or '(empty body)'}",
                transient=response.status_code in (429, 502, 503, 504),
            )
        if body.get("status") != "success":
            kind = body.get("errorType") or "error"
            raise source.error(
                f"HTTP {response.status_code}: {kind}: {body.get('error') or '(no message)'}",
                transient=kind in ("unavailable",) or response.status_code in (429, 502, 504),
            )
        for warning in body.get("warnings") or []:
            log.warning("%s: Prometheus warning: %s", source.redact(source.url), warning)
        data = body.get("data")
        if not isinstance(data, dict):
            raise source.error(f"HTTP {response.status_code}: the answer has no data object")
        return data

    def fetch(self, window: Window) -> Fetched:
        """Evaluate the query at window_end; rows from the series or from the SQL."""
        source = self.source
        at, promql = source.evaluation(window)
        data = self.query(promql, at)
        series = result_series(data)
        if source.config.sql:
            columns, rows = post_process(source.config.sql, series)
        else:
            columns, rows = label_table(series)
        return Fetched(columns, iter(rows))
