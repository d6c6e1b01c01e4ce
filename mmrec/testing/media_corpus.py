"""A corpus of hostile catalog items (broken, odd or huge images, audio files and texts), each with the
outcome ``encode_items`` must reach for it.

Used by ``tests/test_corrupt_media.py`` and ``benchmarks/robustness.py``::

    corpus = make_corpus(tmp_path)
    items = mmrec.encode_items(corpus.catalog(), encoders=...)
    corpus.check(items.report, items.masks)   # [] when every case ended as expected

Every file is generated here (nothing is downloaded); the whole corpus takes about a second to write,
plus the long audio file (``long_audio_seconds``, 30 minutes by default: ~58 MB of 16 kHz PCM).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import mmrec
from mmrec.vectors.item_vectors import EncodeReport

ENCODED, REPORTED, ABSENT = "encoded", "reported", "absent"
MODALITY_COLUMNS = {"text": "title", "image": "image_path", "audio": "audio_path"}
LONG_AUDIO_RATE = 16_000


@dataclass(frozen=True)
class Case:
    """One hostile catalog value: the item it belongs to, its modality, and what must become of it.

    ``expect`` is ``"encoded"``, ``"reported"`` or ``"absent"`` (or several joined by ``|``);
    ``reason`` is a phrase the report's reason must contain (``""`` when not reported).
    """

    item_id: str
    modality: str
    family: str
    kind: str
    expect: str
    reason: str = ""


@dataclass
class Corpus:
    """The generated files (under ``folder``), the catalog table that points at them, and the cases."""

    folder: Path
    frame: pd.DataFrame
    cases: list[Case]

    def catalog(self) -> mmrec.Catalog:
        return mmrec.Catalog.from_frame(self.frame, base_dir=self.folder)

    def paths(self) -> list[Path | None]:
        """Per case, the absolute path of its file (``None`` for text cases)."""
        frame = self.frame.set_index("item_id")
        return [None if c.modality == "text"
                else self.folder / frame.loc[c.item_id, MODALITY_COLUMNS[c.modality]] for c in self.cases]

    def outcomes(self, report: EncodeReport, masks: dict[str, np.ndarray]) -> dict[tuple[str, str], str]:
        """What became of every case: ``encoded``, ``absent`` or ``reported: <reason>``."""
        ids = self.frame["item_id"].tolist()
        position = {item_id: i for i, item_id in enumerate(ids)}
        reasons = {(i.item_id, i.modality): i.reason for i in report.issues}
        out = {}
        for case in self.cases:
            key = (case.item_id, case.modality)
            if key in reasons:
                out[key] = f"{REPORTED}: {reasons[key]}"
            elif masks[case.modality][position[case.item_id]]:
                out[key] = ENCODED
            else:
                out[key] = ABSENT
        return out

    def check(self, report: EncodeReport, masks: dict[str, np.ndarray]) -> list[str]:
        """Every case whose outcome differs from its expectation, as readable lines ([] = all good)."""
        wrong = []
        for case, got in zip(self.cases, self.outcomes(report, masks).values(), strict=True):
            ok = got.startswith(tuple(case.expect.split("|"))) and case.reason in got
            if not ok:
                wanted = case.expect + (f" ({case.reason})" if case.reason else "")
                wrong.append(f"{case.item_id} [{case.modality}, {case.kind}]: expected {wanted}, got {got}")
        return wrong


# ----------------------------------------------------------------------------- images
def _image_bytes(image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _gradient(size: tuple[int, int] = (48, 32), mode: str = "RGB"):
    from PIL import Image

    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(rgb, "RGB")


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header then claims ``width`` x ``height`` (a decompression bomb that
    costs nothing to make: the IHDR is rewritten and its CRC fixed)."""
    data = bytearray(_image_bytes(_gradient((4, 4), "L"), "PNG"))
    ihdr = 8  # after the signature: length (4), b"IHDR" (4), data (13), crc (4)
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21])) & 0xFFFFFFFF
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


