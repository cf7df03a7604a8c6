"""The Dream language model (``model.*``): a Qwen2.5-shaped decoder with bidirectional attention.

Pre-norm layers ``h + o_proj(attn(RMSNorm(h)))`` then ``h + down(silu(gate(x)) * up(x))``; GQA with q/k/v bias;
M-RoPE (spec dream-vl.md 1.5). Attention is fully bidirectional, masking only padding; a model built with
``causal=True`` is the autoregressive control (same weights, causal mask).

Padding semantics (spec 1.8): the official SDPA path masks pairs ``query valid AND key valid``, so a padded
query row attends to nothing and (torch >= 2.5) outputs zeros. We reproduce exactly that result without ever
handing SDPA a fully-masked row (whose output is backend-dependent, NaN on some): padded query rows are given
an arbitrary non-empty key set and their attention output is then set to 0. Valid rows never see padded keys.

KV cache (:class:`KVCache`): per layer the keys (after rotary) and values ``[B, H_kv, L_cached, Dh]``. A forward
with ``past_key_values`` attends from the new tokens to the cached ones plus themselves; ``attention_mask`` then
covers cached + new positions ``[B, L_cached + L]``. In causal mode this is exact incremental decoding. In
bidirectional mode it is a *prefix cache*: the cached keys/values are those of the prefix computed on its own
(the prefix did not see later tokens), which is the usual approximation of cached diffusion decoding; the new
tokens attend to the whole prefix and to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dreamvlx.config import DreamVLConfig
from dreamvlx.modeling.activations import get_activation
from dreamvlx.modeling.rope import apply_rotary, as_mrope_positions, mrope_cos_sin


@dataclass
class KVCache:
    """Per-layer ``(keys, values)``, each [B, H_kv, L_cached, Dh] (keys already rotated)."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def length(self) -> int:
        return self.layers[0][0].shape[2] if self.layers else 0


class RMSNorm(nn.Module):
    """``weight * (x / sqrt(mean(x^2) + eps))`` with the normalisation in float32, cast back before the weight."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


@dataclass
class AttentionMask:
    """What SDPA needs for one forward: a boolean ``mask`` [B or 1, 1, Lq, Lk] (True = attend) or None with
    ``is_causal``; ``query_valid`` [B, Lq] (None when every query is valid) zeroes padded query rows."""

    mask: torch.Tensor | None
    is_causal: bool
    query_valid: torch.Tensor | None


def build_attention_mask(
    attention_mask: torch.Tensor | None, query_len: int, key_len: int, causal: bool, device: torch.device
) -> AttentionMask:
    """From a 2-D padding mask [B, Lk] (1 = token, 0 = padding; None = no padding) to :class:`AttentionMask`.

    The last ``query_len`` of the ``key_len`` positions are the queries (the others are cached).
    """
    if attention_mask is not None and attention_mask.shape[-1] != key_len:
        raise ValueError(
            f"attention_mask covers {attention_mask.shape[-1]} positions but the keys are {key_len} "
            f"(cached + new tokens)"
        )
    padded = attention_mask is not None and not bool(attention_mask.bool().all())
    if not padded:
        if not causal:
            return AttentionMask(None, False, None)
        if query_len == key_len:
            return AttentionMask(None, True, None)
    allowed = torch.ones(1, 1, query_len, key_len, dtype=torch.bool, device=device)
    if causal:
        offset = key_len - query_len
        allowed = torch.ones(query_len, key_len, dtype=torch.bool, device=device).tril(offset)[None, None]
    if not padded:
        return AttentionMask(allowed, False, None)
    key_valid = attention_mask.bool()
    query_valid = key_valid[:, -query_len:]
    allowed = (allowed & key_valid[:, None, None, :]) | ~query_valid[:, None, :, None]
    return AttentionMask(allowed, False, query_valid)


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, H_kv, L, Dh] -> [B, H_kv * groups, L, Dh], each kv head repeated for its ``groups`` query heads."""
    if groups == 1:
        return x
    b, h, length, d = x.shape
    return x[:, :, None].expand(b, h, groups, length, d).reshape(b, h * groups, length, d)


