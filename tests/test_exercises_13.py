"""The checker of chapter 13 (the flow-matching loss): it accepts the reference solution, written in two ways; that
solution is the package's flow_matching_loss (same value and gradient on a real network, so the exercise teaches the
lib's loss); it says "not written yet" for a stub, and names every slip in its catalogue."""

from __future__ import annotations

import pytest
import torch

from diffusion_course.maths.flow import flow_matching_loss
from diffusion_course.models.flow_time import FlowTime
from diffusion_course.models.mlp import MLPConfig, MLPDenoiser
from diffusion_course.teaching import exercises as ex

pytestmark = pytest.mark.usefixtures("one_thread")


def right(model, x0, generator):
    """The loss as the chapter writes it: t first, then eps; x_t on the straight path; target v = eps - x0."""
    t = torch.rand(x0.shape[0], generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    tb = t.view(-1, *[1] * (x0.ndim - 1))
    x_t = (1 - tb) * x0 + tb * eps
    return ((model(x_t, t) - (eps - x0)) ** 2).mean()


def right_other_spelling(model, x0, generator):
    """The same loss through the velocity's other forms: v = (x_t - x0) / t, and F.mse_loss."""
    B = x0.shape[0]
    t = torch.rand(B, generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    x_t = torch.lerp(x0, eps, t.reshape(B, *([1] * (x0.ndim - 1))))
    return torch.nn.functional.mse_loss(model(x_t, t), eps - x0)


def test_the_reference_passes_in_both_spellings():
    for fn in (right, right_other_spelling):
        r = ex.check_flow_matching_loss(fn, quiet=True)
        assert r and r.status == "correct" and r.cases_run == 2, r.message


def test_the_reference_is_the_packages_loss_on_a_real_network():
    torch.manual_seed(0)
    model = FlowTime(MLPDenoiser(MLPConfig(hidden=16)))
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    ours = right(model, x0, torch.Generator().manual_seed(2))
    lib = flow_matching_loss(model, x0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours, lib)
    g_ours = torch.autograd.grad(ours, list(model.parameters()))
    g_lib = torch.autograd.grad(lib, list(model.parameters()))
    for a, b in zip(g_ours, g_lib):
        torch.testing.assert_close(a, b)


def _slip(kind):
    """`right` with one slip."""

    def fn(model, x0, generator):
        B = x0.shape[0]
        if kind == "draw_order":
            eps = torch.randn(x0.shape, generator=generator)
            t = torch.rand(B, generator=generator)
        elif kind == "integer_t":
            t = torch.randint(0, 1000, (B,), generator=generator)
            eps = torch.randn(x0.shape, generator=generator)
        elif kind == "logit_normal_t":
            t = torch.sigmoid(torch.randn(B, generator=generator))
            eps = torch.randn(x0.shape, generator=generator)
        elif kind == "one_t_for_batch":
            t = torch.rand(1, generator=generator).expand(B)
            eps = torch.randn(x0.shape, generator=generator)
        else:
            t = torch.rand(B, generator=generator)
            eps = torch.randn(x0.shape, generator=generator)
        tb = t.float().view(-1, *[1] * (x0.ndim - 1))
        x_t = {
            "swapped_ends": tb * x0 + (1 - tb) * eps,
            "ddpm_square_roots": (1 - tb).sqrt() * x0 + tb.sqrt() * eps,
            "x0_not_scaled": x0 + tb * eps,
            "eps_not_scaled": (1 - tb) * x0 + eps,
            "x_t": (1 - tb) * x0 + tb * torch.randn(x0.shape),
        }.get(kind, (1 - tb) * x0 + tb * eps)
        t_in = {"t_shape": t.view(-1, 1), "t_scaled": 1000 * t, "t_flipped": 1 - t}.get(kind, t)
        v_hat = model(x_t, t_in)
        target = {"sign_of_v": x0 - eps, "target_eps": eps, "target_x0": x0}.get(kind, eps - x0)
        d = v_hat - target
        loss = {"sum_for_mean": (d**2).sum(), "absolute_error": d.abs().mean(), "not_squared": d.mean(),
                "root_mean": (d**2).mean().sqrt()}.get(kind, (d**2).mean())
        return loss.detach() if kind == "no_grad" else loss

    return fn


SLIPS = ["swapped_ends", "ddpm_square_roots", "x0_not_scaled", "eps_not_scaled", "sign_of_v", "target_eps", "target_x0",
         "draw_order", "integer_t", "logit_normal_t", "one_t_for_batch", "t_shape", "t_scaled", "t_flipped", "x_t",
         "sum_for_mean", "absolute_error", "not_squared", "root_mean", "no_grad"]


@pytest.mark.parametrize("kind", SLIPS)
def test_each_slip_is_named(kind):
    r = ex.check_flow_matching_loss(_slip(kind), quiet=True)
    assert not r and r.status == "wrong", r.message
    assert r.mistake == kind, r.message


def test_the_three_classic_slips_are_explained_in_words():
    """The sign of v, the ends swapped (t = 0 taken as the noise) and (1 - t) / t exchanged read as the chapter says."""
    sign = ex.check_flow_matching_loss(_slip("sign_of_v"), quiet=True).message
    assert "eps - x0" in sign and "x0 - eps" in sign
    ends = ex.check_flow_matching_loss(_slip("swapped_ends"), quiet=True).message
    assert "t = 0 is the data" in ends and "x0 gets 1 - t" in ends
    flipped = ex.check_flow_matching_loss(_slip("t_flipped"), quiet=True).message
    assert "1 - t" in flipped


def test_stubs_errors_and_misformed_results():
    def stub(model, x0, generator):
        raise NotImplementedError

    assert ex.check_flow_matching_loss(stub, quiet=True).status == "not written yet"
    assert ex.check_flow_matching_loss(lambda m, x0, g: None, quiet=True).status == "not written yet"
    assert ex.check_flow_matching_loss(lambda m, x0, g: float(right(m, x0, g).detach()), quiet=True).mistakes == ("not_a_tensor",)
    assert ex.check_flow_matching_loss(lambda m, x0, g: (right(m, x0, g) * torch.ones(3)), quiet=True).mistakes == ("no_reduction",)
    assert ex.check_flow_matching_loss(lambda m, x0, g: (x0**2).mean(), quiet=True).mistakes == ("no_model_call",)
    assert ex.check_flow_matching_loss(3, quiet=True).mistakes == ("not_callable",)

    def no_reshape(model, x0, generator):  # t of shape (B,) against images (B, 1, 4, 4): no broadcast
        t = torch.rand(x0.shape[0], generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        return ((model((1 - t) * x0 + t * eps, t) - (eps - x0)) ** 2).mean()

    r = ex.check_flow_matching_loss(no_reshape, quiet=True)
    assert r.status == "error" and "(B, 1, ..., 1)" in r.message, r.message


def test_printed_report(capsys):
    ex.check_flow_matching_loss(_slip("sign_of_v"))
    out = capsys.readouterr().out
    assert out.startswith("flow_matching_loss: not right yet.") and "It looks like" in out
