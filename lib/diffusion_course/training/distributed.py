"""Training on several processes at once (chapters 6-11's loop, scaled out): under ``torchrun --nproc_per_node=N``,
:func:`~diffusion_course.training.loop.train` runs unchanged on every process, each one computing the network on
1/N of every batch, and the gradients are added up across processes as PyTorch's DistributedDataParallel does (gloo on
the CPU, NCCL on CUDA). The run is the one a single process makes with the same config, to float rounding.

How the batch is split so that the numbers match a single process. The loop's generator draws the batch's indices,
then the loss draws t and eps (and the label-dropout mask) for the whole batch; every process draws all of it from the
same seeded generator, so every process holds the single-process batch and its draws. The split sits inside the model
call (:class:`ShardedModel`): process r runs the network on its own rows of every batch-shaped argument (rows
r B/N to (r + 1) B/N) and receives the other rows' outputs from the other processes (``all_gather``, no gradient).
The loss is then the single-process loss on every process, and the gradient on process r is that of its own rows;
their sum over processes (one ``all_reduce`` per step, :meth:`BatchSplit.sum_gradients`) is the single-process
gradient, for any loss built from the model's outputs. Clipping, Adam and the EMA then see identical numbers on every
process, so the weights stay identical without being sent again. The network, the costly part, runs once per example
across the processes; only the draws and the loss's arithmetic are repeated on each. This is why the loop adds up the
gradients itself instead of wrapping the model in ``nn.parallel.DistributedDataParallel``: a loss may call the model
several times per step, and the split has to sit inside each call (the price: communication does not overlap the
backward pass as in DDP).

What is not bit for bit: dropout masks are drawn on each process from its own stream (seeded from the config and the
rank, kept in checkpoints), so a run with dropout is the same run in distribution, not in every digit; layers that mix
examples (BatchNorm) would see only their process's rows (the course's networks use GroupNorm); a model call whose
batch is not a multiple of N runs whole on every process with 1/N of its gradient on each (exact, no speed-up).

Files: only process 0 shows the progress bar and writes checkpoints; every process reads the checkpoint to resume (so
``checkpoint_path`` must be on a file system they share). Cards and weight files are the caller's: write them on
process 0 only, ``if is_main_process(): save_weights(...)``, as ``make weights`` does.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .._internal.devices import pick_device
from .._internal.validate import check_positive_int
from .checkpoints import CheckpointError

__all__ = ["init_distributed", "is_main_process", "process_rank", "process_count", "main_process_first", "BatchSplit", "batch_split", "ShardedModel"]


def _env_int(name: str, default: int) -> int:
    """An integer environment variable set by torchrun (WORLD_SIZE, RANK, LOCAL_RANK), or ``default`` when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the environment variable {name} must be an integer (torchrun sets it); got {value!r}") from None


def _joined() -> bool:
    return dist.is_available() and dist.is_initialized()


def process_count() -> int:
    """How many processes train together: the process group's size, else WORLD_SIZE (torchrun sets it), else 1."""
    return dist.get_world_size() if _joined() else _env_int("WORLD_SIZE", 1)


def process_rank() -> int:
    """This process's number in [0, process_count() - 1]: its rank in the process group, else RANK, else 0."""
    if _joined():
        return dist.get_rank()
    return _env_int("RANK", 0) if process_count() > 1 else 0


def is_main_process() -> bool:
    """True on process 0 and in a single process: the process that writes checkpoints, cards and weight files."""
    return process_rank() == 0


