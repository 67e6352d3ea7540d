"""Batch scoring of impression logs with a pushed SavedModel (`podcast-mtl score`).

Reads day-partitioned Parquet logs (`core/logs.py` layout) file by file with the strict log reader
that `run` uses (`core/log_reader.py`: the same types accepted, the same rows refused, the same
messages), sends each batch through the model's `serving_raw` signature (named dense tensors) or
`serving_default` (serialized tf.Examples), and writes one Parquet file with `impression_id` and
one probability column per head. Bad inputs raise `ScoreInputError` naming the file and the field,
before anything is written: a file with any row `run` would reject is refused, an `--out` that is
a folder, under a file, unwritable or inside an input is refused before scoring; the output
appears only when every row is scored.
"""
from __future__ import annotations

import glob
import os
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.fields import FIELDS
from core.log_reader import LogError, check_types, read_log_file, refuse_rejected, repeated_ids
from core.logs import FILE_PATTERN
from core.paths import overlap
from core.serving import SERVING_DEFAULT, SERVING_RAW
from core.versions import newest_version

KEY = "impression_id"
DEFAULT_BATCH = 4096
SIGNATURES = (SERVING_RAW, SERVING_DEFAULT)
_REQUIRED = {f.name for f in FIELDS if f.required} | {KEY}


class ScoreInputError(ValueError):
    """A model folder or log file that cannot be scored; the message names the file and field."""


def resolve_model_dir(path: str) -> str:
    """`path` itself when it holds a SavedModel, else its newest numbered version (a serving folder)."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    if not os.path.isdir(path):
        raise ScoreInputError(f"--model {path}: no such folder")
    newest = newest_version(path)
    if newest is None:
        raise ScoreInputError(f"--model {path}: neither a SavedModel (no saved_model.pb) nor a serving folder "
                              f"with numbered versions")
    return newest


def log_files(data: str) -> List[str]:
    if not os.path.isdir(data):
        raise ScoreInputError(f"--data {data}: no such folder")
    files = sorted(glob.glob(os.path.join(data, FILE_PATTERN)))
    if not files:
        raise ScoreInputError(f"--data {data}: no {FILE_PATTERN} files")
    return files


def _check_type(path: str, name: str, arrow_type: pa.DataType, dtype, is_list: bool) -> None:
    import tensorflow as tf

    inner = arrow_type.value_type if (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)) else None
    if is_list != (inner is not None):
        want = "a list" if is_list else "a scalar"
        raise ScoreInputError(f"{path}: field '{name}' has type {arrow_type}, expected {want}")
    t = inner if inner is not None else arrow_type
    ok = (pa.types.is_string(t) or pa.types.is_large_string(t)) if dtype == tf.string else pa.types.is_integer(t)
    if not ok:
        want = "string" if dtype == tf.string else "integer"
        raise ScoreInputError(f"{path}: field '{name}' has type {arrow_type}, expected {want}")


def check_file(path: str, input_specs: Dict, schema: Optional[pa.Schema] = None) -> pa.Schema:
    """Columns and types of one log file against the model's raw inputs (+ impression_id), as the
    strict reader casts them (`schema`: the file's, else read from its footer)."""
    if schema is None:
        try:
            schema = pq.read_schema(path)
        except Exception as e:  # not Parquet, truncated, unreadable
            raise ScoreInputError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})")
        try:
            schema = check_types(schema.empty_table(), path).schema
        except LogError as e:
            raise ScoreInputError(str(e)) from None
    if KEY not in schema.names:
        raise ScoreInputError(f"{path}: field '{KEY}' is missing")
    if not (pa.types.is_string(schema.field(KEY).type) or pa.types.is_large_string(schema.field(KEY).type)):
        raise ScoreInputError(f"{path}: field '{KEY}' has type {schema.field(KEY).type}, expected string")
    for name, spec in sorted(input_specs.items()):
        if name not in schema.names:
            if name in _REQUIRED:
                raise ScoreInputError(f"{path}: field '{name}' is missing")
            continue  # a one-source or list field absent from the whole file: sent as "" / 0
        _check_type(path, name, schema.field(name).type, spec.dtype, spec.shape.rank == 2)
    return schema


def _raw_batch(path: str, batch: pa.RecordBatch, input_specs: Dict) -> Dict[str, np.ndarray]:
    """`serving_raw` inputs: scalars, lists padded with "", "" / 0 where a field is absent."""
    import tensorflow as tf

    n, out = batch.num_rows, {}
    names = batch.schema.names
    for name, spec in input_specs.items():
        is_str = spec.dtype == tf.string
        pad = b"" if is_str else 0
        col = batch.column(names.index(name)) if name in names else None
        if col is not None and name in _REQUIRED and col.null_count:
            raise ScoreInputError(f"{path}: field '{name}' is null in {col.null_count} rows")
        if spec.shape.rank == 2:
            rows = col.to_pylist() if col is not None else [None] * n
            width = max([len(r) for r in rows if r] + [1])
            arr = np.full((n, width), pad, dtype=object if is_str else np.int64)
            for i, r in enumerate(rows):
                if r:  # a null inside a list is read as "" / 0, as run's Example encoder writes it
                    arr[i, :len(r)] = [pad if v is None else (v.encode() if is_str else v) for v in r]
            out[name] = arr
        elif col is None:
            out[name] = np.full(n, pad, dtype=object if is_str else np.int64)
        elif is_str:
            out[name] = np.array([b"" if v is None else v.encode() for v in col.to_pylist()], dtype=object)
        else:
            out[name] = col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return out


