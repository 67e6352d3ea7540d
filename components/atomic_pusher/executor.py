"""Atomic, verified pushes to a serving folder (`<serving>/<version>/`, as TF Serving reads it).

- The version is an integer, unique and increasing per serving folder: at least the current Unix
  time, above every version already there, and taken with an exclusive create
  (`O_CREAT | O_EXCL`) of `<serving>/.version-<v>`, so two pushes in the same second (from two
  pipelines, two processes or two machines on one shared filesystem) never share a version.
  The small reservation files stay, so a version is never handed out twice.
- The model is copied into a hidden temporary folder beside the versions, checked file by file
  against the candidate (SHA-256), then renamed into place: `<serving>/<version>/` appears whole
  or not at all. A copy that fails (full disk, unreadable file) removes its temporary folder and
  raises; nothing half-written is left where a model server looks.
- After the rename the pushed folder is hashed again; a push is reported only when it holds the
  candidate's exact files.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from typing import Dict, Tuple

_VERSION = re.compile(r"^\d+$")
_RESERVED = re.compile(r"^\.version-(\d+)$")


class PushError(RuntimeError):
    """The push did not happen, or the pushed folder is not the candidate."""


def tree_digest(folder: str) -> Dict[str, str]:
    """{relative path: sha256} of every file under `folder`."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[os.path.relpath(path, folder)] = h.hexdigest()
    return out


def _taken(serving_dir: str) -> int:
    highest = 0
    for name in os.listdir(serving_dir):
        m = _RESERVED.match(name)
        if _VERSION.match(name) or m:
            highest = max(highest, int(m.group(1) if m else name))
    return highest


def reserve_version(serving_dir: str) -> int:
    """A version no other push has or will get in this serving folder (exclusive create)."""
    version = max(int(time.time()), _taken(serving_dir) + 1)
    while True:
        try:
            fd = os.open(os.path.join(serving_dir, f".version-{version}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            version += 1
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {time.time()}\n")
        if os.path.exists(os.path.join(serving_dir, str(version))):  # made by a tool that does not reserve
            version += 1
            continue
        return version


def push_model(model_dir: str, serving_dir: str) -> Tuple[int, str]:
    """Copies the SavedModel in `model_dir` to `<serving_dir>/<version>/` atomically and verifies it.
    Returns (version, destination); raises PushError (or OSError) when the push did not happen."""
    if not os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        raise PushError(f"{model_dir}: no saved_model.pb, nothing to push")
    os.makedirs(serving_dir, exist_ok=True)
    want = tree_digest(model_dir)
    version = reserve_version(serving_dir)
    dest = os.path.join(serving_dir, str(version))
    tmp = os.path.join(serving_dir, f".tmp-push-{version}-{os.getpid()}")
    try:
        shutil.copytree(model_dir, tmp)
        got = tree_digest(tmp)
        if got != want:
            raise PushError(f"{tmp}: the copy differs from the candidate {model_dir} "
                            f"({len(set(want.items()) ^ set(got.items()))} files differ)")
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if tree_digest(dest) != want:
        raise PushError(f"{dest}: the pushed folder is not the candidate {model_dir}")
    return version, dest