def _palette_transparent() -> bytes:
    image = _gradient(mode="RGB").convert("P", palette=1, colors=16)
    return _image_bytes(image, "PNG", transparency=0)


def _animated_gif() -> bytes:
    frames = [_gradient(mode="RGB").rotate(a).convert("P") for a in (0, 90, 180)]
    return _image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _sixteen_bit() -> bytes:
    from PIL import Image

    return _image_bytes(Image.fromarray((np.arange(48 * 32).reshape(32, 48) * 40).astype(np.uint16)), "PNG")


def _float_tiff() -> bytes:
    from PIL import Image

    return _image_bytes(Image.fromarray(np.linspace(-5, 300, 48 * 32, dtype=np.float32).reshape(32, 48)),
                        "TIFF")


def _bad_crc_png() -> bytes:
    data = bytearray(_image_bytes(_gradient(), "PNG"))
    data[29] ^= 0xFF  # a byte of the IHDR's CRC
    return bytes(data)


def _corrupt_exif_jpeg() -> bytes:
    image = _gradient()
    exif = image.getexif()
    exif[0x0112] = 99  # an orientation that does not exist
    return _image_bytes(image, "JPEG", exif=exif)


FileCase = tuple[str, str, bytes | None, str, str]


def _image_cases(rng: np.random.Generator) -> dict[str, list[FileCase]]:
    """Per family: (kind, file name, bytes or None for "do not write", expected outcome, reason)."""
    png, jpeg = _image_bytes(_gradient(), "PNG"), _image_bytes(_gradient(), "JPEG", quality=90)
    return {"image: broken files": [
        ("plain JPEG", "ok.jpg", jpeg, ENCODED, ""),
        ("truncated JPEG", "truncated.jpg", jpeg[: len(jpeg) // 2], REPORTED, "corrupt image"),
        ("truncated PNG", "truncated.png", png[: len(png) - 40], REPORTED, "corrupt image"),
        ("PNG header only", "header-only.png", png[:33], REPORTED, "not a readable image"),
        ("zero-byte", "zero.jpg", b"", REPORTED, "not a readable image"),
        ("random bytes .jpg", "noise.jpg", rng.bytes(4096), REPORTED, "not a readable image"),
        ("text named .png", "text.png", b"<html>not an image</html>\n", REPORTED, "not a readable image"),
        ("PNG named .jpg", "png-inside.jpg", png, ENCODED, ""),
        ("bad chunk CRC", "bad-crc.png", _bad_crc_png(), REPORTED, "not a readable image"),
        ("header claims 0x0", "zero-size.png", _png_with_size(0, 0), REPORTED, "not a readable image"),
    ], "image: modes and formats": [
        ("CMYK JPEG", "cmyk.jpg", _image_bytes(_gradient(mode="CMYK"), "JPEG"), ENCODED, ""),
        ("16-bit PNG (I;16)", "sixteen.png", _sixteen_bit(), ENCODED, ""),
        ("32-bit float TIFF", "float.tif", _float_tiff(), ENCODED, ""),
        ("palette + transparency", "palette.png", _palette_transparent(), ENCODED, ""),
        ("LA", "la.png", _image_bytes(_gradient(mode="LA"), "PNG"), ENCODED, ""),
        ("RGBA", "rgba.png", _image_bytes(_gradient(mode="RGBA"), "PNG"), ENCODED, ""),
        ("1-bit", "bilevel.png", _image_bytes(_gradient(mode="1"), "PNG"), ENCODED, ""),
        ("animated GIF", "animated.gif", _animated_gif(), ENCODED, ""),
        ("WebP", "ok.webp", _image_bytes(_gradient(), "WEBP"), ENCODED, ""),
        ("bad EXIF orientation", "exif.jpg", _corrupt_exif_jpeg(), ENCODED, ""),
    ], "image: extreme sizes": [
        ("1x1", "one-pixel.png", _image_bytes(_gradient((1, 1)), "PNG"), ENCODED, ""),
        ("1x20000", "wide.png", _image_bytes(_gradient((20000, 1)), "PNG"), ENCODED, ""),
        ("20000x1", "tall.png", _image_bytes(_gradient((1, 20000)), "PNG"), ENCODED, ""),
    ], "image: decompression bombs": [
        ("bomb 30000x30000 (> 2x limit)", "bomb.png", _png_with_size(30000, 30000), REPORTED,
         "decompression-bomb"),
        ("bomb 10000x10000 (> limit)", "bomb-warn.png", _png_with_size(10000, 10000), REPORTED,
         "decompression-bomb"),
    ], "image: bad paths": [
        ("missing path", "missing.jpg", None, REPORTED, "not found"),
        ("directory path", "a-folder.jpg", None, REPORTED, "is a folder"),
    ]}


# ----------------------------------------------------------------------------- audio
def _tone(seconds: float, rate: int, channels: int = 1, *, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate)), dtype=np.float64) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    return np.stack([wave * (0.5 + 0.5 * c / max(channels, 1)) for c in range(channels)], axis=1)


