"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mmrec.errors import ConfigError
from mmrec.evaluation import hits_matrix, mrr_at_k, ndcg_at_k, ranking_metrics, recall_at_k


def test_hand_computed_values():
    top = np.array([[5, 1, 7, 2], [3, 4, 6, -1]])
    targets = [np.array([7, 9]), np.array([3])]
    hits = hits_matrix(top, targets)
    assert hits.tolist() == [[False, False, True, False], [True, False, False, False]]
    n = np.array([2, 1])
    assert recall_at_k(hits, n, 2).tolist() == [0.0, 1.0]
    assert recall_at_k(hits, n, 4).tolist() == [0.5, 1.0]
    # user 0: one hit at rank 3 -> DCG 1/log2(4) = 0.5; ideal for 2 targets: 1 + 1/log2(3)
    assert ndcg_at_k(hits, n, 4)[0] == pytest.approx(0.5 / (1 + 1 / np.log2(3)))
    assert ndcg_at_k(hits, n, 4)[1] == pytest.approx(1.0)
    assert mrr_at_k(hits, n, 4).tolist() == [pytest.approx(1 / 3), 1.0]
    summary = ranking_metrics(top, targets, ks=(2, 4))
    assert summary["recall@4"] == pytest.approx(0.75)
    assert summary["hit@2"] == pytest.approx(0.5)
    assert summary["users"] == 2


def test_users_without_targets_are_not_averaged_and_padding_never_hits():
    top = np.array([[-1, -1], [1, 2]])
    summary = ranking_metrics(top, [np.array([], dtype=np.int64), np.array([-1, 2])], ks=(2,))
    assert summary["users"] == 1
    assert summary["recall@2"] == pytest.approx(0.5)


def test_evaluate_recommendations_from_a_table():
    import pandas as pd

    import mmrec
    from mmrec.evaluation import evaluate_recommendations

    recs = pd.DataFrame({"user": ["a", "a", "b", "b"], "rank": [1, 2, 1, 2], "item": ["x", "y", "y", "z"]})
    targets = mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["a", "b", "c"],
                                                          "item_id": ["y", "q", "x"]}))
    summary = evaluate_recommendations(recs, targets, ks=(1, 2))
    assert summary["users"] == 3  # c has no recommendations: a miss, still counted
    assert summary["hit@2"] == pytest.approx(1 / 3) and summary["hit@1"] == 0.0
    assert summary["mrr@2"] == pytest.approx(0.5 / 3)


def test_precision_f1_and_average_precision_by_hand():
    from mmrec.evaluation import average_precision_at_k, f1_at_k, precision_at_k

    top = np.array([[5, 1, 7, 2], [3, 4, 6, -1]])
    hits = hits_matrix(top, [np.array([1, 2, 9]), np.array([3])])
    n = np.array([3, 1])
    assert precision_at_k(hits, n, 4).tolist() == [0.5, 0.25]
    precision, recall = np.array([0.5, 0.25]), np.array([2 / 3, 1.0])
    assert f1_at_k(hits, n, 4) == pytest.approx(2 * precision * recall / (precision + recall))
    # user 0: hits at ranks 2 and 4 -> (1/2 + 2/4) / min(3, 4); user 1: hit at rank 1 -> 1/1
    assert average_precision_at_k(hits, n, 4) == pytest.approx([(0.5 + 0.5) / 3, 1.0])
    assert average_precision_at_k(hits, n, 1).tolist() == [0.0, 1.0]
    summary = ranking_metrics(top, [np.array([1, 2, 9]), np.array([3])], ks=(4,), metrics=("map", "f1"))
    assert set(summary) == {"map@4", "f1@4", "users"}
    with pytest.raises(ConfigError, match="unknown ranking metric"):
        ranking_metrics(top, [np.array([1])] * 2, metrics=("auc",))


def test_coverage_and_novelty_by_hand():
    from mmrec.evaluation import catalog_coverage, novelty

    top = np.array([[0, 1], [0, 2], [-1, -1]])
    assert catalog_coverage(top, 10, 2) == pytest.approx(0.3)
    assert catalog_coverage(top, 10, 1) == pytest.approx(0.1)
    popularity = np.array([8.0, 4.0, 0.0])  # of 8 users; item 2 never seen counts as seen once
    expected = np.mean([-np.log2(1.0), -np.log2(0.5), -np.log2(1.0), -np.log2(1 / 8)])
    assert novelty(top, popularity, 8, 2) == pytest.approx(expected)


def test_rating_metrics_by_hand():
    from mmrec.evaluation import rating_metrics

    result = rating_metrics(np.array([3.6, 2.0, 5.4]), np.array([4.0, 3.0, 5.0]), scale=(1, 5))
    assert result["mse"] == pytest.approx((0.16 + 1.0 + 0.16) / 3)
    assert result["rmse"] == pytest.approx(np.sqrt((0.16 + 1.0 + 0.16) / 3))
    assert result["mae"] == pytest.approx(0.6)
    assert result["accuracy"] == pytest.approx(2 / 3)  # 3.6 -> 4 right, 2 wrong, 5.4 -> 5 right
    assert rating_metrics(np.array([]), np.array([]))["ratings"] == 0
