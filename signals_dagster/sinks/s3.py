"""S3 sink: one object per (collector, partition), written with a single PUT (atomic overwrite).

Key: `{prefix}/metric={metric name}/date={partition key}/{asset key}.{parquet|jsonl}`. A collector
that is not partitioned (sub-hour grain) uses its window key, e.g. `date=2026-02-03T10:05:00Z`.
With latte's `partition` (`year={{.Year}}/month={{.Month}}/day={{.Day}}`), latte's layout:
`{prefix}/{partition rendered from the window}/{asset key}.{window key}.{json|parquet}` — the
window key in the name keeps one object per window when the partition is coarser than the grain.
No Dagster here: the Dagster layer hands a client factory (dagster-aws S3Resource) in.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from signals_dagster.errors import CollectorError, SinkError
from signals_dagster.records import RECORD_COLUMNS, as_table, empty_records, to_pandas
from signals_dagster.redact import redact_secrets
from signals_dagster.sinks.formats import decode, encode
from signals_dagster.spec.fields import grain_timedelta
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import S3Config

if TYPE_CHECKING:
    import pandas as pd

ClientFactory = Callable[[S3Config], Any]
WINDOW_KEY_FMT = "%Y-%m-%dT%H:%M:%SZ"  # the key of an unpartitioned collector's window
CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "jsonl": "application/x-ndjson"}
_MISSING_BUCKET = ("NoSuchBucket", "404")
_DENIED = ("AccessDenied", "403", "AllAccessDisabled")
# Names the metric contract (`name/version`) of a collector that has one: S3 user metadata (sent
# as the header `x-amz-meta-signals.contract`) and Parquet key-value metadata.
CONTRACT_METADATA = "signals.contract"


def client_config(config: S3Config) -> Any:
    """The botocore Config of a sink's client: its retries, and path-style addressing for
    latte's `force_path_style: true` (false keeps botocore's own choice)."""
    from botocore.config import Config

    addressing = {"s3": {"addressing_style": "path"}} if config.force_path_style else {}
    return Config(retries={"max_attempts": config.retries, "mode": "standard"}, **addressing)


def default_client(config: S3Config) -> Any:
    """A plain boto3 client from the standard AWS chain (used without the Dagster layer)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        aws_access_key_id=config.aws_access_key_id,
        aws_secret_access_key=_secret(config.aws_secret_access_key),
        aws_session_token=_secret(config.aws_session_token),
        config=client_config(config),
    )


def _transient(exc: Exception) -> bool:
    """Unreachable endpoint, 5xx, throttling: a later retry may succeed; 4xx answers will not."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return False
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status or 0) >= 500 or exc.response.get("Error", {}).get("Code") == "SlowDown"
    return True


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def date_key(spec: CollectorSpec, partition_key: str | None, records: Any) -> str:
    """The `date=` part: the partition key, or the window key of an unpartitioned collector."""
    if partition_key is not None:
        return partition_key
    if len(records):
        start = as_table(records).column("grain_datetime")[0].as_py()
    else:  # nothing collected: the window that contains now (sub-hour grains are epoch-aligned)
        delta = grain_timedelta(spec.metric.grain)
        assert delta is not None
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        start = epoch + ((datetime.now(UTC) - epoch) // delta) * delta
    return start.astimezone(UTC).strftime(WINDOW_KEY_FMT)


def _head(config: S3Config) -> str:
    return f"{config.prefix}/" if config.prefix else ""


def metric_prefix(config: S3Config, spec: CollectorSpec) -> str:
    """`{prefix}/metric={name}/` (no leading slash when the prefix is empty).

    A sink with latte's `partition` has no such folder (its objects are under
    `{prefix}/{partition}/`, see `collector_objects`): SinkError rather than a prefix that
    holds none of them (a listing under it would find nothing)."""
    if config.partition is not None:
        raise SinkError(
            f"s3 sink s3://{config.bucket}/{_head(config)}: latte's partition layout "
            f"({config.partition}) has no metric= folder; list the objects of {spec.name} "
            "with signals_dagster.sinks.s3.collector_objects"
        )
    return f"{_head(config)}metric={spec.metric.name}/"


def window_start(spec: CollectorSpec, date: str) -> datetime:
    """The start of the window a `date` key names (a partition key, or the window key of an
    unpartitioned collector), on the collector's clock (`partitions.timezone`)."""
    from signals_dagster.partitioning import window_for_key, zone

    try:
        start = datetime.strptime(date, WINDOW_KEY_FMT).replace(tzinfo=UTC)
    except ValueError:
        return window_for_key(spec, date).start
    return start.astimezone(zone(spec.partitions.timezone))


def partition_path(config: S3Config, spec: CollectorSpec, date: str) -> str:
    """latte's `partition` rendered from the window's start (unpadded: `year=2024/month=3`)."""
    from signals_dagster.spec.templating import render_window

    assert config.partition is not None
    return render_window(config.partition, window_start(spec, date))


