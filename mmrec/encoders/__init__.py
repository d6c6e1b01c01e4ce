"""Modality encoders behind one interface, chosen by preset name.

Importing this package registers the built-in backends in :data:`ENCODERS`.
"""

from mmrec.encoders import (  # noqa: F401  (importing registers the backends)
    audio_mfcc,
    image_clip,
    image_cnn,
    sound_classifier,
    text_onnx,
    text_tfidf,
    text_transformer,
    text_words,
)
from mmrec.encoders.base import ENCODERS, MODALITIES, Encoder
from mmrec.encoders.presets import (
    Preset,
    add_preset,
    add_preset_dir,
    create_encoder,
    get_preset,
    list_encoders,
)

__all__ = [
    "ENCODERS",
    "MODALITIES",
    "Encoder",
    "Preset",
    "add_preset",
    "add_preset_dir",
    "create_encoder",
    "get_preset",
    "list_encoders",
]
