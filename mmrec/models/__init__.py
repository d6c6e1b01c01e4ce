"""Trained models: learned fusion layers, user-interest towers and the two-tower recommender; the
registry of every recommender by name (these and the baselines, LightGCN among them)."""

from mmrec.models.config import TrainConfig, TwoTowerConfig
from mmrec.models.fusion_layers import FUSIONS
from mmrec.models.towers import TOWERS
from mmrec.models.training import TrainingHistory
from mmrec.models.two_tower import TwoTower

__all__ = ["TwoTower", "TwoTowerConfig", "TrainConfig", "TrainingHistory", "FUSIONS", "TOWERS"]