def init_distributed(device: torch.device | str | None = None) -> torch.device:
    """Join the process group that torchrun describes (WORLD_SIZE > 1 in the environment) unless joined already, and
    return the device this process computes on: ``device`` (default :func:`pick_device`), with a bare "cuda" narrowed
    to this process's card, cuda:LOCAL_RANK. The backend is gloo on the CPU, NCCL on CUDA. In a single process it only
    returns the device. Call it before moving the model, so that each process puts it on its own card."""
    device = torch.device(device) if device is not None else pick_device()
    if process_count() <= 1:
        return device
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda to train on several processes (gloo or NCCL); got {device}")
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", _env_int("LOCAL_RANK", 0) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not _joined():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on process 0 first, then on the others (e.g. a download into data/, which the others then read);
    in a single process, just run it."""
    several = _joined() and dist.get_world_size() > 1
    if several and not is_main_process():
        dist.barrier()  # wait for process 0 to finish the block
    yield
    if several and is_main_process():
        dist.barrier()  # let the others in


class BatchSplit:
    """Process ``rank`` of ``world``: its share of every batch and the collectives of the loop (module docstring).
    With world = 1 every method does nothing, so the single-process loop runs exactly as it does without it."""

    def __init__(self, rank: int, world: int, device: torch.device | None = None) -> None:
        self.world = check_positive_int(world, "world", 1)
        self.rank = check_positive_int(rank, "rank", 0, world - 1)
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.seed_offset = rank << 32  # added to the global RNG's seed: each process its own dropout stream, 0 on process 0

    def shard(self, model: Any) -> Any:
        """``model`` called on this process's rows of each batch (:class:`ShardedModel`); ``model`` itself in one process."""
        return model if self.world == 1 else ShardedModel(model, self)

    def broadcast(self, model: nn.Module) -> None:
        """Give every process the weights and buffers of process 0, as DDP does when it starts."""
        if self.world > 1:
            with torch.no_grad():
                for value in model.state_dict().values():
                    dist.broadcast(value, 0)

    def sum_gradients(self, model: nn.Module) -> None:
        """Add up the processes' gradients in place, one all_reduce per dtype: each process holds the gradient of its
        own rows of the single-process loss, so the sum is the single-process gradient, the same on every process."""
        if self.world == 1:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        for dtype in sorted({g.dtype for g in grads}, key=str):
            same = [g for g in grads if g.dtype == dtype]
            flat = torch.cat([g.reshape(-1) for g in same])
            dist.all_reduce(flat)
            for g, part in zip(same, flat.split([g.numel() for g in same])):
                g.copy_(part.view_as(g))

    def same_start(self, start: int) -> None:
        """Raise CheckpointError unless every process starts at step ``start`` (all resumed from the same checkpoint)."""
        check_positive_int(start, "start", 0)
        if self.world == 1:
            return
        both = torch.tensor([start, -start], device=self.device)
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
        if int(both[0]) != -int(both[1]):
            raise CheckpointError(f"the processes start at different steps ({-int(both[1])} to {int(both[0])}): each must read the same "
                                  "checkpoint_path, on a file system they share")

    def rng_states(self) -> dict[str, torch.Tensor]:
        """Every process's global RNG states (dropout), one row per process, for a checkpoint; {} in one process.
        A collective: every process calls it."""
        if self.world == 1:
            return {}
        mine = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None)
        states: list[Any] = [None] * self.world
        dist.all_gather_object(states, mine)
        out = {"torch_rng_ranks": torch.stack([s[0] for s in states])}
        if mine[1] is not None:
            out["cuda_rng_ranks"] = torch.stack([s[1] for s in states])
        return out

    def save_on_main(self, save: Callable[[dict, Any], None], state: dict[str, Any], path: Any) -> None:
        """``save(state, path)`` on process 0, with every process's RNG rows (:meth:`rng_states`) added to ``state``; the
        others wait until the file is there. Every process calls it."""
        state = {**state, **self.rng_states()}
        if self.rank == 0:
            save(state, path)
        self.barrier()

    def restore_rng(self, state: dict[str, Any]) -> None:
        """Put back this process's RNG states from a checkpoint's :meth:`rng_states` rows. A checkpoint written by another
        number of processes resumes with a fresh dropout stream per process (warned: only the dropout masks differ)."""
        if self.world == 1:
            return
        rows = state.get("torch_rng_ranks")
        if rows is None or len(rows) != self.world:
            if self.rank == 0:
                warnings.warn(f"the checkpoint was written by {1 if rows is None else len(rows)} process(es) and resumes on {self.world}: "
                              "the run continues, with other dropout masks than an uninterrupted run", stacklevel=3)
            torch.manual_seed(int(state.get("step", 0)) + self.seed_offset)
            return
        torch.set_rng_state(rows[self.rank].clone())  # a tensor of its own: a row of the stack (a view) crashes set_rng_state
        if self.device.type == "cuda" and state.get("cuda_rng_ranks") is not None:
            torch.cuda.set_rng_state(state["cuda_rng_ranks"][self.rank].clone(), self.device)

    def barrier(self) -> None:
        """Wait until every process gets here (after process 0 wrote a checkpoint)."""
        if self.world > 1:
            dist.barrier()


