"""The curated schema agrees with the field table, the one source of truth."""
import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from core.fields import FIELDS, LABELS, TRUTH_FIELDS
from schemas import SCHEMA_DIR

SCHEMA = tfdv.load_schema_text(os.path.join(SCHEMA_DIR, "impressions.pbtxt"))
TYPES = {"string": schema_pb2.BYTES, "int": schema_pb2.INT, "float": schema_pb2.FLOAT}


def _features():
    return {f.name: f for f in SCHEMA.feature}


def test_every_field_is_in_the_schema_with_its_type():
    features = _features()
    assert set(features) == {f.name for f in FIELDS} | set(TRUTH_FIELDS)
    for f in FIELDS:
        assert features[f.name].type == TYPES[f.dtype], f.name


def test_required_fields_and_channel_fields():
    features = _features()
    for f in FIELDS:
        presence = features[f.name].presence.min_fraction
        assert presence == (1.0 if f.required else 0.0), f.name


def test_labels_and_truth_are_not_served():
    features = _features()
    for name in LABELS + TRUTH_FIELDS:
        assert "SERVING" in features[name].not_in_environment, name
    for f in FIELDS:
        if f.role == "feature":
            assert "SERVING" not in features[f.name].not_in_environment, f.name


def test_domains_for_source_and_labels():
    domains = {d.name: set(d.value) for d in SCHEMA.string_domain}
    assert domains["source"] == {"ads", "promotions"}
    features = _features()
    for label in LABELS:
        assert (features[label].int_domain.min, features[label].int_domain.max) == (0, 1)


def test_every_field_is_documented():
    text = open(os.path.join(SCHEMA_DIR, "README.md")).read()
    for f in FIELDS:
        assert f"`{f.name}`" in text, f.name
