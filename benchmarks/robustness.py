"""Robustness: hostile inputs through mmrec's public API, and how each one ended.

    python benchmarks/robustness.py            # the full run (30-minute audio file, 40 mutants/source)
    python benchmarks/robustness.py --quick    # 1-minute audio, 8 mutants per source

Inputs (all generated, nothing downloaded):

* **media** — the hostile corpus of ``mmrec/testing/media_corpus.py`` (broken, odd and huge images, audio
  files and texts) in one catalog through ``encode_items``: three times with cheap encoders (TF-IDF,
  ResNet-18 at 64 px, MFCC statistics; in memory, then streamed into ``out=`` while filling an
  encode cache, then again from that cache) and once with the installed defaults (MiniLM,
  EfficientNet-Lite0 with ``mmrec[pretrained]``); plus bit-flipped and cut copies of valid files.
* **tables** — catalogs (missing, duplicate, unicode and oddly typed ids, wrong column types,
  undecodable files) through ``Catalog.from_frame/from_path`` and a text-only ``encode_items``;
  behaviour logs (unknown items, NaN ratings, duplicates, unsorted or garbage timestamps) through
  ``Interactions`` → ``restrict_to_items`` → ``TwoTower.fit`` → ``recommend``.
* **artifacts** — saved ItemVectors, ItemIndex, TwoTower and sharded-index folders (one shard
  tampered with), truncated or tampered with,
  through their ``load``: each must raise ``ArtifactError``.

Every input ends as one of: *valid* (encoded, accepted or loaded), *reported* (skipped and listed
with its reason: ``ItemVectors.report``, ``Interactions.dropped``), *mmrec error* (an ``MmrecError``
naming the problem), *crashed* (any other exception) or *lost* (an item or event that vanished
without being counted). An outcome other than the one the input expects is *unexpected*. The exit
status is 1 when anything crashed, was lost or was unexpected.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mmrec  # noqa: E402
from mmrec.encoders.presets import default_encoder  # noqa: E402
from mmrec.errors import ArtifactError, MmrecError  # noqa: E402
from mmrec.testing.media_corpus import ABSENT, ENCODED, REPORTED, Corpus, make_corpus, make_mutants  # noqa: E402

VALID, REPORT, ERROR, CRASH, LOST = "valid", "reported", "mmrec error", "crashed", "lost"
COLUMNS = ["tried", VALID, REPORT, ERROR, CRASH, LOST, "unexpected"]


class Tally:
    """Outcome counts per kind of input, and the details of every surprise."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
        self.surprises: list[str] = []

    def add(self, kind: str, outcome: str, expected: set[str], what: str, detail: str = "") -> None:
        row = self.rows[kind]
        row["tried"] += 1
        row[outcome] += 1
        if outcome not in expected:
            row["unexpected"] += 1
            self.surprises.append(f"{kind} / {what}: expected {' or '.join(sorted(expected))}, got "
                                  f"{outcome}{': ' + detail[:300] if detail else ''}")

    def table(self) -> str:
        width = max(len(k) for k in self.rows)
        head = f"| {'kind':<{width}} | " + " | ".join(COLUMNS) + " |"
        rule = "|" + "-" * (width + 2) + "|" + "|".join("-" * (len(c) + 2) for c in COLUMNS) + "|"
        lines = [head, rule]
        total = dict.fromkeys(COLUMNS, 0)
        for kind, row in self.rows.items():
            lines.append(f"| {kind:<{width}} | " + " | ".join(f"{row[c]:>{len(c)}}" for c in COLUMNS) + " |")
            total = {c: total[c] + row[c] for c in COLUMNS}
        lines.append(f"| {'total':<{width}} | " + " | ".join(f"{total[c]:>{len(c)}}" for c in COLUMNS) + " |")
        return "\n".join(lines)

    @property
    def failed(self) -> bool:
        return any(row[CRASH] or row[LOST] or row["unexpected"] for row in self.rows.values())


def attempt(fn: Callable[[], Any]) -> tuple[str, Any]:
    """Run ``fn``: ``(VALID, result)``, ``(ERROR, exc)`` for an MmrecError, ``(CRASH, exc)`` otherwise."""
    try:
        return VALID, fn()
    except MmrecError as exc:
        return ERROR, exc
    except Exception as exc:  # noqa: BLE001 - exactly what this benchmark counts
        return CRASH, exc


# ----------------------------------------------------------------------------- media
MEDIA_OUTCOME = {ENCODED: VALID, ABSENT: VALID, REPORTED: REPORT}


