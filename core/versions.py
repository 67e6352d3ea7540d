"""Serving folders: numbered model versions (`<serving>/<N>/saved_model.pb`), the newest one wins.

The one definition of "the newest pushed version", used by batch scoring, warm start, the A/B
simulation and the schedule. Paths may be local or any TensorFlow filesystem (`tf.io.gfile`).

What a version needs to count depends on the filesystem (`components/atomic_pusher/README.md`):

* filesystems with an atomic directory rename (local, `file://`, `hdfs://`, `viewfs://`): the
  Pusher renames a verified copy into place, so a numbered folder holding `saved_model.pb` is
  whole;
* every other scheme (object stores: `gs://`, `s3://`, and `ram://`, treated the same way) has
  no rename of a folder: a version counts only once its completion marker
  `<serving>/.pushed-<N>` exists, which the Pusher writes after the version's files were verified
  against the candidate. A version without it (a push that died half-way) is never the newest.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional

# schemes whose rename of a folder is atomic: the version folder appears whole or not at all
ATOMIC_RENAME_SCHEMES = frozenset({"", "file", "hdfs", "viewfs"})
PUSHED_MARKER = ".pushed-{version}"  # beside the version folder; TF Serving ignores non-numeric names
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme(path: str) -> str:
    """The URI scheme of `path` ('' for a plain local path)."""
    m = _SCHEME.match(path or "")
    return m.group(1).lower() if m else ""


def has_atomic_rename(path: str) -> bool:
    """Whether a folder rename on `path`'s filesystem is atomic (else: object-store semantics)."""
    return scheme(path) in ATOMIC_RENAME_SCHEMES


def marker_path(serving_dir: str, version) -> str:
    """The completion marker of `<serving_dir>/<version>/`."""
    return join(serving_dir, PUSHED_MARKER.format(version=version))


def join(folder: str, *names: str) -> str:
    """os.path.join that keeps a URI's `scheme://` (os.path.normpath would not)."""
    return os.path.join(folder, *names)


def versions(serving_dir: str, holding: str = "saved_model.pb") -> List[str]:
    """Version folders of `serving_dir` that hold `holding` and, on a filesystem without atomic
    rename, have their completion marker; oldest first (numerically, not as text)."""
    import tensorflow as tf

    if not serving_dir or not tf.io.gfile.isdir(serving_dir):
        return []
    listed = [v.rstrip("/") for v in tf.io.gfile.listdir(serving_dir)]
    names = sorted((v for v in listed if v.isdigit()), key=int)
    if not has_atomic_rename(serving_dir):
        marked = set(listed)
        names = [v for v in names if PUSHED_MARKER.format(version=v) in marked]
    return [join(serving_dir, v) for v in names if tf.io.gfile.exists(join(serving_dir, v, holding))]


def newest_version(serving_dir: str, holding: str = "saved_model.pb") -> Optional[str]:
    """The newest version folder holding `holding` (the model a server would load), or None."""
    found = versions(serving_dir, holding)
    return found[-1] if found else None
