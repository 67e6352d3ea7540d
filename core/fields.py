"""Every field of an impression log: the one source of truth for names, types and roles.

The curated schema in `schemas/` and the synthetic and KuaiRand writers follow this table;
`tests/test_schema.py` checks that they agree.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Optional, Tuple

PROMOTIONS, ADS = "promotions", "ads"
SOURCES: Tuple[str, ...] = (PROMOTIONS, ADS)  # index = transformed `source` id
LIST_LENGTH = 20  # list features are truncated / padded to this many ids
# The vocabulary fields other than podcast ids (`vocab=CATEGORIES`) share one vocabulary of "field=value"
# keys and one embedding table (disjoint rows per field, the same rows as one table each): one Transform
# analyzer instead of one per field, whose Beam stages were most of Transform's analysis time
# (docs/results/performance.md).
CATEGORIES = "categories"


class Dtype(str, enum.Enum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"


class Role(str, enum.Enum):
    FEATURE = "feature"  # a model input, sent at serving
    LABEL = "label"
    KEY = "key"  # identifies the row; never a model input
    ANALYSIS = "analysis"  # for slicing reports only


class Transform(str, enum.Enum):
    """How Transform turns a raw feature into model inputs (specs in `models/preprocessing.py`)."""
    VOCAB = "vocab"  # vocabulary ids with OOV buckets
    HASH = "hash"  # hash buckets
    NUMERIC = "numeric"  # z-score of log1p
    LIST = "list"  # padded id list sharing a vocabulary
    TIME = "time"  # hour and weekday
    SOURCE = "source"  # index in SOURCES
    NONE = "none"  # not a model input


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    dtype: Dtype
    role: Role
    transform: Transform = Transform.NONE
    only_on: Optional[str] = None  # present only on impressions of this source
    buckets: int = 0  # hash buckets ("hash") or OOV buckets ("vocab", "list")
    vocab: Optional[str] = None  # shared vocabulary name (defaults to the field name)
    doc: str = ""
    # an attribute that real logs may or may not carry: absent (no column, or null) it is read as
    # "" / 0 like a one-source field on the other source, and the schema does not require it
    optional: bool = False

    @property
    def is_list(self) -> bool:
        return self.transform == Transform.LIST

    @property
    def required(self) -> bool:
        return self.only_on is None and not self.is_list and not self.optional

    @property
    def vocab_name(self) -> str:
        return self.vocab or self.name


FIELDS: Tuple[Field, ...] = (
    # impression
    Field("impression_id", Dtype.STRING, Role.KEY, doc="unique id of the impression"),
    Field("event_time", Dtype.INT, Role.FEATURE, Transform.TIME, doc="UTC epoch seconds; hour and weekday are derived"),
    Field("source", Dtype.STRING, Role.FEATURE, Transform.SOURCE, doc="`ads` or `promotions`"),
    Field("surface", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=2, vocab=CATEGORIES,
          doc="where it was shown"),
    Field("market", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=2, vocab=CATEGORIES, doc="country market"),
    Field("platform", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=1, vocab=CATEGORIES,
          doc="ios / android / desktop / web"),
    # user
    Field("user_id", Dtype.STRING, Role.FEATURE, Transform.HASH, buckets=20000, doc="listener id (hashed)"),
    Field("user_history", Dtype.STRING, Role.FEATURE, Transform.LIST, buckets=20, vocab="podcast_id",
          doc="podcast ids recently streamed by the user (newest first)"),
    Field("user_follows", Dtype.STRING, Role.FEATURE, Transform.LIST, buckets=20, vocab="podcast_id",
          doc="podcast ids the user follows"),
    Field("user_tenure_bucket", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=1, vocab=CATEGORIES,
          doc="account age bucket"),
    Field("user_activity_level", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=1, vocab=CATEGORIES,
          optional=True, doc="how active the listener is (low / middle / high / full)"),
    Field("user_following_range", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=1, vocab=CATEGORIES,
          optional=True, doc="range of the number of shows / accounts the listener follows"),
    Field("user_followers_range", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=1, vocab=CATEGORIES,
          optional=True, doc="range of the listener's own followers (listeners who publish or share)"),
    # podcast
    Field("podcast_id", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=20, doc="podcast (show) id"),
    Field("episode_id", Dtype.STRING, Role.FEATURE, Transform.HASH, buckets=20000, doc="episode id (hashed)"),
    Field("genre", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=1, vocab=CATEGORIES, doc="podcast genre"),
    Field("creator_id", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=20, vocab=CATEGORIES,
          doc="creator / publisher id"),
    Field("episode_duration_s", Dtype.INT, Role.FEATURE, Transform.NUMERIC, optional=True,
          doc="episode length in seconds"),
    Field("episode_format", Dtype.STRING, Role.FEATURE, Transform.VOCAB, buckets=1, vocab=CATEGORIES, optional=True,
          doc="episode format or upload type (full episode, trailer, clip, ...)"),
    Field("podcast_age_days", Dtype.INT, Role.FEATURE, Transform.NUMERIC, doc="days since launch at the impression"),
    Field("podcast_recent_streams", Dtype.INT, Role.FEATURE, Transform.NUMERIC,
          doc="streams of the podcast in the 7 days before the impression (no look-ahead)"),
    Field("podcast_prior_impressions", Dtype.INT, Role.FEATURE, Transform.NUMERIC,
          doc="impressions of the podcast in the log before this one (no look-ahead)"),
    # creative: promotions only
    Field("promo_slot", Dtype.INT, Role.FEATURE, Transform.VOCAB, only_on=PROMOTIONS, buckets=1, vocab=CATEGORIES,
          doc="position on the shelf, 1 = first"),
    Field("promo_layout", Dtype.STRING, Role.FEATURE, Transform.VOCAB, only_on=PROMOTIONS, buckets=1, vocab=CATEGORIES,
          doc="shelf / card / hero"),
    # creative: ads only
    Field("ad_format", Dtype.STRING, Role.FEATURE, Transform.VOCAB, only_on=ADS, buckets=1, vocab=CATEGORIES,
          doc="audio / video / display"),
    Field("campaign_id", Dtype.STRING, Role.FEATURE, Transform.VOCAB, only_on=ADS, buckets=10, vocab=CATEGORIES,
          doc="ad campaign id"),
    Field("creative_id", Dtype.STRING, Role.FEATURE, Transform.HASH, only_on=ADS, buckets=5000, doc="ad creative id"),
    # labels
    Field("stream", Dtype.INT, Role.LABEL, doc="1 if the user streamed the podcast after the impression"),
    Field("click", Dtype.INT, Role.LABEL, doc="1 if the user clicked"),
    Field("like", Dtype.INT, Role.LABEL, doc="1 if the user liked / saved"),
    Field("follow", Dtype.INT, Role.LABEL, doc="1 if the user followed the podcast"),
    # analysis only
    Field("popularity_bucket", Dtype.STRING, Role.ANALYSIS,
          doc="bucket of podcast_prior_impressions, for cold-start slices (see POPULARITY_BUCKETS)"),
)


@dataclasses.dataclass(frozen=True)
class Derived:
    """A model input that Transform derives from several raw fields (the candidate against the
    user's lists): computed in the Transform graph, so both serving signatures compute it too.
    Every derived input is a dense float32 [batch] tensor, passed to the model unscaled."""
    name: str
    reads: Tuple[str, ...]  # the raw fields it is computed from
    doc: str = ""


# Target-aware interactions: the first features any practitioner writes for a recommender.
DERIVED: Tuple[Derived, ...] = (
    Derived("in_history", ("podcast_id", "user_history"),
            doc="1 if the candidate podcast is in the user's listening history, else 0"),
    Derived("history_hits", ("podcast_id", "user_history"),
            doc="times the candidate podcast occurs in the user's listening history (whole list)"),
    Derived("in_follows", ("podcast_id", "user_follows"),
            doc="1 if the user follows the candidate podcast, else 0"),
    Derived("genre_share", ("genre", "user_history"),
            doc="share of the user's history (whole list) in the candidate's genre, the genre of a "
                "history podcast read from the training split's (podcast_id, genre) pairs; 0 for an "
                "empty history"),
    Derived("history_length", ("user_history",), doc="log1p of the number of podcasts in the history"),
)
DERIVED_NAMES = tuple(d.name for d in DERIVED)

# Ground truth of the synthetic generator: present only in synthetic logs, never a model input.
TRUTH_PREFIX = "true_p_"

FEATURES = tuple(f for f in FIELDS if f.role == Role.FEATURE)
OPTIONAL_NAMES = tuple(f.name for f in FEATURES if f.optional)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
LABELS = tuple(f.name for f in FIELDS if f.role == Role.LABEL)
TRUTH_FIELDS = tuple(TRUTH_PREFIX + label for label in LABELS)

# A podcast with fewer earlier impressions than this is "new" (cold start) in every report.
COLD_START_PRIOR = 10
# Popularity buckets by earlier impressions of the podcast: (name, lower bound inclusive).
POPULARITY_BUCKETS: Tuple[Tuple[str, int], ...] = (
    ("0_new_lt10", 0),
    ("1_tail_10_99", COLD_START_PRIOR),
    ("2_torso_100_999", 100),
    ("3_head_1000plus", 1000),
)


# Listening-volume buckets (the seed's "recent listening volume"): streams of the podcast in the 7 days
# before the impression (`podcast_recent_streams`: streams of strictly earlier impressions, no
# look-ahead; core.logs.add_popularity). (name, lower bound inclusive).
LISTENING_BUCKETS: Tuple[Tuple[str, int], ...] = (
    ("L0_no_streams_7d", 0),
    ("L1_1_4_streams_7d", 1),
    ("L2_5_19_streams_7d", 5),
    ("L3_20plus_streams_7d", 20),
)


def bucket_name(value: int, buckets: Tuple[Tuple[str, int], ...]) -> str:
    """The name of the last of `buckets` ((name, lower bound inclusive), ascending) whose bound `value`
    reaches; the first name below every bound."""
    name = buckets[0][0]
    for bucket, lower in buckets:
        if value >= lower:
            name = bucket
    return name


def listening_bucket(recent_streams: int) -> str:
    """Bucket name for a podcast with `recent_streams` streams in the 7 days before the impression."""
    return bucket_name(recent_streams, LISTENING_BUCKETS)


def popularity_bucket(prior_impressions: int) -> str:
    """Bucket name for a podcast with `prior_impressions` earlier impressions."""
    return bucket_name(prior_impressions, POPULARITY_BUCKETS)
