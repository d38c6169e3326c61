"""Training on several processes (training.distributed): two gloo processes started by torchrun on this CPU train the
same weights and EMA as one process with the same config (to float rounding), stay identical to each other, resume
exactly, show one progress bar and write checkpoints from process 0 alone; a batch that does not split raises.

The two processes run this file as a script (the ``__main__`` block at the end), once for the whole module; the
one-process reference runs are made here from the same builders.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffusion_course.data.sets import digits, swiss_roll
from diffusion_course.maths.losses import conditional_simple_loss_fn
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.mlp import MLPConfig, MLPDenoiser
from diffusion_course.models.unet import UNet, UNetConfig
from diffusion_course.training.distributed import BatchSplit, batch_split, is_main_process, process_count, process_rank
from diffusion_course.training.loop import TrainConfig, train

SCHEDULE = NoiseSchedule.linear(50)
STEPS = 5
TIMEOUT_S = 240  # torchrun and two interpreters importing torch on a busy CPU: usually well under a minute


def _points() -> torch.Tensor:
    return swiss_roll(256, seed=0)


def _mlp() -> MLPDenoiser:
    torch.manual_seed(3)
    return MLPDenoiser(MLPConfig(hidden=32, depth=2, time_dim=16))


def _unet(dropout: float = 0.0, num_classes: int | None = None) -> UNet:
    torch.manual_seed(4)
    return UNet(UNetConfig(base_channels=8, norm_groups=4, channel_mults=(1, 2), attention_levels=(1,), num_res_blocks=1, dropout=dropout,
                           num_classes=num_classes))


def _cfg(**kw) -> TrainConfig:
    # grad_clip small enough to clip: clipping must act on the summed gradient
    base = dict(steps=STEPS, batch_size=8, lr=3e-3, warmup_steps=2, lr_schedule="cosine", grad_clip=0.5, ema_decay=0.9, progress=False,
                seed=11)
    return TrainConfig(**{**base, **kw})


def _mlp_run(**kw) -> tuple[MLPDenoiser, object]:
    model = _mlp()
    return model, train(model, _points(), _cfg(**kw), schedule=SCHEDULE)


def _cond_run() -> tuple[UNet, object]:
    x, y = digits()
    model = _unet(num_classes=10)
    return model, train(model, x[:200], _cfg(label_dropout=0.3), schedule=SCHEDULE, labels=y[:200])


def _dropout_run(steps: int, ckpt: str | None) -> UNet:
    """A U-Net WITH dropout under a constant LR, so that a 3-step run resumed to 5 steps is the 5-step run."""
    model = _unet(dropout=0.2)
    train(model, digits()[0][:200], _cfg(steps=steps, lr_schedule="constant", checkpoint_path=ckpt), schedule=SCHEDULE)
    return model


def _gradients(split: BatchSplit | None = None) -> tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One backward pass of the conditional U-Net's loss on 8 digits: (loss, this process's own gradient, the gradient
    after summing over the processes). The oracle is the same pass in one process, without the split."""
    x, y = digits()
    model = _unet(num_classes=10)
    forward = split.shard(model) if split is not None else model
    loss = conditional_simple_loss_fn(SCHEDULE, 0.3, 10)(forward, x[:8], y[:8], torch.Generator().manual_seed(5))
    loss.backward()
    own = {k: p.grad.clone() for k, p in model.named_parameters()}
    if split is not None:
        split.sum_gradients(model)
    return float(loss.detach()), own, {k: p.grad.clone() for k, p in model.named_parameters()}


def _states(model: torch.nn.Module, result) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    if result is not None and result.ema is not None:
        out.update({f"ema.{k}": v.detach().clone() for k, v in result.ema.shadow.state_dict().items()})
    return out


# --- the two processes --------------------------------------------------------------------------------------------------


def _worker(out: Path) -> None:
    """One of the torchrun processes: every run below, its weights and what it saw, into ``out``."""
    import diffusion_course.training.loop as loop

    rank = int(os.environ["RANK"])
    saves: list[str] = []
    write = loop.atomic_save
    loop.atomic_save = lambda obj, path: (saves.append(str(path)), write(obj, path))[1]  # count this process's checkpoint writes
    report: dict = {"rank": rank}
    err, sys.stderr = sys.stderr, io.StringIO()  # the progress bar writes here
    model, result = _mlp_run(progress=True, checkpoint_path=str(out / "mlp.pt"))  # train() joins the process group itself
    report["bar"], sys.stderr = sys.stderr.getvalue(), err
    report.update(saves=len(saves), losses=result.losses, processes=result.processes, main=is_main_process(), count=process_count(),
                  rank_seen=process_rank())
    states = {"mlp": _states(model, result)}
    model, result = _cond_run()
    states["cond"], report["cond_losses"] = _states(model, result), result.losses
    states["dropout_whole"] = _states(_dropout_run(STEPS, None), None)
    _dropout_run(3, str(out / "dropout.pt"))
    states["dropout_resumed"] = _states(_dropout_run(STEPS, str(out / "dropout.pt")), None)
    loss, own, summed = _gradients(batch_split(_unet(num_classes=10), 8))
    states.update(own=own, summed=summed)
    report["grad_loss"] = loss
    try:
        _mlp_run(batch_size=7)
    except ValueError as e:
        report["bad_batch"] = str(e)
    torch.save(states, out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(report))


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict, dict]]:
    """(report, weights) of each of the two processes, from one torchrun call."""
    out = tmp_path_factory.mktemp("distributed")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", COURSE_DEVICE="cpu")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        log, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT_S} s:\n{log[-3000:]}")
    assert proc.returncode == 0, log[-3000:]
    return [(json.loads((out / f"rank{r}.json").read_text()), torch.load(out / f"rank{r}.pt", weights_only=True)) for r in (0, 1)]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


