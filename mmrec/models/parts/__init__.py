"""The fitted parts a :class:`~mmrec.TwoTower` is composed of, in the order ``fit`` runs them.

``fit`` first calls every part's ``before_training`` in this order, then every part's ``fit``;
serving asks each part for its share of scores and vectors (:class:`Part`). To add a part: write a
module with a :class:`Part` subclass and name it in :data:`PARTS`.

- ``attributes`` (:class:`UserAttributes`): the user-attribute schema and table.
- ``network`` (:class:`Network`): the item table, fusion and user tower, trained.
- ``content_blend`` (:class:`ColdItemBlend`): cold items scored from their content.
- ``prior`` (:class:`FadingPrior`): the fading popularity prior for short histories.
"""

from mmrec.models.parts.attributes import UserAttributes
from mmrec.models.parts.base import FitData, Part
from mmrec.models.parts.content_blend import ColdItemBlend
from mmrec.models.parts.network import Network
from mmrec.models.parts.prior import FadingPrior

__all__ = ["PARTS", "ColdItemBlend", "FadingPrior", "FitData", "Network", "Part", "UserAttributes"]

PARTS: dict[str, type[Part]] = {part.name: part for part in (UserAttributes, Network, ColdItemBlend,
                                                               FadingPrior)}
