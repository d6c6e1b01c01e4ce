"""encode_items over a corpus of hostile files and texts (mmrec/testing/media_corpus.py): it finishes,
every bad item is reported with its reason, every good item is encoded, and the counts add up."""

import tracemalloc

import numpy as np
import pytest

import mmrec
from mmrec.encoders.audio_mfcc import AudioPreprocess
from mmrec.encoders.media import MAX_ASPECT, load_audio, load_image
from mmrec.encoders.presets import preset_available
from mmrec.encoders.text_base import valid_unicode
from mmrec.errors import MediaError
from mmrec.testing.media_corpus import ABSENT, ENCODED, REPORTED, make_corpus, make_mutants
from mmrec.testing.worlds import FAST_IMAGE, fast_choice


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("hostile"), long_audio_seconds=1800.0)


@pytest.fixture(scope="module")
def encoded(corpus):
    image = mmrec.create_encoder("image-resnet18", overrides=FAST_IMAGE)
    return mmrec.encode_items(corpus.catalog(), encoders=fast_choice(image), batch_size=8,
                              show_progress=False)


def test_every_case_ends_as_expected(corpus, encoded):
    assert corpus.check(encoded.report, encoded.masks) == []
    kinds = {c.kind for c in corpus.cases}
    assert {"truncated JPEG", "zero-byte", "CMYK JPEG", "animated GIF", "random bytes .mp3",
            "30 min WAV (streamed)", "lone surrogates", "1 MB of text"} <= kinds


def test_reports_name_the_item_field_and_file(corpus, encoded):
    issues = {(i.item_id, i.modality): i.reason for i in encoded.report.issues}
    emoji = next(c for c in corpus.cases if c.kind == "emoji only")
    assert "nothing to encode" in issues.pop((emoji.item_id, "text"))  # TF-IDF knows no such word
    reported = [c for c in corpus.cases if c.expect == REPORTED]
    assert set(issues) == {(c.item_id, c.modality) for c in reported}
    paths = dict(zip([c.item_id for c in corpus.cases], corpus.paths(), strict=True))
    for case in reported:
        reason = issues[(case.item_id, case.modality)]
        assert case.reason in reason
        if case.modality != "text":
            assert str(paths[case.item_id]) in reason, reason


def test_counts_add_up_to_the_catalog(corpus, encoded):
    n = len(corpus.frame)
    assert len(encoded) == n and encoded.ids.tolist() == corpus.frame["item_id"].tolist()
    for modality, counts in encoded.report.counts.items():
        assert counts["encoded"] + counts["absent"] + counts["failed"] == n, modality
        assert counts["encoded"] == int(encoded.masks[modality].sum())
        assert counts["failed"] == sum(i.modality == modality for i in encoded.report.issues)
        mine = [c for c in corpus.cases if c.modality == modality]
        assert counts["failed"] == sum(c.expect == REPORTED for c in mine) + (modality == "text")
        expected_encoded = sum(c.expect == ENCODED for c in mine)
        if modality == "text":  # every media item has an ordinary title as well
            expected_encoded += n - len(mine)
        assert counts["encoded"] == expected_encoded, modality
        assert counts["absent"] == n - expected_encoded - counts["failed"]
    assert sum(c.expect == ABSENT for c in corpus.cases) == encoded.report.counts["text"]["absent"]


def test_encoded_rows_are_finite_and_the_rest_zero(encoded):
    for modality, matrix in encoded.vectors.items():
        mask = encoded.masks[modality]
        assert np.isfinite(matrix).all() and np.abs(matrix[mask]).sum(axis=1).min() > 0
        assert not matrix[~mask].any()
    assert np.isfinite(encoded.fused).all()


def test_decompression_bomb_is_refused_before_decoding(corpus):
    path = corpus.folder / "image" / "bomb.png"
    assert path.stat().st_size < 1000  # the header claims 30000 x 30000
    tracemalloc.start()
    try:
        with pytest.raises(MediaError, match="decompression-bomb guard"):
            load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # decoding it would take 900 MB


def test_long_audio_is_streamed_not_loaded_whole(corpus, encoded):
    path = corpus.folder / "audio" / "long.wav"
    size = path.stat().st_size
    assert size > 50_000_000  # 30 minutes of 16 kHz PCM
    preprocess = AudioPreprocess(sample_rate=22050, max_seconds=30.0)
    preprocess(corpus.folder / "audio" / "8k.wav")  # imports (scipy's resampler) outside the trace
    tracemalloc.start()
    try:
        clip = preprocess(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert clip.shape == (30 * 22050,)
    assert peak < 20_000_000, peak  # ~5 MB for 30 s; the whole file as float32 would be 115 MB
    item = corpus.frame.index[corpus.frame["audio_path"] == "audio/long.wav"][0]
    assert encoded.masks["audio"][item]


def test_elongated_images_keep_their_centre_and_stay_small(tmp_path):
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    from mmrec.encoders.image_cnn import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(40, 1000, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "banner.png")
    image = load_image(tmp_path / "banner.png")
    assert image.size == (int(MAX_ASPECT * 40), 40)
    assert np.array_equal(np.asarray(image), pixels[:, 420:580])
    # what the CNN sees equals resizing the whole banner and centre-cropping it (up to filter edges)
    ours = ImagePreprocess(64, 56, IMAGENET_MEAN, IMAGENET_STD)(tmp_path / "banner.png")
    whole = F.center_crop(F.resize(F.pil_to_tensor(Image.fromarray(pixels)), [64], antialias=True), [56, 56])
    assert ours.shape == whole.shape == (3, 56, 56)
    assert (ours.float() - whole.float()).abs().mean().item() < 3.0
    assert load_image(tmp_path / "banner.png").size == image.size
    Image.fromarray(pixels[:, :100]).save(tmp_path / "normal.png")  # 2.5:1 is left whole
    assert load_image(tmp_path / "normal.png").size == (100, 40)


def test_directory_is_reported_as_a_folder(tmp_path):
    (tmp_path / "x.jpg").mkdir()
    with pytest.raises(MediaError, match="is a folder"):
        load_image(tmp_path / "x.jpg")


def test_lone_surrogates_become_replacement_characters():
    assert valid_unicode("a\ud800b") == "a\ufffdb"
    assert valid_unicode("\ud83d\ude00 pair") == "\U0001f600 pair"
    assert valid_unicode("plain \u00e9") == "plain \u00e9"


@pytest.mark.skipif(not preset_available("text-minilm-l6"), reason="MiniLM weights not installed")
def test_transformer_tokenizer_gets_no_lone_surrogates():
    encoder = mmrec.create_encoder("text-minilm-l6")
    out = encoder.encode([encoder.prepare({"title": "broken \ud800 text \udfff sweater"})])
    assert out.shape == (1, encoder.dim) and np.isfinite(out).all()


def test_mutated_files_are_encoded_or_reported(corpus, tmp_path):
    """Bit flips and cuts of valid files: each decodes or raises MediaError, never anything else."""
    mutants = make_mutants(corpus, tmp_path, per_source=12)
    outcomes = {"ok": 0, "reported": 0}
    for case, path in zip(mutants.cases, mutants.paths(), strict=True):
        try:
            if case.modality == "image":
                load_image(path)
            else:
                load_audio(path, sample_rate=22050, max_seconds=5.0)
            outcomes["ok"] += 1
        except MediaError:
            outcomes["reported"] += 1
    assert outcomes["ok"] > 0 and outcomes["reported"] > 0 and sum(outcomes.values()) == 144
