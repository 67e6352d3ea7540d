"""Atomic, verified pushes to a serving folder (`<serving>/<version>/`, as TF Serving reads it), on
any `tf.io.gfile` filesystem: local paths, `gs://`, `s3://`, `hdfs://`, `ram://`, ...

- The version is an integer, unique and increasing per serving folder: at least the current Unix
  time and above every version already there. It is reserved before anything is written:
  * local paths: an exclusive create (`O_CREAT | O_EXCL`) of `<serving>/.version-<v>`;
  * every other filesystem (no exclusive create in `tf.io.gfile`): each push writes its own claim
    `<serving>/.version-<v>.<random>` and then lists the claims of `<v>`; it takes `<v>` only when
    its claim is the only one, else it moves on to `<v+1>` (its claim stays). Two pushes can never
    both see themselves alone: whichever listed first would have been listed by the other after
    its write. This needs a strongly consistent listing, which GCS and S3 give.
  Reservation files stay, so a version is never handed out twice.
- The model is copied into a hidden folder beside the versions (`.tmp-push-<v>-<random>/`) and
  checked file by file against the candidate (SHA-256). Then it is published:
  * filesystems with an atomic folder rename (`core.versions.has_atomic_rename`: local, `file://`,
    `hdfs://`): renamed to `<serving>/<v>/`, which appears whole or not at all;
  * object stores (`gs://`, `s3://`, `ram://` and any other scheme): there is no folder rename, so
    each object is moved to `<serving>/<v>/`, `saved_model.pb` last (a model server never finds a
    version's `saved_model.pb` before its variables), the version is hashed again, and only then
    the completion marker `<serving>/.pushed-<v>` is written (one object, written at once).
    `core.versions.newest_version` (the baseline, batch scoring, warm start, the A/B simulation)
    counts an object-store version only with its marker.
  The marker is written on every filesystem (it records the version's digest).
- A push that fails (full disk, unreadable file, a copy that differs) removes what it wrote and
  raises; no numbered version with a marker, and on rename filesystems no numbered version at all,
  is left where a model server looks.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from typing import Any, Dict, List, Tuple

import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants as evaluator
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.atomic_pusher import spec
from core.versions import has_atomic_rename, join, marker_path, scheme

_VERSION = re.compile(r"^\d+$")
_RESERVED = re.compile(r"^\.version-(\d+)(?:\.[0-9a-f]+)?$")
SAVED_MODEL = "saved_model.pb"


class PushError(RuntimeError):
    """The push did not happen, or the pushed folder is not the candidate."""


def _files(folder: str) -> List[str]:
    """Relative paths of every file under `folder`, `saved_model.pb` (top level) last."""
    out = []
    for dirpath, _, files in tf.io.gfile.walk(folder):
        rel = dirpath[len(folder.rstrip("/")):].lstrip("/")
        out.extend(os.path.join(rel, name) if rel else name for name in files)
    return sorted(out, key=lambda p: (p == SAVED_MODEL, p))


def tree_digest(folder: str) -> Dict[str, str]:
    """{relative path: sha256} of every file under `folder`."""
    out = {}
    for rel in _files(folder):
        h = hashlib.sha256()
        with tf.io.gfile.GFile(join(folder, rel), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out[rel] = h.hexdigest()
    return out


def _taken(serving_dir: str) -> int:
    highest = 0
    for name in tf.io.gfile.listdir(serving_dir):
        name = name.rstrip("/")
        m = _RESERVED.match(name)
        if _VERSION.match(name) or m:
            highest = max(highest, int(m.group(1) if m else name))
    return highest


def _claim_local(serving_dir: str, version: int) -> bool:
    try:
        fd = os.open(os.path.join(serving_dir, f".version-{version}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()} {time.time()}\n")
    return True


def _claim_by_listing(serving_dir: str, version: int) -> bool:
    mine = f".version-{version}.{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(join(serving_dir, mine), "w") as f:
        f.write(f"{os.getpid()} {time.time()}\n")
    claims = [n.rstrip("/") for n in tf.io.gfile.listdir(serving_dir)]
    claims = [n for n in claims if (m := _RESERVED.match(n)) and int(m.group(1)) == version]
    return claims == [mine]


def reserve_version(serving_dir: str) -> int:
    """A version no other push has or will get in this serving folder."""
    claim = _claim_local if scheme(serving_dir) == "" else _claim_by_listing
    version = max(int(time.time()), _taken(serving_dir) + 1)
    while True:
        if claim(serving_dir, version) and not tf.io.gfile.exists(join(serving_dir, str(version))):
            return version  # (a folder made by a tool that does not reserve is skipped too)
        version += 1


def _copy_tree(src: str, dst: str, files: List[str]) -> None:
    for rel in files:  # saved_model.pb last
        tf.io.gfile.makedirs(os.path.dirname(join(dst, rel)))
        tf.io.gfile.copy(join(src, rel), join(dst, rel), overwrite=False)


def _move_tree(src: str, dst: str, files: List[str]) -> None:
    """Moves each object (no folder rename on object stores), saved_model.pb last."""
    for rel in files:
        tf.io.gfile.makedirs(os.path.dirname(join(dst, rel)))
        tf.io.gfile.rename(join(src, rel), join(dst, rel), overwrite=False)


def _remove(path: str) -> None:
    try:
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
    except tf.errors.OpError:
        pass


def _differ(want: Dict[str, str], got: Dict[str, str]) -> int:
    return len(set(want.items()) ^ set(got.items()))


def push_model(model_dir: str, serving_dir: str) -> Tuple[int, str]:
    """Copies the SavedModel in `model_dir` to `<serving_dir>/<version>/` and verifies it (see the
    module docstring for each filesystem). Returns (version, destination); raises PushError (or
    an OSError / tf.errors.OpError) when the push did not happen."""
    if not tf.io.gfile.exists(join(model_dir, SAVED_MODEL)):
        raise PushError(f"{model_dir}: no {SAVED_MODEL}, nothing to push")
    tf.io.gfile.makedirs(serving_dir)
    want = tree_digest(model_dir)
    files = _files(model_dir)
    version = reserve_version(serving_dir)
    dest = join(serving_dir, str(version))
    tmp = join(serving_dir, f".tmp-push-{version}-{uuid.uuid4().hex[:12]}")
    renames = has_atomic_rename(serving_dir)
    try:
        _copy_tree(model_dir, tmp, files)
        got = tree_digest(tmp)
        if got != want:
            raise PushError(f"{tmp}: the copy differs from the candidate {model_dir} ({_differ(want, got)} files differ)")
        if renames:
            if scheme(serving_dir) == "":
                os.rename(tmp, dest)
            else:
                tf.io.gfile.rename(tmp, dest, overwrite=False)
        else:
            _move_tree(tmp, dest, files)
        got = tree_digest(dest)
        if got != want:
            raise PushError(f"{dest}: the pushed folder is not the candidate {model_dir} ({_differ(want, got)} files differ)")
        with tf.io.gfile.GFile(marker_path(serving_dir, version), "w") as f:  # one object, written at once
            f.write(json.dumps({"version": version, "source": model_dir, "files": want, "pushed_at": time.time()}))
    except BaseException:
        _remove(tmp)
        if not renames or tf.io.gfile.exists(dest):
            _remove(marker_path(serving_dir, version))
            _remove(dest)
        raise
    _remove(tmp)  # object stores: the moved objects' folder placeholders
    return version, dest


class Executor(base_executor.BaseExecutor):
    """Pushes a blessed model (`push_model`); for an unblessed one records pushed=0 and writes nothing."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
        blessing = artifact_utils.get_single_instance(input_dict[spec.MODEL_BLESSING_KEY])
        pushed = artifact_utils.get_single_instance(output_dict[spec.PUSHED_MODEL_KEY])
        push_blessing = artifact_utils.get_single_instance(output_dict[spec.PUSH_BLESSING_KEY])
        # what TFX's LatestBlessedModelStrategy reads: the model it names and whether it counts
        push_blessing.set_int_custom_property(evaluator.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        push_blessing.set_string_custom_property(evaluator.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        push_blessing.set_int_custom_property(evaluator.ARTIFACT_PROPERTY_BLESSED_KEY, evaluator.NOT_BLESSED_VALUE)
        if blessing.get_int_custom_property(evaluator.ARTIFACT_PROPERTY_BLESSED_KEY) != evaluator.BLESSED_VALUE:
            pushed.set_int_custom_property(spec.PUSHED, 0)
            _write_flag(push_blessing.uri, evaluator.NOT_BLESSED_FILE_NAME)
            return
        model_dir = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        version, dest = push_model(model_dir, exec_properties[spec.SERVING_DIR_KEY])
        pushed.set_int_custom_property(spec.PUSHED, 1)
        pushed.set_string_custom_property(spec.PUSHED_DESTINATION, dest)
        pushed.set_string_custom_property(spec.PUSHED_VERSION, str(version))
        pushed.set_int_custom_property(spec.PUSHED_TIMESTAMP, int(time.time()))
        push_blessing.set_int_custom_property(evaluator.ARTIFACT_PROPERTY_BLESSED_KEY, evaluator.BLESSED_VALUE)
        push_blessing.set_string_custom_property(spec.PUSHED_DESTINATION, dest)
        _write_flag(push_blessing.uri, evaluator.BLESSED_FILE_NAME)


def _write_flag(folder: str, name: str) -> None:
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(join(folder, name), "w") as f:
        f.write("")
