"""Baselines that run through the same harness, splits and metrics as the learned models."""

from mmrec.baselines.bias import BiasBaseline
from mmrec.baselines.bpr import BPRMF
from mmrec.baselines.content import ContentMean
from mmrec.baselines.ease import EASE
from mmrec.baselines.item_knn import ItemKNN
from mmrec.baselines.lightgcn import LightGCN
from mmrec.baselines.popularity import Popularity, SegmentPopularity
from mmrec.registry import Registry

__all__ = ["Popularity", "SegmentPopularity", "ItemKNN", "EASE",
           "BPRMF", "ContentMean", "BiasBaseline", "LightGCN", "BASELINES"]

BASELINES: Registry[type] = Registry("baseline")
BASELINES.add("popularity", Popularity, "pop", "most_popular")
BASELINES.add("segment_popularity", SegmentPopularity, "demographic_popularity")
BASELINES.add("item_knn", ItemKNN, "itemknn", "knn")
BASELINES.add("ease", EASE)
BASELINES.add("bpr", BPRMF, "bprmf", "mf")
BASELINES.add("content_mean", ContentMean, "content")
BASELINES.add("bias", BiasBaseline, "baseline_predictor")
