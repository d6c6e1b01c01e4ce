"""Train the shipped sound classifier (music / speech / effect) on audio that installs offline.

    apt-get install -y wesnoth-1.16-music hyperrogue-music asterisk-core-sounds-en-wav \
        tuxpaint-stamps-default sound-theme-freedesktop
    python examples/train_sound_classifier.py --out mmrec/weights/sound-classifier-v1.safetensors

Sources (Debian packages; licences: wesnoth GPL-2, hyperrogue CC-BY-SA, asterisk sounds CC-BY-SA,
tuxpaint stamps GPL-2, freedesktop sound theme GPL-2/CC-BY-SA):
- music: Battle for Wesnoth soundtrack (41 tracks), HyperRogue soundtrack (17 tracks);
- speech: Asterisk English voice prompts (568, 8 kHz telephone speech), Tux Paint spoken stamp
  descriptions and spoken number words in many languages;
- effect: Tux Paint stamp sound effects (animals, vehicles, objects), HyperRogue game sounds,
  freedesktop UI sounds.
The split is by file, stratified, seeded; accuracy is on held-out files only.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import numpy as np

from mmrec.encoders.sound_classifier import SoundClassifier
from mmrec.errors import MediaError

LANGUAGE_SUFFIX = re.compile(r"_[a-z]{2,3}(_[a-zA-Z]{2,4})?$")


def collect() -> list[tuple[Path, str]]:
    """(file, label) pairs from the installed Debian packages."""
    pairs: list[tuple[Path, str]] = []
    for folder in ("/usr/share/games/wesnoth/1.16/data/core/music", "/usr/share/hyperrogue/music"):
        pairs += [(p, "music") for p in sorted(Path(folder).glob("*.ogg"))]
    pairs += [(p, "speech") for p in sorted(Path("/usr/share/asterisk/sounds").rglob("*.wav"))]
    for path in sorted(Path("/usr/share/tuxpaint/stamps").rglob("*.ogg")):
        stem = path.stem
        if "_desc" in stem or LANGUAGE_SUFFIX.search(stem):
            pairs.append((path, "speech"))  # spoken description or a spoken word in a language
        elif any(path.with_suffix(ext).exists() for ext in (".png", ".svg")):
            pairs.append((path, "effect"))  # the stamp's sound effect
    pairs += [(p, "effect") for p in sorted(Path("/usr/share/hyperrogue/sounds").glob("*.ogg"))]
    pairs += [(p, "effect") for p in sorted(Path("/usr/share/sounds/freedesktop/stereo").glob("*.oga"))]
    return pairs


def cap_per_source(pairs: list[tuple[Path, str]], cap: int, seed: int) -> list[tuple[Path, str]]:
    """At most ``cap`` files per (package folder, label), chosen with the seed."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (path, label) in enumerate(pairs):
        groups.setdefault((path.parts[3], label), []).append(i)
    keep = sorted(j for rows in groups.values() for j in rng.permutation(rows)[:cap].tolist())
    return [pairs[j] for j in keep]


def split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        test += rows[: max(1, int(round(fraction * len(rows))))].tolist()
    test_mask = np.zeros(len(labels), bool)
    test_mask[test] = True
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", default="mmrec/weights/sound-classifier-v1.safetensors")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-files-per-source", type=int, default=300,
                        help="files kept per (package, label), so no source dominates a class "
                        "(Tux Paint alone has 7,700 spoken descriptions)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    pairs = cap_per_source(collect(), args.max_files_per_source, args.seed)
    model = SoundClassifier(seed=args.seed)
    waves, labels, skipped = [], [], []
    for path, label in pairs:
        try:
            waves.append(model.load_clips([path], max_seconds=120.0)[0])
            labels.append(label)
        except MediaError as exc:
            skipped.append(f"{path}: {exc}")
    labels = np.array(labels)
    names, counts = np.unique(labels, return_counts=True)
    print(f"{len(waves)} clips ({dict(zip(names.tolist(), counts.tolist(), strict=True))}), "
          f"{len(skipped)} unreadable skipped")
    train, test = split(labels, args.test_fraction, args.seed)
    model.fit([waves[i] for i in train], labels[train].tolist(), epochs=args.epochs)
    predicted = np.array(model.predict([waves[i] for i in test]))
    truth = labels[test]
    accuracy = float((predicted == truth).mean())
    majority = float((truth == max(set(truth), key=truth.tolist().count)).mean())
    print(f"\nheld-out accuracy: {accuracy:.3f} on {len(test)} files (majority class: {majority:.3f})")
    print("| true \\ predicted | " + " | ".join(model.config.classes) + " | recall |")
    print("|---|" + "---:|" * (len(model.config.classes) + 1))
    for c in model.config.classes:
        row = [int(((truth == c) & (predicted == p)).sum()) for p in model.config.classes]
        recall = row[model.config.classes.index(c)] / max(sum(row), 1)
        print(f"| {c} | " + " | ".join(map(str, row)) + f" | {recall:.3f} |")
    out = model.save(args.out)
    report = {"held_out_accuracy": accuracy, "majority_baseline": majority, "n_train": len(train),
              "n_test": len(test), "classes": list(model.config.classes), "epochs": args.epochs,
              "final_train_loss": model.history_[-1], "seed": args.seed}
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB) and {out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
