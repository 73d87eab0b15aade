"""Running under ``torchrun``: each process scores a share of the batches, rank 0 reports.

``torchrun --nproc_per_node N -m perceptual_sim.cli dirs A B --csv out.csv`` (likewise ``eval
bapps`` and ``eval iqa``, and multi-node launches) cuts the work into the batches a single
process would score and deals them out round-robin; the results are gathered back in their
original order, so the files and summaries rank 0 writes are those of a single process. Every
process must see the same files. On CUDA each process uses ``cuda:LOCAL_RANK`` and NCCL; on
CPU, gloo.

Library code shards only inside :func:`session`, which every process must enter: outside one,
:func:`shard` and :func:`gather` hand the work back unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # torch is imported on use: asking for the rank outside a session does not load it
    import torch

T = TypeVar("T")

_sharding: contextvars.ContextVar[bool] = contextvars.ContextVar("perceptual_sim_sharding", default=False)


@dataclass(frozen=True)
class Launch:
    """This process's place in a ``torchrun`` launch; one process on its own outside torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def launch() -> Launch:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun); ValueError when inconsistent."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    raw = {name: os.environ.get(name) for name in names}
    if raw["RANK"] is None and raw["WORLD_SIZE"] is None:
        return Launch()
    shown = ", ".join(f"{name}={raw[name]}" for name in names)
    try:
        rank, world_size, local_rank = (int(raw[name]) for name in names)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"torchrun sets RANK, WORLD_SIZE and LOCAL_RANK to integers; got {shown}") from None
    if not (0 <= rank < world_size and local_rank >= 0):
        raise ValueError(f"inconsistent launch: need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0; got {shown}")
    return Launch(rank, world_size, local_rank)


def rank() -> int:
    """This process's rank: in the :func:`session`'s group, else from ``RANK`` (0 when unset or unreadable)."""
    if _in_group():
        import torch.distributed as dist

        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main() -> bool:
    """Whether this process prints and writes the results (rank 0)."""
    return rank() == 0


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[torch.device]:
    """Shard the work inside the block across the processes of a launch; yields this process's device.

    Under torchrun with more than one process this initialises the default process group
    (NCCL for a CUDA device, else gloo) unless one exists, and destroys it on leaving if it
    made it. A ``cuda`` device without an index becomes ``cuda:LOCAL_RANK``.
    """
    import torch
    import torch.distributed as dist

    env = launch()
    if env.world_size > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", env.local_rank)
    created = False
    if env.world_size > 1 and not (dist.is_available() and dist.is_initialized()):
        if not dist.is_available():
            raise ImportError(f"this torch build ({torch.__version__}) has no torch.distributed; run one process")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    token = _sharding.set(True)
    try:
        yield device
    finally:
        _sharding.reset(token)
        if created:
            dist.destroy_process_group()


def shard(items: Sequence[T]) -> list[T]:
    """This process's share of ``items`` in a :func:`session`: every world-size-th item from its rank."""
    if not _in_group():
        return list(items)
    import torch.distributed as dist

    return list(items[dist.get_rank() :: dist.get_world_size()])


def gather(share: Sequence[T]) -> list[T]:
    """Every process's share (from :func:`shard`) back in the original order, on every process."""
    if not _in_group():
        return list(share)
    import torch.distributed as dist

    world = dist.get_world_size()
    parts: list[list[T]] = [[] for _ in range(world)]
    dist.all_gather_object(parts, list(share))
    out: list[T] = [None] * sum(len(part) for part in parts)  # type: ignore[list-item]
    for r, part in enumerate(parts):
        out[r::world] = part
    return out


def _in_group() -> bool:
    """Inside a :func:`session` with an initialised process group of several processes."""
    if not _sharding.get():
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