def run_media(tally: Tally, corpus: Corpus, encoders: dict[str, Any], label: str, **options: Any) -> None:
    """One ``encode_items`` over the whole corpus; each case's outcome against its expectation."""
    status, result = attempt(lambda: mmrec.encode_items(corpus.catalog(), encoders=encoders, batch_size=16,
                                                        show_progress=False, **options))
    if status != VALID:
        for case in corpus.cases:
            tally.add(f"{case.family} [{label}]", status, {VALID, REPORT}, case.kind, repr(result))
        return
    items = result
    outcomes = corpus.outcomes(items.report, items.masks)
    for case, got in zip(corpus.cases, outcomes.values(), strict=True):
        allowed = set(case.expect.split("|"))
        outcome = MEDIA_OUTCOME[got.split(":")[0]]
        if got == ABSENT and ABSENT not in allowed:
            outcome = LOST  # neither encoded nor reported: silently dropped
        as_expected = got.startswith(tuple(allowed)) and case.reason in got
        expected = {outcome} if as_expected else {MEDIA_OUTCOME[a] for a in allowed} - {outcome}
        tally.add(f"{case.family} [{label}]", outcome, expected, f"{case.item_id} {case.kind}", got)
    n = len(corpus.frame)
    for modality, counts in items.report.counts.items():
        if sum(counts.values()) != n or counts["encoded"] != int(items.masks[modality].sum()):
            tally.add(f"counts add up [{label}]", LOST, {VALID}, modality, str(counts))
        else:
            tally.add(f"counts add up [{label}]", VALID, {VALID}, modality)


# ----------------------------------------------------------------------------- catalog tables
def catalog_cases(folder: Path) -> list[tuple[str, Callable[[], mmrec.Catalog], set[str], int]]:
    """(what, build, expected outcomes, rows) per hostile catalog table."""

    def frame(ids: list[Any], titles: list[Any] | None = None, **extra: list[Any]) -> pd.DataFrame:
        titles = titles if titles is not None else [f"wool sweater number {i}" for i in range(len(ids))]
        columns = {"item_id": ids, "title": titles, **extra}
        return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})

    def from_frame(table: pd.DataFrame, **kw: Any) -> Callable[[], mmrec.Catalog]:
        return lambda: mmrec.Catalog.from_frame(table, base_dir=folder, **kw)

    def file(name: str, content: bytes) -> Callable[[], mmrec.Catalog]:
        path = folder / name
        path.write_bytes(content)
        return lambda: mmrec.Catalog.from_path(path)

    ok = {VALID}
    err = {ERROR}
    good_csv = "item_id,title\n1,red wool sweater\n2,blue cotton shirt\n3,green silk scarf\n"
    return [
        ("clean", from_frame(frame(["a", "b", "c"])), ok, 3),
        ("NaN id", from_frame(frame(["a", np.nan, "c"])), err, 3),
        ("None and blank ids", from_frame(frame(["a", None, "  "])), err, 3),
        ("duplicate ids", from_frame(frame(["a", "b", "a"])), err, 3),
        ("ids equal after stripping", from_frame(frame(["a", " a", "b"])), err, 3),
        ("int 1 and str '1'", from_frame(frame([1, "1", 2])), err, 3),
        ("unicode ids (emoji, RTL, NUL)", from_frame(frame(["\U0001f9e5", "\u05e1\u05d5", "a\x00b"])), ok, 3),
        ("float ids 1.0 / 2.5", from_frame(frame([1.0, 2.5, 3.0])), ok, 3),
        ("list as an id", from_frame(frame([["x"], "b", "c"])), err, 3),
        ("bool ids", from_frame(frame([True, False, "x"])), ok, 3),
        ("numbers as text", from_frame(frame(["a", "b", "c"], [1, 2.5, np.nan])), ok, 3),
        ("dict as text", from_frame(frame(["a", "b", "c"], [{"x": 1}, "b", "c"])), err, 3),
        ("bytes as text", from_frame(frame(["a", "b", "c"], [b"caf\xe9", "b", "c"])), err, 3),
        ("lone surrogates in text", from_frame(frame(["a", "b", "c"], ["x\ud800y", "b\udfff", "c"])), ok, 3),
        ("numeric column with words", from_frame(frame(["a", "b", "c"], price=[1, "cheap", 3]),
                                                 schema={"text": ["title"], "numeric": ["price"]}), err, 3),
        ("numeric column with inf", from_frame(frame(["a", "b", "c"], price=[1, np.inf, 3]),
                                               schema={"text": ["title"], "numeric": ["price"]}), err, 3),
        ("int as image path", from_frame(frame(["a", "b", "c"], image_path=[7, None, "x.jpg"])), err, 3),
        ("no id column", lambda: mmrec.Catalog.from_frame(pd.DataFrame({"title": ["a"]})), err, 1),
        ("no rows", from_frame(frame([])), err, 0),
        ("not a DataFrame", lambda: mmrec.Catalog.from_frame([{"item_id": 1}]), err, 1),
        ("CSV in Latin-1", file("latin1.csv", good_csv.replace("wool", "w\u00f6ol").encode("latin-1")),
         err, 3),
        ("CSV with NUL bytes", file("nul.csv", good_csv.replace("wool", "wo\x00ol").encode()), ok, 3),
        ("random bytes as CSV", file("noise.csv", np.random.default_rng(0).bytes(3000)), err, 0),
        ("truncated Parquet", file("cut.parquet", _parquet_bytes()[:200]), err, 3),
        ("JSONL with \\ud800 escapes", file("escapes.jsonl", b'{"item_id": "a", "title": "x\\ud800y"}\n'
                                            b'{"item_id": "b", "title": "plain"}\n'), ok, 2),
        ("missing file", lambda: mmrec.Catalog.from_path(folder / "nope.csv"), err, 0),
    ]


