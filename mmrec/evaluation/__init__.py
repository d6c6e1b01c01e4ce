"""Evaluation: ranking metrics over full-catalog rankings."""

from mmrec.evaluation.metrics import (
    hit_rate_at_k,
    hits_matrix,
    mrr_at_k,
    ndcg_at_k,
    ranking_metrics,
    recall_at_k,
)
from mmrec.evaluation.recommendations import evaluate_recommendations

__all__ = ["evaluate_recommendations", "hits_matrix", "recall_at_k", "ndcg_at_k", "hit_rate_at_k",
           "mrr_at_k", "ranking_metrics"]
