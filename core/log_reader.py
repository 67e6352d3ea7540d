"""The one strict reader of the log format (`core/logs.py`): what `run` (TemporalExampleGen),
`score`, `schedule` and the converters accept and refuse, with the same messages.

Pure pyarrow and numpy. Two levels:

* a whole file is refused (`LogError`, naming the file, the field and the rows) when it is not
  readable Parquet, when a known field has a type that cannot be read without guessing (a string
  column for a number, a fractional float or one beyond int64 for an int field, an unsigned count
  above 2^63), or when `event_time` is missing or null;
* single rows are rejected, each for its first reason (`reject_rows`): event_time outside the
  file's `date=` partition, NaN or null in a required field, an int out of the schema's range
  (negative, a label not 0 or 1), a `source` other than promotions / ads, a field of one source
  set on the other source's row. `impression_id`s repeated inside a file are counted by
  `repeated_ids` (across files, TemporalExampleGen counts them).

Accepted without a word: whole-number floats in an int field (pandas' nullable ints; NaN becomes
null and counts as NaN), dictionary (pandas category) columns, large strings and lists, and a
null inside a list (read as "" / 0, as the Example encoder writes it).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.days import DAY, day_index
from core.fields import FIELDS, SOURCES
from core.logs import PARTITION_PREFIX, arrow_schema

TIME_FIELD = "event_time"
KEY_FIELD = "impression_id"
_INT64_MAX = 2 ** 63 - 1

OUTSIDE_DAY = "event_time outside the file's day partition"


class LogError(ValueError):
    """A log file that cannot be read as the log format; the message names file and field."""


def nan_reason(name: str) -> str:
    return f"NaN in field {name!r}"


def null_reason(name: str) -> str:
    return f"null in field {name!r}"


def range_reason(name: str, what: str) -> str:
    return f"field {name!r} {what}"


UNKNOWN_SOURCE = f"field 'source' not one of {', '.join(SOURCES)}"


def wrong_source_reason(name: str, only_on: str) -> str:
    other = "promotions" if only_on == "ads" else "ads"
    return f"field {name!r} (only on {only_on}) set on a {other} row"


def read_parquet(source, path: str, columns: Optional[List[str]] = None) -> pa.Table:
    """The whole table of one Parquet file (`source`: a path or an open binary file). A file that is
    not Parquet, truncated or unreadable is a LogError naming it."""
    try:
        return pq.read_table(source, columns=columns)
    except Exception as e:  # ArrowInvalid, OSError, ... from a truncated or foreign file
        raise LogError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None


def partition_day(path: str) -> int:
    """Day index of the `date=YYYY-MM-DD` folder holding `path`."""
    folder = os.path.basename(os.path.dirname(path.rstrip("/")))
    if not folder.startswith(PARTITION_PREFIX):
        raise LogError(f"{path}: not inside a {PARTITION_PREFIX}YYYY-MM-DD folder")
    try:
        return day_index(folder[len(PARTITION_PREFIX):])
    except ValueError as e:
        raise LogError(f"{path}: {e}") from None


def _castable(got: pa.DataType, want: pa.DataType) -> bool:
    """Widening casts only: never a string parsed as a number, nor a number turned into a string."""
    if pa.types.is_integer(want):
        return pa.types.is_integer(got) or pa.types.is_boolean(got)
    if pa.types.is_floating(want):
        return pa.types.is_integer(got) or pa.types.is_floating(got)
    if pa.types.is_string(want):
        return pa.types.is_large_string(got)
    if pa.types.is_list(want) and (pa.types.is_list(got) or pa.types.is_large_list(got)):
        return _castable(got.value_type, want.value_type)
    return False


def _plain(col: pa.ChunkedArray) -> pa.Array:
    """The column as one array, a dictionary (pandas category) column decoded to its values."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _rows_text(mask: np.ndarray) -> str:
    n = int(mask.sum())
    first = int(np.flatnonzero(mask)[0])
    return f"{n} row{'s' if n != 1 else ''} (first: row {first})"


