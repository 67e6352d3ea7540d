"""The process environment every entry point needs, set in this one place: the Keras switch
(TFX 1.16, TFMA and TFRS use Keras 2, so `TF_USE_LEGACY_KERAS=1` must be set before TensorFlow
is imported), warning filters for the pinned stack, and a quiet TensorFlow import.

Every package of the project imports this module from its `__init__` (so TFX executors, which
import their module by name, get it too), and so do the tests' conftest and the bench scripts.
"""
import contextlib as _contextlib
import os as _os

_os.environ["TF_USE_LEGACY_KERAS"] = "1"

import warnings as _warnings

# google-api-core warns on every import under Python 3.10, which the pinned TFX stack needs.
_warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
# google-auth (grpcio version) and google-cloud-aiplatform (storage version) warn about pinned
# versions on import, also on a normal run: not actionable by a user of this pipeline.
_warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
# TFMA's interpolated PR-AUC divides by zero on slices without positives (small popularity
# buckets); the metric is still reported (exact AP, the gating metric, is computed separately).
_warnings.filterwarnings("ignore", category=RuntimeWarning,
                         module=r"tensorflow_model_analysis\.metrics\.confusion_matrix_metrics")

# Lines TensorFlow's C++ runtime prints on import on every CPU-only machine: CUDA plugin factories
# registered twice (logged as errors although harmless), missing CUDA drivers / TensorRT, CPU flags.
_IMPORT_NOISE = ("Unable to register cuFFT factory", "Unable to register cuDNN factory",
                 "Unable to register cuBLAS factory", "Could not find cuda drivers", "TF-TRT Warning",
                 "This TensorFlow binary is optimized", "To enable the following instructions",
                 "WARNING: All log messages before absl::InitializeLog()")


# Lines Grappler prints the first time it optimizes a SavedModel's serving function: its cost
# estimator cannot size ops whose input shapes are unknown inside the tf.Transform graph (the
# MMoE gates' and attention's Softmax). Harmless; printed through absl, so TF_CPP_MIN_LOG_LEVEL
# does not hide them.
GRAPPLER_NOISE = ("op_level_cost_estimator.cc", "WARNING: All log messages before absl::InitializeLog()")


# What the DirectRunner's worker processes (`multi_processing`) print on start: each imports
# TensorFlow and the Google clients afresh, in a process where the filters above do not apply.
# A matched warning's second line (`  warnings.warn(...)`) goes with it.
WORKER_NOISE = _IMPORT_NOISE + GRAPPLER_NOISE + (
    "FutureWarning: You are using a non-supported Python version",
    "FutureWarning: grpcio < 1.83.0 does not support Post-Quantum Cryptography",
    "Couldn\\'t find python-snappy", "Couldn't find python-snappy")
_CONTINUATION = "  warnings.warn("


@_contextlib.contextmanager
def streaming_filtered_stderr(noise=WORKER_NOISE):
    """Runs its block with file descriptor 2 (inherited by child processes, such as the DirectRunner's
    workers) a pipe; a thread passes to the real stderr, as it comes, every line that holds none of
    `noise` and is not the `  warnings.warn(` line right under one that did. A plain pass-through where
    stderr is no real file."""
    import sys
    import threading

    try:
        sys.stderr.flush()
        saved = _os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    read_end, write_end = _os.pipe()
    _os.dup2(write_end, 2)
    _os.close(write_end)

    def pump():
        was_noise = False
        with open(read_end, "rb", closefd=True) as pipe:
            for raw in pipe:
                line = raw.decode(errors="replace")
                is_noise = any(n in line for n in noise)
                if not is_noise and not (was_noise and line.startswith(_CONTINUATION)):
                    _os.write(saved, raw)
                was_noise = is_noise

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        _os.dup2(saved, 2)  # closes this process's write end of the pipe
        thread.join(timeout=5)  # a child still holding the pipe keeps it open: do not wait for it
        if not thread.is_alive():
            _os.close(saved)


@_contextlib.contextmanager
def filtered_stderr(noise=_IMPORT_NOISE):
    """Runs its block with file descriptor 2 captured; afterwards every captured line that holds
    none of `noise` is written to stderr (in order). Catches what C++ libraries print, which
    Python's sys.stderr does not see. A plain pass-through where stderr is no real file."""
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = _os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded, some notebooks)
        yield
        return
    with tempfile.TemporaryFile() as captured:
        _os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            _os.dup2(saved, 2)
            _os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not any(n in line for n in noise):
                    sys.stderr.write(line)
            sys.stderr.flush()


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ import-time noise filtered out of stderr; every other line it
    prints is passed on. A no-op once TensorFlow is imported."""
    import sys

    if "tensorflow" in sys.modules:
        return
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr(_IMPORT_NOISE):
        import tensorflow  # noqa: F401
