"""Training in several processes: torch.distributed and DistributedDataParallel, started by torchrun.

Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel Training",
arXiv:2006.15704 (DistributedDataParallel: every process holds the whole model, runs its share of
the batch and averages the gradients with an all-reduce during the backward pass, so all
processes take the same optimiser step).

``torchrun --standalone --nproc_per_node=N -m genzoo train ...`` sets RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT; :func:`setup` reads them and joins the group (NCCL on
CUDA, process ``r`` on ``cuda:LOCAL_RANK``; gloo on CPU). Without them genzoo runs in one process.

The rules (:class:`DistributedTrainer`):

* **Batches.** The global batch of B images is the single process's batch (same seed, same
  epoch-dependent permutation); rank r takes its r-th contiguous B / N of it, so the union over
  ranks of an epoch is the single process's epoch. Gradient-trained models need N to divide B (a
  one-line error otherwise). Losses are means, and DDP averages the gradients, so one step on
  N x B/N equals one step on B up to float rounding (without batch norm, whose statistics are per
  process).
* **Players.** Each player has its own DDP module (over its own parameters only) and its own
  optimiser; one DDP forward computes the player's whole loss (for a discriminator: the real and
  the fake batch), so no module runs twice before its backward pass. Buffers are not broadcast
  at each forward (``broadcast_buffers=False``): after every round each rank takes rank 0's
  buffers (batch-norm running statistics, an RBM's persistent chains), so a resumed run
  continues exactly; on CUDA batch norm becomes SyncBatchNorm (statistics of the global batch).
  When the weights differ between ranks after a round (a checksum says), every rank takes rank 0's:
  a model that initialises weights from its data (an RBM's or DBN layer's biases) does so from
  rank 0's share.
* **Closed-form models.** A model with ``sums_over_ranks`` (the Gaussian mixture) takes its shard
  and all-reduces its sufficient statistics inside ``update``; other gradient-free models get the
  whole global batch on every rank and make the single process's update (same result, no speed-up).
* **Randomness.** Gradient-trained models draw their noise (a GAN's z, a VAE's epsilon, dropout)
  from a stream of their own per rank; the checkpoint holds every rank's stream, so ``--resume``
  (with the same number of processes; another number is a one-line error) restores each exactly.
  Gradient-free models keep one stream on all ranks (their initialisation must agree).
* **Files.** Rank 0 alone writes the checkpoint, the log, sample grids and evaluations; the others
  drop those callbacks, take part in the checkpoint's collectives and wait at a barrier at the end.
  Logged losses and metrics are means over ranks.
* **Stopping.** A stop (SIGINT, SIGTERM, the time budget) is agreed by all ranks after each round,
  so they checkpoint at the same step. A rank that dies makes a collective fail on the others
  (gloo: at once; otherwise after ``GENZOO_DIST_TIMEOUT`` seconds, default 1800), and they stop
  with a one-line error; the run resumes from the last checkpoint.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from genzoo.errors import GenzooError
from genzoo.models.base import ModelOutput, TrainableModel
from genzoo.training.callbacks import Checkpoints
from genzoo.training.precision import Engine
from genzoo.training.run import CHECKPOINT, resolve_device
from genzoo.training.trainer import Trainer, _NonFinite

TIMEOUT_ENV = "GENZOO_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0  # seconds a rank waits in a collective (rank 0 may be evaluating meanwhile)
RANK_SEED = 1_000_003  # rank r > 0 of a gradient-trained run draws from seed + r * RANK_SEED


@dataclass(frozen=True)
class World:
    """This process's place in the group: rank, number of processes, local rank, backend."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        """What run.json and the checkpoint record."""
        return {"world_size": self.size, "backend": self.backend}


def timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e7:
        raise GenzooError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds > 0")
    return value


def _env_int(name: str) -> int:
    raw = os.environ.get(name, "")
    if not raw.isdigit():
        raise GenzooError(f"{name}={raw!r}: torchrun sets it to an integer >= 0; start with torchrun")
    return int(raw)


