"""Serving folders: numbered model versions (`<serving>/<N>/saved_model.pb`), the newest one wins.

The one definition of "the newest pushed version", used by the local runner (the incumbent),
batch scoring, warm start and the schedule. Paths may be local or any TensorFlow filesystem.
"""
from __future__ import annotations

import os
from typing import List, Optional


def versions(serving_dir: str, holding: str = "saved_model.pb") -> List[str]:
    """Version folders of `serving_dir` that hold `holding`, oldest first (numerically, not as text)."""
    import tensorflow as tf

    if not serving_dir or not tf.io.gfile.isdir(serving_dir):
        return []
    names = sorted((v.rstrip("/") for v in tf.io.gfile.listdir(serving_dir) if v.rstrip("/").isdigit()), key=int)
    return [os.path.join(serving_dir, v) for v in names if tf.io.gfile.exists(os.path.join(serving_dir, v, holding))]


def newest_version(serving_dir: str, holding: str = "saved_model.pb") -> Optional[str]:
    """The newest version folder holding `holding` (the model a server would load), or None."""
    found = versions(serving_dir, holding)
    return found[-1] if found else None
