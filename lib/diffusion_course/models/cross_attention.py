"""Chapter 15: cross-attention, the way Stable Diffusion's U-Net reads its text (Rombach et al. 2022, section 3.3).
Each pixel of a feature map asks a query; a short sequence of context tokens (here: tokens made from a label's
embedding, there: CLIP's text tokens) answers with keys and values. The projections carry diffusers' names and
shapes (``to_q``, ``to_k``, ``to_v``, ``to_out.0``), so the weights load into ``diffusers.models.attention_processor.
Attention`` unchanged and the two give the same output (tested)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._internal.validate import check_positive_int

__all__ = ["CrossAttention", "CrossAttentionBlock", "LabelTokens"]


class CrossAttention(nn.Module):
    """softmax(Q K^T / sqrt(d)) V with Q = x W_q (B, N, heads * d) from the queries x (B, N, query_dim) and K = c W_k,
    V = c W_v from the context c (B, M, context_dim); heads of width d = head_dim, then the output projection
    back to query_dim. Without bias on q, k, v and with bias on the output: diffusers' ``Attention`` defaults."""

    def __init__(self, query_dim: int, context_dim: int, *, heads: int = 1, head_dim: int = 32) -> None:
        super().__init__()
        check_positive_int(query_dim, "query_dim")
        check_positive_int(context_dim, "context_dim")
        check_positive_int(heads, "heads")
        check_positive_int(head_dim, "head_dim")
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.to_q.in_features:
            raise ValueError(f"x must have shape (B, N, {self.to_q.in_features}); got {tuple(x.shape)}")
        if context.ndim != 3 or context.shape[0] != x.shape[0] or context.shape[-1] != self.to_k.in_features:
            raise ValueError(f"context must have shape ({x.shape[0]}, M, {self.to_k.in_features}); got {tuple(context.shape)}")
        B, N, _ = x.shape
        M = context.shape[1]
        h, d = self.heads, self.head_dim
        q = self.to_q(x).view(B, N, h, d).transpose(1, 2)  # (B, heads, N, d): one query per pixel
        k = self.to_k(context).view(B, M, h, d).transpose(1, 2)  # (B, heads, M, d): one key per context token
        v = self.to_v(context).view(B, M, h, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d): each pixel's mix of the token values
        out = out.transpose(1, 2).reshape(B, N, h * d)
        return self.to_out[1](self.to_out[0](out))  # (B, N, query_dim)


class CrossAttentionBlock(nn.Module):
    """A feature map (B, C, H, W) attending to context tokens (B, M, context_dim): x + attn(norm(x) as H*W tokens, c).
    The output projection starts at zero, so the block starts as the identity (the network starts unconditional)."""

    def __init__(self, ch: int, context_dim: int, *, groups: int, heads: int = 1) -> None:
        super().__init__()
        check_positive_int(ch, "ch")
        check_positive_int(groups, "groups", 1, ch)
        if ch % groups:
            raise ValueError(f"groups must divide ch = {ch}; got {groups}")
        check_positive_int(heads, "heads", 1, ch)
        if ch % heads:
            raise ValueError(f"heads must divide ch = {ch} (a value in [1, {ch}]); got {heads}")
        self.norm = nn.GroupNorm(groups, ch)
        self.attn = CrossAttention(ch, context_dim, heads=heads, head_dim=ch // heads)
        nn.init.zeros_(self.attn.to_out[0].weight)
        nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        tokens = self.norm(x).reshape(B, C, H * W).transpose(1, 2)  # (B, HW, C)
        out = self.attn(tokens, context).transpose(1, 2).reshape(B, C, H, W)
        return x + out


class LabelTokens(nn.Module):
    """Labels (B,) -> context tokens (B, tokens, dim): each label (and the "no label" token ``num_classes``) owns a
    learned sequence of ``tokens`` vectors, the stand-in for a text encoder's output."""

    def __init__(self, num_classes: int, tokens: int, dim: int) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(tokens, "tokens")
        check_positive_int(dim, "dim")
        self.tokens, self.dim = tokens, dim
        self.embed = nn.Embedding(num_classes + 1, tokens * dim)
        nn.init.normal_(self.embed.weight, std=1.0)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.embed(y).view(y.shape[0], self.tokens, self.dim)  # (B, tokens, dim)