class ShardedModel:
    """``model`` called on one process's rows of each batch, the other rows' outputs gathered from the other processes
    without gradient: the output is that of ``model`` on the whole batch, its gradient that of this process's rows.
    Any tensor argument whose first dimension is the batch's (that of the first tensor argument) is cut; the model must
    return one tensor, batch first. Other attributes are the model's."""

    def __init__(self, model: Any, split: BatchSplit) -> None:
        self.model, self.split = model, split

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["model"], name)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        world, rank = self.split.world, self.split.rank
        first = next((a for a in args if isinstance(a, torch.Tensor) and a.ndim), None)
        n = first.shape[0] if first is not None else 0
        if n == 0 or n % world:  # not splittable: the whole call on every process, 1/world of its gradient on each
            out = self.model(*args, **kwargs)
            return out.detach() + (out - out.detach()) / world
        lo, hi = rank * n // world, (rank + 1) * n // world

        def cut(a: Any) -> Any:
            return a[lo:hi] if isinstance(a, torch.Tensor) and a.ndim and a.shape[0] == n else a

        mine = self.model(*[cut(a) for a in args], **{k: cut(v) for k, v in kwargs.items()})  # this process's rows
        if not isinstance(mine, torch.Tensor) or mine.ndim == 0 or mine.shape[0] != hi - lo:
            raise ValueError(f"to train on several processes the model must return one tensor with the batch first, {hi - lo} rows for "
                             f"{hi - lo} rows in; got {type(mine).__name__} {tuple(getattr(mine, 'shape', ()))}")
        parts = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(parts, mine.detach().contiguous())
        parts[rank] = mine  # this process's rows keep their gradient
        return torch.cat(parts)


def batch_split(model: nn.Module, batch_size: int) -> BatchSplit:
    """This process's :class:`BatchSplit` of batches of ``batch_size`` for ``model`` (on its device); BatchSplit(0, 1)
    in a single process. Under torchrun it joins the process group first if no one has (:func:`init_distributed`),
    checks that ``batch_size``, the global batch, is a multiple of the number of processes N (each runs the model on
    batch_size / N of it), and gives every process the weights of process 0 (:meth:`BatchSplit.broadcast`)."""
    check_positive_int(batch_size, "batch_size", 1)
    device = next(iter(model.parameters()), torch.empty(0)).device
    if process_count() <= 1:
        return BatchSplit(0, 1, device)
    init_distributed(device)
    world, rank = dist.get_world_size(), dist.get_rank()
    if batch_size % world:
        raise ValueError(f"batch_size must be a multiple of the number of processes ({world}): each process takes batch_size / {world} "
                         f"examples of every batch; got {batch_size} (try {max(world, batch_size // world * world)})")
    local, cards = _env_int("LOCAL_RANK", rank), torch.cuda.device_count() if device.type == "cuda" else 0
    if cards > 1 and device.index != local % cards:
        raise ValueError(f"the model is on {device} but this process (LOCAL_RANK {local}) has card cuda:{local % cards}: move the model "
                         "to init_distributed() (each process its own card)")
    split = BatchSplit(rank, world, device)
    split.broadcast(model)
    return split
