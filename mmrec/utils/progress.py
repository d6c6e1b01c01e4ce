"""Progress bars shown only when logging is at INFO or lower (as sentence-transformers does)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    iterable: Iterable[T], *, desc: str, total: int | None = None, show: bool | None = None
) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when ``show`` (default: mmrec's logger is at INFO or lower)."""
    if show is None:
        show = logging.getLogger("mmrec").getEffectiveLevel() <= logging.INFO
    return tqdm(iterable, desc=desc, total=total, disable=not show, leave=False)