def object_key(config: S3Config, spec: CollectorSpec, date: str) -> str:
    """The object key of one (collector, partition)."""
    if config.partition is not None:
        folder = partition_path(config, spec, date)
        return f"{_head(config)}{folder}/{spec.asset_name}.{date}.{config.extension}"
    return f"{metric_prefix(config, spec)}date={date}/{spec.asset_name}.{config.format}"


def _object_date(config: S3Config, spec: CollectorSpec, key: str) -> str | None:
    """The window key of one of the collector's objects in latte's layout (None: not one)."""
    name = key.rsplit("/", 1)[-1]
    head, tail = f"{spec.asset_name}.", f".{config.extension}"
    if not key.startswith(_head(config)) or not name.startswith(head) or not name.endswith(tail):
        return None
    date = name[len(head) : len(name) - len(tail)]
    try:
        expected = object_key(config, spec, date)
    except (CollectorError, ValueError):
        return None
    return date if expected == key else None


class S3Access:
    """A client plus error translation naming the endpoint, bucket and what was tried."""

    def __init__(self, config: S3Config, factory: ClientFactory | None = None) -> None:
        from botocore.exceptions import BotoCoreError

        self.config = config
        try:
            self.client = (factory or default_client)(config)
        except BotoCoreError as exc:  # e.g. a broken profile or partial credentials
            where = config.endpoint_url or "AWS S3"
            raise SinkError(f"cannot make an S3 client for {where}: {exc}") from None
        from signals_dagster.confine import check_egress, url_host

        check_egress(f"s3 sink: endpoint {self.endpoint}", *url_host(self.endpoint))

    @property
    def endpoint(self) -> str:
        """The endpoint the client talks to."""
        return str(getattr(self.client.meta, "endpoint_url", None) or self.config.endpoint_url)

    def uri(self, key: str = "") -> str:
        """s3://bucket/key."""
        return f"s3://{self.config.bucket}/{key}"

    def error(self, exc: Exception, action: str) -> SinkError:
        """A SinkError explaining a botocore failure (secrets redacted)."""
        text = self._explain(exc, action)
        secrets = [_secret(self.config.aws_secret_access_key) or ""]
        secrets.append(_secret(self.config.aws_session_token) or "")
        return SinkError(redact_secrets(text, secrets), transient=_transient(exc))

    def _explain(self, exc: Exception, action: str) -> str:
        from botocore.exceptions import ClientError, NoCredentialsError

        bucket, where = self.config.bucket, f"at {self.endpoint}"
        if isinstance(exc, NoCredentialsError):
            return (
                f"{action}: no AWS credentials found (tried AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config files, then the "
                "container/instance role)"
            )
        if not isinstance(exc, ClientError):
            attempts = (getattr(self.client.meta.config, "retries", None) or {}).get(
                "total_max_attempts", "?"
            )
            return f"{action}: {self.endpoint} failed after {attempts} attempt(s): {exc}"
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = str(exc.response.get("Error", {}).get("Message", ""))
        credentials = self._credentials()
        if code in _MISSING_BUCKET:
            return (
                f"{action}: bucket {bucket!r} does not exist {where} (the S3 sink never creates "
                "buckets: create it, or fix sinks.<name>.config.bucket)"
            )
        if code == "SignatureDoesNotMatch":
            return (
                f"{action}: credentials rejected {where} (SignatureDoesNotMatch): the secret "
                f"access key does not belong to {credentials}"
            )
        if code == "InvalidAccessKeyId":
            return (
                f"{action}: credentials rejected {where} (InvalidAccessKeyId): {credentials} is "
                "unknown to the endpoint"
            )
        if code in _DENIED:
            return (
                f"{action}: access denied {where} ({code}) for {credentials}: the sink needs "
                f"s3:ListBucket on {bucket!r} and s3:PutObject / s3:GetObject on its prefix"
            )
        return f"{action}: {code or 'error'} {where}: {message or exc}"

    def _credentials(self) -> str:
        # Which key and where it came from (env, shared file, role...), never the secret.
        creds = getattr(getattr(self.client, "_request_signer", None), "_credentials", None)
        if creds is None:
            return "the credentials in use"
        method = getattr(creds, "method", None)
        source = f" (from {method})" if method else ""
        return f"access key id {getattr(creds, 'access_key', '?')!r}{source}"

    def check_bucket(self) -> None:
        """Fail unless the bucket exists and these credentials may use it."""
        from botocore.exceptions import BotoCoreError, ClientError

        action = f"checking bucket {self.uri()}"
        try:
            self.client.head_bucket(Bucket=self.config.bucket)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _DENIED:
                self._diagnose(action, exc)  # HEAD has no body: ask again to learn why
            raise self.error(exc, action) from None
        except BotoCoreError as exc:
            raise self.error(exc, action) from None

    def _diagnose(self, action: str, head_error: Exception) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.list_objects_v2(Bucket=self.config.bucket, MaxKeys=0)
        except (BotoCoreError, ClientError) as exc:
            raise self.error(exc, action) from None
        raise self.error(head_error, action) from None

    def get(self, key: str, missing: str) -> bytes:
        """The bytes of one object; `missing` explains an absent key."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=key)
            return bytes(response["Body"].read())
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                raise SinkError(f"no object {self.uri(key)}: {missing}") from None
            raise self.error(exc, f"reading {self.uri(key)}") from None
        except BotoCoreError as exc:
            raise self.error(exc, f"reading {self.uri(key)}") from None

    def latest_key(self, prefix: str, suffix: str) -> str | None:
        """The greatest key under `prefix` ending in `suffix` (ISO dates sort in time order)."""
        from botocore.exceptions import BotoCoreError, ClientError

        best: str | None = None
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.config.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    if key.endswith(suffix) and (best is None or key > best):
                        best = key
        except (BotoCoreError, ClientError) as exc:
            raise self.error(exc, f"listing {self.uri(prefix)}") from None
        return best

    def collector_objects(self, spec: CollectorSpec) -> list[tuple[str, str]]:
        """(key, window key) of every object of a collector under this sink, in key order."""
        from botocore.exceptions import BotoCoreError, ClientError

        config = self.config
        if config.partition is None:
            head, tail = metric_prefix(config, spec), f"/{spec.asset_name}.{config.format}"
        else:
            head, tail = _head(config), f".{config.extension}"
        found: list[tuple[str, str]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=config.bucket, Prefix=head
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    if not key.endswith(tail):
                        continue
                    if config.partition is not None:
                        date = _object_date(config, spec, key)
                    else:
                        date = key[len(head) + len("date=") : len(key) - len(tail)]
                        if not key.startswith(f"{head}date=") or "/" in date:
                            date = None
                    if date is not None:
                        found.append((key, date))
        except (BotoCoreError, ClientError) as exc:
            raise self.error(exc, f"listing {self.uri(head)}") from None
        return sorted(found)

    def close(self) -> None:
        """Close the client's connection pool."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


