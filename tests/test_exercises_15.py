"""The checker of chapter 15 (the attention of a cross-attention layer): it accepts the reference in two spellings,
the reference is what the package's CrossAttention computes inside, a stub is "not written yet", and every slip in
its catalogue is named."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course import CrossAttention, check_cross_attention

pytestmark = pytest.mark.usefixtures("one_thread")


def right(q, k, v):
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)  # (B, heads, N, M)
    return w @ v


def right_einsum(q, k, v):
    s = torch.einsum("bhnd,bhmd->bhnm", q, k) * q.shape[-1] ** -0.5
    return torch.einsum("bhnm,bhmd->bhnd", s.softmax(-1), v)


def test_the_reference_passes_in_both_spellings():
    for fn in (right, right_einsum):
        r = check_cross_attention(fn, quiet=True)
        assert r and r.status == "correct" and r.cases_run == 2, r.message


def test_the_reference_is_what_cross_attention_computes():
    attn = CrossAttention(8, 6, heads=2, head_dim=4).eval()
    x, c = torch.randn(2, 9, 8), torch.randn(2, 3, 6)
    B, N, M = 2, 9, 3
    q = attn.to_q(x).view(B, N, 2, 4).transpose(1, 2)
    k = attn.to_k(c).view(B, M, 2, 4).transpose(1, 2)
    v = attn.to_v(c).view(B, M, 2, 4).transpose(1, 2)
    by_hand = attn.to_out[0](right(q, k, v).transpose(1, 2).reshape(B, N, 8))
    with torch.no_grad():
        torch.testing.assert_close(attn(x, c), by_hand)


def test_a_stub_is_not_written_yet():
    def stub(q, k, v):
        raise NotImplementedError

    assert check_cross_attention(stub, quiet=True).status == "not written yet"
    assert check_cross_attention(lambda q, k, v: None, quiet=True).status == "not written yet"


@pytest.mark.parametrize("key, fn", [
    ("no_scale", lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2), -1) @ v),
    ("scale_d", lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1], -1) @ v),
    ("softmax_queries", lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -2) @ v),
    ("no_softmax", lambda q, k, v: (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])) @ v),
    ("keys_as_values", lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ k),
])
def test_each_slip_is_named(key, fn):
    r = check_cross_attention(fn, quiet=True)
    assert not r and r.status == "wrong" and key in r.mistakes, r.message


def test_shape_errors_and_in_place_changes_are_reported():
    r = check_cross_attention(lambda q, k, v: torch.softmax(q @ k / 2, -1) @ v, quiet=True)
    assert r.status == "error" and "transposed" in r.message

    def in_place(q, k, v):
        q.mul_(1.0)
        k.add_(1.0)
        return right(q, k, v)

    assert check_cross_attention(in_place, quiet=True).status == "wrong"
