"""The item catalog: ids, text fields, image and audio paths, categorical and numeric attributes."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.readers import read_table
from mmrec.data.validation import (
    id_strings,
    is_missing,
    normalized_name,
    numeric_column,
    path_value,
    positions_of,
    require_columns,
    str_columns,
    text_value,
)
from mmrec.errors import ConfigError, SchemaError
from mmrec.utils.config import check_field_types, config_from_dict

__all__ = ["Catalog", "CatalogSchema"]


# Column names recognised when no schema is given (compared lower-case, without '_', '-', ' ').
ID_NAMES = ("itemid", "id", "item", "movieid", "productid", "trackid", "articleid", "newsid", "sku")
TEXT_NAMES = (
    "title", "name", "body", "text", "description", "summary", "content", "abstract", "tags",
    "keywords", "genres", "genre", "caption", "lyrics", "review", "headline",
)
IMAGE_NAMES = (
    "image", "imagepath", "img", "imgpath", "imagefile", "picture", "thumbnail", "cover", "poster",
    "photo",
)
AUDIO_NAMES = ("audio", "audiopath", "audiofile", "sound", "soundpath", "clip", "preview", "trackpath")
# A value like "https://..." or "s3://..." is a URL, never joined to the catalog folder.
URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# A leftover string column is text (not a category) when its values average more words than this.
TEXT_MIN_MEAN_WORDS = 3.0


@dataclass(frozen=True)
class CatalogSchema:
    """Which catalog column plays which role.

    Parameters
    ----------
    id : str
        Column of unique item ids (compared as strings).
    text : tuple of str
        Text fields (title, body, tags, ...), in order of importance.
    image, audio : str or None
        Columns holding a file path per item (absolute, or relative to the catalog file).
    categorical, numeric : tuple of str
        Attribute columns.
    """

    id: str = "item_id"
    text: tuple[str, ...] = ()
    image: str | None = None
    audio: str | None = None
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_field_types(self)  # id, image, audio
        for name in ("text", "categorical", "numeric"):
            value = getattr(self, name)
            value = (value,) if isinstance(value, str) else value
            if not isinstance(value, Iterable) or not all(isinstance(c, str) for c in tuple(value)):
                raise ConfigError(f"catalog schema: {name} must be a list of column names, got {value!r}.")
            object.__setattr__(self, name, tuple(value))

    @property
    def columns(self) -> list[str]:
        """Every column the schema uses, id first."""
        media = [c for c in (self.image, self.audio) if c]
        return [self.id, *self.text, *media, *self.categorical, *self.numeric]

    @classmethod
    def infer(cls, frame: pd.DataFrame) -> CatalogSchema:
        """Guess roles from column names and contents (see the module's ``*_NAMES`` tuples)."""
        by_norm = {normalized_name(c): str(c) for c in frame.columns}
        id_column = next((by_norm[n] for n in ID_NAMES if n in by_norm), None)
        if id_column is None:
            raise SchemaError(
                f"catalog: no id column found among {list(map(str, frame.columns))}; name it "
                "'item_id' or pass schema=CatalogSchema(id=...)."
            )
        image = next((by_norm[n] for n in IMAGE_NAMES if n in by_norm), None)
        audio = next((by_norm[n] for n in AUDIO_NAMES if n in by_norm), None)
        used = {id_column, image, audio}
        text = [by_norm[n] for n in TEXT_NAMES if n in by_norm and by_norm[n] not in used]
        used.update(text)
        categorical, numeric = [], []
        for column in map(str, frame.columns):
            if column in used:
                continue
            series = frame[column]
            values = [v for v in series.tolist() if not is_missing(v)]
            parsed = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
            if values and not parsed.isna().any() and not pd.api.types.is_bool_dtype(series):
                numeric.append(column)
            elif values and np.mean([len(str(v).split()) for v in values]) > TEXT_MIN_MEAN_WORDS:
                text.append(column)
            else:
                categorical.append(column)
        return cls(id=id_column, text=tuple(text), image=image, audio=audio,
                   categorical=tuple(categorical), numeric=tuple(numeric))


class MediaPaths(Sequence[Path | None]):
    """A lazy, read-only sequence of absolute media paths (one ``Path`` object per access, so a
    catalog of millions of items does not hold millions of ``Path`` objects)."""

    def __init__(self, values: np.ndarray, base_dir: Path) -> None:
        self._values = values
        self._base_dir = base_dir

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, index: int) -> Path | None:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]  # type: ignore[return-value]
        value = self._values[index]
        if value is None:
            return None
        return Path(value) if URL_SCHEME.match(value) else self._base_dir / value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"MediaPaths({len(self)} items under {self._base_dir})"


