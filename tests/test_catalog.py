import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmrec
from mmrec.errors import MmrecError, SchemaError


def frame(**overrides):
    data = {
        "item_id": ["a", "b", "c"],
        "title": ["red apple", "green pear", "blue berry"],
        "description": ["a long text about apples and more", "pears are green and sweet", ""],
        "image_path": ["img/a.png", None, "/abs/c.png"],
        "audio": [None, "snd/b.wav", None],
        "brand": ["x", "y", "x"],
        "price": [1.5, 2.0, None],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def test_schema_is_inferred_from_column_names(tmp_path):
    catalog = mmrec.Catalog.from_frame(frame(), base_dir=tmp_path)
    s = catalog.schema
    assert (s.id, s.text, s.image, s.audio) == ("item_id", ("title", "description"), "image_path", "audio")
    assert s.categorical == ("brand",) and s.numeric == ("price",)
    assert list(catalog.ids) == ["a", "b", "c"]
    paths = catalog.image_paths
    assert paths[0] == tmp_path / "img/a.png" and paths[1] is None and str(paths[2]) == "/abs/c.png"
    assert np.isnan(catalog.column("price")[2])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".tsv", ".json"])
def test_reads_every_format_with_paths_relative_to_the_file(tmp_path, suffix):
    df = frame()
    path = tmp_path / "sub" / f"items{suffix}"
    path.parent.mkdir()
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif suffix == ".parquet":
        df.to_parquet(path)
    elif suffix == ".json":
        df.to_json(path, orient="records")
    else:
        df.to_json(path, orient="records", lines=True)
    catalog = mmrec.Catalog.from_path(path)
    assert len(catalog) == 3
    assert catalog.image_paths[0] == (tmp_path / "sub" / "img/a.png").resolve()
    assert catalog.texts()[1]["title"] == "green pear"
    assert catalog.schema.numeric == ("price",)


def test_csv_ids_keep_leading_zeros(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item_id,title\n007,bond\n7,seven\n")
    assert list(mmrec.Catalog.from_path(path).ids) == ["007", "7"]


def test_integer_ids_become_strings():
    catalog = mmrec.Catalog.from_frame(pd.DataFrame({"item_id": [10, 20], "title": ["x", "y"]}))
    assert list(catalog.ids) == ["10", "20"]


def test_explicit_schema_as_mapping():
    df = frame().rename(columns={"item_id": "sku_code"})
    catalog = mmrec.Catalog.from_frame(df, schema={"id": "sku_code", "text": ["title"], "numeric": ["price"]})
    assert catalog.schema.text == ("title",) and catalog.schema.image is None


def test_duplicate_ids_name_rows_column_and_id():
    with pytest.raises(SchemaError, match=r"rows 0, 2, column 'item_id': duplicate id 'a'"):
        mmrec.Catalog.from_frame(frame(item_id=["a", "b", "a"]))


def test_missing_id_names_the_row():
    with pytest.raises(SchemaError, match=r"row 1, column 'item_id': id is missing"):
        mmrec.Catalog.from_frame(frame(item_id=["a", None, "c"]))


def test_non_numeric_value_in_numeric_column():
    with pytest.raises(SchemaError, match=r"row 1, column 'price': value 'cheap' is not a number"):
        mmrec.Catalog.from_frame(frame(price=["1", "cheap", "2"]),
                                 schema={"id": "item_id", "numeric": ["price"]})


def test_infinite_numeric_value():
    with pytest.raises(SchemaError, match=r"row 2, column 'price': value is infinite"):
        mmrec.Catalog.from_frame(frame(price=[1.0, 2.0, float("inf")]))


def test_wrong_type_in_text_and_path_columns():
    with pytest.raises(SchemaError, match=r"row 0, column 'title': expected text, got dict"):
        mmrec.Catalog.from_frame(frame(title=[{"a": 1}, "x", "y"]))
    with pytest.raises(SchemaError, match=r"row 2, column 'image_path': expected a file path"):
        mmrec.Catalog.from_frame(frame(image_path=["a.png", None, 3.5]))


def test_list_of_tags_is_joined():
    catalog = mmrec.Catalog.from_frame(frame(title=[["red", "fruit"], "x", "y"]))
    assert catalog.texts()[0]["title"] == "red fruit"


def test_unknown_schema_column_suggests_close_names():
    with pytest.raises(SchemaError, match=r"column 'titel' is not in the table. Did you mean 'title'"):
        mmrec.Catalog.from_frame(frame(), schema={"id": "item_id", "text": ["titel"]})


def test_unknown_schema_key_is_an_error():
    with pytest.raises(MmrecError, match="unknown key"):
        mmrec.Catalog.from_frame(frame(), schema={"id": "item_id", "texts": ["title"]})


def test_no_id_column_empty_table_bad_extension_missing_file(tmp_path):
    with pytest.raises(SchemaError, match="no id column"):
        mmrec.Catalog.from_frame(pd.DataFrame({"foo": [1]}))
    with pytest.raises(SchemaError, match="no rows"):
        mmrec.Catalog.from_frame(frame().iloc[:0])
    (tmp_path / "items.xlsx").write_text("x")
    with pytest.raises(SchemaError, match="unknown extension '.xlsx'"):
        mmrec.Catalog.from_path(tmp_path / "items.xlsx")
    with pytest.raises(SchemaError, match="does not exist"):
        mmrec.Catalog.from_path(tmp_path / "nope.csv")
    with pytest.raises(SchemaError, match="expected a pandas DataFrame"):
        mmrec.Catalog.from_frame([{"item_id": 1}])


def test_unparseable_jsonl_is_a_schema_error(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"item_id": 1}) + "\n{not json\n")
    with pytest.raises(SchemaError, match="cannot parse"):
        mmrec.Catalog.from_path(path)


cells = st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 5),
                  st.floats(allow_nan=True, allow_infinity=True), st.lists(st.text(max_size=3), max_size=2))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=6))
def test_arbitrary_tables_load_or_raise_a_schema_error(rows):
    df = pd.DataFrame(rows, columns=["item_id", "title", "price"])
    try:
        catalog = mmrec.Catalog.from_frame(df)
    except SchemaError as exc:
        assert "row" in str(exc) or "column" in str(exc) or "no id" in str(exc)
    else:
        assert len(catalog) == len(df)
        assert len(set(catalog.ids)) == len(df)


def test_subset_keeps_catalog_order_schema_and_base_folder(tmp_path):
    frame = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["x", "y", "z"]})
    catalog = mmrec.Catalog.from_frame(frame, base_dir=tmp_path)
    part = catalog.subset(["c", "a", "not-there"])
    assert list(part.ids) == ["a", "c"]
    assert part.schema == catalog.schema and part.base_dir == catalog.base_dir
    assert list(part.positions(["c"])) == [1]