def _float_to_int(arr: pa.Array, path: str, name: str, want: pa.DataType) -> Tuple[pa.Array, np.ndarray]:
    """A float column for an int field: whole numbers cast, NaN / null becoming null (returned as a mask)."""
    values = arr.to_numpy(zero_copy_only=False).astype(np.float64)
    nan = np.isnan(values)
    bad = ~nan & ~np.isfinite(values)
    if bad.any():
        raise LogError(f"{path}: field {name!r} must hold whole numbers ({want}), found infinity in {_rows_text(bad)}")
    bad = ~nan & (values != np.round(values))
    if bad.any():
        raise LogError(f"{path}: field {name!r} must hold whole numbers ({want}), found fractional values in "
                       f"{_rows_text(bad)}")
    bad = ~nan & ((values >= 2.0 ** 63) | (values < -2.0 ** 63))
    if bad.any():
        raise LogError(f"{path}: field {name!r} holds values beyond {want} in {_rows_text(bad)}")
    out = np.where(nan, 0, values).astype(np.int64)
    return pa.array(out, type=want, mask=nan), nan


def _check_unsigned(arr: pa.Array, path: str, name: str) -> None:
    values = arr.fill_null(0).to_numpy(zero_copy_only=False)
    bad = values > _INT64_MAX
    if bad.any():
        raise LogError(f"{path}: field {name!r} ({arr.type}) holds values above 2^63-1, beyond int64, in "
                       f"{_rows_text(bad)}")


def check_types(table: pa.Table, path: str, nan_rows: Optional[Dict[str, np.ndarray]] = None) -> pa.Table:
    """Columns of known fields cast to the field table's type, or a LogError naming file and field.

    A float column holding only whole numbers (or NaN) for an int field is cast, NaN becoming null
    (pandas writes nullable ints that way); the rows where a required field was NaN are recorded in
    `nan_rows` so they are rejected as NaN. Numeric strings are not parsed: a string column for a
    number field is an error. Unknown columns pass through for the schema validation to report."""
    expected = arrow_schema(with_truth=True)
    required = {f.name for f in FIELDS if f.required}
    for i, name in enumerate(table.column_names):
        if name not in expected.names:
            continue
        want = expected.field(name).type
        col = table.column(i)
        if pa.types.is_dictionary(col.type):
            col = pa.chunked_array([_plain(col)])
            table = table.set_column(i, name, col)
        got = col.type
        if got == want or pa.types.is_null(got):
            continue
        if pa.types.is_integer(want) and pa.types.is_floating(got):
            arr, nan = _float_to_int(_plain(col), path, name, want)
            if nan_rows is not None and name in required and nan.any():
                nan_rows[name] = nan  # pandas writes NaN as null: both arrive here as NaN
            table = table.set_column(i, name, arr)
            continue
        if pa.types.is_integer(want) and pa.types.is_unsigned_integer(got):
            _check_unsigned(_plain(col), path, name)
        if (pa.types.is_list(want) and (pa.types.is_list(got) or pa.types.is_large_list(got))
                and pa.types.is_dictionary(got.value_type)):
            raise LogError(f"{path}: field {name!r} has type {got}, expected {want} (a list of dictionary values)")
        if not _castable(got, want):
            kind = ("strings are not parsed as numbers" if pa.types.is_integer(want) or pa.types.is_floating(want)
                    else "numbers are not converted to strings" if pa.types.is_string(want) else "")
            raise LogError(f"{path}: field {name!r} has type {got}, expected {want}" + (f" ({kind})" if kind else ""))
        try:
            table = table.set_column(i, name, col.cast(want))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise LogError(f"{path}: field {name!r} has type {got}, expected {want} ({e})") from None
    return table


def check_file(table: pa.Table, path: str) -> Tuple[pa.Table, Dict[str, np.ndarray]]:
    """(the table with known fields in their types, {required field: rows that were NaN}); a LogError
    for a file that cannot be read as logs at all."""
    nan_rows: Dict[str, np.ndarray] = {}
    table = check_types(table, path, nan_rows)
    if TIME_FIELD not in table.column_names:
        raise LogError(f"{path}: required field {TIME_FIELD!r} is missing")
    times = table.column(TIME_FIELD)
    if times.null_count:
        raise LogError(f"{path}: field {TIME_FIELD!r} is null in {times.null_count} of {table.num_rows} rows")
    return table, nan_rows