def _sound_bytes(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _can_write(fmt: str) -> bool:
    import soundfile

    return fmt in soundfile.available_formats()


def write_long_wav(path: Path, seconds: float, *, rate: int = LONG_AUDIO_RATE, block_seconds: float = 60.0,
                   seed: int = 0) -> Path:
    """A 16-bit mono WAV of ``seconds`` (noise under a tone), written block by block."""
    import soundfile

    rng = np.random.default_rng(seed)
    block = int(block_seconds * rate)
    with soundfile.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        remaining = int(seconds * rate)
        while remaining > 0:
            n = min(block, remaining)
            out.write(0.1 * rng.standard_normal(n) + _tone(n / rate, rate)[:, 0] * 0.5)
            remaining -= n
    return path


def _audio_cases(rng: np.random.Generator) -> dict[str, list[FileCase]]:
    wav = _sound_bytes(_tone(1.0, 22050), 22050, "WAV", "PCM_16")
    nan = _tone(1.0, 22050)
    nan[1000:1100] = np.nan
    square = np.sign(np.sin(2 * np.pi * 220 * np.arange(22050) / 22050))[:, None]
    tone = _tone(1.0, 22050)
    encodable = [("FLAC", "ok.flac", "FLAC", None), ("OGG Vorbis", "ok.ogg", "OGG", "VORBIS"),
                 ("MP3", "ok.mp3", "MP3", "MPEG_LAYER_III")]
    return {"audio: broken files": [
        ("plain WAV", "ok.wav", wav, ENCODED, ""),
        ("random bytes .wav", "noise.wav", rng.bytes(8192), REPORTED, "not a readable audio file"),
        ("random bytes .mp3", "noise.mp3", rng.bytes(8192), REPORTED, "not a readable audio file"),
        ("text named .wav", "text.wav", b"this is not audio\n" * 20, REPORTED, "not a readable audio file"),
        ("zero-byte .wav", "zero.wav", b"", REPORTED, "not a readable audio file"),
        ("WAV header only", "header-only.wav", wav[:44], REPORTED, "no samples"),
        ("truncated WAV (header says more)", "truncated.wav", wav[: len(wav) // 3], ENCODED, ""),
        ("WAV cut inside the header", "cut-header.wav", wav[:20], REPORTED, "not a readable audio file"),
        ("NaN samples (float WAV)", "nan.wav", _sound_bytes(nan, 22050, "WAV", "FLOAT"), REPORTED, "NaN"),
    ], "audio: signals, rates, channels": [
        ("silent", "silent.wav", _sound_bytes(np.zeros((22050, 1)), 22050, "WAV"), ENCODED, ""),
        ("clipped square +-1", "clipped.wav", _sound_bytes(square, 22050, "WAV"), ENCODED, ""),
        ("stereo", "stereo.wav", _sound_bytes(_tone(1.0, 44100, 2), 44100, "WAV"), ENCODED, ""),
        ("6 channels", "surround.wav", _sound_bytes(_tone(0.5, 48000, 6), 48000, "WAV"), ENCODED, ""),
        ("8 kHz", "8k.wav", _sound_bytes(_tone(1.0, 8000), 8000, "WAV"), ENCODED, ""),
        ("22.05 kHz", "22k.wav", _sound_bytes(_tone(1.0, 22050), 22050, "WAV"), ENCODED, ""),
        ("44.1 kHz", "44k.wav", _sound_bytes(_tone(1.0, 44100), 44100, "WAV"), ENCODED, ""),
        ("96 kHz", "96k.wav", _sound_bytes(_tone(1.0, 96000), 96000, "WAV"), ENCODED, ""),
        ("0.1 s", "short.wav", _sound_bytes(_tone(0.1, 22050), 22050, "WAV"), ENCODED, ""),
        ("one sample", "one-sample.wav", _sound_bytes(np.full((1, 1), 0.5), 22050, "WAV"), ENCODED, ""),
    ], "audio: encodings and containers": [
        ("8-bit WAV", "u8.wav", _sound_bytes(_tone(1.0, 22050), 22050, "WAV", "PCM_U8"), ENCODED, ""),
        ("24-bit WAV", "s24.wav", _sound_bytes(_tone(1.0, 22050), 22050, "WAV", "PCM_24"), ENCODED, ""),
        ("float WAV", "float.wav", _sound_bytes(_tone(1.0, 22050), 22050, "WAV", "FLOAT"), ENCODED, ""),
        ("FLAC named .wav", "flac-inside.wav", _sound_bytes(tone, 22050, "FLAC"), ENCODED, ""),
        # written only where this libsndfile can (MP3 needs libsndfile >= 1.1)
        *[(kind, name, _sound_bytes(tone, 22050, fmt, subtype), ENCODED, "")
          for kind, name, fmt, subtype in encodable if _can_write(fmt)],
    ], "audio: bad paths": [
        ("missing path", "missing.wav", None, REPORTED, "not found"),
        ("directory path", "a-folder.wav", None, REPORTED, "is a folder"),
    ]}


# ----------------------------------------------------------------------------- text
def _text_cases() -> list[tuple[str, str, str, str]]:
    """(kind, text, expected outcome, reason phrase), all of the family "text: hostile strings"."""
    return [
        ("plain text", "a red wool sweater for winter walks", ENCODED, ""),
        ("empty string", "", ABSENT, ""),
        ("whitespace only", " \t\n\u00a0\u2003 ", ABSENT, ""),
        ("1 MB of text", ("lorem ipsum dolor sit amet wool sweater " * 26_000)[:1_000_000], ENCODED, ""),
        ("lone surrogates", "broken \ud800 text \udfff sweater", ENCODED, ""),
        ("mojibake (UTF-8 read as Latin-1)", "caf\u00c3\u00a9 cr\u00c3\u00a8me br\u00c3\u00bbl\u00c3\u00a9e",
         ENCODED, ""),
        ("NUL and control bytes", "wool\x00sweater\x01\x02 winter\x7f walks", ENCODED, ""),
        ("RTL (Arabic, Hebrew)", "\u0633\u062a\u0631\u0629 \u0635\u0648\u0641 \u05e1\u05d5\u05d5\u05d3\u05e8",
         ENCODED, ""),
        # no word for TF-IDF (reported: nothing to encode); a transformer's tokenizer embeds it
        ("emoji only", "\U0001f9e5\U0001f9e3 \u2744\ufe0f\U0001f6b6", f"{REPORTED}|{ENCODED}", ""),
        ("emoji and words", "cosy \U0001f9e5 sweater \U0001f468\u200d\U0001f469\u200d\U0001f467",
         ENCODED, ""),
        ("combining marks", "Z\u0336\u0321a\u0337\u0328l\u0335g\u0338o\u0334 sweater", ENCODED, ""),
        ("one very long token", "x" * 100_000, ENCODED, ""),
    ]


# ----------------------------------------------------------------------------- the corpus
def make_corpus(folder: str | Path, *, long_audio_seconds: float = 1800.0, seed: int = 0) -> Corpus:
    """Write every hostile file under ``folder`` and return the catalog table and expected outcomes.

    Each image and audio case is one item (its title is ordinary text, so the text modality has
    plenty to fit on); each text case is one item without media. ``long_audio_seconds=0`` leaves the
    long audio file out.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str | None]] = []
    cases: list[Case] = []

    def add(modality: str, family: str, kind: str, value: str, expect: str, reason: str) -> None:
        item_id = f"{modality}-{sum(c.modality == modality for c in cases):02d}"
        title = value if modality == "text" else f"{kind} item {modality} sample"
        rows.append({"item_id": item_id, "title": title,
                     **({MODALITY_COLUMNS[modality]: value} if modality != "text" else {})})
        cases.append(Case(item_id, modality, family, kind, expect, reason))

    for modality, families in (("image", _image_cases(rng)), ("audio", _audio_cases(rng))):
        (folder / modality).mkdir(exist_ok=True)
        for family, entries in families.items():
            for kind, name, content, expect, reason in entries:
                path = folder / modality / name
                if content is not None:
                    path.write_bytes(content)
                elif kind == "directory path":
                    path.mkdir(exist_ok=True)
                add(modality, family, kind, f"{modality}/{name}", expect, reason)
    if long_audio_seconds > 0:
        write_long_wav(folder / "audio" / "long.wav", long_audio_seconds, seed=seed)
        add("audio", "audio: long file", f"{long_audio_seconds / 60:g} min WAV (streamed)", "audio/long.wav",
            ENCODED, "")
    for kind, text, expect, reason in _text_cases():
        add("text", "text: hostile strings", kind, text, expect, reason)
    return Corpus(folder, _object_frame(rows), cases)


def _object_frame(rows: list[dict[str, str | None]]) -> pd.DataFrame:
    # object columns: pandas' default string dtype (Arrow) cannot hold lone surrogates
    return pd.DataFrame({column: pd.Series([row.get(column) for row in rows], dtype=object)
                         for column in ("item_id", "title", "image_path", "audio_path")})


def mutate(data: bytes, rng: np.random.Generator, *, cut: bool) -> bytes:
    """``data`` with 1-5 random bytes overwritten, after cutting it at a random length if ``cut``."""
    mutant = bytearray(data[: rng.integers(1, len(data))] if cut else data)
    for _ in range(rng.integers(1, 6)):
        mutant[rng.integers(0, len(mutant))] = rng.integers(0, 256)
    return bytes(mutant)


def make_mutants(corpus: Corpus, folder: str | Path, *, per_source: int, seed: int = 0) -> Corpus:
    """Bit-flipped and cut copies of the corpus' valid image and audio files, one item each: each must
    end encoded or reported (never absent, never a crash)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    sources = {"image": ("ok.jpg", "palette.png", "animated.gif", "ok.webp", "cmyk.jpg", "float.tif"),
               "audio": ("ok.wav", "ok.flac", "ok.ogg", "ok.mp3", "float.wav", "u8.wav")}
    rows: list[dict[str, str | None]] = []
    cases: list[Case] = []
    for modality, names in sources.items():
        (folder / modality).mkdir(parents=True, exist_ok=True)
        for name in names:
            source = corpus.folder / modality / name
            if not source.is_file():
                continue
            data = source.read_bytes()
            for k in range(per_source):
                item_id = f"mutant-{modality}-{len(cases):04d}"
                relative = f"{modality}/{item_id}{source.suffix}"
                (folder / relative).write_bytes(mutate(data, rng, cut=bool(k % 2)))
                rows.append({"item_id": item_id, "title": f"mutant of {name}",
                             MODALITY_COLUMNS[modality]: relative})
                cases.append(Case(item_id, modality, f"{modality}: mutated files (fuzz)",
                                  f"mutant of {name}", f"{ENCODED}|{REPORTED}"))
    return Corpus(folder, _object_frame(rows), cases)
