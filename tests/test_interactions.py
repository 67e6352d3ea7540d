"""Target-aware interactions (core.fields.DERIVED) and the encoder families, end to end on hand-made rows.

The derived inputs are computed by a real tf.Transform analysis (Beam) of the project's
`preprocessing_fn` on a few hand-made impressions, compared with a plain-Python reference, with
the numpy features of the peers (`bench/peer.py`), and through an exported model's signatures;
each encoder family trains a few steps and serves through `serving_default` and `serving_raw`.
"""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from core.fields import CATEGORIES, DERIVED_NAMES, FEATURE_NAMES, OPTIONAL_NAMES as OPTIONAL, SOURCES
from models.config import ENCODER_FAMILIES, ModelConfig

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (source, candidate, genre, history, follows): a genre of a history podcast is known only if that
# podcast was a candidate in these (train) rows: p1 comedy, p2 news, p3 comedy, p4 sports.
ROWS = [
    ("promotions", "p1", "comedy", ["p2", "p1", "p3", "p9"], ["p1"]),
    ("promotions", "p2", "news", ["p1", "p3"], []),
    ("ads", "p3", "comedy", [], ["p2"]),
    ("ads", "p4", "sports", ["p4", "p4", "p1"], ["p4", "p2"]),
    ("promotions", "p1", "comedy", ["p5"], []),
    ("ads", "p2", "news", ["p2"], ["p1"]),
]
GENRE = {"p1": "comedy", "p2": "news", "p3": "comedy", "p4": "sports"}


def reference(row):
    """The derived inputs of one row, by their definitions in core/fields.py."""
    _, cand, genre, hist, follows = row
    hits = sum(h == cand for h in hist)
    return {"in_history": float(hits > 0), "history_hits": float(hits), "in_follows": float(cand in follows),
            "genre_share": sum(GENRE.get(h) == genre for h in hist) / max(len(hist), 1),
            "history_length": float(np.log1p(len(hist)))}


def raw_instance(i, row):
    source, cand, genre, hist, follows = row
    inst = {"impression_id": [f"i{i}"], "event_time": [1_700_000_000 + 3600 * i], "source": [source],
            "surface": ["home"], "market": ["SE"], "platform": ["ios"], "user_id": [f"u{i % 3}"],
            "user_history": hist, "user_follows": follows, "user_tenure_bucket": ["1y_3y"],
            "podcast_id": [cand], "episode_id": [f"{cand}-e1"], "genre": [genre], "creator_id": ["c1"],
            "podcast_age_days": [10 + i], "podcast_recent_streams": [i], "podcast_prior_impressions": [i * 3],
            "promo_slot": [1 + i] if source == "promotions" else [],
            "promo_layout": ["card"] if source == "promotions" else [],
            "ad_format": ["audio"] if source == "ads" else [], "campaign_id": ["k1"] if source == "ads" else [],
            "creative_id": ["cr1"] if source == "ads" else [],
            # the optional attributes on even rows only: absent (no value) on the others
            **(dict(user_activity_level=["high" if i % 4 == 0 else "low"], user_following_range=["1-2"],
                    user_followers_range=["0"], episode_duration_s=[1200 + 60 * i],
                    episode_format=["full" if i % 4 == 0 else "clip"]) if i % 2 == 0 else
               {name: [] for name in OPTIONAL}),
            "stream": [i % 2], "click": [1], "like": [0], "follow": [i % 3 == 0], "popularity_bucket": ["0_new_lt10"]}
    inst["follow"] = [int(inst["follow"][0])]
    return inst


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """(analysed rows, TFTransformOutput) of a real tf.Transform analysis of ROWS."""
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from models.preprocessing import preprocessing_fn
    from schemas import SCHEMA_FILE

    schema = text_format.Parse(open(SCHEMA_FILE).read(), schema_pb2.Schema())
    spec = {k: v for k, v in schema_utils.schema_as_feature_spec(schema).feature_spec.items()
            if not k.startswith("true_p_")}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    out = str(tmp_path_factory.mktemp("tft"))
    with tft_beam.Context(temp_dir=os.path.join(out, "tmp"), force_tf_compat_v1=False):
        (rows, _), transform_fn = ([raw_instance(i, r) for i, r in enumerate(ROWS)], metadata) | \
            tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=False)
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    metadata_io.write_metadata(metadata, os.path.join(out, tft.TFTransformOutput.RAW_METADATA_DIR))
    return rows, tft.TFTransformOutput(out)


