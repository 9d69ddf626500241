"""Multi-process training on ``torch.distributed``: process groups, sharding, reductions.

One model is trained by W processes (ranks). Every rank builds the same model from the same
seed; ``DistributedDataParallel`` averages the gradients. Each global batch of B images is split
between the ranks (rank r takes rows r, r + W, ...), each rank draws its own Monte Carlo noise
(seeded ``seed + rank``) and scales its loss by W so that the averaged gradient is the gradient
of the global batch's −ELBO. Evaluation is sharded the same way and gathered. Only rank 0 writes
the run directory. Backends: gloo on CPU, NCCL on CUDA.

Launch with ``pyro-mvae train trainer.devices=W`` (processes spawned here) or with
``torchrun --nproc-per-node=W -m pyro_mvae.cli train ...`` (read from the environment).
"""

import os
import socket
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from pyro_mvae.errors import Interrupted, TimeLimitReached
from pyro_mvae.training.signals import catch_stop_signals


@dataclass(frozen=True)
class Group:
    """This process's place among ``world`` ranks (``world == 1``: no process group)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that writes files and prints."""
        return self.rank == 0

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows of x ``(N, ...)``: rows rank, rank + world, ... -> ``(≈N/world, ...)``."""
        return x if self.world == 1 else x[self.rank::self.world]

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over the ranks (same shape)."""
        if self.world > 1:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def gather(self, shard: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`shard`: every rank's rows ``(n_r,)`` back in the original order ``(N,)``."""
        if self.world == 1:
            return shard
        sizes = [torch.zeros((), dtype=torch.long, device=shard.device) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor(shard.shape[0], device=shard.device))
        longest = int(max(sizes))
        padded = torch.zeros(longest, *shard.shape[1:], dtype=shard.dtype, device=shard.device)
        padded[:shard.shape[0]] = shard
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        out = torch.empty(int(sum(sizes)), *shard.shape[1:], dtype=shard.dtype, device=shard.device)
        for r, (part, size) in enumerate(zip(parts, sizes)):
            out[r::self.world] = part[:int(size)]
        return out

    def gather_objects(self, obj) -> list:
        """Every rank's ``obj`` (picklable, from this trusted process group), in rank order."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def wrap(self, loss_module: torch.nn.Module) -> torch.nn.Module:
        """The loss module, wrapped in ``DistributedDataParallel`` when there are several ranks."""
        if self.world == 1:
            return loss_module
        device = next(loss_module.parameters()).device
        return DistributedDataParallel(loss_module, device_ids=[device] if device.type == "cuda" else None)

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing to wait for with one rank)."""
        if self.world > 1:
            dist.barrier()


SINGLE = Group()


def from_environment() -> Group | None:
    """The group torchrun describes in ``RANK`` / ``WORLD_SIZE`` (joined here), or None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return None
    return join(int(os.environ["RANK"]), world)


def join(rank: int, world: int) -> Group:
    """Join the default process group (``MASTER_ADDR``/``MASTER_PORT`` from the environment):
    NCCL when CUDA is available, gloo otherwise."""
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world)
    return Group(rank, world)


def device_for(group: Group, requested: torch.device) -> torch.device:
    """Rank r's device: ``cuda:LOCAL_RANK`` on GPUs, else the requested device."""
    if requested.type != "cuda" or group.world == 1:
        return requested
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", group.rank)))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free when asked (for ``MASTER_PORT``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PAUSED = 3
"""A rank's exit code after :class:`~pyro_mvae.errors.TimeLimitReached` (the command's as well)."""


def spawn(fn, world: int, *args) -> None:
    """Run ``fn(group, *args)`` in ``world`` new processes on this machine and wait for them.

    Raises:
        torch.multiprocessing.ProcessRaisedException: when a rank fails (its traceback included).
    """
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    with catch_stop_signals():  # Ctrl-C reaches every rank; this process only waits
        try:
            mp.spawn(_run_rank, args=(world, fn, args), nprocs=world, join=True)
        except mp.ProcessExitedException as exited:
            if exited.exit_code == PAUSED:
                raise TimeLimitReached("the ranks reached trainer.max_time after writing last.pt; continue with: "
                                       "pyro-mvae train resume=RUN_DIR") from None
            if exited.exit_code <= 128:
                raise
            signum = exited.exit_code - 128
            raise Interrupted(signum, f"the ranks stopped on signal {signum} after writing last.pt; "
                                      "resume with: pyro-mvae train resume=RUN_DIR") from None


def _run_rank(rank: int, world: int, fn, args) -> None:
    os.environ["LOCAL_RANK"] = str(rank)
    group = join(rank, world)
    try:
        fn(group, *args)
    except Interrupted as stop:
        if group.is_main:
            print(f"pyro-mvae: {stop}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except TimeLimitReached as paused:
        if group.is_main:
            print(f"pyro-mvae: {paused}", file=sys.stderr)
        sys.exit(PAUSED)
    finally:
        dist.destroy_process_group()
