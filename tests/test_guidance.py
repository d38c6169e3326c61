"""Class conditioning and classifier-free guidance (chapter 11): the conditional U-Net, the label-dropout loss, the
guided noise prediction and samplers, and training with labels."""

from __future__ import annotations

import pytest
import torch

from diffusion_course.maths.guidance import GuidedModel, guided_eps, guided_sample
from diffusion_course.maths.losses import conditional_simple_loss, conditional_simple_loss_fn, simple_loss
from diffusion_course.maths.samplers import ddim_sample, ddim_step, ddim_timesteps, ddpm_sample
from diffusion_course.maths.schedules import NoiseSchedule, make_betas
from diffusion_course.models.unet import UNet, UNetConfig
from diffusion_course.scoring.guidance_report import guidance_report
from diffusion_course.training.loop import TrainConfig, train

TINY = dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), mid_attention=False, norm_groups=4, dropout=0.0)


def jitter(m: UNet, seed: int = 0) -> UNet:
    """Move every weight by a little noise: a fresh U-Net predicts exactly 0 (zero-initialised output conv) and its
    label embedding is 0, so a fresh one cannot show what a label does. After this it behaves like a trained one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return m


def cond_unet(seed: int = 0, k: int = 10) -> UNet:
    torch.manual_seed(seed)
    return jitter(UNet(UNetConfig(num_classes=k, **TINY)), seed).eval()


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.from_betas(make_betas("linear", 50, 1e-4, 0.2))


def batch(b: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 1, 8, 8, generator=g), torch.randint(0, 50, (b,), generator=g), torch.randint(0, 10, (b,), generator=g)


def test_conditional_unet_starts_as_the_unconditional_one_and_null_is_the_default():
    torch.manual_seed(0)
    plain = jitter(UNet(UNetConfig(**TINY))).eval()
    torch.manual_seed(0)
    cond = UNet(UNetConfig(num_classes=10, **TINY)).eval()
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["label_embed.weight"] and not unexpected
    x, t, y = batch()
    # the label embedding starts at zero: every label, and no label, give the unconditional prediction
    assert torch.equal(cond(x, t, y), plain(x, t))
    cond = cond_unet()
    assert cond.null_label == 10
    assert torch.equal(cond(x, t), cond(x, t, torch.full((6,), 10)))
    assert not torch.allclose(cond(x, t, y), cond(x, t))  # once trained, the label changes the prediction


def test_label_changes_only_its_own_rows():
    m = cond_unet()
    x, t, y = batch()
    y2 = y.clone()
    y2[2] = (y[2] + 1) % 10
    a, b = m(x, t, y), m(x, t, y2)
    same = [i for i in range(6) if i != 2]
    assert torch.allclose(a[same], b[same], atol=1e-6) and not torch.allclose(a[2], b[2])


@pytest.mark.parametrize(
    "y, match",
    [
        (torch.full((6,), 11), r"y must hold labels in \[0, 10\]"),
        (torch.full((6,), -1), r"y must hold labels in \[0, 10\]"),
        (torch.zeros(6), "y must be an integer tensor"),
        (torch.zeros(5, dtype=torch.long), r"y must have shape \(B,\) = \(6,\)"),
    ],
)
def test_bad_labels_raise(y, match):
    x, t, _ = batch()
    with pytest.raises(ValueError, match=match):
        cond_unet()(x, t, y)


def test_unconditional_unet_refuses_labels_and_has_no_null_label():
    m = UNet(UNetConfig(**TINY))
    x, t, y = batch()
    with pytest.raises(ValueError, match="unconditional"):
        m(x, t, y)
    with pytest.raises(ValueError, match="unconditional"):
        _ = m.null_label
    with pytest.raises(ValueError, match="num_classes"):
        UNetConfig(num_classes=0, **TINY)


def test_guided_eps_is_eq6_of_ho_and_salimans():
    m = cond_unet()
    x, t, y = batch()
    null = torch.full_like(y, 10)
    for w in (0.0, 0.5, 3.0):
        want = (1 + w) * m(x, t, y) - w * m(x, t, null)  # two separate calls; guided_eps makes one of batch 2B
        assert torch.allclose(guided_eps(m, x, t, y, w), want, atol=1e-5)
    assert torch.equal(guided_eps(m, x, t, y, 0.0), m(x, t, y))  # w = 0 is the conditional model itself
    # affine in w: equal steps in w move eps_tilde by equal amounts
    e0, e1, e2 = (guided_eps(m, x, t, y, w) for w in (0.0, 1.0, 2.0))
    assert torch.allclose(e2 - e1, e1 - e0, atol=1e-5)


def test_guided_eps_bad_input():
    m = cond_unet()
    x, t, y = batch()
    with pytest.raises(ValueError, match=r"w must lie in \[0.0, inf\]"):
        guided_eps(m, x, t, y, -1.0)
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 9\]"):
        guided_eps(m, x, t, torch.full_like(y, 10), 1.0)  # the null label is not a class to guide towards
    with pytest.raises(ValueError, match="class-conditional"):
        guided_eps(UNet(UNetConfig(**TINY)), x, t, y, 1.0)
    with pytest.raises(ValueError, match="labels"):
        GuidedModel(m, y, 1.0)(x[:3], t[:3])


def test_guided_samplers_run_the_course_loops_with_eps_tilde(schedule):
    m = cond_unet()
    y = torch.tensor([0, 3, 7, 9])
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    for w in (0.0, 2.0):
        got = guided_sample(m, schedule, y, w=w, item_shape=(1, 8, 8), steps=10, x_T=x_T)
        want = ddim_sample(lambda x, t, w=w: guided_eps(m, x, t, y, w), schedule, (4, 1, 8, 8), steps=10, spacing="leading", clip_x0=1.0, x_T=x_T)
        assert got.shape == (4, 1, 8, 8) and torch.allclose(got, want, atol=1e-6)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    got = guided_sample(m, schedule, y, w=1.0, item_shape=(1, 8, 8), sampler="ddpm", generator=g1)
    want = ddpm_sample(GuidedModel(m, y, 1.0), schedule, (4, 1, 8, 8), clip_x0=1.0, generator=g2)
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="sampler must be one of"):
        guided_sample(m, schedule, y, w=1.0, item_shape=(1, 8, 8), sampler="euler")


def test_guided_loop_equals_stepping_with_the_public_guided_eps_and_ddim_step(schedule):
    """GuidedModel checks the labels and w once and then runs the unchecked eps_tilde: the same numbers, to the last
    bit, as calling the checked guided_eps and ddim_step at every step from the same generator state."""
    m = cond_unet()
    y = torch.tensor([0, 3, 7, 9])
    for w, eta in ((0.0, 0.0), (2.0, 0.5)):
        got = guided_sample(m, schedule, y, w=w, item_shape=(1, 8, 8), steps=6, eta=eta, generator=torch.Generator().manual_seed(2))
        g = torch.Generator().manual_seed(2)
        x = torch.randn(4, 1, 8, 8, generator=g)
        ts = ddim_timesteps(schedule.T, 6, "leading").tolist()
        with torch.no_grad():
            for k in range(len(ts) - 1, -1, -1):
                t = torch.full((4,), ts[k], dtype=torch.long)
                eps = guided_eps(m, x, t, y, w).float()
                x = ddim_step(schedule, x, t, ts[k - 1] if k > 0 else -1, eps, eta=eta, clip_x0=1.0, generator=g)
        assert torch.equal(got, x)


class _CondPoints(torch.nn.Module):
    """A class-conditional noise predictor for 2-D points that reads no value back (unlike the U-Net's label check)."""

    null_label = 3

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(4, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.3 * x + self.embed(y) + 0.01 * t.float()[:, None]


def test_guided_sampling_reads_values_back_once_per_call_not_once_per_step(schedule, host_reads):
    """The labels are checked (read back) when GuidedModel is built, not at every step of the loop."""
    reads = []
    for steps in (3, 6, 12):
        host_reads["reads"] = 0
        guided_sample(_CondPoints(), schedule, torch.tensor([0, 1, 2]), w=2.0, item_shape=(2,), steps=steps, eta=0.5,
                      generator=torch.Generator().manual_seed(0))
        reads.append(host_reads["reads"])
    assert reads[0] == reads[1] == reads[2], reads


def test_guidance_changes_samples_more_as_w_grows(schedule):
    m = cond_unet()
    y = torch.arange(8) % 10
    x_T = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    s = {w: guided_sample(m, schedule, y, w=w, item_shape=(1, 8, 8), steps=10, clip_x0=None, x_T=x_T) for w in (0.0, 1.0, 4.0)}
    d1 = (s[1.0] - s[0.0]).norm()
    d4 = (s[4.0] - s[0.0]).norm()
    assert 0 < d1 < d4


def test_conditional_loss_matches_its_formula_and_the_dropout_extremes(schedule):
    m = cond_unet()
    x0, t, y = batch()
    eps = torch.randn_like(x0)
    drop = torch.tensor([True, False, False, True, False, False])
    got = conditional_simple_loss(m, schedule, x0, y, t=t, eps=eps, drop=drop)
    x_t = schedule.sqrt_alpha_bar[t].view(-1, 1, 1, 1) * x0 + schedule.sqrt_one_minus_alpha_bar[t].view(-1, 1, 1, 1) * eps
    y_in = torch.where(drop, torch.full_like(y, 10), y)
    assert torch.allclose(got, ((eps - m(x_t, t, y_in)) ** 2).mean(), atol=1e-6)
    # p_uncond = 1: every label dropped, i.e. L_simple of the unconditional half
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    all_null = conditional_simple_loss(m, schedule, x0, y, p_uncond=1.0, generator=g1)
    plain = simple_loss(lambda x, tt: m(x, tt), schedule, x0, generator=g2)
    assert torch.allclose(all_null, plain, atol=1e-6)
    # the dropout share follows p_uncond
    g = torch.Generator().manual_seed(0)
    drops = torch.rand(20000, generator=g) < 0.1
    assert abs(drops.double().mean().item() - 0.1) < 0.01


def test_hot_loop_loss_is_bit_identical_to_the_checked_one(schedule):
    m = cond_unet()
    x0, _, y = batch()
    for p in (0.0, 0.3, 1.0):
        g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        a = conditional_simple_loss(m, schedule, x0, y, p_uncond=p, generator=g1)
        b = conditional_simple_loss_fn(schedule, p, 10)(m, x0, y, g2)
        assert torch.equal(a, b)
        assert torch.equal(g1.get_state(), g2.get_state())


def test_conditional_loss_bad_input(schedule):
    m = cond_unet()
    x0, _, y = batch()
    with pytest.raises(ValueError, match="p_uncond"):
        conditional_simple_loss(m, schedule, x0, y, p_uncond=1.5)
    with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 9\]"):
        conditional_simple_loss(m, schedule, x0, y + 10)
    with pytest.raises(ValueError, match="drop must be a bool tensor"):
        conditional_simple_loss(m, schedule, x0, y, drop=torch.zeros(6))


def digit_like_data(n: int = 64):
    """Two classes that differ in sign: class 0 images are +0.8 blobs, class 1 images are -0.8 blobs."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    base = torch.zeros(n, 1, 8, 8)
    base[:, :, 2:6, 2:6] = 0.8
    x = torch.where((y == 0).view(-1, 1, 1, 1), base, -base) + 0.05 * torch.randn(n, 1, 8, 8, generator=g)
    return x, y


def test_training_with_labels_resumes_exactly(tmp_path, schedule):
    x, y = digit_like_data()

    def run(steps, path=None):
        torch.manual_seed(0)
        m = UNet(UNetConfig(num_classes=2, **TINY))
        cfg = TrainConfig(steps=steps, batch_size=16, lr=1e-3, label_dropout=0.2, ema_decay=0.9, progress=False,
                          checkpoint_path=str(path) if path else None)
        return m, train(m, x, cfg, schedule=schedule, labels=y)

    m_full, r_full = run(6)
    run(3, tmp_path / "c.pt")
    m_res, r_res = run(6, tmp_path / "c.pt")
    assert r_res.resumed_from == 3 and r_res.losses == r_full.losses
    for a, b in zip(m_full.state_dict().values(), m_res.state_dict().values()):
        assert torch.equal(a, b)


def test_training_with_labels_learns_the_label(schedule):
    """After a short run on two classes that differ only in sign, the label decides the sign of the samples."""
    x, y = digit_like_data(128)
    torch.manual_seed(0)
    m = UNet(UNetConfig(num_classes=2, **TINY))
    r = train(m, x, TrainConfig(steps=150, batch_size=32, lr=3e-3, ema_decay=None, progress=False), schedule=schedule, labels=y)
    assert sum(r.losses[-20:]) / 20 < sum(r.losses[:20]) / 20
    x_T = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    centre = (slice(None), 0, slice(2, 6), slice(2, 6))
    for label, sign in ((0, 1.0), (1, -1.0)):
        s = guided_sample(m.eval(), schedule, torch.full((16,), label), w=2.0, item_shape=(1, 8, 8), steps=25, x_T=x_T)
        assert (sign * s[centre].mean(dim=(1, 2)) > 0).float().mean() >= 0.9


def test_train_labels_bad_input(schedule):
    x, y = digit_like_data(16)
    m = UNet(UNetConfig(num_classes=2, **TINY))
    cfg = TrainConfig(steps=1, batch_size=4, progress=False)
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(N,\) = \(16,\)"):
        train(m, x, cfg, schedule=schedule, labels=y[:5])
    with pytest.raises(ValueError, match=r"labels must hold class labels in \[0, 1\]"):
        train(m, x, cfg, schedule=schedule, labels=y + 1)
    with pytest.raises(ValueError, match="class-conditional"):
        train(UNet(UNetConfig(**TINY)), x, cfg, schedule=schedule, labels=y)
    with pytest.raises(ValueError, match="label_dropout"):
        TrainConfig(label_dropout=1.5)


def test_guidance_report_reads_real_digits_as_asked():
    from diffusion_course.data.sets import mnist

    x, y = mnist("train")
    idx = torch.cat([torch.nonzero(y == c).flatten()[:128] for c in range(10)])
    right = guidance_report(x[idx], y[idx])
    assert right["accuracy"] > 0.9 and right["confident_correct_share"] > 0.85
    assert right["pooled"]["n"] == 1280 and len(right["per_class_ratio"]["each"]) == 10
    wrong = guidance_report(x[idx], (y[idx] + 1) % 10)  # the same images, asked for the next digit
    assert wrong["accuracy"] < 0.05 and wrong["pooled"] == right["pooled"]
    assert "accuracy" not in guidance_report(x[idx], None)
