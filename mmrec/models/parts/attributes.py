"""The user-attribute part: which columns the user tower reads (the schema) and whose rows it reads.

Reads the table given to ``fit(users=)`` (or :meth:`UserAttributes.set_table` later); gives every
other part the users' attribute codes (:meth:`UserAttributes.codes`) and the schema the network is
built with. Only the schema is saved — never the table, which holds personal data.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mmrec.errors import ConfigError
from mmrec.models.parts.base import Composition, FitData, Part
from mmrec.models.user_features import UserCodes, UserFeatureSchema, as_attribute_table

__all__ = ["UserAttributes"]

logger = logging.getLogger(__name__)


class UserAttributes(Part):
    """The attribute schema (fitted) and the table of the users to score (in memory only)."""

    name = "attributes"

    def __init__(self) -> None:
        self.schema_: UserFeatureSchema | None = None
        self.table_: pd.DataFrame | None = None

    def before_training(self, model: Composition, data: FitData) -> None:
        """Fit the schema on ``data.users``; the network is built with it."""
        if data.users is not None:
            table = as_attribute_table(data.users, where="TwoTower.fit(users=)")
            self.schema_, self.table_ = UserFeatureSchema.fit(table), table
            without = int((~pd.Index(data.events.users).isin(table.index)).sum())
            if without:
                logger.warning("TwoTower.fit: %d of %d training users have no attribute row; their "
                               "attributes are read as missing", without, len(data.events.users))
        data.user_schema, data.codes = self.schema_, self.codes

    @property
    def fitted(self) -> bool:
        return self.schema_ is not None

    def set_table(self, users: pd.DataFrame | None) -> None:
        """The attributes of the users to score; the fitted columns must be there. ``None`` forgets
        them all."""
        if users is None:
            self.table_ = None
            return
        if self.schema_ is None:
            raise ConfigError("this TwoTower was fitted without user attributes (fit(..., users=)); "
                              "it cannot read them.")
        table = as_attribute_table(users, where="set_user_attributes")
        self.schema_.encode(table, table.index.to_numpy(dtype=object)[:1], where="set_user_attributes")
        self.table_ = table

    def codes(self, user_ids: np.ndarray) -> UserCodes | None:
        """Attribute codes of ``user_ids`` (``None`` when the model has no attributes)."""
        if self.schema_ is None:
            return None
        return self.schema_.encode(self.table_, user_ids)

    def check(self, model: Composition) -> None:
        """The schema the table is encoded with must be the one the network's user tower reads
        (both parts save it: the network needs it to be rebuilt on its own)."""
        network_schema = model.network.user_schema_
        if self.schema_ != network_schema:
            raise ValueError(f"the attribute schema {self.schema_ and self.schema_.to_dict()} is not the one "
                             f"the user tower was built with ({network_schema and network_schema.to_dict()})")

    def state(self) -> dict[str, Any]:
        assert self.schema_ is not None
        return {"schema": self.schema_.to_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.schema_, self.table_ = UserFeatureSchema.from_dict(state["schema"]), None
