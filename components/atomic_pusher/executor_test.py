"""The Pusher on a filesystem without folder rename: TensorFlow's in-process `ram://` filesystem,
treated with object-store semantics (as gs:// and s3://). Real SavedModels, real TFX artifacts."""
import os
import shutil
import threading
import uuid

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.atomic_pusher import spec
from components.atomic_pusher.executor import Executor, PushError, push_model, tree_digest
from core.versions import has_atomic_rename, marker_path, newest_version, versions


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("candidate") / "model")

    class Doubler(tf.Module):
        def __init__(self):
            self.k = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return {"y": self.k * x}

    module = Doubler()
    tf.saved_model.save(module, folder, signatures={"serving_default": module.__call__})
    return folder


@pytest.fixture
def ram():
    return f"ram://serving-{uuid.uuid4().hex[:8]}"


def test_schemes_without_folder_rename_get_object_store_semantics():
    assert has_atomic_rename("/srv/models") and has_atomic_rename("hdfs://nn/models")
    assert not any(has_atomic_rename(p) for p in ("gs://b/m", "s3://b/m", "ram://m", "az://c/m"))


def test_push_to_ram_is_whole_verified_marked_and_loads(candidate, ram):
    v1, dest = push_model(candidate, ram)
    v2, _ = push_model(candidate, ram)
    assert v2 > v1 and dest == f"{ram}/{v1}"
    assert tree_digest(dest) == tree_digest(candidate)
    assert tf.io.gfile.exists(marker_path(ram, v1)) and tf.io.gfile.exists(marker_path(ram, v2))
    assert newest_version(ram) == f"{ram}/{v2}"
    assert not [n for n in tf.io.gfile.listdir(ram) if n.startswith(".tmp-push")]
    loaded = tf.saved_model.load(newest_version(ram))
    assert loaded.signatures["serving_default"](tf.constant([1.5]))["y"].numpy().tolist() == [3.0]


def test_an_unmarked_version_on_an_object_store_is_never_the_newest(candidate, ram):
    """A push that died while moving objects leaves <v>/ without its marker: lookups skip it, and
    the next push still gets a version above it."""
    served, _ = push_model(candidate, ram)
    half = f"{ram}/{served + 5}"
    tf.io.gfile.makedirs(half)
    tf.io.gfile.copy(os.path.join(candidate, "saved_model.pb"), f"{half}/saved_model.pb")
    assert newest_version(ram) == f"{ram}/{served}"
    assert [os.path.basename(v) for v in versions(ram)] == [str(served)]
    nxt, _ = push_model(candidate, ram)
    assert nxt > served + 5 and newest_version(ram) == f"{ram}/{nxt}"


def test_a_copy_that_fails_half_way_leaves_no_version_and_no_marker(candidate, ram, tmp_path):
    broken = str(tmp_path / "broken")
    shutil.copytree(candidate, broken)
    os.symlink(str(tmp_path / "gone"), os.path.join(broken, "variables", "dangling"))
    with pytest.raises((tf.errors.OpError, OSError)):
        push_model(broken, ram)
    left = [n.rstrip("/") for n in tf.io.gfile.listdir(ram)] if tf.io.gfile.isdir(ram) else []
    assert not [n for n in left if not n.startswith(".version-")], left
    assert newest_version(ram) is None


def test_concurrent_pushes_to_one_object_store_folder_get_distinct_whole_versions(candidate, ram):
    """No exclusive create on object stores: claims + listing. Four pushes released together."""
    barrier, results, errors = threading.Barrier(4), [], []

    def push():
        barrier.wait()
        try:
            results.append(push_model(candidate, ram)[0])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=push) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 4
    want = tree_digest(candidate)
    assert all(tree_digest(f"{ram}/{v}") == want for v in results)
    assert [os.path.basename(v) for v in versions(ram)] == [str(v) for v in sorted(results)]


def _artifacts(candidate_parent, tmp_path, blessed):
    model = standard_artifacts.Model()
    model.uri, model.id = candidate_parent, 42
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", blessed)
    pushed, push_blessing = standard_artifacts.PushedModel(), standard_artifacts.ModelBlessing()
    pushed.uri, push_blessing.uri = f"ram://out-{uuid.uuid4().hex[:6]}/pushed", str(tmp_path / "push_blessing")
    return model, blessing, pushed, push_blessing


@pytest.mark.parametrize("blessed", [1, 0])
def test_executor_pushes_only_a_blessed_model_and_blesses_only_a_verified_push(candidate, ram, tmp_path, blessed):
    parent = str(tmp_path / "model")
    shutil.copytree(candidate, os.path.join(parent, "Format-Serving"))
    model, blessing, pushed, push_blessing = _artifacts(parent, tmp_path, blessed)
    Executor().Do({spec.MODEL_KEY: [model], spec.MODEL_BLESSING_KEY: [blessing]},
                  {spec.PUSHED_MODEL_KEY: [pushed], spec.PUSH_BLESSING_KEY: [push_blessing]},
                  {spec.SERVING_DIR_KEY: ram})
    assert pushed.get_int_custom_property("pushed") == blessed
    assert push_blessing.get_int_custom_property("blessed") == blessed
    assert push_blessing.get_int_custom_property("current_model_id") == 42
    if blessed:
        dest = pushed.get_string_custom_property("pushed_destination")
        assert dest == newest_version(ram) and dest == f"{ram}/{pushed.get_string_custom_property('pushed_version')}"
        assert tree_digest(dest) == tree_digest(candidate)
        assert os.path.exists(tmp_path / "push_blessing" / "BLESSED")
    else:
        assert newest_version(ram) is None and not tf.io.gfile.exists(ram)


def test_a_folder_without_a_saved_model_is_not_pushed_on_an_object_store(ram, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PushError, match="no saved_model.pb"):
        push_model(str(tmp_path / "empty"), ram)
    assert not tf.io.gfile.exists(ram)