def _examples(raw: Dict[str, np.ndarray], input_specs: Dict) -> List[bytes]:
    """The same batch as serialized tf.Examples: list padding and absent fields ("" strings, 0 on a
    one-source int field such as promo_slot on ads) are left out, as in the logs' own Examples."""
    import tensorflow as tf

    n = len(next(iter(raw.values())))
    examples = [tf.train.Example() for _ in range(n)]
    for name, values in raw.items():
        is_str = input_specs[name].dtype == tf.string
        pad = b"" if is_str else 0
        keep_pad = values.ndim == 1 and name in _REQUIRED  # a required field is always sent, also "" or 0
        for ex, v in zip(examples, values):
            vals = [x for x in (v if values.ndim == 2 else [v]) if keep_pad or x != pad]
            if vals:
                f = ex.features.feature[name]
                (f.bytes_list.value if is_str else f.int64_list.value).extend(vals)
    return [e.SerializeToString() for e in examples]


def read_file(path: str, input_specs: Dict) -> pa.Table:
    """One log file read as `run` reads it; ScoreInputError for a file, or any row, `run` would refuse."""
    try:
        table, _, rejected = read_log_file(path)
        refuse_rejected(path, table.num_rows, rejected, repeated_ids(table))
    except LogError as e:
        raise ScoreInputError(str(e)) from None
    check_file(path, input_specs, table.schema)
    return table.select([c for c in table.column_names if c == KEY or c in input_specs])


def file_batches(path: str, input_specs: Dict, batch_size: int) -> Iterator[Tuple[List, Dict]]:
    """(impression ids, raw inputs) per batch of at most `batch_size` rows of one log file."""
    table = read_file(path, input_specs)
    for batch in table.to_batches(max_chunksize=batch_size):
        ids = batch.column(batch.schema.names.index(KEY))
        if ids.null_count:
            raise ScoreInputError(f"{path}: field '{KEY}' is null in {ids.null_count} rows")
        yield ids.to_pylist(), _raw_batch(path, batch, input_specs)


def check_out(out: str, data: str, model: str, model_dir: str) -> None:
    """--out must be a new or replaceable file, outside every input, in a folder that can be written."""
    problem = overlap("--out", out, {"--data": data, "--model": model, "--model version": model_dir})
    if problem:
        raise ScoreInputError(problem)
    if os.path.isdir(out):
        raise ScoreInputError(f"--out {out}: is a folder; --out is the Parquet file to write")
    parent = os.path.dirname(os.path.abspath(out))
    probe_dir = parent
    while not os.path.exists(probe_dir):
        probe_dir = os.path.dirname(probe_dir)
    if not os.path.isdir(probe_dir):
        raise ScoreInputError(f"--out {out}: {probe_dir} is a file, not a folder")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise ScoreInputError(f"--out {out}: cannot write in {probe_dir} (permission denied)")


def load_model(model_dir: str):
    """The SavedModel, or ScoreInputError naming it when it cannot be loaded (truncated variables, ...)."""
    import tensorflow as tf

    try:
        return tf.saved_model.load(model_dir)
    except Exception as e:  # OSError, IndexError, DataLossError, ... from a damaged model
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ScoreInputError(f"--model {model_dir}: cannot load the SavedModel ({type(e).__name__}: {first}); "
                              f"is it complete (saved_model.pb, variables/)?") from None


