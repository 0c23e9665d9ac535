"""Keyed pseudonyms for personal tag values (a contract's `pii: hash`).

A value becomes `<key id>:<HMAC-SHA256(key, value), first 128 bits in hex>`: deterministic for a
value and a key (uuids, joins and dashboards stay stable across runs), irreversible without the
key (a plain hash of an e-mail or IPv4 address is reversed by enumerating the domain), and naming
the key that made it so keys can be rotated and consumers can tell.
"""

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signals_dagster.errors import CollectorError

if TYPE_CHECKING:
    import pyarrow as pa

KEY_ENV = "SIGNALS_PII_KEY"
KEY_ID_ENV = "SIGNALS_PII_KEY_ID"
MIN_KEY_BYTES = 32
DIGEST_HEX = 32  # 128 bits


def key_problem(env: Mapping[str, str] | None = None) -> str | None:
    """Why the pseudonym key cannot be used (None when it can)."""
    env = os.environ if env is None else env
    key = env.get(KEY_ENV)
    if not key:
        return f"${KEY_ENV} is not set: a contract with `pii: hash` tags needs a secret key"
    if len(key.encode()) < MIN_KEY_BYTES:
        return (
            f"${KEY_ENV} is {len(key.encode())} bytes long: a pseudonym key must have at least "
            f"{MIN_KEY_BYTES} bytes"
        )
    key_id = env.get(KEY_ID_ENV)
    if key_id is not None and not (key_id.isascii() and key_id.isalnum()):
        return f"${KEY_ID_ENV} must be letters and digits, got {key_id!r}"
    return None


@dataclass(frozen=True)
class Pseudonymizer:
    """HMAC-SHA256 pseudonyms under one key."""

    key: bytes
    key_id: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Pseudonymizer":
        """The key of $SIGNALS_PII_KEY (id: $SIGNALS_PII_KEY_ID, default derived from the key);
        a CollectorError when it is unset or too short."""
        env = os.environ if env is None else env
        problem = key_problem(env)
        if problem is not None:
            raise CollectorError(problem)
        key = env[KEY_ENV].encode()
        return cls(key, env.get(KEY_ID_ENV) or default_key_id(key))

    def one(self, value: str) -> str:
        """The pseudonym of one value ('' — a NULL tag — stays '': it is nobody)."""
        if not value:
            return value
        digest = hmac.digest(self.key, value.encode(), "sha256")[: DIGEST_HEX // 2].hex()
        return f"{self.key_id}:{digest}"

    def column(self, values: "pa.Array") -> "pa.Array":
        """The pseudonyms of a text column (one HMAC per distinct value; NULL and '' stay)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not len(values):
            return values
        encoded = values.dictionary_encode() if not pa.types.is_dictionary(values.type) else values
        uniques = encoded.dictionary.to_pylist()
        key, prefix, size = self.key, f"{self.key_id}:", DIGEST_HEX // 2
        digest = hmac.digest  # one C call per distinct value (hmac.new is 3x slower)
        hashed = pa.array(
            [
                v if not v else prefix + digest(key, v.encode(), "sha256")[:size].hex()
                for v in uniques
            ],
            pa.string(),
        )
        return pc.take(hashed, encoded.indices)


def default_key_id(key: bytes) -> str:
    """A short id of a key that does not reveal it: 8 hex digits of a hash of the key."""
    return "k" + hashlib.sha256(b"signals-pii-key-id\0" + key).hexdigest()[:8]