# --- the checks ---------------------------------------------------------------------------------------------------------


def test_summed_gradient_is_the_one_process_gradient(two, one_thread) -> None:
    """The oracle without an optimiser in between: each process's gradient is a part, their sum the whole batch's."""
    loss, _, whole = _gradients()
    for report, states in two:
        assert report["grad_loss"] == pytest.approx(loss, abs=1e-6)
        for k, g in whole.items():
            assert float((states["summed"][k] - g).abs().max()) <= 1e-5 * float(g.abs().max()) + 1e-9, k
    parts = [states["own"] for _, states in two]
    assert max(float((parts[0][k] - whole[k]).abs().max()) for k in whole) > 1e-3 * max(float(g.abs().max()) for g in whole.values())
    assert all(torch.allclose(parts[0][k] + parts[1][k], whole[k], rtol=1e-4, atol=1e-7) for k in whole)


def test_two_processes_train_the_weights_and_ema_of_one(two, one_thread) -> None:
    model, result = _mlp_run()
    one = _states(model, result)
    for report, states in two:
        assert report["processes"] == report["count"] == 2 and report["rank_seen"] == report["rank"]
        assert _max_diff(states["mlp"], one) < 1e-6, "weights or EMA of a 2-process run differ from the 1-process run"
        assert report["losses"] == pytest.approx(result.losses, abs=1e-6)  # every process logs the whole batch's loss
    assert all(torch.equal(two[0][1]["mlp"][k], two[1][1]["mlp"][k]) for k in one), "the two processes' weights drifted apart"


def test_two_processes_with_labels_match_one(two, one_thread) -> None:
    """Class-conditional U-Net (labels and the label-dropout mask cut with the batch; convolutions, GroupNorm, attention)."""
    model, result = _cond_run()
    one = _states(model, result)
    for report, states in two:
        # Adam divides each gradient entry by its own size, so the rounding of an entry near 0 moves its weight by a small
        # fraction of lr: 5e-6 is 1/600 of one step at lr 3e-3, while a gradient left unsummed moves weights by about lr
        assert _max_diff(states["cond"], one) < 5e-6
        assert report["cond_losses"] == pytest.approx(result.losses, abs=1e-6)


def test_resume_on_two_processes_is_exact_with_dropout(two) -> None:
    """Each process's dropout stream is kept in the checkpoint: 3 steps + a resume to 5 give the 5-step weights bit for bit."""
    for _, states in two:
        whole, resumed = states["dropout_whole"], states["dropout_resumed"]
        assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert all(torch.equal(two[0][1]["dropout_whole"][k], two[1][1]["dropout_whole"][k]) for k in two[0][1]["dropout_whole"])


def test_only_process_0_writes_and_shows_the_bar(two) -> None:
    (r0, _), (r1, _) = two
    assert r0["main"] and not r1["main"]
    assert r0["saves"] == 1 and r1["saves"] == 0  # the final checkpoint of the first run (no checkpoint_every)
    assert "training" in r0["bar"] and "training" not in r1["bar"]


def test_a_batch_that_does_not_split_raises(two) -> None:
    for report, _ in two:
        assert "batch_size" in report["bad_batch"] and "multiple of the number of processes (2)" in report["bad_batch"], report["bad_batch"]


def test_one_process_needs_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside torchrun nothing is joined and the split is the identity; the environment alone names the rank."""
    split = batch_split(_mlp(), 7)
    assert (split.rank, split.world, split.seed_offset) == (0, 1, 0) and split.shard(len) is len
    assert is_main_process() and process_count() == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process() and process_rank() == 1
    with pytest.raises(ValueError, match=r"rank must lie in \[0, 1\]"):
        BatchSplit(2, 2)


if __name__ == "__main__":  # run by torchrun from the fixture `two`
    torch.set_num_threads(1)
    _worker(Path(sys.argv[1]))