def _parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["x", "y", "z"]}).to_parquet(buffer)
    return buffer.getvalue()


def _encode_text(catalog: mmrec.Catalog) -> mmrec.ItemVectors:
    return mmrec.encode_items(catalog, encoders={"text": "text-tfidf-svd", "image": None, "audio": None},
                              show_progress=False)


def run_catalogs(tally: Tally, folder: Path) -> None:
    for what, build, expected, n_rows in catalog_cases(folder):
        status, result = attempt(build)
        if status == VALID and len(result) != n_rows:
            status, result = LOST, f"{len(result)} items from {n_rows} rows"
        elif status == VALID:  # an accepted catalog must also encode, its counts adding up
            status, result = attempt(lambda c=result: _encode_text(c))
            if status == VALID and sum(result.report.counts["text"].values()) != n_rows:
                status, result = LOST, f"counts {result.report.counts} for {n_rows} rows"
        tally.add("catalog tables", status, expected, what, "" if status == VALID else str(result))


# ----------------------------------------------------------------------------- behaviour logs
def event_cases(ids: list[str]) -> list[tuple[str, pd.DataFrame, set[str]]]:
    """(what, events table, expected outcomes): VALID for kept events, REPORT when some are dropped."""
    rng = np.random.default_rng(1)
    n = 400
    users = [f"u{u}" for u in rng.integers(0, 25, n)]
    items = list(rng.choice(ids, n))
    base = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": np.arange(n, dtype=float)})

    def with_column(name: str, values: list[Any] | np.ndarray) -> pd.DataFrame:
        out = base.copy()
        out[name] = pd.Series(values, dtype=object) if isinstance(values, list) else values
        return out

    ratings = rng.integers(1, 6, n).astype(float)
    ratings[::7] = np.nan
    stamps = np.arange(n, dtype=float).astype(object)
    stamps[::5] = "2021-03-04T05:06:07Z"
    garbage = np.arange(n, dtype=float).astype(object)
    garbage[13] = "yesterday"
    unknown = list(items)
    unknown[::9] = [f"ghost{k}" for k in range(len(unknown[::9]))]
    nan_users = list(users)
    nan_users[3] = np.nan
    return [
        ("clean", base, {VALID}),
        ("unknown item ids", with_column("item_id", unknown), {REPORT}),
        ("every item unknown", with_column("item_id", [f"ghost{k}" for k in range(n)]), {REPORT, ERROR}),
        ("NaN user id", with_column("user_id", nan_users), {ERROR}),
        ("NaN ratings", with_column("rating", ratings), {ERROR}),  # a rating event needs its value
        ("ratings as words", with_column("rating", ["five"] + [3.0] * (n - 1)), {ERROR}),
        ("duplicated events", pd.concat([base, base.iloc[::3]], ignore_index=True), {VALID}),
        ("unsorted timestamps", base.sample(frac=1.0, random_state=0).reset_index(drop=True), {VALID}),
        ("equal timestamps", with_column("timestamp", np.zeros(n)), {VALID}),
        ("negative timestamps", with_column("timestamp", -np.arange(n, dtype=float) * 1e6), {VALID}),
        ("some timestamps NaN", with_column("timestamp", np.where(np.arange(n) % 4, np.arange(n), np.nan)),
         {ERROR}),  # a chronological split needs all or none
        ("all timestamps NaN", with_column("timestamp", np.full(n, np.nan)), {VALID}),
        ("numbers mixed with ISO dates", with_column("timestamp", list(stamps)), {VALID}),
        ("garbage timestamp", with_column("timestamp", list(garbage)), {ERROR}),
        ("year 3000", with_column("timestamp", ["3000-01-01"] * n), {VALID}),
        ("year 10^6", with_column("timestamp", ["1000000-01-01"] * n), {ERROR}),
        ("infinite timestamp", with_column("timestamp", np.r_[np.inf, np.arange(n - 1.0)]), {ERROR}),
        ("unknown event type", with_column("event", ["teleport"] * n), {VALID}),  # default weight
        ("int ids", base.assign(user_id=rng.integers(0, 25, n)), {VALID}),
        ("one event per user", base.assign(user_id=[f"solo{k}" for k in range(n)]), {VALID}),
        ("no rows", base.iloc[:0], {ERROR}),
        ("not a DataFrame", base.to_dict("records"), {ERROR}),  # type: ignore[dict-item]
    ]


