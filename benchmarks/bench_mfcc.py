"""MFCC statistics: mmrec's batched torch pipeline vs a per-clip librosa loop (same features).

Prints clips/s for both, the speed ratio, and the largest absolute difference between the outputs.
Usage: python benchmarks/bench_mfcc.py [--clips 200] [--seconds 5] [--batch 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mmrec.features.audio import MfccConfig, mfcc_stats


def librosa_stats(waves: list[np.ndarray], sr: int) -> np.ndarray:
    import librosa

    rows = []
    for wave in waves:
        m = librosa.feature.mfcc(y=wave, sr=sr)
        full = np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)])
        rows.append(np.concatenate([full.mean(1), full.std(1)]))
    return np.stack(rows).astype(np.float32)


def mmrec_stats(waves: list[np.ndarray], batch: int, device: str) -> np.ndarray:
    config = MfccConfig()
    out = [mfcc_stats(waves[i : i + batch], config, device=device).cpu().numpy()
           for i in range(0, len(waves), batch)]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    sr = MfccConfig().sample_rate
    rng = np.random.default_rng(0)
    # lengths vary ±30% so batching pays its padding cost, as on a real catalog
    lengths = (args.seconds * sr * rng.uniform(0.7, 1.3, size=args.clips)).astype(int)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]

    mmrec_stats(waves[:2], args.batch, args.device)  # warm-up
    start = time.perf_counter()
    ours = mmrec_stats(waves, args.batch, args.device)
    t_mmrec = time.perf_counter() - start
    librosa_stats(waves[:2], sr)  # warm-up (numba JIT)
    start = time.perf_counter()
    ref = librosa_stats(waves, sr)
    t_librosa = time.perf_counter() - start

    print(f"{args.clips} clips of ~{args.seconds:.1f} s at {sr} Hz, torch threads "
          f"{torch.get_num_threads()}, device {args.device}")
    print("| implementation | seconds | clips/s | speed vs librosa |")
    print("|---|---:|---:|---:|")
    print(f"| librosa loop | {t_librosa:.2f} | {args.clips / t_librosa:.1f} | 1.00x |")
    print(f"| mmrec batched torch (batch {args.batch}) | {t_mmrec:.2f} | {args.clips / t_mmrec:.1f} "
          f"| {t_librosa / t_mmrec:.2f}x |")
    print(f"max |mmrec - librosa| = {np.abs(ours - ref).max():.2e} (feature scale {np.abs(ref).max():.1f})")


if __name__ == "__main__":
    main()