class Catalog:
    """A validated item catalog.

    Build it with :meth:`from_path` or :meth:`from_frame`. Ids are strings; relative media paths are
    resolved against ``base_dir`` (the catalog file's folder when read from a file).

    Examples
    --------
    >>> import pandas as pd
    >>> cat = Catalog.from_frame(pd.DataFrame({"item_id": [1, 2], "title": ["a cat", "a dog"]}))
    >>> list(cat.ids), cat.schema.text
    (['1', '2'], ('title',))
    """

    def __init__(self, frame: pd.DataFrame, *, schema: CatalogSchema, base_dir: Path) -> None:
        self.schema = schema
        self.base_dir = base_dir
        self._frame = frame
        self._id_index = pd.Index(frame[schema.id].to_numpy(dtype=object))

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, schema: CatalogSchema | Mapping[str, Any] | None = None
    ) -> Catalog:
        """Read and validate a catalog from Parquet, CSV/TSV or JSON Lines."""
        path = Path(path)
        return cls.from_frame(read_table(path), schema=schema, base_dir=path.resolve().parent)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        schema: CatalogSchema | Mapping[str, Any] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> Catalog:
        """Validate ``frame`` against ``schema`` (inferred from column names when ``None``)."""
        if not isinstance(frame, pd.DataFrame):
            raise SchemaError(f"catalog: expected a pandas DataFrame, got {type(frame).__name__}.")
        if len(frame) == 0:
            raise SchemaError("catalog: the table has no rows.")
        frame = str_columns(frame, what="catalog")
        if schema is None:
            schema = CatalogSchema.infer(frame)
        elif isinstance(schema, Mapping):
            schema = config_from_dict(CatalogSchema, schema, where="catalog schema")
        require_columns(frame, schema.columns, what="catalog")
        clean = cls._validated(frame.reset_index(drop=True), schema)
        return cls(clean, schema=schema, base_dir=Path(base_dir or os.getcwd()).resolve())

    @staticmethod
    def _validated(frame: pd.DataFrame, schema: CatalogSchema) -> pd.DataFrame:
        what = "catalog"
        columns: dict[str, Any] = {
            schema.id: id_strings(frame[schema.id], column=schema.id, what=what, unique=True)
        }
        for column in schema.text:
            columns[column] = [
                text_value(v, row=i, column=column, what=what) for i, v in enumerate(frame[column])
            ]
        for column in (schema.image, schema.audio):
            if column:
                columns[column] = [
                    path_value(v, row=i, column=column, what=what) for i, v in enumerate(frame[column])
                ]
        for column in schema.categorical:
            columns[column] = [None if is_missing(v) else str(v) for v in frame[column]]
        for column in schema.numeric:
            columns[column] = numeric_column(frame[column], column=column, what=what)
        return pd.DataFrame({name: pd.Series(values, dtype=object if name not in schema.numeric
                                             else "float64") for name, values in columns.items()})

    # ----------------------------------------------------------------------------- accessors
    def __len__(self) -> int:
        return len(self._frame)

    def __repr__(self) -> str:
        s = self.schema
        return (f"Catalog({len(self)} items, text={list(s.text)}, image={s.image!r}, "
                f"audio={s.audio!r}, categorical={list(s.categorical)}, numeric={list(s.numeric)})")

    @property
    def ids(self) -> np.ndarray:
        """Item ids, an object array of ``str`` in catalog order."""
        return self._frame[self.schema.id].to_numpy(dtype=object)

    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the validated table (ids as str, numerics as float64, blanks as None)."""
        return self._frame.copy()

    def subset(self, item_ids: Iterable[str]) -> Catalog:
        """The items of ``item_ids`` that are in the catalog, in catalog order (same schema and base
        folder); ids not in the catalog are ignored."""
        keep = self._frame[self.schema.id].isin({str(i) for i in item_ids}).to_numpy()
        return Catalog(self._frame.loc[keep].reset_index(drop=True), schema=self.schema,
                       base_dir=self.base_dir)

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Dense positions (``int64``) of ``item_ids``; an unknown id is a :class:`SchemaError`."""
        return positions_of(self._id_index, item_ids, what="catalog")

    def texts(self, fields: Sequence[str] | None = None) -> list[dict[str, str]]:
        """Per item, a dict of text field → text ('' when blank)."""
        fields = [fields] if isinstance(fields, str) else list(self.schema.text if fields is None else fields)
        require_columns(self._frame, fields, what="catalog")
        return self._frame[fields].to_dict("records")

    def media_paths(self, column: str | None) -> MediaPaths:
        """Absolute paths of a media column (``None`` where blank, or for every item when no column),
        as a lazy sequence: a ``Path`` is built only when an item is read."""
        if column is None:
            return MediaPaths(np.full(len(self), None), self.base_dir)
        require_columns(self._frame, [column], what="catalog")
        return MediaPaths(self._frame[column].to_numpy(dtype=object), self.base_dir)

    @property
    def image_paths(self) -> MediaPaths:
        """Absolute image paths (``None`` where the item has no image)."""
        return self.media_paths(self.schema.image)

    @property
    def audio_paths(self) -> MediaPaths:
        """Absolute audio paths (``None`` where the item has no audio)."""
        return self.media_paths(self.schema.audio)

    def column(self, name: str) -> np.ndarray:
        """Values of one validated column, in catalog order."""
        require_columns(self._frame, [name], what="catalog")
        return self._frame[name].to_numpy()

    def with_schema(self, **changes: Any) -> Catalog:
        """The same table under a schema with ``changes`` applied (re-validated)."""
        return Catalog.from_frame(self._frame, schema=dataclasses.replace(self.schema, **changes),
                                  base_dir=self.base_dir)

