"""mmrec: multimodal recommendation, from raw items (text, images, audio) to a FAISS index.

Every stage is one hop from here::

    catalog = mmrec.Catalog.from_path("items.csv")
    events = mmrec.Interactions.from_path("events.csv")
    items = mmrec.encode_items(catalog)
    index = mmrec.build_index(items)
    recs = mmrec.recommend(index, events, users=["u1"], k=10)

    model = mmrec.TwoTower(fusion="gated", user_tower="transformer").fit(items, events)
    index = mmrec.build_index(model.encode_items(items))
"""

from mmrec._version import __version__
from mmrec.data import Catalog, CatalogSchema, EventWeights, Interactions, InteractionSchema
from mmrec.data.splits import (
    Split,
    cold_item_split,
    cold_user_split,
    leave_last_out,
    random_split,
    time_split,
)
from mmrec.encode import DEFAULT_ENCODERS, encode_items
from mmrec.encode.engines import EncodeEngine
from mmrec.encoders import Encoder, add_preset_dir, create_encoder, get_preset, list_encoders
from mmrec.errors import (
    ArtifactError,
    ConfigError,
    MediaError,
    MissingDependencyError,
    MmrecError,
    NotFittedError,
    SchemaError,
)
from mmrec.evaluation.tune import SearchSpace, TuneResult, tune
from mmrec.index import ItemIndex, build_index
from mmrec.index.sharded import ShardedIndex, build_sharded_index
from mmrec.models import TrainConfig, TwoTower, TwoTowerConfig
from mmrec.ranking.batch import EventsByUser, recommend_batches, write_recommendations
from mmrec.ranking.online import OnlineRecommender
from mmrec.ranking.options import RankingOptions
from mmrec.ranking.topk import recommend, user_vectors
from mmrec.vectors.item_vectors import EncodeReport, ItemVectors
from mmrec.vectors.user_vectors import UserVectors

__all__ = [
    "__version__",
    "Catalog",
    "CatalogSchema",
    "Interactions",
    "InteractionSchema",
    "EventWeights",
    "Split",
    "leave_last_out",
    "time_split",
    "random_split",
    "cold_item_split",
    "cold_user_split",
    "encode_items",
    "EncodeEngine",
    "DEFAULT_ENCODERS",
    "Encoder",
    "list_encoders",
    "get_preset",
    "create_encoder",
    "add_preset_dir",
    "ItemVectors",
    "EncodeReport",
    "build_index",
    "ItemIndex",
    "build_sharded_index",
    "ShardedIndex",
    "recommend",
    "RankingOptions",
    "recommend_batches",
    "write_recommendations",
    "EventsByUser",
    "user_vectors",
    "UserVectors",
    "TwoTower",
    "tune",
    "SearchSpace",
    "TuneResult",
    "OnlineRecommender",
    "TwoTowerConfig",
    "TrainConfig",
    "MmrecError",
    "SchemaError",
    "ConfigError",
    "NotFittedError",
    "MissingDependencyError",
    "MediaError",
    "ArtifactError",
]
