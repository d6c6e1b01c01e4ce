"""Evaluation: splits-aware harness, ranking and rating metrics over full-catalog rankings."""

from mmrec.evaluation.harness import EvalConfig, evaluate_model, evaluate_models, item_universe
from mmrec.evaluation.metrics import (
    RANKING_METRICS,
    average_precision_at_k,
    catalog_coverage,
    f1_at_k,
    hit_rate_at_k,
    hits_matrix,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    rating_metrics,
    recall_at_k,
)
from mmrec.evaluation.recommendations import evaluate_recommendations
from mmrec.evaluation.report import EvaluationReport

__all__ = ["EvalConfig", "evaluate_model", "evaluate_models", "item_universe", "EvaluationReport",
           "evaluate_recommendations", "hits_matrix", "recall_at_k", "precision_at_k", "f1_at_k",
           "ndcg_at_k", "hit_rate_at_k", "mrr_at_k", "average_precision_at_k", "catalog_coverage",
           "novelty", "ranking_metrics", "rating_metrics", "RANKING_METRICS"]