class S3Writer:
    """Checks the bucket when opened; then one PUT per partition, confirmed by S3's answer."""

    def __init__(self, config: S3Config, factory: ClientFactory | None = None) -> None:
        self.config = config
        self.s3 = S3Access(config, factory)
        try:
            self.s3.check_bucket()
        except SinkError:
            self.s3.close()
            raise

    def write(
        self, spec: CollectorSpec, partition_key: str | None, records: Any
    ) -> dict[str, object]:
        """PUT the partition's object (replacing any previous one) and return its figures."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = object_key(self.config, spec, date_key(spec, partition_key, records))
        contract = spec.contract
        metadata = {CONTRACT_METADATA: contract.ref} if contract is not None else {}
        body = encode(records, self.config.format, metadata)
        extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
        try:
            # put_object is one request whatever the size (never multipart): S3 replaces the
            # object atomically, so a reader sees the old object or the new one, never a part.
            self.s3.client.put_object(
                Bucket=self.config.bucket,
                Key=key,
                Body=body,
                ContentType=CONTENT_TYPES[self.config.format],
                **extra,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self.s3.error(exc, f"writing {self.s3.uri(key)}") from None
        return {"uri": self.s3.uri(key), "bytes": len(body), "records": len(records)}

    def close(self) -> None:
        """Close the client."""
        self.s3.close()


def check_bucket(config: S3Config, factory: ClientFactory | None = None) -> None:
    """Preflight: the bucket exists and these credentials may use it (nothing is written)."""
    s3 = S3Access(config, factory)
    try:
        s3.check_bucket()
    finally:
        s3.close()


def read_partitions(
    config: S3Config,
    spec: CollectorSpec,
    partition_keys: Sequence[str] | None,
    factory: ClientFactory | None = None,
) -> "pd.DataFrame":
    """Records of the given partitions, concatenated; None: the latest object of the collector."""
    s3 = S3Access(config, factory)
    try:
        if partition_keys is None and config.partition is not None:
            objects = s3.collector_objects(spec)  # latest window: the greatest window key
            if not objects:
                raise SinkError(
                    f"no object of {spec.name} under {s3.uri(_head(config))}: materialise it first"
                )
            keys = [max(objects, key=lambda item: item[1])[0]]
        elif partition_keys is None:
            prefix = metric_prefix(config, spec)
            latest = s3.latest_key(prefix, f"/{spec.asset_name}.{config.format}")
            if latest is None:
                raise SinkError(
                    f"no object of {spec.name} under {s3.uri(prefix)}: materialise it first"
                )
            keys = [latest]
        else:
            keys = [object_key(config, spec, k) for k in partition_keys]
        partitions: list[str | None] = [None] if partition_keys is None else list(partition_keys)
        frames = []
        for key, partition in zip(keys, partitions, strict=True):
            missing = (
                f"partition {partition} of {spec.name} was never written: materialise it first"
                if partition
                else "it disappeared while being read"
            )
            frame = decode(s3.get(key, missing), config.format, s3.uri(key))
            if len(frame):
                frames.append(frame)
    finally:
        s3.close()
    if not frames:
        return to_pandas(empty_records())
    import pandas as pd

    return pd.concat(frames, ignore_index=True)[RECORD_COLUMNS]