def _fit_and_recommend(items: mmrec.ItemVectors, events: mmrec.Interactions) -> pd.DataFrame:
    model = mmrec.TwoTower(dim=8, epochs=1, batch_size=128, seed=0)
    return model.fit(items, events, show_progress=False).recommend(events, k=5)


def run_events(tally: Tally) -> None:
    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(60)]
    items = mmrec.ItemVectors(ids, {"text": rng.normal(size=(60, 16)).astype(np.float32)},
                              {"text": np.ones(60, bool)})
    for what, table, expected in event_cases(ids):
        n_rows = len(table) if isinstance(table, pd.DataFrame) else 0
        status, events = attempt(lambda t=table: mmrec.Interactions.from_frame(t))
        detail = "" if status == VALID else repr(events)
        if status == VALID:
            kept = events.restrict_to_items(items.ids)
            dropped = kept.dropped.n_events if kept.dropped else 0
            if len(kept) + dropped != n_rows:
                status, detail = LOST, f"{len(kept)} kept + {dropped} dropped != {n_rows} rows"
            else:
                status, result = attempt(lambda e=kept: _fit_and_recommend(items, e))
                detail = "" if status == VALID else repr(result)
                if status == VALID and dropped:
                    status = REPORT
        tally.add("event tables", status, expected, what, detail)


