"""A small, deterministic multimodal demo: items with text, images and sounds, and a behaviour log.

Every item belongs to one latent topic and every modality carries it: the topic's words in the
text, its shape and colour in the image, its pitch and timbre in the sound. Users prefer two topics,
so recommendations can be checked for sense (``topic_hit_rate``). Everything is generated from a
seed; nothing is downloaded. A few items are broken on purpose (a corrupt image, a missing sound
file, no image, no sound) to show the encode report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec.utils.io import atomic_path

__all__ = ["TOPICS", "DemoData", "make_demo", "topic_hit_rate"]


@dataclass(frozen=True)
class Topic:
    name: str
    words: tuple[str, ...]
    color: tuple[int, int, int]
    shape: str
    pitch_hz: float
    harmonics: tuple[float, ...]  # relative amplitude of partials 1, 2, 3, ...
    decay: float  # envelope decay rate, 1/s


TOPICS: tuple[Topic, ...] = (
    Topic("ocean", ("sea", "wave", "sail", "harbor", "tide", "boat", "coral", "surf", "whale",
                    "lighthouse", "shore", "anchor"), (30, 90, 200), "circle", 196.0, (1.0,), 1.0),
    Topic("forest", ("tree", "moss", "fern", "oak", "trail", "pine", "owl", "mushroom", "leaf",
                     "cabin", "creek", "deer"), (40, 150, 50), "triangle", 262.0, (1.0, 0.5), 2.0),
    Topic("city", ("street", "tower", "subway", "traffic", "cafe", "skyline", "bridge", "market",
                   "taxi", "neon", "office", "plaza"), (120, 120, 130), "square", 330.0,
          (1.0, 0.0, 0.6, 0.0, 0.4), 3.0),
    Topic("space", ("rocket", "planet", "orbit", "galaxy", "comet", "astronaut", "moon", "nebula",
                    "telescope", "satellite", "star", "mars"), (20, 20, 60), "star", 110.0,
          (1.0, 0.8, 0.6, 0.4), 0.5),
    Topic("kitchen", ("recipe", "bread", "oven", "spice", "soup", "butter", "garlic", "pasta",
                      "knife", "bake", "tomato", "cheese"), (230, 140, 40), "ring", 440.0,
          (1.0, 0.3, 0.1), 6.0),
    Topic("sports", ("ball", "goal", "team", "match", "stadium", "coach", "sprint", "score",
                     "referee", "league", "racket", "medal"), (220, 30, 40), "cross", 523.0,
          (1.0, 0.0, 0.3), 8.0),
    Topic("music", ("guitar", "drum", "melody", "chord", "concert", "piano", "rhythm", "violin",
                    "choir", "album", "tempo", "jazz"), (150, 50, 180), "stripes", 294.0,
          (1.0, 0.7, 0.5, 0.35, 0.25, 0.18), 1.5),
    Topic("desert", ("dune", "cactus", "camel", "oasis", "sand", "canyon", "mirage", "lizard",
                     "sun", "mesa", "drought", "nomad"), (220, 200, 90), "diamond", 147.0,
          (1.0, 0.2, 0.5, 0.1), 0.8),
)
GENERIC_WORDS = ("new", "classic", "great", "simple", "daily", "story", "guide", "best", "small",
                 "big", "first", "last", "good", "collection", "edition", "special", "weekly",
                 "photo", "sound", "note", "view", "idea", "moment", "world")
EVENT_TYPES = ("view", "click", "play", "purchase", "rating")
EVENT_PROBS = (0.35, 0.25, 0.2, 0.08, 0.12)
START_TIME = 1_704_067_200.0  # 2024-01-01T00:00:00Z
SAMPLE_RATE = 22050
IMAGE_SIZE = 96


@dataclass(frozen=True)
class DemoData:
    """Paths of a generated demo: the catalog, the behaviour log and users' true topics."""

    root: Path
    catalog: Path
    events: Path
    users: Path


def _text(topic: Topic, rng: np.random.Generator) -> tuple[str, str, str]:
    words = lambda k, share: [  # noqa: E731 - tiny local sampler
        str(rng.choice(topic.words)) if rng.random() < share else str(rng.choice(GENERIC_WORDS))
        for _ in range(k)
    ]
    title = " ".join(words(3, 0.7)).capitalize()
    body = " ".join(words(int(rng.integers(12, 22)), 0.6)) + "."
    tags = " ".join(rng.choice(topic.words, size=3, replace=False).tolist())
    return title, body.capitalize(), tags


