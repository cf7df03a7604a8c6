"""Processing: image pipeline, tokenizer, chat template, processor and training-sequence construction.

- ``image``: ``smart_resize``, ``DreamVLImageProcessor`` (images and ``Video`` clips -> ``pixel_values`` [N, 1176],
  grids ``[n, 3]``).
- ``tokenizer``: ``DreamTokenizer`` (Qwen2 byte-level BPE via ``tokenizers``) and its ``SpecialTokenIds``.
- ``small_tokenizer``: ``build_small_tokenizer`` for models trained from scratch (same special-token roles).
- ``chat``: the Dream-VL chat template rendered in Python (``render_chat``) and its Jinja string.
- ``processor``: ``DreamVLProcessor`` (texts + images -> ``input_ids``, ``attention_mask``, pixels, grids).
- ``conversation``: ``build_training_sequence`` (LLaVA conversation -> input ids + labels, spec §5.1).
"""

from __future__ import annotations

from dreamvlx.processing.chat import DEFAULT_SYSTEM_MESSAGE, DREAM_VL_CHAT_TEMPLATE, render_chat
from dreamvlx.processing.conversation import IGNORE_INDEX, TrainingSequence, build_training_sequence
from dreamvlx.processing.image import (
    PIXEL_BUDGETS,
    DreamVLImageProcessor,
    ImageBatch,
    ImageProcessorConfig,
    Video,
    smart_resize,
)
from dreamvlx.processing.processor import DreamVLProcessor
from dreamvlx.processing.small_tokenizer import action_token, build_small_tokenizer
from dreamvlx.processing.tokenizer import OFFICIAL_SPECIAL_TOKENS, DreamTokenizer, SpecialTokenIds

__all__ = [
    "DEFAULT_SYSTEM_MESSAGE",
    "DREAM_VL_CHAT_TEMPLATE",
    "IGNORE_INDEX",
    "OFFICIAL_SPECIAL_TOKENS",
    "PIXEL_BUDGETS",
    "DreamTokenizer",
    "DreamVLImageProcessor",
    "DreamVLProcessor",
    "ImageBatch",
    "ImageProcessorConfig",
    "SpecialTokenIds",
    "TrainingSequence",
    "Video",
    "action_token",
    "build_small_tokenizer",
    "build_training_sequence",
    "render_chat",
    "smart_resize",
]
