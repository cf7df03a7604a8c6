"""Rotary position embeddings: the ViT's 2-D rotary, the LM's M-RoPE, and the official position-id rule.

Conventions (spec dream-vl.md 1.3, 1.5, 1.7):

- rotate-half form: ``x * cos + rotate_half(x) * sin`` with ``rotate_half((x1, x2)) = (-x2, x1)`` on the two
  halves of the head dimension; cos/sin tables are ``concat(freqs, freqs)``.
- Frequencies are always computed in float32 (``inv_freq = 1 / theta ** (arange(0, dim, 2) / dim)``); the LM
  casts its cos/sin to the hidden dtype and rotates in that dtype, the ViT rotates in float32 and casts back.
- M-RoPE: position ids ``[3, B, L]`` (temporal, height, width rows); the head dimension is cut into chunks
  ``mrope_section * 2`` and chunk ``i`` reads row ``i % 3``. Three identical rows give ordinary 1-D RoPE.
"""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [..., L, Dh] by cos/sin broadcastable to it, in the dtype of the operands."""
    return x * cos + rotate_half(x) * sin


def inverse_frequencies(dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """``1 / theta ** (arange(0, dim, 2) / dim)``, float32, shape [dim // 2]."""
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    return 1.0 / (theta**exponents)


# ---------------------------------------------------------------------------------------------- LM (M-RoPE)
def as_mrope_positions(position_ids: torch.Tensor) -> torch.Tensor:
    """Accept position ids [B, L] (1-D rope) or [3, B, L] (M-RoPE) and return [3, B, L]."""
    if position_ids.dim() == 2:
        return position_ids.unsqueeze(0).expand(3, -1, -1)
    if position_ids.dim() == 3 and position_ids.shape[0] == 3:
        return position_ids
    raise ValueError(f"position_ids must have shape [B, L] or [3, B, L], got {tuple(position_ids.shape)}")


def mrope_cos_sin(
    position_ids: torch.Tensor,
    head_dim: int,
    theta: float,
    mrope_section: list[int],
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin for the LM: position ids [3, B, L] -> two tensors [B, 1, L, head_dim] in ``dtype``.

    Frequencies in float32 (``positions x inv_freq``), cast to ``dtype`` (the hidden dtype), then each of the
    chunks ``mrope_section * 2`` of the head dimension takes its values from position row ``i % 3``.
    """
    inv_freq = inverse_frequencies(head_dim, theta, position_ids.device)
    with torch.autocast(device_type=position_ids.device.type, enabled=False):
        freqs = position_ids.float()[..., None] * inv_freq  # [3, B, L, head_dim / 2]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)
    sections = list(mrope_section) * 2

    def select(table: torch.Tensor) -> torch.Tensor:
        chunks = table.split(sections, dim=-1)
        return torch.cat([chunk[i % 3] for i, chunk in enumerate(chunks)], dim=-1).unsqueeze(1)

    return select(cos), select(sin)


# ---------------------------------------------------------------------------------------------- ViT (2-D)
def vision_patch_rows_cols(grid_thw: torch.Tensor, merge_size: int) -> torch.Tensor:
    """(row, col) of every patch in the processor's merge-block order: [N_patches, 2] int64.

    Per image (t, h, w): block-row, block-col, inner-row, inner-col; repeated t times. For a 1x4x6 grid the
    order starts (0,0), (0,1), (1,0), (1,1), (0,2), (0,3), ...
    """
    pieces = []
    for t, h, w in grid_thw.tolist():
        rows = torch.arange(h).unsqueeze(1).expand(h, w)
        cols = torch.arange(w).unsqueeze(0).expand(h, w)
        blocks = [
            ids.reshape(h // merge_size, merge_size, w // merge_size, merge_size)
            .permute(0, 2, 1, 3)
            .flatten()
            for ids in (rows, cols)
        ]
        pieces.append(torch.stack(blocks, dim=-1).repeat(t, 1))
    return torch.cat(pieces, dim=0)


def vision_cos_sin(
    grid_thw: torch.Tensor, head_dim: int, merge_size: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin for the ViT: two float32 tensors [N_patches, head_dim].

    The rotary uses ``dim = head_dim / 2`` (head_dim/4 frequencies); a patch's angles are
    ``concat(table[row], table[col])`` doubled to ``head_dim`` (rotate-half layout).
    """
    device = grid_thw.device
    inv_freq = inverse_frequencies(head_dim // 2, theta, device)
    rows_cols = vision_patch_rows_cols(grid_thw, merge_size).to(device)
    max_side = int(grid_thw[:, 1:].max())
    table = torch.outer(torch.arange(max_side, device=device, dtype=torch.float32), inv_freq)
    half = table[rows_cols].flatten(1)  # [N, head_dim / 2]
    emb = torch.cat((half, half), dim=-1)
    return emb.cos(), emb.sin()


# ---------------------------------------------------------------------------------------------- position ids
def get_rope_index(
    input_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    *,
    image_token_id: int,
    video_token_id: int,
    vision_start_token_id: int,
    spatial_merge_size: int,
    video_grid_thw: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official position-id rule (spec 1.7): ``(position_ids [3, B, L], rope_deltas [B, 1])``.

    Without image and video grids: ``cumsum(mask) - 1`` with padded positions set to 1 (or ``arange(L)`` without
    a mask), the same on all three rows. With grids: per sample, over the tokens with mask 1, an image (video)
    counts only if a ``<|vision_start|>`` is immediately followed by ``<|image_pad|>`` (``<|video_pad|>``). The
    counted segments are taken in order, each at the nearer of the next ``<|image_pad|>`` and the next
    ``<|video_pad|>`` (of a kind with segments left): text runs get 1-D positions continuing from the previous
    maximum + 1, each block gets 3-D (t, h, w) positions on its merged grid ``(t, h/2, w/2)`` (raster order,
    t-major; Qwen2-VL's temporal index is the plain temporal-patch index), offset by the position where it
    starts. Images and videos are consumed from their grids with one running index each, shared across the
    batch. Padded positions keep 1. ``rope_deltas = max position + 1 - L``.

    The shipped chat template emits no ``<|vision_start|>``, so in practice every token (image and video tokens
    included) gets plain 1-D positions, as in training.
    """
    batch, length = input_ids.shape
    device = input_ids.device
    if image_grid_thw is None and video_grid_thw is None:
        if attention_mask is None:
            positions = torch.arange(length, device=device).view(1, 1, -1).expand(3, batch, -1)
            return positions, torch.zeros(batch, 1, dtype=torch.long, device=device)
        positions = attention_mask.long().cumsum(-1) - 1
        positions = positions.masked_fill(attention_mask == 0, 1)
        deltas = positions.max(-1, keepdim=True).values + 1 - length
        return positions.unsqueeze(0).expand(3, -1, -1), deltas

    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    positions = torch.ones(3, batch, length, dtype=input_ids.dtype, device=device)
    deltas = []
    grids = {"image": image_grid_thw, "video": video_grid_thw}
    pad_ids = {"image": image_token_id, "video": video_token_id}
    next_index = {"image": 0, "video": 0}
    for b in range(batch):
        keep = mask[b] == 1
        tokens = input_ids[b][keep].tolist()
        starts = [i for i, tok in enumerate(tokens[:-1]) if tok == vision_start_token_id]
        remaining = {kind: sum(tokens[i + 1] == pad_ids[kind] for i in starts) for kind in grids}
        pieces: list[torch.Tensor] = []
        cursor = 0
        for _ in range(sum(remaining.values())):
            found = {
                kind: tokens.index(pad_ids[kind], cursor)
                for kind in grids
                if remaining[kind] and pad_ids[kind] in tokens[cursor:]
            }
            if not found:
                raise ValueError(
                    f"sample {b}: no image or video pad token left after position {cursor} for the remaining "
                    f"<|vision_start|> segments (a grid larger than its run of pad tokens?)"
                )
            kind = min(found, key=found.__getitem__)
            end = found[kind]
            grid = grids[kind]
            if grid is None or next_index[kind] >= len(grid):
                raise ValueError(
                    f"sample {b} marks more {kind}s with <|vision_start|> than {kind}_grid_thw has rows "
                    f"({0 if grid is None else len(grid)})"
                )
            t, h, w = grid[next_index[kind]].tolist()
            next_index[kind] += 1
            remaining[kind] -= 1
            gh, gw = h // spatial_merge_size, w // spatial_merge_size
            text_len = end - cursor
            offset = int(pieces[-1].max()) + 1 if pieces else 0
            pieces.append(torch.arange(text_len).view(1, -1).expand(3, -1) + offset)
            block = torch.stack(
                torch.meshgrid(torch.arange(t), torch.arange(gh), torch.arange(gw), indexing="ij")
            ).flatten(1)
            pieces.append(block + text_len + offset)
            cursor = end + t * gh * gw
        if cursor < len(tokens):
            offset = int(pieces[-1].max()) + 1 if pieces else 0
            pieces.append(torch.arange(len(tokens) - cursor).view(1, -1).expand(3, -1) + offset)
        if not pieces:  # a sample made only of padding: positions stay 1, as in the text-only branch
            deltas.append(2 - length)
            continue
        sample_positions = torch.cat(pieces, dim=1)
        positions[:, b, keep] = sample_positions.to(device=device, dtype=positions.dtype)
        deltas.append(int(sample_positions.max()) + 1 - length)
    return positions, torch.tensor(deltas, device=device).unsqueeze(1)
