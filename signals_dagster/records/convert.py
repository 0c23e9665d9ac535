"""Result cells → record parts: a value (float64; NULL, NaN and ±inf dropped) and tags (text,
NULL → "").

Two inputs give the same output: Python cells (row-based drivers) and Arrow columns (columnar
drivers). Arrow columns are converted in bulk where Arrow's text is the text Python gives the
same value (strings, integers, booleans); any other type is converted once per distinct value
through the Python object its row-based driver returns, so every source keeps the exact tags
it has always had.
"""

import json
import math
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from signals_dagster.errors import CollectorError


def number(value: Any, column: str) -> float | None:
    """One value cell as a float (None for NULL, NaN and ±inf: no JSON number holds them); a
    clear error for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise CollectorError(
            f"column {column!r} is a boolean ({value}); the value must be a number"
        )
    if isinstance(value, int | float | Decimal):
        result = float(value)
    else:
        try:
            result = float(str(value))
        except ValueError:
            raise CollectorError(f"column {column!r} has non-numeric value {value!r}") from None
    if not math.isfinite(result):
        return None
    return result


def tag_text(value: Any) -> str:
    """One tag cell as text (NULL → "", dates ISO, booleans lower case)."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def python_values(cells: Sequence[Any], column: str) -> pa.Array:
    """Value cells of a row-based driver → float64 (NULL for NULL/NaN/±inf)."""
    return pa.array([number(v, column) for v in cells], pa.float64())


def python_tags(cells: Sequence[Any]) -> pa.Array:
    """Tag cells of a row-based driver → text."""
    return pa.array(
        [v if type(v) is str else tag_text(v) for v in cells], pa.string(), from_pandas=False
    )


# --- Arrow columns ---------------------------------------------------------------------------

_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
_CAST_TO_TEXT = (pa.types.is_integer, pa.types.is_boolean)


def _plain(column: pa.Array) -> pa.Array:
    """The column without dictionary encoding or extension type (opaque Postgres types)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column


def _extension_name(column: pa.Array) -> str:
    kind = column.type
    if isinstance(kind, pa.BaseExtensionType):
        name = getattr(kind, "type_name", None) or kind.extension_name  # opaque: the PG type
        return str(name)
    return ""


def _by_distinct(column: pa.Array, convert: Callable[[Any], Any]) -> pa.Array:
    """convert(python value) once per distinct value, spread back over the rows."""
    uniques = pc.unique(column)
    converted = pa.array([convert(v) for v in uniques.to_pylist()])
    return pc.take(converted, pc.index_in(column, value_set=uniques))


def _float32_text(value: float | None) -> Any:
    """A float4 as psycopg returns it: Postgres prints the shortest float4 text, then float()."""
    if value is None:
        return None
    import numpy as np

    return float(repr(np.float32(value)).removeprefix("np.float32(").removesuffix(")"))


def _python_objects(column: pa.Array) -> tuple[pa.Array, Callable[[Any], Any]]:
    """The column, and how one of its Python values becomes the row-based driver's object."""
    name = _extension_name(column)
    if name == "numeric":  # Postgres numeric (text) → Decimal, as psycopg returns it
        return column.storage, lambda v: None if v is None else Decimal(v)
    if name in ("arrow.json", "json", "jsonb"):
        return column.storage, lambda v: None if v is None else json.loads(v)
    if name == "arrow.uuid":
        import uuid

        return column.storage, lambda v: None if v is None else uuid.UUID(bytes=v)
    if pa.types.is_float32(column.type):
        return column, _float32_text
    return column, lambda v: v


# Arrow types whose Python values are what the row-based driver returns (or are made so above).
def supported(kind: pa.DataType) -> bool:
    """Whether a column of this type converts exactly; others need the row-based driver."""
    if isinstance(kind, pa.BaseExtensionType):
        name = getattr(kind, "type_name", None) or kind.extension_name
        return str(name) in ("numeric", "arrow.json", "json", "jsonb", "arrow.uuid")
    if pa.types.is_dictionary(kind):
        return supported(kind.value_type)
    return bool(
        any(test(kind) for test in (*_TEXT_TYPES, *_CAST_TO_TEXT))
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_date(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_time(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_null(kind)
    )


def arrow_tags(column: pa.Array) -> pa.Array:
    """A tag column → text, NULL → ""."""
    column = _plain(column)
    kind = column.type
    if any(test(kind) for test in _TEXT_TYPES):
        text = column.cast(pa.string())
    elif any(test(kind) for test in _CAST_TO_TEXT):
        text = column.cast(pa.string())  # "12", "true"/"false": Python's text of the same value
    elif pa.types.is_null(kind):
        text = pa.nulls(len(column), pa.string())
    else:
        storage, to_python = _python_objects(column)
        text = _by_distinct(storage, lambda v: tag_text(to_python(v)))
    return pc.fill_null(text, "")


def arrow_values(column: pa.Array, name: str) -> pa.Array:
    """The value column → float64; NULL, NaN and ±inf → NULL (dropped and counted later), as
    `number` does for a row-based driver."""
    column = _plain(column)
    kind = column.type
    if pa.types.is_boolean(kind):
        first = pc.drop_null(column)
        if len(first):
            number(first[0].as_py(), name)  # raises the boolean error
        return pa.nulls(len(column), pa.float64())
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.float64())
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = column.cast(pa.float64())
    else:
        storage, _ = _python_objects(column)
        source = storage.cast(pa.string()) if pa.types.is_decimal(storage.type) else storage
        try:
            if not (pa.types.is_string(source.type) or pa.types.is_large_string(source.type)):
                raise pa.ArrowInvalid("not text")
            values = source.cast(pa.float64())  # correctly rounded, as float(Decimal(text))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            _, to_python = _python_objects(column)
            cells = [to_python(v) for v in storage.to_pylist()]
            return python_values(cells, name)
    return pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