class DreamAttention(nn.Module):
    def __init__(self, config: DreamVLConfig) -> None:
        super().__init__()
        d, hd = config.hidden_size, config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = hd
        self.dropout = config.attention_dropout
        self.q_proj = nn.Linear(d, self.num_heads * hd, bias=True)
        self.k_proj = nn.Linear(d, self.num_kv_heads * hd, bias=True)
        self.v_proj = nn.Linear(d, self.num_kv_heads * hd, bias=True)
        self.o_proj = nn.Linear(self.num_heads * hd, d, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: AttentionMask,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [B, L, D], cos/sin [B, 1, L, Dh] -> (output [B, L, D], this layer's keys/values incl. ``past``)."""
        b, length, _ = x.shape
        q = self.q_proj(x).view(b, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        groups = self.num_heads // self.num_kv_heads
        out = F.scaled_dot_product_attention(
            q,
            repeat_kv(k, groups),
            repeat_kv(v, groups),
            attn_mask=mask.mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=mask.is_causal,
        )
        out = out.transpose(1, 2).reshape(b, length, -1)
        if mask.query_valid is not None:
            out = out * mask.query_valid[..., None].to(out.dtype)
        return self.o_proj(out), (k, v)


class DreamMLP(nn.Module):
    """SwiGLU: ``down(act(gate(x)) * up(x))``, no biases."""

    def __init__(self, config: DreamVLConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act = get_activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class DreamDecoderLayer(nn.Module):
    def __init__(self, config: DreamVLConfig) -> None:
        super().__init__()
        self.self_attn = DreamAttention(config)
        self.mlp = DreamMLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self,
        h: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: AttentionMask,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """h [B, L, D] -> (h [B, L, D], this layer's keys and values incl. ``past`` when ``use_cache``, else None:
        unused outputs would be views that FSDP2 hooks for backward, with a warning, at every layer)."""
        attn_out, kv = self.self_attn(self.input_layernorm(h), cos, sin, mask, past)
        h = h + attn_out
        return h + self.mlp(self.post_attention_layernorm(h)), kv if use_cache else None


class DreamLM(nn.Module):
    """Embeddings + decoder layers + final norm (no LM head; that is ``DreamVL.lm_head``)."""

    def __init__(self, config: DreamVLConfig) -> None:
        super().__init__()
        self.config = config
        self.causal = config.is_causal
        self.embed_tokens = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.layers = nn.ModuleList(DreamDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """inputs_embeds [B, L, D] -> (final-norm hidden states [B, L, D], cache incl. these tokens or None).

        ``attention_mask`` [B, L_cached + L] (1 = token); ``position_ids`` [B, L] or [3, B, L]; without them
        positions are ``arange(L_cached, L_cached + L)`` whatever the padding (the official fallback).
        """
        b, length, _ = inputs_embeds.shape
        cached = past_key_values.length if past_key_values is not None else 0
        if past_key_values is not None and len(past_key_values.layers) != len(self.layers):
            raise ValueError(
                f"past_key_values has {len(past_key_values.layers)} layers, the model {len(self.layers)}"
            )
        if position_ids is None:
            position_ids = torch.arange(cached, cached + length, device=inputs_embeds.device).expand(b, -1)
        position_ids = as_mrope_positions(position_ids)
        if position_ids.shape[1:] != (b, length):
            raise ValueError(
                f"position_ids {tuple(position_ids.shape)} do not match the inputs [B={b}, L={length}]"
            )
        cfg = self.config
        cos, sin = mrope_cos_sin(
            position_ids, cfg.head_dim, cfg.rope_theta, cfg.mrope_section, inputs_embeds.dtype
        )
        mask = build_attention_mask(
            attention_mask, length, cached + length, self.causal, inputs_embeds.device
        )
        h = inputs_embeds
        new_layers = []
        for i, layer in enumerate(self.layers):
            past = past_key_values.layers[i] if past_key_values is not None else None
            h, kv = layer(h, cos, sin, mask, past, use_cache)
            if kv is not None:
                new_layers.append(kv)
        return self.norm(h), KVCache(new_layers) if use_cache else None