def _draw_image(topic: Topic, rng: np.random.Generator, path: Path) -> None:
    from PIL import Image, ImageDraw

    size = IMAGE_SIZE
    background = tuple(int(v) for v in rng.integers(200, 256, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    color = tuple(int(np.clip(c + rng.normal(0, 18), 0, 255)) for c in topic.color)
    cx, cy = rng.uniform(0.35, 0.65, size=2) * size
    r = rng.uniform(0.22, 0.35) * size
    box = (cx - r, cy - r, cx + r, cy + r)
    if topic.shape == "circle":
        draw.ellipse(box, fill=color)
    elif topic.shape == "ring":
        draw.ellipse(box, outline=color, width=int(r / 3))
    elif topic.shape == "square":
        draw.rectangle(box, fill=color)
    elif topic.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    elif topic.shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=color)
    elif topic.shape == "cross":
        w = r / 3
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=color)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=color)
    elif topic.shape == "star":
        angles = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1]
        radii = np.where(np.arange(10) % 2 == 0, r, r / 2.5)
        draw.polygon([(cx + q * np.cos(a), cy + q * np.sin(a)) for q, a in zip(radii, angles, strict=True)],
                     fill=color)
    else:  # stripes
        for x in range(0, size, 12):
            draw.rectangle((x, 0, x + 5, size), fill=color)
    noise = rng.normal(0, 6, size=(size, size, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def _synth_sound(topic: Topic, rng: np.random.Generator, path: Path) -> None:
    import soundfile

    seconds = rng.uniform(0.5, 0.9)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = topic.pitch_hz * (1 + rng.normal(0, 0.02))
    wave = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t + rng.uniform(0, 2 * np.pi))
               for h, a in enumerate(topic.harmonics))
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-topic.decay * t)
    signal = 0.3 * wave * envelope / max(sum(topic.harmonics), 1.0)
    signal += rng.normal(0, 0.003, size=t.size)
    soundfile.write(str(path), signal.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def make_demo(
    root: str | os.PathLike[str],
    *,
    n_items: int = 240,
    n_users: int = 120,
    events_per_user: tuple[int, int] = (12, 30),
    seed: int = 0,
) -> DemoData:
    """Write the demo into ``root``: ``items.csv`` (+ ``images/``, ``audio/``), ``events.csv``,
    ``users.csv`` (each user's two preferred topics). Same seed, same files."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_items):
        topic = TOPICS[i % len(TOPICS)]
        item_id = f"item{i:04d}"
        title, body, tags = _text(topic, rng)
        image = audio = None
        if rng.random() > 0.08:
            image = f"images/{item_id}.png"
            _draw_image(topic, rng, root / image)
        if rng.random() > 0.12:
            audio = f"audio/{item_id}.wav"
            _synth_sound(topic, rng, root / audio)
        rows.append({"item_id": item_id, "title": title, "body": body, "tags": tags,
                     "image_path": image, "audio_path": audio, "category": topic.name,
                     "price": round(float(rng.lognormal(3 + 0.1 * (i % len(TOPICS)), 0.3)), 2)})
    # Broken on purpose, to show the per-item report: a corrupt PNG and a dangling audio path.
    corrupt = rows[3]
    corrupt["image_path"] = f"images/{corrupt['item_id']}-corrupt.png"
    (root / corrupt["image_path"]).write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    rows[5]["audio_path"] = "audio/does-not-exist.wav"
    catalog = pd.DataFrame(rows)
    with atomic_path(root / "items.csv") as tmp:
        catalog.to_csv(tmp, index=False)

    topic_items = {t.name: catalog.index[catalog["category"] == t.name].to_numpy()
                   for t in TOPICS}
    events, users = [], []
    for u in range(n_users):
        user_id = f"user{u:03d}"
        liked = rng.choice(len(TOPICS), size=2, replace=False)
        users.append({"user_id": user_id, "topics": "|".join(TOPICS[j].name for j in liked)})
        clock = START_TIME + rng.uniform(0, 86_400 * 30)
        for _ in range(int(rng.integers(*events_per_user, endpoint=True))):
            on_topic = rng.random() < 0.85
            topic = TOPICS[int(rng.choice(liked))] if on_topic else TOPICS[int(rng.integers(len(TOPICS)))]
            item = int(rng.choice(topic_items[topic.name]))
            event = str(rng.choice(EVENT_TYPES, p=EVENT_PROBS))
            value = {"view": np.nan, "click": np.nan, "purchase": 1.0,
                     "play": round(float(rng.uniform(5, 60)), 1),
                     "rating": float(rng.integers(4, 6) if on_topic else rng.integers(1, 3))}[event]
            if event == "play":
                value = value / 30.0  # plays scaled to "about one" for a 30 s listen
            clock += rng.exponential(3_600)
            events.append({"user_id": user_id, "item_id": catalog.at[item, "item_id"],
                           "timestamp": round(clock, 1), "event": event, "value": value})
    for name, rows in (("events.csv", events), ("users.csv", users)):
        with atomic_path(root / name) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    return DemoData(root, root / "items.csv", root / "events.csv", root / "users.csv")


def topic_hit_rate(recommendations: pd.DataFrame, demo: DemoData) -> float:
    """Share of recommended items whose topic is one of the user's two preferred topics.

    Chance level is 2 / 8 = 0.25.
    """
    topics = pd.read_csv(demo.users).set_index("user_id")["topics"].str.split("|")
    category = pd.read_csv(demo.catalog).set_index("item_id")["category"]
    hits = [category[row.item] in topics[row.user] for row in recommendations.itertuples()]
    return float(np.mean(hits)) if hits else 0.0
