"""Fault matrix, pushes: two pushes in the same second to one serving folder, a failed copy, and
the pushed folder checked against the candidate. Real SavedModels, real processes."""
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from components.atomic_pusher.executor import PushError, push_model, tree_digest
from tests.conftest import REPO


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("push") / "model")

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return {"y": 2 * x}

    module = Doubler()
    tf.saved_model.save(module, folder, signatures={"serving_default": module.__call__})
    return folder


_PUSH_ON_GO = """
import os, sys, time
from components.atomic_pusher.executor import push_model
print("ready", flush=True)
while not os.path.exists(sys.argv[3]):  # both processes imported and waiting: go together
    time.sleep(0.001)
started = time.time()
print(push_model(sys.argv[1], sys.argv[2])[0], started)
"""


def test_two_processes_pushing_in_the_same_second_get_two_whole_versions(candidate, tmp_path):
    serving = str(tmp_path / "serving")
    go = str(tmp_path / "go")
    procs = [subprocess.Popen([sys.executable, "-c", _PUSH_ON_GO, candidate, serving, go], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=REPO))
             for _ in range(2)]
    for p in procs:  # however slow the imports on a loaded machine, neither starts before both are ready
        assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
    open(go, "w").close()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    versions = [int(o[0].split()[0]) for o in outs]
    started = [float(o[0].split()[1]) for o in outs]
    assert max(started) - min(started) < 0.5, "the pushes did not start together: the test proves nothing"
    assert len(set(versions)) == 2
    want = tree_digest(candidate)
    for v in versions:
        assert tree_digest(os.path.join(serving, str(v))) == want  # whole, and the candidate
    assert sorted(n for n in os.listdir(serving) if n.isdigit()) == sorted(str(v) for v in versions)
    assert not [n for n in os.listdir(serving) if n.startswith(".tmp")]


def test_versions_are_unique_and_increasing_within_one_second(candidate, tmp_path):
    serving = str(tmp_path / "serving")
    versions = [push_model(candidate, serving)[0] for _ in range(3)]
    assert versions == sorted(versions) and len(set(versions)) == 3
    loaded = tf.saved_model.load(os.path.join(serving, str(versions[-1])))
    assert loaded.signatures["serving_default"](tf.constant([1.5]))["y"].numpy().tolist() == [3.0]


def _copy_that_fails_half_way(candidate, tmp_path):
    """A copy of the candidate with a dangling link among its variables: unreadable mid-copy."""
    broken = str(tmp_path / "broken")
    shutil.copytree(candidate, broken)
    os.symlink(str(tmp_path / "gone"), os.path.join(broken, "variables", "dangling"))
    return broken


def test_failed_copy_leaves_no_version_folder(candidate, tmp_path):
    broken = _copy_that_fails_half_way(candidate, tmp_path)
    serving = str(tmp_path / "serving")
    with pytest.raises(Exception):
        push_model(broken, serving)
    assert [n for n in os.listdir(serving) if not n.startswith(".version-")] == []  # no <version>/, no temp


def test_a_folder_without_a_saved_model_is_not_pushed(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PushError, match="no saved_model.pb"):
        push_model(str(tmp_path / "empty"), str(tmp_path / "serving"))
    assert not os.path.exists(tmp_path / "serving")


def test_the_next_baseline_is_the_latest_pushed_model_not_a_push_that_failed(candidate, tmp_path):
    """Case 8: a blessed model whose push failed was never served, so it must not become the next
    run's baseline; the incumbent stays the latest model that reached the serving folder whole."""
    from pipeline.configs import PipelineConfig
    from pipeline.local_runner import with_incumbent

    serving = str(tmp_path / "serving")
    served, _ = push_model(candidate, serving)
    with pytest.raises(Exception):  # a newer blessed candidate whose copy fails half-way
        push_model(_copy_that_fails_half_way(candidate, tmp_path), serving)
    os.makedirs(os.path.join(serving, str(served + 10), "variables"))  # a stray newer folder, no saved_model.pb
    config = with_incumbent(PipelineConfig(data=str(tmp_path), root=str(tmp_path / "root"), serving_dir=serving))
    staged = os.path.join(config.baseline_model, "Format-Serving")
    assert tree_digest(staged) == tree_digest(os.path.join(serving, str(served)))
    assert tree_digest(staged) == tree_digest(candidate)
