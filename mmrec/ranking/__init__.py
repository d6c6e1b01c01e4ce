"""Top-k recommendations for one user, many users and live users, with one popularity fallback.

- :mod:`~mmrec.ranking.options` — ``RankingOptions``: k, filters, diversity … of every ranking path
- :mod:`~mmrec.ranking.topk` — ``recommend`` and ``user_vectors`` through an index
- :mod:`~mmrec.ranking.scored` — top-k from any model's scores (every model's ``recommend``)
- :mod:`~mmrec.ranking.popularity` — the popularity ranking and the segment/diversity fallback
- :mod:`~mmrec.ranking.batch` — every user in bounded memory (``recommend_batches``)
- :mod:`~mmrec.ranking.online` — live users by vectors: ``OnlineRecommender`` (and ``LiveHistory``)
- :mod:`~mmrec.ranking.scored_online` — live users by any model's scores: ``ScoredOnline``
- :mod:`~mmrec.ranking.explain` — which modality and which history items drove a recommendation
"""

from mmrec.ranking.batch import EventsByUser, recommend_batches, write_recommendations
from mmrec.ranking.online import OnlineRecommender
from mmrec.ranking.options import RankingOptions
from mmrec.ranking.scored import recommend_by_scores
from mmrec.ranking.scored_online import ScoredOnline
from mmrec.ranking.topk import recommend, user_vectors

__all__ = ["RankingOptions", "recommend", "user_vectors", "recommend_by_scores", "recommend_batches",
           "write_recommendations", "EventsByUser", "OnlineRecommender", "ScoredOnline"]