# ----------------------------------------------------------------------------- artifacts
def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(folder: Path, key: str, value: Any) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest[key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _largest(folder: Path) -> Path:
    """The largest file of the artifact, its part folders included (a TwoTower's weights are in
    ``network/``), the top manifest aside."""
    files = (p for p in folder.rglob("*") if p.is_file() and p != folder / "manifest.json")
    return max(files, key=lambda p: p.stat().st_size)


TAMPERINGS: dict[str, Callable[[Path], None]] = {
    "largest file deleted": lambda f: _largest(f).unlink(),
    "largest file truncated": lambda f: (p := _largest(f)).write_bytes(p.read_bytes()[:-100]),
    "largest file emptied": lambda f: _largest(f).write_bytes(b""),
    "byte flipped in largest file": lambda f: _flip_middle(_largest(f)),
    "bytes appended to largest file": lambda f: (p := _largest(f)).write_bytes(p.read_bytes() + b"\0" * 8),
    "ids file rewritten": lambda f: next(f.rglob("*ids.json")).write_text('["x"]'),
    "manifest deleted": lambda f: (f / "manifest.json").unlink(),
    "manifest not JSON": lambda f: (f / "manifest.json").write_text("{not json"),
    "manifest empty object": lambda f: (f / "manifest.json").write_text("{}"),
    "manifest of another format": lambda f: _edit_manifest(f, "format", "something_else"),
    "manifest from a future version": lambda f: _edit_manifest(f, "format_version", 99),
    "manifest checksum edited": lambda f: _edit_manifest(f, "files", {
        k: "0" * 64 for k in json.loads((f / "manifest.json").read_text())["files"]}),
    "manifest lists no files": lambda f: _edit_manifest(f, "files", {}),
    "folder emptied": lambda f: [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in f.iterdir()],
    "folder replaced by a file": lambda f: (shutil.rmtree(f), f.write_text("not a folder")),
    "folder missing": lambda f: shutil.rmtree(f),
}


def run_artifacts(tally: Tally, folder: Path) -> None:
    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(60)]
    items = mmrec.ItemVectors(ids, {"text": rng.normal(size=(60, 16)).astype(np.float32)},
                              {"text": np.ones(60, bool)})
    events = mmrec.Interactions.from_frame(pd.DataFrame({
        "user_id": [f"u{u}" for u in rng.integers(0, 20, 300)], "item_id": rng.choice(ids, 300),
        "timestamp": np.arange(300.0)}))
    model = mmrec.TwoTower(dim=8, epochs=1, batch_size=128, seed=0).fit(items, events, show_progress=False)
    def sharded(out: Path) -> Path:
        mmrec.build_sharded_index(items, out, n_shards=3, spec="Flat")
        return out

    def whole(path: Path) -> Path:
        return path

    def second_shard(path: Path) -> Path:
        return path / "shard-00001"

    # (save, load, the folder a tampering hits): a sharded index is tampered in one of its shards
    artifacts: dict[str, tuple[Callable[[Path], Any], Callable[[Path], Any], Callable[[Path], Path]]] = {
        "ItemVectors": (items.save, mmrec.ItemVectors.load, whole),
        "ItemIndex": (mmrec.build_index(items).save, mmrec.ItemIndex.load, whole),
        "TwoTower": (model.save, mmrec.TwoTower.load, whole),
        "ShardedIndex": (sharded, mmrec.ShardedIndex.load, second_shard),
        "ShardedIndex, one shard at a time": (
            sharded, lambda p: mmrec.ShardedIndex.load(p, resident=False), second_shard),
    }
    for name, (save, load, target) in artifacts.items():
        pristine = save(folder / f"{name}-pristine".replace(" ", "-").replace(",", ""))
        status, _ = attempt(lambda p=pristine, ld=load: ld(p))
        tally.add(f"artifacts: {name}", status, {VALID}, "untouched")
        for what, tamper in TAMPERINGS.items():
            copy = folder / f"{name}-{what}".replace(" ", "-").replace(",", "")
            shutil.copytree(pristine, copy)
            tamper(target(copy))
            status, result = attempt(lambda p=copy, ld=load: ld(p))
            detail = "loaded without error" if status == VALID else repr(result)
            # the only acceptable end is an ArtifactError (another MmrecError is a surprise too)
            expected = {ERROR} if status != ERROR or isinstance(result, ArtifactError) else set()
            tally.add(f"artifacts: {name}", status, expected, what, detail)


# ----------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1-minute long audio, 8 mutants per file")
    parser.add_argument("--keep", type=Path, default=None, help="write the inputs here and keep them")
    args = parser.parse_args()
    logging.getLogger("mmrec").setLevel(logging.ERROR)  # the report is the table, not the warnings
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="sklearn")  # SVD of 3 items
    root = Path(args.keep or tempfile.mkdtemp(prefix="mmrec-robustness-"))
    tally = Tally()
    start = time.perf_counter()
    try:
        corpus = make_corpus(root / "media", long_audio_seconds=60.0 if args.quick else 1800.0)
        mutants = make_mutants(corpus, root / "mutants", per_source=8 if args.quick else 40)
        fast_image = mmrec.create_encoder("image-resnet18", overrides={"resize": 64, "crop": 64})
        fast = {"text": "text-tfidf-svd", "image": fast_image, "audio": "audio-mfcc-stats"}
        defaults = {m: default_encoder(m) for m in ("text", "image", "audio")}
        # fast x3: in memory; streamed into out= while filling an encode cache; again from that cache
        for options in ({}, {"out": root / "out0", "cache_dir": root / "cache"},
                        {"out": root / "out1", "cache_dir": root / "cache"}):
            run_media(tally, corpus, fast, "fast x3", **options)
        run_media(tally, corpus, defaults, "defaults")
        run_media(tally, mutants, fast, "fast")
        (root / "tables").mkdir(exist_ok=True)
        run_catalogs(tally, root / "tables")
        run_events(tally)
        (root / "artifacts").mkdir(exist_ok=True)
        run_artifacts(tally, root / "artifacts")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"mmrec {mmrec.__version__}; default encoders: {defaults}; "
          f"{time.perf_counter() - start:.0f} s\n")
    print(tally.table())
    if tally.surprises:
        print("\nunexpected:\n  " + "\n  ".join(tally.surprises))
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