def setup(device: str = "auto") -> tuple[World, torch.device]:
    """Join the process group torchrun describes in the environment; one process when it does not."""
    if dist.is_available() and dist.is_initialized():
        return current(), _device_of(device, current())
    if os.environ.get("WORLD_SIZE", "1") in ("", "1"):
        return World(), resolve_device(device)
    size, rank, local = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    if not rank < size:
        raise GenzooError(f"RANK={rank} is not below WORLD_SIZE={size}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise GenzooError(f"{name} is not set; start several processes with torchrun")
    world = World(rank, size, local, "none")
    dev = _device_of(device, world)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    try:
        dist.init_process_group(
            backend,
            timeout=datetime.timedelta(seconds=timeout_s()),
            device_id=dev if dev.type == "cuda" else None,
        )
    except (RuntimeError, ValueError, dist.DistError) as e:
        raise GenzooError(f"rank {rank} of {size}: could not join the process group ({_first_line(e)})") from None
    return World(rank, size, local, backend), dev


def _device_of(device: str, world: World) -> torch.device:
    """Process r of a group uses cuda:LOCAL_RANK (auto picks it when CUDA is present), or the CPU."""
    if world.size == 1:
        return resolve_device(device)
    if device not in ("auto", "cpu", "cuda"):
        raise GenzooError(f"--device {device}: under torchrun give auto, cpu or cuda (process r takes cuda:LOCAL_RANK)")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise GenzooError(f"--device {device}: CUDA is not available on this machine (use cpu or auto)")
    if world.local_rank >= torch.cuda.device_count():
        raise GenzooError(
            f"LOCAL_RANK={world.local_rank}: this machine has {torch.cuda.device_count()} CUDA devices; "
            "start at most that many processes per node"
        )
    return torch.device("cuda", world.local_rank)


def current() -> World:
    """The group this process belongs to (one process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return World(dist.get_rank(), dist.get_world_size(), local, str(dist.get_backend()))


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (at most the group's timeout; a dead rank makes it fail)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _first_line(e: BaseException) -> str:
    """The gist of a (backend) error: its first line, without gloo's source location and advice."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    line = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0]).split(". This is typically")[0]
    return line[:200]


def _comm_device(world: World, device: torch.device) -> torch.device:
    return device if world.backend == "nccl" else torch.device("cpu")


def check_world_size(state: dict, world: World, source: str) -> None:
    """A checkpoint resumes only with the number of processes that wrote it."""
    saved = state.get("world_size", 1)
    if saved != world.size:
        raise GenzooError(
            f"{source}: written by a run of {saved} process(es), resumed with {world.size}; resume with "
            f"--nproc_per_node={saved} (each process's random stream is part of the checkpoint)"
        )


# ---------------------------------------------------------------------------------------------
# batches


class ShardedStream:
    """Rank r's part of each global batch of a :class:`~genzoo.training.trainer.BatchStream`.

    ``shard=False``: every rank gets the whole global batch (gradient-free models without
    ``sums_over_ranks``). ``batch_size`` and ``per_epoch`` are the global ones.
    """

    def __init__(self, stream, world: World, *, shard: bool = True, even: bool = True):
        self.stream, self.world, self.shard = stream, world, shard
        self.n, self.batch_size, self.per_epoch = stream.n, stream.batch_size, stream.per_epoch
        if shard and even and self.batch_size % world.size:
            raise GenzooError(
                f"batch_size={self.batch_size} does not divide among {world.size} processes; the global "
                f"batch is split evenly, so give a multiple of {world.size}"
            )
        if shard and self.batch_size < world.size:
            raise GenzooError(f"batch_size={self.batch_size} is smaller than the {world.size} processes")

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        whole = self.stream.batch(index)  # the single process's batch (same order, same augmentation)
        if not self.shard:
            return whole
        return {k: v.tensor_split(self.world.size)[self.world.rank] for k, v in whole.items()}


# ---------------------------------------------------------------------------------------------
# one DDP module per player


class PlayerLoss(nn.Module):
    """``forward(batch)`` is ``model.player_loss(player, batch).loss``: what DDP wraps for one player.

    The metrics of the last call are kept in ``metrics`` (DDP looks for tensors in its output only).
    """

    def __init__(self, model: TrainableModel, player: str):
        super().__init__()
        self.model, self.player = model, player
        self.metrics: dict[str, float] = {}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model.player_loss(self.player, batch)
        self.metrics = out.metrics
        return out.loss


class DDPEngine(Engine):
    """:class:`~genzoo.training.precision.Engine` with each player's loss through its own DDP module.

    Each module holds the whole model but reduces only its player's parameters (the others are
    ignored); buffers are not broadcast at each forward (see the module doc).
    """

    def __init__(self, model, players: list[str], params: dict, device: torch.device, precision: str, world: World):
        super().__init__(model, players, device, precision)
        self.world = world
        self.comm = _comm_device(world, torch.device(device))
        self.ddp: dict[str, DDP] = {}
        if model.gradient_free:
            return
        names = {id(t): n for n, t in model.named_parameters()}
        buffers = [f"model.{n}" for n, _ in model.named_buffers()]
        for p in players:
            own = {id(t) for t in params[p]}
            wrapper = PlayerLoss(model, p)
            ignored = [f"model.{n}" for i, n in names.items() if i not in own] + buffers
            DDP._set_params_and_buffers_to_ignore_for_model(wrapper, ignored)
            with warnings.catch_warnings():  # newer torch names broadcast_buffers forward_sync_buffers
                warnings.simplefilter("ignore", FutureWarning)
                self.ddp[p] = DDP(
                    wrapper,
                    device_ids=[device.index] if torch.device(device).type == "cuda" else None,
                    broadcast_buffers=False,
                    find_unused_parameters=True,  # a player's loss need not reach every one of its weights
                )

    def player_loss(self, player, batch):
        with self.autocast():
            loss = self.ddp[player](batch)
        return ModelOutput(loss, self.ddp[player].module.metrics)

    def finite(self, loss):
        flag = torch.tensor([1.0 if bool(torch.isfinite(loss)) else 0.0], device=self.comm)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() > 0)