def score_logs(model: str, data: str, out: str, signature: str = SERVING_RAW, batch_size: int = DEFAULT_BATCH,
               progress: Optional[Callable[[str], None]] = print) -> Dict:
    """Scores every impression under `data` with the SavedModel at `model` (or the newest version
    under it) and writes `out` (Parquet: impression_id, one float column per head). Returns
    {"model", "rows", "seconds", "heads"}."""
    if signature not in SIGNATURES:
        raise ScoreInputError(f"--signature {signature}: expected one of {', '.join(SIGNATURES)}")
    if batch_size <= 0:
        raise ScoreInputError(f"--batch-size must be positive, got {batch_size}")
    model_dir = resolve_model_dir(model)
    files = log_files(data)
    check_out(out, data, model, model_dir)
    import tensorflow as tf

    loaded = load_model(model_dir)
    missing = [s for s in SIGNATURES if s not in loaded.signatures]
    if missing:
        raise ScoreInputError(f"--model {model_dir}: no {', '.join(missing)} signature")
    input_specs = loaded.signatures[SERVING_RAW].structured_input_signature[1]
    fn = loaded.signatures[signature]
    for path in files:  # every file's columns and types before scoring the first batch
        check_file(path, input_specs)
    log = progress or (lambda line: None)
    log(f"scoring {len(files)} files under {data} with {model_dir} ({signature}, {batch_size} rows per call)")
    tmp = out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    writer, heads, rows, t0 = None, None, 0, time.time()
    try:
        for i, path in enumerate(files):
            for ids, raw in file_batches(path, input_specs, batch_size):
                if signature == SERVING_RAW:
                    outputs = fn(**{k: tf.constant(v, dtype=input_specs[k].dtype) for k, v in raw.items()})
                else:
                    outputs = fn(examples=tf.constant(_examples(raw, input_specs)))
                heads = heads or sorted(outputs)
                table = pa.table({KEY: pa.array(ids, pa.string()),
                                  **{h: pa.array(outputs[h].numpy().reshape(-1).astype(np.float32)) for h in heads}})
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                rows += len(ids)
            log(f"  [{i + 1}/{len(files)}] {os.path.relpath(path, data)}: {rows:,} rows scored "
                f"({rows / max(time.time() - t0, 1e-9):,.0f} rows/s)")
        if writer is None:
            raise ScoreInputError(f"--data {data}: the log files hold no rows")
        writer.close()
        writer = None
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    seconds = time.time() - t0
    log(f"wrote {rows:,} rows x {len(heads)} heads to {out} in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)")
    return {"model": model_dir, "rows": rows, "seconds": round(seconds, 2), "heads": heads}


def raw_inputs_from_rows(rows: Dict[str, list], input_specs: Dict) -> Dict[str, np.ndarray]:
    """`serving_raw` inputs from column lists (e.g. `World.feature_rows`): scalars, lists padded with
    "", and "" / 0 where a value is None or a field is absent, as `_raw_batch` builds them from Parquet."""
    import tensorflow as tf

    n = len(next(iter(rows.values())))
    out = {}
    for name, spec in input_specs.items():
        is_str = spec.dtype == tf.string
        pad = b"" if is_str else 0
        col = rows.get(name)
        if spec.shape.rank == 2:
            col = col if col is not None else [None] * n
            # candidates of one request share the user's list objects: each distinct list is built once
            _, pick, index = np.unique(np.fromiter(map(id, col), np.int64, n), return_index=True,
                                       return_inverse=True)
            distinct = [col[i] for i in pick]
            width = max([len(r) for r in distinct if r] + [1])
            arr = np.full((len(distinct), width), pad, dtype=object if is_str else np.int64)
            for i, r in enumerate(distinct):
                if r:
                    arr[i, :len(r)] = [v.encode() for v in r] if is_str else r
            out[name] = arr[index]
        elif col is None:
            out[name] = np.full(n, pad, dtype=object if is_str else np.int64)
        elif is_str:
            out[name] = np.array([b"" if v is None else v.encode() for v in col], dtype=object)
        else:
            out[name] = np.array([0 if v is None else v for v in col], dtype=np.int64)
    return out


class SavedModelScorer:
    """One head of a SavedModel as a function of column lists: `scorer(rows) -> probabilities`.

    `signature` is serving_raw (named dense tensors) or serving_default (the same rows as
    serialized tf.Examples, built by `_examples`); both apply the model's Transform graph.
    """

    def __init__(self, model: str, head: str, signature: str = SERVING_RAW):
        if signature not in SIGNATURES:
            raise ScoreInputError(f"--signature {signature}: expected one of {', '.join(SIGNATURES)}")

        self.model_dir = resolve_model_dir(model)
        self.signature, self.head = signature, head
        self._loaded = load_model(self.model_dir)
        missing = [s for s in SIGNATURES if s not in self._loaded.signatures]
        if missing:
            raise ScoreInputError(f"{self.model_dir}: no {', '.join(missing)} signature")
        self.input_specs = self._loaded.signatures[SERVING_RAW].structured_input_signature[1]
        self._fn = self._loaded.signatures[signature]
        outputs = self._fn.structured_outputs
        if head not in outputs:
            raise ScoreInputError(f"{self.model_dir}: no output {head!r} (outputs: {', '.join(sorted(outputs))})")
        self.rows_scored, self.seconds = 0, 0.0

    def __call__(self, rows: Dict[str, list]) -> np.ndarray:
        import tensorflow as tf

        t0 = time.time()
        raw = raw_inputs_from_rows(rows, self.input_specs)
        if self.signature == SERVING_RAW:
            outputs = self._fn(**{k: tf.constant(v, dtype=self.input_specs[k].dtype) for k, v in raw.items()})
        else:
            outputs = self._fn(examples=tf.constant(_examples(raw, self.input_specs)))
        scores = outputs[self.head].numpy().reshape(-1).astype(np.float64)
        self.rows_scored += scores.size
        self.seconds += time.time() - t0
        return scores
