import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import mmrec
from mmrec.encode.cache import EncodeCache
from mmrec.encoders import create_encoder

SMALL = {"resize": 48, "crop": 48}


@pytest.fixture
def catalog_dir(demo, tmp_path):
    """A private copy of the demo (images, audio, items.csv) that tests may modify."""
    folder = tmp_path / "demo"
    shutil.copytree(demo.root, folder, ignore=shutil.ignore_patterns("item_vectors", "index"))
    frame = pd.read_csv(folder / "items.csv").head(40)
    frame.to_csv(folder / "items.csv", index=False)
    return folder


def run(catalog_dir, cache):
    """Encode images and audio of the copied demo through ``cache``."""
    catalog = mmrec.Catalog.from_path(catalog_dir / "items.csv")
    image = create_encoder("image-resnet18", overrides=SMALL)
    return mmrec.encode_items(catalog, encoders={"image": image, "text": None}, cache_dir=cache,
                              num_workers=0, batch_size=8)


def test_second_run_reads_everything_from_the_cache(catalog_dir, tmp_path):
    cache = tmp_path / "cache"
    first = run(catalog_dir, cache)
    second = run(catalog_dir, cache)
    for m in first.modalities:
        np.testing.assert_array_equal(second.vectors[m], first.vectors[m])
        np.testing.assert_array_equal(second.masks[m], first.masks[m])
        assert second.report.cache_hits[m] == first.report.counts[m]["encoded"]
    assert first.report.cache_hits == {"audio": 0, "image": 0}
    assert second.report.issues == first.report.issues  # failures are re-checked, still reported


def test_only_changed_files_are_re_encoded(catalog_dir, tmp_path):
    cache = tmp_path / "cache"
    first = run(catalog_dir, cache)
    frame = pd.read_csv(catalog_dir / "items.csv")
    changed = frame["image_path"].dropna().iloc[0]
    Image.new("RGB", (96, 96), "magenta").save(catalog_dir / changed)
    second = run(catalog_dir, cache)
    assert second.report.cache_hits["image"] == first.report.counts["image"]["encoded"] - 1
    assert second.report.cache_hits["audio"] == first.report.counts["audio"]["encoded"]
    row = int(np.flatnonzero(frame["image_path"].to_numpy() == changed)[0])
    assert not np.allclose(second.vectors["image"][row], first.vectors["image"][row])


def test_other_encoder_settings_do_not_reuse_entries(catalog_dir, tmp_path):
    cache = tmp_path / "cache"
    run(catalog_dir, cache)
    other = mmrec.encode_items(mmrec.Catalog.from_path(catalog_dir / "items.csv"), cache_dir=cache,
                               encoders={"image": create_encoder("image-resnet18",
                                                                 overrides={"resize": 40, "crop": 40}),
                                         "text": None, "audio": None})
    assert other.report.cache_hits["image"] == 0


def test_interrupted_run_resumes_without_re_encoding(catalog_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    reference = run(catalog_dir, tmp_path / "reference-cache")
    calls = {"n": 0}
    encoder_class = type(create_encoder("image-resnet18", overrides=SMALL))
    original = encoder_class.encode

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed mid-run")
        return original(self, batch)

    monkeypatch.setattr(encoder_class, "encode", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(catalog_dir, cache)
    monkeypatch.undo()
    with EncodeCache(cache) as stored:
        # audio finished (it runs first), then two batches of images were committed (the first
        # holds the demo's corrupt image, so 7 + 8)
        images_done = len(stored) - reference.report.counts["audio"]["encoded"]
    assert images_done == 15
    resumed = run(catalog_dir, cache)
    assert resumed.report.cache_hits == {"audio": reference.report.counts["audio"]["encoded"],
                                         "image": images_done}
    for m in reference.modalities:
        np.testing.assert_array_equal(resumed.vectors[m], reference.vectors[m])


def test_text_cache_keys_on_content(tmp_path):
    frame = pd.DataFrame({"item_id": ["a", "b"], "title": ["sea boat", "forest tree"]})
    cache = tmp_path / "cache"
    tfidf = {"text": "text-tfidf-svd"}
    first = mmrec.encode_items(mmrec.Catalog.from_frame(frame), encoders=tfidf, cache_dir=cache)
    frame.loc[1, "title"] = "city street"
    second = mmrec.encode_items(mmrec.Catalog.from_frame(frame), encoders=tfidf, cache_dir=cache)
    # TF-IDF is fitted on the whole corpus: a changed corpus is a new fingerprint, nothing reused
    assert first.report.cache_hits["text"] == 0 and second.report.cache_hits["text"] == 0
    third = mmrec.encode_items(mmrec.Catalog.from_frame(frame), encoders=tfidf, cache_dir=cache)
    assert third.report.cache_hits["text"] == 2
    np.testing.assert_array_equal(third.vectors["text"], second.vectors["text"])


def test_unfitted_text_encoder_re_encodes_only_changed_texts(tmp_path):
    words = ["sea", "boat", "forest", "tree", "city", "street"]
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
    pd.DataFrame({"index": words}).to_parquet(tmp_path / "w.parquet")
    glove = {"vectors": str(tmp_path / "v.npy"), "vocabulary": str(tmp_path / "w.parquet"),
             "weighting": "mean"}

    def encode(frame):
        encoder = create_encoder("text-glove-6b-50d", overrides=glove)
        return mmrec.encode_items(mmrec.Catalog.from_frame(frame), encoders={"text": encoder},
                                  cache_dir=tmp_path / "cache")

    frame = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["sea boat", "forest tree", "city"]})
    encode(frame)
    frame.loc[1, "title"] = "city street"
    again = encode(frame)
    assert again.report.cache_hits["text"] == 2  # only item b's new text was encoded