def reject_rows(table: pa.Table, day: int, nan_rows: Dict[str, np.ndarray]) -> Tuple[np.ndarray, Dict[str, int]]:
    """(rows to keep as a bool mask, {reason: rows rejected}). A row is rejected for its first reason:
    event_time outside its partition's day, NaN or null in a required field, an int out of range
    (negative; a label not 0 or 1), a source other than promotions / ads, or a field that exists
    only on one source set on the other source's row."""
    n = table.num_rows
    keep = np.ones(n, dtype=bool)
    reasons: Dict[str, int] = {}

    def drop(mask, reason):
        mask = mask & keep
        if mask.any():
            reasons[reason] = reasons.get(reason, 0) + int(mask.sum())
            keep[mask] = False

    t = table.column(TIME_FIELD).to_numpy().astype(np.int64)
    drop(t // DAY != day, OUTSIDE_DAY)
    for name, mask in sorted(nan_rows.items()):
        drop(mask, nan_reason(name))
    for f in FIELDS:
        if f.required and f.name in table.column_names and f.name not in nan_rows:
            col = table.column(f.name)
            if col.null_count:
                drop(np.asarray(col.is_null()), null_reason(f.name))
    for f in FIELDS:  # ranges, as the curated schema's int domains
        if f.dtype == "int" and not f.is_list and f.name in table.column_names and f.name != TIME_FIELD:
            values = table.column(f.name).fill_null(0).to_numpy()
            drop(values < 0, range_reason(f.name, "negative"))
            if f.role == "label":
                drop(values > 1, range_reason(f.name, "not 0 or 1"))
    if "source" in table.column_names:
        source = np.array(table.column("source").to_pylist(), dtype=object)
        drop(~np.isin(source, SOURCES) & (source != None), UNKNOWN_SOURCE)  # noqa: E711  (null: counted above)
        for f in FIELDS:
            if f.only_on and f.name in table.column_names:
                present = ~np.asarray(table.column(f.name).is_null())
                other = (source != f.only_on) & np.isin(source, SOURCES)
                drop(present & other, wrong_source_reason(f.name, f.only_on))
    return keep, reasons


def repeated_ids(table: pa.Table) -> int:
    """Rows of `table` whose impression_id occurs more than once in it."""
    if KEY_FIELD not in table.column_names:
        return 0
    ids = table.column(KEY_FIELD).drop_null()
    if len(ids) == 0:
        return 0
    counts = pc.value_counts(ids)
    return int(sum(c for c in counts.field("counts").to_pylist() if c > 1))


def read_log_file(path: str, source=None, columns: Optional[List[str]] = None
                  ) -> Tuple[pa.Table, np.ndarray, Dict[str, int]]:
    """One day file read strictly: (table, rows kept, {reason: rows rejected}). LogError for a file
    refused whole."""
    table = read_parquet(source if source is not None else path, path, columns)
    table, nan_rows = check_file(table, path)
    keep, rejected = reject_rows(table, partition_day(path), nan_rows)
    return table, keep, rejected


def refuse_rejected(path: str, rows: int, rejected: Dict[str, int], duplicates: int = 0) -> None:
    """A LogError naming the file, rows and reasons, for the commands that refuse a file with any
    row `run` would reject (score, the converter, the schedule's delivery)."""
    parts = [f"{n} rows: {reason}" for reason, n in sorted(rejected.items())]
    if duplicates:
        parts.append(f"{duplicates} rows share an impression_id")
    if parts:
        raise LogError(f"{path}: {sum(rejected.values()) + duplicates} of {rows} rows refused (`run` would "
                       f"reject them): " + "; ".join(parts))


def check_log_file(path: str) -> int:
    """Reads one day file as `run` would and raises LogError when any row would be rejected or an
    impression_id repeats inside it; returns the rows read."""
    table, _, rejected = read_log_file(path)
    refuse_rejected(path, table.num_rows, rejected, repeated_ids(table))
    return table.num_rows
