"""HTTP sink: POSTs records as JSON arrays, in batches, with retries and exponential backoff
(`method`, latte's key, may make it PUT or PATCH).

A batch is confirmed by a 2xx answer. Connection errors, timeouts, 5xx and 429 are retried
(`retries` times, waiting `backoff`, then twice as long each time, at most 30 s; a Retry-After
header is honoured up to that bound); any other 4xx fails at once. Failures name the status and
the URI with its password redacted.
"""

import logging
import time
from typing import Any

import requests

from signals_dagster.errors import SinkError
from signals_dagster.records import to_json_values
from signals_dagster.redact import redact
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import HttpConfig

log = logging.getLogger("signals_dagster.http")

MAX_BACKOFF = 30.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))


def _retry_after(response: requests.Response) -> float:
    """Seconds asked for by a Retry-After header (0 when absent or not a number)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0


def _snippet(response: requests.Response) -> str:
    text = " ".join(response.text.split())[:200]
    return f": {redact(text)}" if text else ""


class HttpWriter:
    """POSTs each partition's records in batches of `batch_size`; one session for the run."""

    def __init__(self, config: HttpConfig, session: requests.Session | None = None) -> None:
        from signals_dagster.confine import check_egress, url_host

        self.config = config
        self.uri = redact(config.uri)
        self.method = config.method
        check_egress(f"http sink: {self.method} {self.uri}", *url_host(config.uri))
        self.session = session or requests.Session()
        self.headers = {"Content-Type": "application/json", **config.headers}

    def write(
        self, spec: CollectorSpec, partition_key: str | None, records: Any
    ) -> dict[str, object]:
        """Send every batch; return once each was answered 2xx."""
        values = to_json_values(records)
        size = self.config.batch_size
        started = time.monotonic()
        sent_bytes = retries = 0
        batches = range(0, len(values), size)
        for number, start in enumerate(batches, 1):
            body = ("[" + ",".join(values[start : start + size]) + "]").encode()
            retries += self._post(body, f"batch {number}/{len(batches)} of partition "
                                  f"{partition_key or '(none)'}")  # fmt: skip
            sent_bytes += len(body)
        return {
            "uri": self.uri,
            "records": len(values),
            "batches": len(batches),
            "bytes": sent_bytes,
            "retries": retries,
            "seconds": round(time.monotonic() - started, 3),
        }

    def _post(self, body: bytes, what: str) -> int:
        """POST one batch, retrying what may pass later; return the number of retries used."""
        timeout = self.config.timeout.total_seconds()
        delay = self.config.backoff.total_seconds()
        attempts = self.config.retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            wait = min(delay * 2 ** (attempt - 1), MAX_BACKOFF)
            try:
                response = self.session.request(
                    self.method,
                    self.config.uri,
                    data=body,
                    headers=self.headers,
                    timeout=timeout,
                    allow_redirects=False,  # a redirect could lead the records past egress.allow
                )
            except requests.RequestException as exc:  # connection refused, reset, timeout
                last = f"{type(exc).__name__}: {redact(str(exc))}"
            else:
                status = f"{response.status_code} {response.reason or ''}".strip()
                if response.is_redirect:
                    raise SinkError(
                        f"http sink: {self.method} {self.uri} answered {status} for {what}: "
                        "redirects are not followed "
                        f"(to {redact(response.headers.get('Location', '?'))})",
                        transient=False,
                    )
                if response.ok:
                    return attempt - 1
                if response.status_code not in RETRY_STATUSES:
                    raise SinkError(
                        f"http sink: {self.method} {self.uri} answered {status} for {what}; "
                        f"not retried{_snippet(response)}",
                        transient=False,
                    )
                last = f"answered {status}{_snippet(response)}"
                wait = min(max(wait, _retry_after(response)), MAX_BACKOFF)
            if attempt < attempts:
                log.warning(
                    "http sink: %s %s %s (%s); retry %d/%d in %.2fs",
                    self.method, self.uri, what, last, attempt, attempts - 1, wait,
                )  # fmt: skip
                time.sleep(wait)
        raise SinkError(
            f"http sink: {self.method} {self.uri} failed for {what} after {attempts} "
            f"attempt(s): {last}",
            transient=True,  # the endpoint may be back by the time Dagster retries the step
        )

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()
