"""Warm start: a daily run starts from the weights of the latest pushed (hence blessed) model.

`save` writes, beside each exported SavedModel, `warm_start/weights.npz` (every model weight in
the model's own order) and `warm_start/vocabularies.json` (the Transform vocabulary of each
embedding table). The Pusher copies them with the model. `restore` finds the newest version
under `ModelConfig.warm_start_dir` (the serving folder) and copies its weights into the new
model where the architecture matches:

* dense layers (shared encoder, towers) and hash / fixed-size embedding tables: copied as they are;
* vocabulary tables: row by token. Today's vocabulary is recomputed on today's window, so ids
  move; each token still in the vocabulary gets its old row, a token new today keeps its fresh
  random row (as in a cold start), a token gone today is dropped, and the OOV-bucket rows are
  copied (same buckets, same hash);
* any weight whose shape or place differs (another preset, other dimensions): left as initialised,
  and when nothing matches at all, warm start is skipped and said so.
The optimizer starts fresh. Returns what was done, for the log and the summary.
"""
from __future__ import annotations

import io
import json
import os
import re
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from core.versions import newest_version
from models.preprocessing import PODCAST_VOCAB

DIR = "warm_start"
_COUNTER = re.compile(r"_\d+(?=/|:|$)")  # Keras numbers auto-named layers per process: dense_3 -> dense


def _key(weight) -> str:
    return _COUNTER.sub("", weight.name)


def _table(weight) -> Optional[str]:
    m = re.search(r"(?:^|/)emb_([^/]+)/embeddings", weight.name)
    return m.group(1) if m else None


def _vocabularies(model, tf_transform_output) -> Dict[str, list]:
    out = {}
    for w in model.weights:
        table = _table(w)
        if table is None:
            continue
        try:
            tokens = tf_transform_output.vocabulary_by_name(table)
        except (ValueError, tf.errors.NotFoundError, KeyError):
            continue
        out[table] = [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in tokens]
    return out


def save(model, tf_transform_output, serving_model_dir: str) -> None:
    """Writes the weights and vocabularies beside the exported SavedModel."""
    out = os.path.join(serving_model_dir, DIR)
    tf.io.gfile.makedirs(out)
    arrays = {f"w{i:04d}": w.numpy() for i, w in enumerate(model.weights)}
    names = [_key(w) for w in model.weights]
    buffer = io.BytesIO()  # np.savez seeks; GFile (gs:// too) takes the bytes whole
    np.savez(buffer, **arrays)
    with tf.io.gfile.GFile(os.path.join(out, "weights.npz"), "wb") as f:
        f.write(buffer.getvalue())
    with tf.io.gfile.GFile(os.path.join(out, "vocabularies.json"), "w") as f:
        json.dump({"names": names, "vocabularies": _vocabularies(model, tf_transform_output)}, f)


def latest(serving_dir: str) -> Optional[str]:
    """The newest pushed version that carries warm-start weights."""
    found = newest_version(serving_dir, os.path.join(DIR, "weights.npz"))
    return os.path.join(found, DIR) if found else None


def _remap_rows(old: np.ndarray, new: np.ndarray, old_tokens: list, new_tokens: list, offset: int):
    """Rows of `new` filled from `old` by token; returns (rows, tokens kept, tokens new)."""
    buckets = old.shape[0] - offset - len(old_tokens)
    if buckets != new.shape[0] - offset - len(new_tokens) or buckets < 0:
        return None, 0, 0
    out = new.copy()
    out[:offset] = old[:offset]  # padding row
    index = {t: i for i, t in enumerate(old_tokens)}
    kept = 0
    for j, token in enumerate(new_tokens):
        i = index.get(token)
        if i is not None:
            out[offset + j] = old[offset + i]
            kept += 1
    out[offset + len(new_tokens):] = old[offset + len(old_tokens):]  # OOV buckets
    return out, kept, len(new_tokens) - kept


def restore(model, tf_transform_output, serving_dir: str) -> Dict:
    """Copies the latest pushed model's weights into `model` where they fit (see the module doc)."""
    path = latest(serving_dir)
    if path is None:
        return {"warm_start": False, "reason": f"no pushed model with warm-start weights under {serving_dir}"}
    with tf.io.gfile.GFile(os.path.join(path, "vocabularies.json")) as f:
        meta = json.load(f)
    with tf.io.gfile.GFile(os.path.join(path, "weights.npz"), "rb") as f:
        saved = np.load(io.BytesIO(f.read()))
    old = [saved[f"w{i:04d}"] for i in range(len(meta["names"]))]
    weights = model.weights
    if [_key(w) for w in weights] != meta["names"]:
        return {"warm_start": False, "reason": f"{path}: another architecture (weights differ by name)"}
    new_vocab = _vocabularies(model, tf_transform_output)
    report = {"warm_start": True, "from": os.path.dirname(path), "copied": 0, "remapped_tables": {}, "skipped": []}
    for w, value in zip(weights, old):
        table = _table(w)
        if table in new_vocab and table in meta["vocabularies"]:
            rows, kept, fresh = _remap_rows(value, w.numpy(), meta["vocabularies"][table], new_vocab[table],
                                            1 if table == PODCAST_VOCAB else 0)
            if rows is not None:
                w.assign(rows)
                report["remapped_tables"][table] = {"kept": kept, "new": fresh}
                continue
        if tuple(value.shape) == tuple(w.shape):
            w.assign(value)
            report["copied"] += 1
        else:
            report["skipped"].append(_key(w))
    return report
