"""The trainable sound classifier on clips the test synthesises (tones vs noise bursts)."""

import numpy as np
import pytest
import soundfile

import mmrec
from mmrec.encoders import create_encoder
from mmrec.encoders.sound_classifier import SoundClassifier, SoundClassifierConfig
from mmrec.errors import ConfigError, NotFittedError

SR = 16_000
TINY = SoundClassifierConfig(channels=(4, 8), embedding_dim=16, window_frames=32, window_hop=16)


def clips(n, seed):
    """Half steady tones (random pitch), half noise bursts; lengths vary from 0.3 to 2.5 s."""
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for i in range(n):
        t = np.arange(int(SR * rng.uniform(0.3, 2.5))) / SR
        if i % 2:
            waves.append(0.5 * np.sin(2 * np.pi * rng.uniform(200, 900) * t))
            labels.append("tone")
        else:
            gate = (np.sin(2 * np.pi * rng.uniform(2, 6) * t) > 0).astype(float)
            waves.append(0.5 * rng.standard_normal(t.size) * gate)
            labels.append("noise")
    return [w.astype(np.float32) for w in waves], labels


@pytest.fixture(scope="module")
def trained():
    waves, labels = clips(40, seed=0)
    return SoundClassifier(TINY, seed=0).fit(waves, labels, epochs=8, batch_size=16)


def test_learns_held_out_clips(trained):
    waves, labels = clips(20, seed=1)
    assert trained.config.classes == ("noise", "tone")
    accuracy = np.mean(np.array(trained.predict(waves)) == np.array(labels))
    assert accuracy >= 0.9, accuracy
    proba = trained.predict_proba(waves)
    assert proba.shape == (20, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert trained.history_[-1] < trained.history_[0]


def test_save_load_round_trip_and_determinism(trained, tmp_path):
    path = trained.save(tmp_path / "clf.safetensors")
    loaded = SoundClassifier.load(path)
    waves, _ = clips(6, seed=2)
    for a, b in zip(trained.transform(waves), loaded.transform(waves), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    again = SoundClassifier(TINY, seed=0).fit(*clips(40, seed=0), epochs=8, batch_size=16)
    np.testing.assert_allclose(again.predict_proba(waves), trained.predict_proba(waves), atol=1e-5)


def test_encoder_outputs_and_files(trained, tmp_path):
    weights = trained.save(tmp_path / "clf.safetensors")
    waves, _ = clips(3, seed=3)
    paths = []
    for i, wave in enumerate(waves):
        paths.append(tmp_path / f"{i}.wav")
        soundfile.write(str(paths[-1]), wave, 44_100)  # resampled to the model's 16 kHz on load
    for output, dim in (("embedding", 16), ("posteriors", 2), ("both", 18)):
        encoder = create_encoder("audio-sound-classifier", overrides={"weights": str(weights),
                                                                      "output": output})
        out = encoder.encode([encoder.prepare(p) for p in paths])
        assert encoder.dim == dim and out.shape == (3, dim) and out.dtype == np.float32
    assert encoder.classes == ("noise", "tone")
    np.testing.assert_allclose(out[:, -2:].sum(axis=1), 1.0, rtol=1e-5)


def test_errors(tmp_path):
    with pytest.raises(NotFittedError):
        SoundClassifier(TINY).predict_proba([np.zeros(SR, np.float32)])
    with pytest.raises(ConfigError, match="at least two classes"):
        SoundClassifier(TINY).fit([np.zeros(SR, np.float32)] * 2, ["a", "a"])
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(Exception, match="safetensors|mmrec sound classifier|header"):
        SoundClassifier.load(tmp_path / "x.safetensors")
    with pytest.raises(ConfigError, match="output must be one of"):
        create_encoder("audio-sound-classifier", overrides={"output": "logits"})


def test_shipped_model_is_a_preset():
    encoder = create_encoder("audio-sound-classifier")
    assert set(encoder.classes) == {"music", "speech", "effect"}
    t = np.arange(SR * 3) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392)).astype(np.float32) * 0.2
    assert encoder.encode([chord]).shape == (1, encoder.dim)
    assert mmrec.get_preset("audio-sound-classifier").encoder == "sound-classifier"
