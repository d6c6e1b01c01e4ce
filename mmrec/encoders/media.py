"""Decoding image and audio files, with every failure turned into a MediaError naming the file."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np

from mmrec.errors import MediaError

# "scheme:/..." — also after pathlib folded "http://host" into "http:/host".
URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")
# Images more elongated than this are cut to their central MAX_ASPECT:1 part. Every image encoder
# centre-crops a square, so it loses nothing it would have seen, while a 1x20000 banner no longer
# resizes to gigabytes (short side to 256 px: 256 x 5.1M pixels).
MAX_ASPECT = 4.0


def _require_file(path: Path, kind: str) -> None:
    if URL.match(str(path)):
        raise MediaError(f"{kind} {str(path)!r} is a URL; mmrec never downloads: fetch the files and "
                         "give local paths.")
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as exc:  # a name too long for the file system, a NUL byte, ...
        raise MediaError(f"{kind} path {str(path)[:200]!r} cannot be read ({exc.strerror or exc}); "
                         "give a valid file path.") from None
    if is_dir:
        raise MediaError(f"{kind} path is a folder, not a file: {path}")
    if not is_file:
        raise MediaError(f"{kind} file not found: {path}")


def _central_window(image: PIL.Image.Image) -> PIL.Image.Image:  # noqa: F821
    """The central part of ``image`` no more elongated than :data:`MAX_ASPECT`."""
    width, height = image.size
    if max(width, height) <= MAX_ASPECT * min(width, height):
        return image
    if width > height:
        keep = max(1, int(MAX_ASPECT * height))
        left = (width - keep) // 2
        return image.crop((left, 0, left + keep, height))
    keep = max(1, int(MAX_ASPECT * width))
    top = (height - keep) // 2
    return image.crop((0, top, width, top + keep))


def _to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:  # noqa: F821
    """RGB with any transparency composited onto white (cut-out product shots, logos), not black."""
    from PIL import Image

    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def load_image(path: Path) -> PIL.Image.Image:  # noqa: F821
    """Open an image as RGB, upright (EXIF orientation applied), transparency on white, cut to its
    central :data:`MAX_ASPECT`:1 part when longer. Missing, truncated, non-image and over-large
    files (Pillow's ``Image.MAX_IMAGE_PIXELS`` decompression-bomb limit) raise MediaError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _require_file(path, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return _central_window(_to_rgb(ImageOps.exif_transpose(image)))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(f"image too large (decompression-bomb guard): {path}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(f"not a readable image: {path}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise MediaError(f"corrupt image {path}: {exc}") from exc


def load_audio(path: Path, *, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``, keeping at most ``max_seconds``.

    Only the kept part is read from disk, so hour-long files cost no more than ``max_seconds``.
    """
    import soundfile

    _require_file(path, "audio")
    try:
        info = soundfile.info(str(path))
        frames = -1 if max_seconds is None else int(math.ceil(max_seconds * info.samplerate))
        data, native_rate = soundfile.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:  # LibsndfileError is a RuntimeError
        raise MediaError(f"not a readable audio file: {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise MediaError(f"audio file has no samples: {path}")
    mono = data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise MediaError(f"audio file holds NaN or infinite samples: {path}")
    if native_rate != sample_rate:
        from scipy.signal import resample_poly

        divisor = math.gcd(int(native_rate), int(sample_rate))
        mono = resample_poly(mono, sample_rate // divisor, native_rate // divisor).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)