# ---------------------------------------------------------------------------------------------
# the trainer


def _is_every_rank(cb) -> bool:
    """Callbacks kept on ranks > 0: the checkpoint (its collectives) and any marked ``every_rank``."""
    return isinstance(cb, Checkpoints) or bool(getattr(cb, "every_rank", False))


class DistributedTrainer(Trainer):
    """:class:`~genzoo.training.trainer.Trainer` in one process of a group (see the module doc)."""

    def __init__(self, model, data, cfg, run_dir, *, world: World | None = None, **kwargs):
        self.world = world or current()
        device = torch.device(kwargs.get("device", "cpu"))
        if self.world.size > 1 and device.type == "cuda" and not model.gradient_free:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # batch statistics of the global batch
        super().__init__(model, data, cfg, run_dir, **kwargs)
        w = self.world
        shard = not model.gradient_free or bool(getattr(model, "sums_over_ranks", False))
        # the same interface as BatchStream: n, batch_size, per_epoch, batch(index)
        self.stream = ShardedStream(self.stream, w, shard=shard, even=not model.gradient_free)  # type: ignore[assignment]
        self.comm = _comm_device(w, self.device)
        if w.size > 1:
            self.engine = DDPEngine(self.model, self.players, self.params, self.device, cfg.precision, w)
        if not model.gradient_free and w.rank > 0:
            torch.manual_seed(self.seed + w.rank * RANK_SEED)  # noise of its own (restored on --resume)
        if not w.is_main:
            self.quiet = True
            self.callbacks = [cb for cb in self.callbacks if _is_every_rank(cb)]
        self._rank_rng: torch.Tensor | None = None  # (N, L): every rank's CPU random state at the last checkpoint
        self._rank_cuda_rng: torch.Tensor | None = None  # (N, L'): every rank's own CUDA device's
        self._local_stop = False  # a signal reached this process (the stop itself waits for agreement)

    # -- agreement after each round ---------------------------------------------------------
    def _round(self) -> dict[str, float]:
        metrics = super()._round()
        if self.world.size == 1:
            return metrics
        # rank 0's buffers (batch-norm statistics, persistent chains) to every rank after each round
        self._broadcast(list(self.model.buffers()))
        self._agree_on_weights()
        keys = sorted(metrics)  # the same on every rank: the same code ran, logging was agreed (_logs)
        t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=self.comm)
        if keys:
            dist.all_reduce(t)
        stop = torch.tensor(
            [int(self._local_stop), int(self._stop_signal) if self._local_stop else 0], device=self.comm
        )
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        if int(stop[0]):  # a signal on any rank stops every rank after this same round
            self._stop_requested, self._stop_signal = True, signal.Signals(int(stop[1]))
        return {k: float(v) for k, v in zip(keys, (t / self.world.size).cpu())}

    def _request_stop(self, signum, frame):
        """A signal is acted on only once every rank knows of it (after the round, see ``_round``)."""
        if self.world.size == 1:
            return super()._request_stop(signum, frame)
        if self._local_stop:  # a second signal: stop now
            raise KeyboardInterrupt
        self._local_stop = True
        agreed, self._stop_requested = self._stop_requested, False
        try:
            super()._request_stop(signum, frame)  # the message; which signal it was
        finally:
            self._stop_requested = agreed

    def _logs(self, step: int, total: int, elapsed: float) -> bool:
        mine = super()._logs(step, total, elapsed)
        if self.world.size == 1 or not self.cfg.time_budget_s:
            return mine  # a function of the step and the agreed stop only
        t = torch.tensor([float(mine)], device=self.comm)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # with a time budget it depends on each rank's clock
        return bool(t.item() > 0)

    def _out_of_time(self, elapsed: float) -> bool:
        if self.world.size == 1 or not self.cfg.time_budget_s:
            return super()._out_of_time(elapsed)
        t = torch.tensor([elapsed], dtype=torch.float64, device=self.comm)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # rank clocks differ: the slowest decides for all
        return super()._out_of_time(float(t.item()))

    def _losses_are_finite(self) -> bool:
        ok = super()._losses_are_finite()
        if self.world.size == 1:
            return ok
        flag = torch.tensor([1.0 if ok else 0.0], device=self.comm)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    # -- checkpoint -----------------------------------------------------------------------------
    def _agree_on_weights(self) -> None:
        """Rank 0's weights to every rank when they differ: DDP keeps them identical, except where a model
        initialises weights from its data (an RBM's or a DBN layer's biases from its first batch: a shard).
        Compared by a checksum (one all-reduce of two numbers)."""
        params = list(self.model.parameters())
        if not params:
            return
        total = torch.stack([p.detach().double().sum() for p in params]).sum().reshape(1)
        t = torch.cat([total, -total]).to(self.comm)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if bool(t[0] != -t[1]):  # (NaN compares unequal too)
            self._broadcast(params)

    def _broadcast(self, tensors) -> None:
        """Rank 0's values of ``tensors`` on every rank."""
        for b in tensors:
            tmp = b.data.to(self.comm, torch.uint8 if b.dtype == torch.bool else b.dtype)  # a copy, or b itself
            dist.broadcast(tmp, src=0)
            if tmp.data_ptr() != b.data.data_ptr():
                b.data.copy_(tmp)

    def _sync_for_checkpoint(self) -> None:
        """Every rank's random state to rank 0 (a collective)."""
        if self.world.size == 1:
            return
        self._rank_rng = self._gather(torch.get_rng_state())  # (N, L) uint8
        if self.device.type == "cuda":  # each process draws on its own device
            self._rank_cuda_rng = self._gather(torch.cuda.get_rng_state(self.device))

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        own = t.to(self.comm)
        gathered = [torch.empty_like(own) for _ in range(self.world.size)]
        dist.all_gather(gathered, own)
        return torch.stack([g.cpu() for g in gathered])

    def state(self) -> dict:
        s = super().state()
        s.update(self.world.describe())
        if self._rank_rng is not None:
            s["rng"] = {**s["rng"], "ranks": self._rank_rng}
        if self._rank_cuda_rng is not None:
            s["rng"]["cuda_ranks"] = self._rank_cuda_rng
        return s

    def save(self) -> None:
        self._sync_for_checkpoint()
        if self.world.is_main:
            super().save()
            return
        bad = self._nonfinite_state()  # the same weights as rank 0's: the same verdict
        if bad:
            raise _NonFinite(f"{bad} became non-finite at step {self.step}")
        self.saved_step, self._unproven = self.step, True

    def restore(self, state: dict) -> None:
        check_world_size(state, self.world, str(self.run_dir / CHECKPOINT))
        super().restore(state)
        ranks = state["rng"].get("ranks")
        if self.world.size > 1:
            if not (isinstance(ranks, torch.Tensor) and ranks.dtype == torch.uint8 and len(ranks) == self.world.size):
                raise GenzooError(
                    f"{self.run_dir / CHECKPOINT}: no random state for each of the {self.world.size} ranks"
                )
            torch.set_rng_state(ranks[self.world.rank].clone())
            cuda = state["rng"].get("cuda_ranks")
            if self.device.type == "cuda" and isinstance(cuda, torch.Tensor) and len(cuda) == self.world.size:
                torch.cuda.set_rng_state(cuda[self.world.rank].clone(), self.device)

    # -- files: rank 0 only -----------------------------------------------------------------------
    def log(self, record: dict) -> None:
        if self.world.is_main:
            super().log(record)

    def _tidy_run_dir(self) -> None:
        if self.world.is_main:
            super()._tidy_run_dir()

    def _trim_metrics(self) -> None:
        if self.world.is_main:
            super()._trim_metrics()

    def _proven(self) -> None:
        if self.world.is_main:
            super()._proven()
        else:
            self._unproven, self._previous_step = False, None

    def _keep_last_good(self) -> str:
        if self.world.is_main:
            return super()._keep_last_good()
        return "rank 0 keeps the last good checkpoint"

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> dict:
        if self.world.size == 1:
            return super().fit()
        try:
            last = super().fit()
        except (dist.DistError, RuntimeError) as e:
            if isinstance(e, GenzooError):
                raise
            raise GenzooError(
                f"rank {self.world.rank} of {self.world.size}: another process stopped or stopped answering "
                f"({_first_line(e)}); resume from the last checkpoint in {Path(self.run_dir)} with --resume"
            ) from None
        barrier()  # rank 0's last writes are done when every process returns
        return last


def make_trainer(model, data, cfg, run_dir, *, world: World, **kwargs) -> Trainer:
    """A plain :class:`Trainer` in one process, a :class:`DistributedTrainer` in a group."""
    if world.size == 1:
        return Trainer(model, data, cfg, run_dir, **kwargs)
    return DistributedTrainer(model, data, cfg, run_dir, world=world, **kwargs)


def say(world: World, text: str) -> None:
    """A message on stderr from rank 0 only."""
    if world.is_main:
        print(text, file=sys.stderr)
