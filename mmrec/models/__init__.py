"""Trained models: learned fusion layers, user-interest towers, the two-tower recommender and the
LightGCN interest graph."""

from mmrec.models.config import TrainConfig, TwoTowerConfig
from mmrec.models.fusion_layers import FUSIONS
from mmrec.models.lightgcn import LightGCN
from mmrec.models.towers import TOWERS
from mmrec.models.training import TrainingHistory
from mmrec.models.two_tower import TwoTower

__all__ = ["TwoTower", "TwoTowerConfig", "TrainConfig", "TrainingHistory", "FUSIONS", "TOWERS", "LightGCN"]
