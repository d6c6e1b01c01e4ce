"""Real datasets read from installed packages or local paths (never downloaded)."""

from mmrec.datasets.movielens import MovieLens, load_movielens

__all__ = ["MovieLens", "load_movielens"]
