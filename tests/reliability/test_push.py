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


# Tiny stand-ins for the Trainer and the Evaluator (a given SavedModel, a given blessing) and a consumer
# of the resolved incumbent, so that the real Pusher and the DAG's real incumbent resolver run under
# TFX's LocalDagRunner and MLMD in seconds (module level: TFX needs importable executor classes).
from tfx import types as tfx_types  # noqa: E402
from tfx.dsl.components.base import base_component, base_executor, executor_spec  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter  # noqa: E402


class _ModelSpec(ComponentSpec):
    PARAMETERS = {"source": ExecutionParameter(type=str)}
    INPUTS = {}
    OUTPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}


class _ModelExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        shutil.copytree(exec_properties["source"], os.path.join(output_dict["model"][0].uri, "Format-Serving"),
                        symlinks=True)


class GivenModel(base_component.BaseComponent):
    SPEC_CLASS, EXECUTOR_SPEC = _ModelSpec, executor_spec.ExecutorClassSpec(_ModelExecutor)

    def __init__(self, source):
        super().__init__(spec=_ModelSpec(source=source, model=tfx_types.Channel(type=standard_artifacts.Model)))


class _BlessSpec(ComponentSpec):
    PARAMETERS = {}
    INPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.ModelBlessing)}


class _BlessExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        output_dict["blessing"][0].set_int_custom_property("blessed", 1)
        output_dict["blessing"][0].set_int_custom_property("current_model_id", input_dict["model"][0].id)


class Bless(base_component.BaseComponent):
    SPEC_CLASS, EXECUTOR_SPEC = _BlessSpec, executor_spec.ExecutorClassSpec(_BlessExecutor)

    def __init__(self, model):
        super().__init__(spec=_BlessSpec(model=model, blessing=tfx_types.Channel(type=standard_artifacts.ModelBlessing)))


class _UseSpec(ComponentSpec):
    PARAMETERS = {"out": ExecutionParameter(type=str)}
    INPUTS = {"base_model": ChannelParameter(type=standard_artifacts.Model, optional=True)}
    OUTPUTS = {"result": ChannelParameter(type=standard_artifacts.Model)}


class _UseExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        with open(exec_properties["out"], "w") as f:
            f.write("\n".join(a.uri for a in input_dict.get("base_model", [])))


class UseBaseline(base_component.BaseComponent):
    SPEC_CLASS, EXECUTOR_SPEC = _UseSpec, executor_spec.ExecutorClassSpec(_UseExecutor)

    def __init__(self, base_model, out):
        super().__init__(spec=_UseSpec(base_model=base_model, out=out,
                                       result=tfx_types.Channel(type=standard_artifacts.Model)))


def _run_mini(root, nodes):
    from tfx import v1 as tfx

    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="push-fault", pipeline_root=os.path.join(root, "pipeline"), components=nodes,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.sqlite"))))


def test_the_next_baseline_is_the_latest_pushed_model_not_a_push_that_failed(candidate, tmp_path):
    """Case 8: a blessed model whose push failed was never served, so it must not become the next
    run's baseline. The DAG's own incumbent_resolver (TFX LatestBlessedModelStrategy over the
    Trainer's models and the Pusher's push_blessing), the real Pusher, LocalDagRunner, MLMD."""
    from components.atomic_pusher import Pusher
    from pipeline.pipeline import incumbent_resolver
    from pipeline.run_root import Node

    root, serving = str(tmp_path / "root"), str(tmp_path / "serving")

    def push_run(source):
        trainer = GivenModel(source).with_id(Node.TRAINER)
        bless = Bless(trainer.outputs["model"]).with_id("Evaluator")
        _run_mini(root, [trainer, bless, Pusher(model=trainer.outputs["model"], model_blessing=bless.outputs["blessing"],
                                                serving_dir=serving).with_id(Node.PUSHER)])

    def resolved():
        out = str(tmp_path / "resolved.txt")
        resolver = incumbent_resolver()
        _run_mini(root, [resolver, UseBaseline(resolver.outputs["model"], out)])
        return open(out).read().split()

    assert resolved() == []  # nothing pushed yet: nothing resolved, the consumer still runs
    push_run(candidate)
    (served,) = [v for v in os.listdir(serving) if v.isdigit()]
    first = resolved()
    assert len(first) == 1
    assert tree_digest(os.path.join(first[0], "Format-Serving")) == tree_digest(os.path.join(serving, served))
    with pytest.raises(Exception):  # a newer blessed model whose copy fails half-way: the run fails
        push_run(_copy_that_fails_half_way(candidate, tmp_path))
    assert [v for v in os.listdir(serving) if v.isdigit()] == [served]
    assert resolved() == first  # still the model that reached the serving folder whole
