"""The processes of one ``seqtree finetune`` run under Lightning's DDP, launched before the first search.

A fine-tuning round searches in-process, then fits a fresh Trainer. Left to itself, Lightning's ``ddp`` strategy
would relaunch the command line at round 1's ``fit``, and every new rank would run round 0's evaluation and round
1's search over again (with a wall-clock budget, not even the same search). Instead :func:`launch_ranks` forms the
process group at the start (Lightning Fabric: the same launcher, which reruns the command line for the other local
ranks, or the ranks torchrun or SLURM started), and every round's Trainer joins it. Rank 0 alone searches, weighs,
evaluates and writes the run directory; :meth:`Ranks.share` hands its buffer and decisions to the other ranks,
which wait, and every rank trains WDCE on that buffer. The run directory must be visible to all nodes (every rank
reads ``state.ckpt`` at the start of a round, as Lightning's resumed ``fit`` does). :func:`rank_seed` gives each
rank its own random draws, in pretraining too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from seqtree.config import RecipeError

# How long the other ranks wait for rank 0's search and evaluation: far longer than the process group's default 30
# minutes (a dead rank 0 closes its sockets, which ends the wait at once).
SHARE_TIMEOUT = timedelta(days=7)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of DDP rank ``rank``'s own draws (masks, minibatch rows): ``seed`` itself on rank 0, so that one
    process draws what it always drew."""
    return seed + 7919 * rank


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    group: Any = None  # a gloo process group with SHARE_TIMEOUT, for handing objects from rank 0

    @property
    def is_zero(self) -> bool:
        return self.rank == 0

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (pickled; the value the other ranks pass is ignored)."""
        if self.world_size == 1:
            return value
        box = [value if self.is_zero else None]
        torch.distributed.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def close(self) -> None:
        """Wait for every rank, then tear the process groups down, so that no collective's thread outlives the
        interpreter: exiting with them alive can abort a rank ("terminate called without an active exception")."""
        if self.world_size == 1 or not torch.distributed.is_initialized():
            return
        torch.distributed.barrier(group=self.group)
        torch.distributed.destroy_process_group()  # the default group and every subgroup


def launch_ranks(*, accelerator: str, devices: int | str, num_nodes: int, strategy: str) -> Ranks:
    """Start (or join) the DDP processes that these Lightning settings describe; one process needs none."""
    import lightning as L
    from lightning.fabric.strategies import DDPStrategy, SingleDeviceStrategy

    fabric = L.Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy)
    if not isinstance(fabric.strategy, DDPStrategy | SingleDeviceStrategy):
        raise RecipeError(
            f"finetune.strategy {strategy!r}: seqtree finetune trains with one device or DDP (ddp, or auto with "
            "several devices): rank 0 searches with the policy between fits, so its weights must stay whole"
        )
    if fabric.world_size == 1:
        return Ranks()
    try:
        fabric.launch()
    except TypeError:  # a spawning launcher needs a function to run, not the rest of the command line
        raise RecipeError(
            f"finetune.strategy {strategy!r}: seqtree finetune needs ranks that run the whole command line (ddp, "
            "torchrun or SLURM), not spawned ones"
        ) from None
    group = torch.distributed.new_group(backend="gloo", timeout=SHARE_TIMEOUT)
    return Ranks(fabric.global_rank, fabric.world_size, group)