def test_derived_inputs_in_the_transform_graph_equal_the_reference(analysed):
    rows, _ = analysed
    for row, got in zip(ROWS, rows):
        want = reference(row)
        for name in DERIVED_NAMES:
            assert float(np.ravel(got[name])[0]) == pytest.approx(want[name], abs=1e-6), (row, name)
    assert [float(np.ravel(r["in_history"])[0]) for r in rows] == [1, 0, 0, 1, 0, 1]


def test_optional_attributes_are_inputs_and_an_absent_one_reads_as_missing(analysed):
    rows, tft_out = analysed
    assert set(OPTIONAL) == {"user_activity_level", "user_following_range", "user_followers_range",
                             "episode_duration_s", "episode_format"}
    value = {name: [np.ravel(r[name])[0] for r in rows] for name in OPTIONAL}
    absent, present = slice(1, None, 2), slice(0, None, 2)
    for name in ("user_activity_level", "episode_format"):  # rows 0, 4: one value; row 2 another
        ids = value[name]
        assert ids[0] == ids[4] != ids[2], name
        assert len(set(ids[absent])) == 1 and ids[1] not in set(ids[present]), name
        assert max(ids) < tft_out.vocabulary_size_by_name(CATEGORIES), name  # every value in the vocabulary
    durations = np.array(value["episode_duration_s"])
    assert len(set(durations[absent])) == 1 and durations[1] < durations[present].min()  # 0 < any duration
    assert list(np.argsort(durations[present])) == [0, 1, 2]  # longer episode, larger input


def test_vocabulary_fields_share_one_vocabulary_with_disjoint_ids(analysed):
    """The CATEGORIES fields: one vocabulary of "field=value" keys (one analyzer), one table, and
    the same value in two fields ("0" in promo_slot and user_followers_range...) two rows."""
    import itertools

    from models.preprocessing import CATEGORY_FIELDS, CATEGORY_OOV, cardinalities, field_values

    rows, tft_out = analysed
    assert {"surface", "market", "genre", "promo_slot", "ad_format", "episode_format", "creator_id", "campaign_id"} <= \
        {f.name for f in CATEGORY_FIELDS}
    ids = {f.name: {int(np.ravel(r[f.name])[0]) for r in rows} for f in CATEGORY_FIELDS}
    for a, b in itertools.combinations(ids, 2):
        assert not ids[a] & ids[b], (a, b)
    vocab = tft_out.vocabulary_by_name(CATEGORIES)
    assert max(max(v) for v in ids.values()) < len(vocab)
    assert len(vocab) == sum(len(v) for v in ids.values())  # one key per (field, value) seen
    assert cardinalities(tft_out)[CATEGORIES] == len(vocab) + CATEGORY_OOV
    fields = {f.name: f for f in CATEGORY_FIELDS}
    assert field_values(tft_out, fields["surface"]) == [b"home"]
    assert sorted(field_values(tft_out, fields["genre"])) == [b"comedy", b"news", b"sports"]
    assert sorted(field_values(tft_out, fields["promo_layout"])) == [b"", b"card"]  # "" on ads rows
    with pytest.raises(Exception):  # no vocabulary of its own
        tft_out.vocabulary_by_name("surface")


