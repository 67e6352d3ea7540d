"""Every field of an impression log: the one source of truth for names, types and roles.

The curated schema in `schemas/` and the synthetic and KuaiRand writers follow this table;
`tests/test_schema.py` checks that they agree.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

SOURCES: Tuple[str, ...] = ("promotions", "ads")  # index = transformed `source` id
LIST_LENGTH = 20  # list features are truncated / padded to this many ids


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    dtype: str  # "string" | "int" | "float"
    role: str  # "feature" | "label" | "truth" (never a feature) | "key" | "analysis"
    group: str  # "impression" | "user" | "podcast" | "context" | "creative"
    transform: str = "none"  # "vocab" | "hash" | "numeric" | "list" | "time" | "source" | "none"
    only_on: Optional[str] = None  # present only on impressions of this source
    is_list: bool = False
    buckets: int = 0  # hash buckets ("hash") or OOV buckets ("vocab", "list")
    vocab: Optional[str] = None  # shared vocabulary name (defaults to the field name)
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.only_on is None and not self.is_list

    @property
    def vocab_name(self) -> str:
        return self.vocab or self.name


FIELDS: Tuple[Field, ...] = (
    # impression
    Field("impression_id", "string", "key", "impression", doc="unique id of the impression"),
    Field("event_time", "int", "feature", "context", "time", doc="UTC epoch seconds; hour and weekday are derived"),
    Field("source", "string", "feature", "context", "source", doc="`ads` or `promotions`"),
    Field("surface", "string", "feature", "context", "vocab", buckets=2, doc="where it was shown"),
    Field("market", "string", "feature", "context", "vocab", buckets=2, doc="country market"),
    Field("platform", "string", "feature", "context", "vocab", buckets=1, doc="ios / android / desktop / web"),
    # user
    Field("user_id", "string", "feature", "user", "hash", buckets=20000, doc="listener id (hashed)"),
    Field("user_history", "string", "feature", "user", "list", is_list=True, buckets=20, vocab="podcast_id",
          doc="podcast ids recently streamed by the user (newest first)"),
    Field("user_follows", "string", "feature", "user", "list", is_list=True, buckets=20, vocab="podcast_id",
          doc="podcast ids the user follows"),
    Field("user_tenure_bucket", "string", "feature", "user", "vocab", buckets=1, doc="account age bucket"),
    # podcast
    Field("podcast_id", "string", "feature", "podcast", "vocab", buckets=20, doc="podcast (show) id"),
    Field("episode_id", "string", "feature", "podcast", "hash", buckets=20000, doc="episode id (hashed)"),
    Field("genre", "string", "feature", "podcast", "vocab", buckets=1, doc="podcast genre"),
    Field("creator_id", "string", "feature", "podcast", "vocab", buckets=20, doc="creator / publisher id"),
    Field("podcast_age_days", "int", "feature", "podcast", "numeric", doc="days since launch at the impression"),
    Field("podcast_recent_streams", "int", "feature", "podcast", "numeric",
          doc="streams of the podcast in the 7 days before the impression (no look-ahead)"),
    Field("podcast_prior_impressions", "int", "feature", "podcast", "numeric",
          doc="impressions of the podcast in the log before this one (no look-ahead)"),
    # creative: promotions only
    Field("promo_slot", "int", "feature", "creative", "vocab", only_on="promotions", buckets=1,
          doc="position on the shelf, 1 = first"),
    Field("promo_layout", "string", "feature", "creative", "vocab", only_on="promotions", buckets=1,
          doc="shelf / card / hero"),
    # creative: ads only
    Field("ad_format", "string", "feature", "creative", "vocab", only_on="ads", buckets=1,
          doc="audio / video / display"),
    Field("campaign_id", "string", "feature", "creative", "vocab", only_on="ads", buckets=10, doc="ad campaign id"),
    Field("creative_id", "string", "feature", "creative", "hash", only_on="ads", buckets=5000, doc="ad creative id"),
    # labels
    Field("stream", "int", "label", "impression", doc="1 if the user streamed the podcast after the impression"),
    Field("click", "int", "label", "impression", doc="1 if the user clicked"),
    Field("like", "int", "label", "impression", doc="1 if the user liked / saved"),
    Field("follow", "int", "label", "impression", doc="1 if the user followed the podcast"),
    # analysis only
    Field("popularity_bucket", "string", "analysis", "podcast",
          doc="bucket of podcast_prior_impressions, for cold-start slices (see POPULARITY_BUCKETS)"),
)

# Ground truth of the synthetic generator: present only in synthetic logs, never a model input.
TRUTH_PREFIX = "true_p_"

BY_NAME = {f.name: f for f in FIELDS}
FEATURES = tuple(f for f in FIELDS if f.role == "feature")
FEATURE_NAMES = tuple(f.name for f in FEATURES)
LABELS = tuple(f.name for f in FIELDS if f.role == "label")
TRUTH_FIELDS = tuple(TRUTH_PREFIX + label for label in LABELS)
NON_SERVING_FIELDS = LABELS + TRUTH_FIELDS  # absent from serving requests

# Transformed (model-input) feature names derived from event_time.
TIME_FEATURES = {"hour": 24, "weekday": 7}

# Popularity buckets by earlier impressions of the podcast: (name, lower bound inclusive).
POPULARITY_BUCKETS: Tuple[Tuple[str, int], ...] = (
    ("0_new_lt10", 0),
    ("1_tail_10_99", 10),
    ("2_torso_100_999", 100),
    ("3_head_1000plus", 1000),
)


def popularity_bucket(prior_impressions: int) -> str:
    """Bucket name for a podcast with `prior_impressions` earlier impressions."""
    name = POPULARITY_BUCKETS[0][0]
    for bucket, lower in POPULARITY_BUCKETS:
        if prior_impressions >= lower:
            name = bucket
    return name
