"""Catalog and interaction data: reading, schema inference and validation."""

from mmrec.data.catalog import Catalog, CatalogSchema
from mmrec.data.interactions import EventWeights, Interactions, InteractionSchema

__all__ = ["Catalog", "CatalogSchema", "EventWeights", "Interactions", "InteractionSchema"]