def _serialized(inst, spec) -> bytes:
    """One raw impression as ExampleGen writes it: a tf.Example of the schema's types."""
    feature = {}
    for name, values in inst.items():
        dtype = spec[name].dtype
        if dtype == tf.string:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        elif dtype == tf.int64:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_raw_examples_read_through_the_graph_equal_transforms_own_output(analysed, tmp_path):
    """Transform does not materialize (pipeline/pipeline.py): the Tuner, the Trainer and the study read
    ExampleGen's raw examples through the Transform graph (`models.sampling.Decoder`). Every feature
    equals what tf.Transform's Beam transform wrote for the same rows; the source filter reads the
    raw source name."""
    from models.sampling import examples_decoder, read_examples, source_counts

    rows, tft_out = analysed
    spec = tft_out.raw_feature_spec()
    path = str(tmp_path / "raw.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as w:
        for i, row in enumerate(ROWS):
            w.write(_serialized(raw_instance(i, row), spec))
    decoder = examples_decoder(tft_out, path)
    assert decoder.raw
    got = list(read_examples(path, decoder))
    assert len(got) == len(rows)
    for want, have in zip(rows, got):
        assert set(have) == set(want)
        for name, value in want.items():
            np.testing.assert_allclose(np.ravel(have[name].numpy()), np.ravel(value), rtol=1e-6, err_msg=name)
    ads = SOURCES.index("ads")
    assert [int(x["source"]) for x in read_examples(path, decoder, sources=["ads"])] == [ads] * 3
    assert [int(np.ravel(x["podcast_id"])[0]) for x in read_examples(path, decoder, sources=["ads"])] == \
        [int(np.ravel(r["podcast_id"])[0]) for r in rows if int(np.ravel(r["source"])[0]) == ads]
    assert source_counts(path) == {"promotions": 3, "ads": 3}


def test_peer_numpy_features_equal_the_reference():
    import pyarrow as pa

    from bench.peer import derived_numpy

    table = pa.table({"podcast_id": [r[1] for r in ROWS], "genre": [r[2] for r in ROWS],
                      "user_history": pa.array([r[3] for r in ROWS], pa.list_(pa.string())),
                      "user_follows": pa.array([r[4] for r in ROWS], pa.list_(pa.string()))})
    got = derived_numpy(table, np.arange(len(ROWS)))
    for i, row in enumerate(ROWS):
        for name, value in reference(row).items():
            assert got[name][i] == pytest.approx(value, abs=1e-6), (row, name)


def _dense_raw(loaded):
    """The raw rows as serving_raw's dense named tensors (lists padded with "", absent fields "" / 0)."""
    spec = loaded.signatures["serving_raw"].structured_input_signature[1]
    insts = [raw_instance(i, r) for i, r in enumerate(ROWS)]
    out = {}
    for name, s in spec.items():
        if s.shape.rank == 2:
            width = max(1, max(len(inst[name]) for inst in insts))
            out[name] = tf.constant([inst[name] + [""] * (width - len(inst[name])) for inst in insts])
        else:
            fill = "" if s.dtype == tf.string else 0
            out[name] = tf.constant([(inst[name] or [fill])[0] for inst in insts], s.dtype)
    return out


def _examples():
    exs = []
    for i, r in enumerate(ROWS):
        ex = tf.train.Example()
        for name, values in raw_instance(i, r).items():
            if name not in FEATURE_NAMES or not values:
                continue
            if isinstance(values[0], str):
                ex.features.feature[name].bytes_list.value.extend(v.encode() for v in values)
            else:
                ex.features.feature[name].int64_list.value.extend(int(v) for v in values)
        exs.append(ex.SerializeToString())
    return tf.constant(exs)


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_each_family_trains_and_serves_the_derived_inputs_through_both_signatures(family, analysed, tmp_path):
    from models.export import _to_raw, export, serving_feature_spec
    from models.model import build_model, dummy_features
    from models.preprocessing import cardinalities

    rows, tft_out = analysed
    # DLRM dot interaction on; with PLE the podcast table is wider, so its embeddings are projected
    cfg = ModelConfig(encoder_family=family, experts=2, encoder_units=(8,), tower_units=(4,), embedding_dim=4,
                      list_embedding_dim=6 if family == "ple" else 4, cross_layers=1, dot_interaction=True)
    model = build_model(cfg, cardinalities(tft_out), cfg.tasks())
    model(dummy_features(), training=False)
    spec = tft_out.transformed_feature_spec()
    batch = {k: tf.constant(np.stack([np.asarray(r[k]).reshape(spec[k].shape) for r in rows]))
             for k in spec}
    before = [w.copy() for w in model.get_weights()]
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(3), epochs=1, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    out_dir = str(tmp_path / "model")
    export(model, tft_out, out_dir, cfg)
    loaded = tf.saved_model.load(out_dir)
    raw = _dense_raw(loaded)
    by_raw = loaded.signatures["serving_raw"](**raw)
    by_examples = loaded.signatures["serving_default"](examples=_examples())
    expected = {k: tf.sigmoid(v).numpy() for k, v in model(batch, training=False).items()}
    for head, probs in expected.items():
        np.testing.assert_allclose(by_raw[head].numpy(), probs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(by_examples[head].numpy(), probs, rtol=1e-5, atol=1e-6)
    # the Transform layer the export saved, on serving_raw's own conversion of the dense raw tensors
    # (the export keeps no Keras layer traces, so the layer is called before saving; that the saved
    # signatures transform alike is the equality of their probabilities above)
    served = model.tft_layer(_to_raw(raw, serving_feature_spec(tft_out)))
    for i, row in enumerate(ROWS):
        for name, value in reference(row).items():
            assert float(served[name][i]) == pytest.approx(value, abs=1e-6), (family, row, name)
    assert set(SOURCES) == {"promotions", "ads"}
