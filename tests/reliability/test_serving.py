"""Fault matrix, serving: an unknown `source` and a garbage record are errors, not scores."""
import os

import pytest
import tensorflow as tf

from models.export import check_serialized_examples, check_source

SPEC = {"source": tf.io.FixedLenFeature([1], tf.string), "n": tf.io.VarLenFeature(tf.int64)}


def _example(source):
    return tf.train.Example(features=tf.train.Features(feature={
        "source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[source])),
        "n": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2]))})).SerializeToString()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A SavedModel with the export's checks in its signature, loaded back as a server would."""
    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, serialized):
            parsed = tf.io.parse_example(check_serialized_examples(serialized), SPEC)
            return {"source": check_source(parsed["source"])}

    folder = str(tmp_path_factory.mktemp("serve") / "model")
    module = Model()
    tf.saved_model.save(module, folder, signatures={"serving_default": module.serve})
    return tf.saved_model.load(folder).signatures["serving_default"]


def test_known_sources_pass(served):
    out = served(serialized=tf.constant([_example(b"ads"), _example(b"promotions")]))
    assert out["source"].numpy().ravel().tolist() == [b"ads", b"promotions"]


@pytest.mark.parametrize("bad", [b"Ads", b"", b"video", b"\xff"])
def test_unknown_source_is_invalid_argument_naming_feature_and_value(served, bad):
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature source must be one of"):
        served(serialized=tf.constant([_example(b"ads"), _example(bad)]))


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x80garbage\xc3", b"\x0a\x03\xff\xff\xff"])
def test_a_garbage_record_is_a_tensorflow_error_not_unicode_decode_error(served, garbage):
    with pytest.raises(tf.errors.OpError) as err:
        served(serialized=tf.constant([_example(b"ads"), garbage]))
    str(err.value)  # readable


@pytest.mark.slow
def test_pushed_model_refuses_unknown_sources_through_both_signatures(pipeline_run):
    """The real exported model (shared pipeline run of tests/conftest.py)."""
    import glob

    from pipeline.run_root import Node, RunRoot

    model = tf.saved_model.load(pipeline_run["summary"].pushed_model)
    examples = RunRoot(pipeline_run["root"]).artifact(Node.EXAMPLE_GEN, "examples")
    records = [r.numpy() for r in tf.data.TFRecordDataset(glob.glob(os.path.join(examples, "Split-test", "*.gz")),
                                                          compression_type="GZIP").take(2)]
    ex = tf.train.Example.FromString(records[0])
    ex.features.feature["source"].bytes_list.value[:] = [b"Ads"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature source must be one of"):
        model.signatures["serving_default"](examples=tf.constant([records[1], ex.SerializeToString()]))
    raw = model.signatures["serving_raw"]
    specs = raw.structured_input_signature[1]
    parsed = tf.io.parse_example(tf.constant(records), {
        k: (tf.io.VarLenFeature(s.dtype) if s.shape.rank == 2 else tf.io.FixedLenFeature([], s.dtype,
            default_value="" if s.dtype == tf.string else 0)) for k, s in specs.items()})
    inputs = {k: (tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v) for k, v in parsed.items()}
    raw(**inputs)  # known sources score
    inputs["source"] = tf.constant([b"video", b"promotions"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature source must be one of"):
        raw(**inputs)
    with pytest.raises(tf.errors.OpError):
        model.signatures["serving_default"](examples=tf.constant([records[0], b"\xff\xfe\x80garbage"]))
