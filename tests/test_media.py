import io

import numpy as np
import pytest
import soundfile
from PIL import Image

from mmrec.encoders.media import load_audio, load_image
from mmrec.errors import MediaError


def png_bytes(mode="RGB", size=(20, 10)):
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG" if mode != "CMYK" else "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "I;16", "CMYK", "1"])
def test_any_image_mode_becomes_rgb(write, mode):
    image = load_image(write(f"x.{mode.replace(';', '')}.img", png_bytes(mode)))
    assert image.mode == "RGB" and image.size == (20, 10)


def test_transparent_pixels_become_white_not_black(write):
    cut_out = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    cut_out.putpixel((0, 0), (200, 10, 10, 255))
    buffer = io.BytesIO()
    cut_out.save(buffer, format="PNG")
    image = load_image(write("cut.png", buffer.getvalue()))
    assert image.getpixel((3, 3)) == (255, 255, 255) and image.getpixel((0, 0)) == (200, 10, 10)
    palette = cut_out.convert("P")
    palette.info["transparency"] = palette.getpixel((3, 3))
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", transparency=palette.getpixel((3, 3)))
    assert load_image(write("pal.png", buffer.getvalue())).getpixel((3, 3)) == (255, 255, 255)


@pytest.mark.parametrize("name,content,reason", [
    ("zero.png", b"", "not a readable image"),
    ("text.jpg", "hello, I am text", "not a readable image"),
    ("truncated.png", None, "corrupt image"),
])
def test_broken_images_raise_media_error_naming_the_file(write, name, content, reason):
    if content is None:
        content = png_bytes(size=(64, 64))[:-30]
    path = write(name, content)
    with pytest.raises(MediaError, match=reason) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_missing_image(tmp_path):
    with pytest.raises(MediaError, match="image file not found"):
        load_image(tmp_path / "nope.png")


def test_decompression_bomb_guard_is_enforced(write, monkeypatch):
    path = write("big.png", png_bytes(size=(200, 200)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(MediaError, match="decompression-bomb"):
        load_image(path)


def wav(path, samples, rate):
    soundfile.write(str(path), samples, rate)
    return path


def test_stereo_is_downmixed_and_resampled(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32)
    audio = load_audio(wav(tmp_path / "s.wav", stereo, 44100), sample_rate=22050, max_seconds=None)
    assert audio.dtype == np.float32 and audio.ndim == 1 and abs(len(audio) - 22050) <= 1
    assert 0.2 < np.abs(audio).max() < 0.6  # mean of the two channels


def test_only_max_seconds_are_read(tmp_path):
    path = wav(tmp_path / "long.wav", np.zeros(22050 * 5, np.float32), 22050)
    assert len(load_audio(path, sample_rate=22050, max_seconds=1.5)) == int(1.5 * 22050)


@pytest.mark.parametrize("name,content,reason", [
    ("noise.wav", b"RIFF....WAVEnot really", "not a readable audio file"),
    ("fake.mp3", "just text", "not a readable audio file"),
    ("zero.ogg", b"", "not a readable audio file"),
])
def test_broken_audio_raises_media_error(write, name, content, reason):
    with pytest.raises(MediaError, match=reason):
        load_audio(write(name, content), sample_rate=22050, max_seconds=None)


def test_empty_and_missing_audio(tmp_path):
    path = wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(MediaError, match="no samples"):
        load_audio(path, sample_rate=8000, max_seconds=None)
    with pytest.raises(MediaError, match="audio file not found"):
        load_audio(tmp_path / "nope.wav", sample_rate=8000, max_seconds=None)


def test_urls_are_refused_with_a_clear_reason(tmp_path):
    from pathlib import Path

    import pandas as pd

    import mmrec

    frame = pd.DataFrame({"item_id": ["a"], "title": ["x"], "image_path": ["https://example.org/a.jpg"]})
    items = mmrec.encode_items(mmrec.Catalog.from_frame(frame, base_dir=tmp_path),
                               encoders={"text": "text-tfidf-svd", "image": "image-resnet18"})
    assert "is a URL" in items.report.issues[0].reason

    with pytest.raises(MediaError, match="is a URL; mmrec never downloads"):
        load_image(Path("https://example.org/cat.jpg"))
    with pytest.raises(MediaError, match="is a URL"):
        load_audio(Path("s3://bucket/clip.wav"), sample_rate=8000, max_seconds=None)


def test_exif_orientation_is_applied(write):
    image = Image.new("RGB", (40, 20), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert load_image(write("rotated.jpg", buffer.getvalue())).size == (20, 40)
