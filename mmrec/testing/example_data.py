"""Generated stand-ins for the data the examples' simulated parts fetch (the Lee corpus inside the
``gensim`` wheel, the ``tuxpaint-stamps-default`` and two game-music Debian packages): the same
folder layouts, file names and formats under an example's ``--cache``, with a little real-looking
structure (topic vocabularies, one colour and pitch per department, a timbre per style), so
``python examples/<name>/run.py --quick --cache FOLDER`` runs in tests without a download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmrec.testing.media_corpus import _sound_bytes, _tone

__all__ = ["write_lee_corpus", "write_stamps", "write_music"]

NEWS_TOPICS = {
    "bushfires": "fire firefighters blaze bushland homes crews winds sydney hectares",
    "middle east": "israeli palestinian gaza arafat sharon ceasefire talks security west bank",
    "cricket": "australia test wicket innings runs batsman bowler series captain",
    "economy": "interest rates bank inflation dollar growth budget treasurer markets",
    "afghanistan": "taliban kabul forces al qaeda troops bombing alliance northern",
    "aviation": "qantas ansett airline flights workers jobs administrators passengers",
}
DEPARTMENTS = {"animals": (200, 120, 40), "food": (220, 40, 40), "vehicles": (40, 90, 210),
               "clothes": (120, 40, 160)}
WORDS = ("the", "a", "said", "today", "after", "while", "officials", "report", "week", "new")


def _sentence(rng: np.random.Generator, vocabulary: list[str], length: int) -> str:
    words = [str(rng.choice(vocabulary)) if rng.random() < 0.6 else str(rng.choice(WORDS))
             for _ in range(length)]
    return " ".join(words).capitalize() + "."


def write_lee_corpus(cache: Path, *, articles: int = 130, seed: int = 0) -> Path:
    """``gensim-4.4.0/gensim/test/test_data/lee_background.cor`` and ``lee.cor``: one article a
    line (a few sentences from one topic's words), Latin-1 as the real files."""
    rng = np.random.default_rng(seed)
    folder = cache / "gensim-4.4.0" / "gensim" / "test" / "test_data"
    folder.mkdir(parents=True, exist_ok=True)
    topics = [v.split() for v in NEWS_TOPICS.values()]
    lines = [" ".join(_sentence(rng, topics[i % len(topics)], int(rng.integers(8, 16)))
                      for _ in range(int(rng.integers(3, 7)))) for i in range(articles)]
    cut = int(articles * 0.85)
    (folder / "lee_background.cor").write_text("\n".join(lines[:cut]) + "\n", "latin-1")
    (folder / "lee.cor").write_text("\n".join(lines[cut:]) + "\n", "latin-1")
    return cache / "gensim-4.4.0"


def _clip(seconds: float, rate: int, freq: float, rng: np.random.Generator, noise: float = 0.05
          ) -> np.ndarray:
    """A mono tone of ``freq`` (the media corpus's) under Gaussian noise, float32."""
    wave = _tone(seconds, rate, freq=freq)[:, 0]
    return (wave + noise * rng.normal(size=len(wave))).astype(np.float32)


def _ogg(path: Path, samples: np.ndarray, rate: int) -> None:
    path.write_bytes(_sound_bytes(samples, rate, "OGG", "VORBIS"))


def write_stamps(cache: Path, *, per_department: int = 12, seed: int = 0) -> Path:
    """``tuxpaint-stamps-default/usr/share/tuxpaint/stamps/<department>/<stamp>.txt`` (a one-line
    description), a ``.png`` picture in the department's colour, and for every third stamp an
    ``.ogg`` sound at the department's pitch."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = cache / "tuxpaint-stamps-default" / "usr" / "share" / "tuxpaint" / "stamps"
    for d, (department, colour) in enumerate(DEPARTMENTS.items()):
        folder = root / department
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_department):
            name = f"{department[:-1]}_{j:02d}"
            (folder / f"{name}.txt").write_text(f"A {department[:-1]} stamp, number {j}, "
                                                f"from the {department} collection.\n", "utf-8")
            pixels = np.clip(np.array(colour, np.float64) + rng.normal(0, 25, size=(48, 48, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(folder / f"{name}.png")
            if j % 3 == 0:
                _ogg(folder / f"{name}.ogg", _clip(1.0, 16_000, 220.0 * (d + 1), rng), 16_000)
    return root


MUSIC = {  # Debian package, folder, clips, base pitch (Hz): the albums of examples/music/run.py
    "wesnoth": ("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music", 10, 196.0),
    "hyperrogue": ("hyperrogue-music", "usr/share/hyperrogue/music", 8, 261.6),
    "effects": ("hyperrogue-music", "usr/share/hyperrogue/sounds", 10, 880.0),
}


def write_music(cache: Path, *, seconds: float = 3.0, seed: int = 0) -> list[Path]:
    """Each album's ``.ogg`` clips at its Debian path: three timbres (pitch, noise) an album, so the
    example's MFCC styles have something to find."""
    rng = np.random.default_rng(seed)
    folders = []
    for album, (package, path, clips, pitch) in MUSIC.items():
        folder = cache / package / path
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(clips):
            style = j % 3
            samples = _clip(seconds, 22_050, pitch * (1.5 ** style), rng, noise=0.02 + 0.1 * style)
            _ogg(folder / f"{album}-{j:02d}.ogg", samples, 22_050)
        folders.append(folder)
    return folders
