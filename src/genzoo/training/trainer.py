"""One training loop for every family.

Each *round* updates every player in ``model.schedule`` order, ``k`` times each (likelihood
models: one player, one update; GANs: k discriminator updates, then one generator update,
Algorithm 1 of Goodfellow et al. 2014). Each player has its own optimiser; only that
optimiser steps after the player's loss, so the other players are held fixed.

Data order is a pure function of (seed, batch index): epoch e is a permutation drawn from a
generator seeded with (seed, e). Together with the saved weights, optimiser state and global
RNG state this makes ``--resume`` reproduce an uninterrupted run exactly.

Failures. A checkpoint is *good* when its weights are finite and gave a finite loss. Every loss and
gradient norm is checked before its optimiser step (a closed-form update: the weights after it), and
weights and optimiser state before every write (non-finite ones are never written); whether the
saved weights give a finite loss is only known one round later, so the checkpoint they replace
stays on disk as ``checkpoint.previous.pt`` until the next round's losses are all finite (after
the last round, a loss-only probe on a copy of the model decides). A non-finite loss or weight
stops training with one line naming the step of the good checkpoint kept (the previous file is
put back in place when the newest was not yet proven).

SIGINT (Ctrl-C) and SIGTERM (what Slurm and Kubernetes send before killing) both stop training
after the current round with a checkpoint; :class:`TrainingInterrupted` carries the exit status
(128 + signal number: 130, 143). A second signal aborts at once.

A run folder is tidied when training starts: temporary files of writes cut by a kill are
removed, and a fresh run into a folder whose earlier run stopped before its first checkpoint
starts with an empty log (``genzoo train`` refuses a folder that holds a checkpoint).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from genzoo._version import __version__
from genzoo.errors import GenzooError
from genzoo.io import atomic_write, atomic_write_text, finite_json
from genzoo.models.weights import weights_version
from genzoo.training.callbacks import Callback, default_callbacks
from genzoo.training.checkpoint import load_checkpoint, save_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.ema import WeightAverage
from genzoo.training.precision import Engine
from genzoo.training.run import CHECKPOINT, METRICS, RUN_JSON, data_description, load_weights

DEFAULT_STEPS = 2000
CPU = torch.device("cpu")
PREVIOUS = "checkpoint.previous.pt"  # the last good checkpoint while the newest one is unproven
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Raised after SIGINT or SIGTERM once the checkpoint of the last finished step is on disk."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.exit_code = 128 + int(signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class _NonFinite(Exception):
    """A non-finite loss or weight inside a round; ``fit`` turns it into a one-line stop."""


def make_optimizer(params, cfg: TrainConfig, overrides: dict | None = None) -> torch.optim.Optimizer:
    o = {
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "beta1": cfg.beta1,
        "beta2": cfg.beta2,
        "weight_decay": cfg.weight_decay,
        **(overrides or {}),
    }
    if o["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), weight_decay=o["weight_decay"])
    if o["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), weight_decay=o["weight_decay"])
    if o["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=o["lr"], weight_decay=o["weight_decay"])
    return torch.optim.SGD(params, lr=o["lr"], momentum=o["beta1"], weight_decay=o["weight_decay"])


class BatchStream:
    """Training batches as a pure function of (seed, batch index); drop_last when possible.

    With ``hflip``, each image of a batch is mirrored left-right (the last axis of every (B, C, H, W)
    tensor of the batch: the image and any spatial condition map) with probability 1/2, drawn from a
    generator seeded by (seed, batch index), so a resumed run sees the same batches.
    """

    def __init__(self, data, split: str, batch_size: int, seed: int, hflip: bool = False):
        self.data, self.split, self.seed, self.hflip = data, split, seed, hflip
        self.n = data.size(split)
        self.batch_size = min(batch_size, self.n)
        self.per_epoch = self.n // self.batch_size
        self._epoch, self._perm = -1, torch.arange(0)

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        epoch, pos = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        batch = self.data.batch(self.split, self._perm[pos * self.batch_size : (pos + 1) * self.batch_size])
        if self.hflip:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + index + (1 << 40))
            flip = torch.rand(len(batch["x"]), generator=g) < 0.5  # (B,)
            batch = {
                k: torch.where(flip.view(-1, 1, 1, 1), v.flip(-1), v) if v.dim() == 4 else v for k, v in batch.items()
            }
        return batch


class Trainer:
    def __init__(
        self,
        model,
        data,
        cfg: TrainConfig,
        run_dir: Path,
        *,
        model_name: str,
        seed: int = 0,
        device: torch.device = CPU,
        quiet: bool = False,
        split: str = "train",
        callbacks: list[Callback] | None = None,
    ):
        self.model = model.to(device)
        self.data, self.cfg, self.run_dir = data, cfg, Path(run_dir)
        self.model_name, self.seed, self.device, self.quiet = model_name, seed, device, quiet
        if cfg.hflip and (data.info.continuous or data.info.width < 2):
            raise GenzooError(f"hflip=true mirrors images left-right; {data.spec} holds no images to mirror")
        self.stream = BatchStream(data, split, cfg.batch_size, seed, hflip=cfg.hflip)
        self.players = list(model.schedule)
        self.params = {p: model.player_parameters(p) for p in self.players}
        self.optims = (
            {}
            if model.gradient_free
            else {p: make_optimizer(self.params[p], cfg, model.optimizer_overrides(p)) for p in self.players}
        )
        # Polyak averaging of the weights (genzoo.training.ema): what sample grids, eval and load_run use
        self.ema = WeightAverage(self.model, cfg.ema) if cfg.ema > 0 else None
        # each player's loss, backward pass and step: autocast at cfg.precision (genzoo.training.precision)
        self.engine = Engine(self.model, self.players, device, cfg.precision)
        self.step = 0  # finished rounds
        self.batches = 0  # batches drawn
        self._stop_requested = False
        self._stop_signal = signal.SIGINT
        self.saved_step = -1  # the step of RUN/checkpoint.pt when this trainer wrote or restored it
        # True while RUN/checkpoint.pt is one this trainer wrote (or resumed with PREVIOUS beside it)
        # whose weights have not yet given a finite loss; PREVIOUS then holds the last good one, if any
        self._unproven = False
        self._previous_step: int | None = None  # the step of RUN/checkpoint.previous.pt
        self._restored = False
        # the caller's callbacks run first (they may add numbers to the record), then the built-in ones
        self.callbacks: list[Callback] = [*(callbacks or []), *default_callbacks()]
        # flags of the current step, set before the callbacks run
        self.is_log_step = self.is_checkpoint_step = self.is_eval_step = self.is_final_step = False

    @property
    def eval_model(self):
        """The weights to sample and evaluate: the moving average when ``ema`` is on, else the model."""
        return self.model if self.ema is None else self.ema.model

    # -- how long ------------------------------------------------------------------------
    def total_steps(self) -> int:
        if self.cfg.steps:
            return self.cfg.steps
        if self.cfg.epochs:
            per_round = sum(self.model.schedule.values())
            return max(1, math.ceil(self.cfg.epochs * self.stream.per_epoch / per_round))
        return DEFAULT_STEPS

    # -- state -----------------------------------------------------------------------------
    def state(self) -> dict:
        rng: dict[str, torch.Tensor | list[torch.Tensor]] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "version": __version__,
            "model_name": self.model_name,
            "model_config": dataclasses.asdict(self.model.config),
            "train_config": dataclasses.asdict(self.cfg),
            "data": data_description(self.data),
            "step": self.step,
            "batches": self.batches,
            "seed": self.seed,
            "model": self.model.state_dict(),
            "weights_version": weights_version(self.model),
            "optim": {p: o.state_dict() for p, o in self.optims.items()},
            "rng": rng,
            **self.engine.state_dict(),
            **({} if self.ema is None else {"ema": self.ema.state_dict()}),
        }

    def save(self) -> None:
        """Write RUN/checkpoint.pt; the good checkpoint it replaces becomes RUN/checkpoint.previous.pt."""
        bad = self._nonfinite_state()
        if bad:
            raise _NonFinite(f"{bad} became non-finite at step {self.step}")
        path = self.run_dir / CHECKPOINT
        if path.exists() and not self._unproven and self.saved_step >= 0:
            _keep_copy(path, self.run_dir / PREVIOUS)
            self._previous_step = self.saved_step
        save_checkpoint(path, self.state())
        self.saved_step, self._unproven = self.step, True

    def _nonfinite_state(self) -> str | None:
        """The name of the first weight, buffer or optimiser value that is NaN or infinite, else None."""
        named = [(f"weight {k!r}", v) for k, v in self.model.state_dict().items()]
        for p, o in self.optims.items():
            for i, st in o.state_dict()["state"].items():
                named += [(f"the {p} optimiser's {k} of parameter {i}", v) for k, v in st.items()]
        tensors = [(n, t) for n, t in named if isinstance(t, torch.Tensor) and t.is_floating_point()]
        if not tensors:
            return None
        dev = tensors[0][1].device  # an optimiser's step counts stay on the CPU beside CUDA weights
        ok = torch.stack([t.isfinite().all().to(dev) for _, t in tensors]).cpu()
        if bool(ok.all()):
            return None
        return tensors[int((~ok).nonzero()[0])][0]

    def _proven(self) -> None:
        """The checkpoint on disk gave a finite loss: the previous one is no longer needed."""
        if self._unproven:
            (self.run_dir / PREVIOUS).unlink(missing_ok=True)
            self._unproven, self._previous_step = False, None

    def _keep_last_good(self) -> str:
        """After a non-finite value: leave only a good checkpoint on disk; say which one."""
        path, previous = self.run_dir / CHECKPOINT, self.run_dir / PREVIOUS
        if self._unproven:
            if previous.exists():
                step = self._previous_step
                if step is None:  # resumed with the previous file beside the checkpoint
                    step = int(load_checkpoint(previous)["step"])
                os.replace(previous, path)
                self.saved_step, self._unproven, self._previous_step = step, False, None
            else:
                path.unlink(missing_ok=True)
                removed, self.saved_step, self._unproven = self.saved_step, -1, False
                return f"no good checkpoint to keep (the one of step {removed} gave a non-finite loss; removed)"
        if self.saved_step < 0:
            return "no checkpoint had been written"
        return f"the last good checkpoint (step {self.saved_step}) is kept in {path}"

    def _losses_are_finite(self) -> bool:
        """Loss of every player on the next batch with the current weights, on a copy of the model
        (nothing of the trainer's model, optimisers or RNG changes)."""
        probe = copy.deepcopy(self.model)
        probe.train()
        cls = type(probe)  # the class's methods: an instance attribute may still reach the original model
        rng = torch.get_rng_state()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            batch = {k: v.to(self.device) for k, v in self.stream.batch(self.batches).items()}
            for player in self.players:
                if self.model.gradient_free:
                    with torch.no_grad():
                        loss = cls.update(probe, batch).loss
                else:
                    loss = cls.player_loss(probe, player, batch).loss
                if not torch.isfinite(loss):
                    return False
            return True
        finally:
            torch.set_rng_state(rng)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)

    def restore(self, state: dict) -> None:
        load_weights(
            self.model, state["model"], str(self.run_dir / CHECKPOINT), state.get("weights_version", 1), resume=True
        )
        source = self.run_dir / CHECKPOINT
        if self.ema is not None:
            if "ema" not in state:
                raise GenzooError(f"{source}: no averaged weights ('ema') to resume a run with ema={self.cfg.ema:g}")
            load_weights(self.ema.model, state["ema"], f"{source} (ema)", state.get("weights_version", 1), resume=True)
        for p, o in self.optims.items():
            if p not in state["optim"]:
                raise GenzooError(
                    f"{source}: no optimiser state for the player {p!r} (holds: "
                    f"{', '.join(map(str, state['optim'])) or 'none'})"
                )
            try:
                o.load_state_dict(state["optim"][p])
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise GenzooError(
                    f"{source}: the optimiser state of {p!r} does not fit this model "
                    f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                ) from None
        self.engine.load_state_dict(state, str(source))
        self.step, self.batches = int(state["step"]), int(state["batches"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.saved_step, self._restored = self.step, True
        # killed before the checkpoint was proven: the previous one stays the fallback until it is
        self._unproven, self._previous_step = (self.run_dir / PREVIOUS).exists(), None
        self._trim_metrics()

    def _trim_metrics(self) -> None:
        """Drop log lines written after the checkpoint by the run that was interrupted.

        A last line without its newline was cut by the kill and is dropped; any other line that is
        not a JSON object with a numeric step is a one-line error naming the file and line.
        """
        path = self.run_dir / METRICS
        if not path.exists():
            return
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        cut = lines.pop()  # b"" when the file ends with a newline
        keep = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise GenzooError(
                    f"{path}:{i}: not a JSON line ({e.__class__.__name__}: {e}); repair or remove the line to resume"
                ) from None
            step = row.get("step", 0) if isinstance(row, dict) else None
            if isinstance(step, bool) or not isinstance(step, (int, float)):
                raise GenzooError(
                    f"{path}:{i}: expected a JSON object with a numeric 'step', got "
                    f"{line.decode('utf-8', 'replace')[:60]!r}; repair or remove the line to resume"
                )
            if step <= self.step:
                keep.append(line.decode("utf-8"))
        if cut.strip():
            try:
                row = json.loads(cut.decode("utf-8"))
                if (
                    isinstance(row, dict)
                    and isinstance(row.get("step", 0), (int, float))
                    and row.get("step", 0) <= self.step
                ):
                    keep.append(cut.decode("utf-8"))  # complete, only its newline was lost
            except (UnicodeDecodeError, json.JSONDecodeError):
                pass  # the line the kill cut short
        text = "".join(ln + "\n" for ln in keep)
        if text.encode("utf-8") != raw:
            atomic_write_text(path, text)

    def _tidy_run_dir(self) -> None:
        """Remove what earlier processes left behind in the run folder (see the module doc)."""
        d = self.run_dir
        for name in (CHECKPOINT, PREVIOUS, METRICS, RUN_JSON):
            for tmp in d.glob(f".{name}.*.tmp"):  # the temporary files of io.atomic_write, cut by a kill
                tmp.unlink(missing_ok=True)
        if self._restored:
            return
        # a fresh run: whatever log or samples the folder holds belong to an earlier run, one that
        # stopped before its first checkpoint (genzoo train refuses a folder holding a checkpoint),
        # or, through the Python API, one this run is about to overwrite
        stale = [p for p in (d / METRICS, d / PREVIOUS) if p.exists()]
        grids = sorted((d / "samples").glob("step_*.png")) if (d / "samples").is_dir() else []
        if not stale and not grids:
            return
        for p in stale + grids:
            p.unlink()
        if not self.quiet:
            what = ", ".join([p.name for p in stale] + ([f"{len(grids)} sample grids"] if grids else []))
            earlier = (
                "an earlier run here is being overwritten"
                if (d / CHECKPOINT).exists()
                else "an earlier run here stopped before its first checkpoint"
            )
            tqdm.write(f"{d}: {earlier}; removed its {what} and started afresh", file=sys.stderr)

    # -- the loop --------------------------------------------------------------------------
    def _round(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        multi = len(self.players) > 1
        for player in self.players:
            for _ in range(self.model.schedule[player]):
                batch = {k: v.to(self.device) for k, v in self.stream.batch(self.batches).items()}
                self.batches += 1
                if self.model.gradient_free:  # closed-form fitting (EM): no optimiser, no gradients
                    with torch.no_grad():
                        out = self.engine.update(batch)
                    if not torch.isfinite(out.loss):
                        raise _NonFinite(f"loss became {out.loss.item()} at step {self.step + 1}")
                    bad = self._nonfinite_state()  # an EM step can divide by zero; cheap beside the step
                    if bad:
                        raise _NonFinite(f"{bad} became non-finite at step {self.step + 1}")
                    metrics["loss"] = out.loss.item()
                    metrics.update({k: float(v) for k, v in out.metrics.items()})
                    continue
                opt = self.optims[player]
                opt.zero_grad(set_to_none=True)
                out = self.engine.player_loss(player, batch)
                loss = out.loss
                if not self.engine.finite(loss):
                    raise _NonFinite(
                        f"{'the ' + player + ' ' if multi else ''}loss became {loss.item()} at step {self.step + 1}"
                    )
                self.engine.backward(player, loss)
                self.engine.unscale(player, opt)
                if self.cfg.grad_clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(self.params[player], self.cfg.grad_clip)
                else:
                    norm = torch.nn.utils.get_total_norm([p.grad for p in self.params[player] if p.grad is not None])
                # a step along a non-finite gradient would make the weights non-finite (an fp16 overflow: skipped)
                if not math.isfinite(gn := float(norm)) and not self.engine.skips_overflow(player):
                    raise _NonFinite(
                        f"{'the ' + player + ' ' if multi else ''}gradient norm became {gn} at step {self.step + 1}"
                    )
                self.engine.step(player, opt)
                self.model.after_update(player)
                if self.model.log_metrics:  # the numbers of the log: only on rounds that are logged
                    prefix = f"{player}/" if multi else ""
                    metrics[prefix + "loss"] = loss.item()
                    metrics[prefix + "grad_norm"] = gn
                    metrics.update({prefix + k: float(v) for k, v in out.metrics.items()})
        return metrics

    def _logs(self, step: int, total: int, elapsed: float) -> bool:
        """Whether round ``step`` (1-based) will be logged, decided before it runs so that its losses compute
        their logged numbers only then (the time budget's last round is foreseen from the last round's length)."""
        c = self.cfg
        return (
            step % c.log_every == 0
            or step % c.checkpoint_every == 0
            or step >= total
            or self._stop_requested
            or (c.eval_every > 0 and step % c.eval_every == 0)
            or (c.time_budget_s > 0 and elapsed + 2 * getattr(self, "last_round_seconds", 0.0) >= c.time_budget_s)
        )

    def _scale_lr(self, total: int) -> None:
        """Every optimiser's rate times the model's ``lr_scale`` for this round (e.g. CycleGAN's linear decay)."""
        scale = self.model.lr_scale(self.step, total)
        for opt in self.optims.values():
            for group in opt.param_groups:
                if scale != 1.0 or "base_lr" in group:  # models without a schedule keep their optimiser state as is
                    group.setdefault("base_lr", group["lr"])
                    group["lr"] = group["base_lr"] * scale

    def log(self, record: dict) -> None:
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(finite_json(record), allow_nan=False) + "\n")  # NaN -> null: JSON for every tool

    def _request_stop(self, signum, frame):
        if self._stop_requested:  # a second signal: stop now
            raise KeyboardInterrupt
        self._stop_requested = True
        self._stop_signal = signal.SIGINT if signum is None else signum
        if not self.quiet:
            what, again = (
                ("terminate signal", "a second one aborts")
                if self._stop_signal == signal.SIGTERM
                else ("interrupt", "Ctrl-C again to abort")
            )
            tqdm.write(f"\n{what}: saving a checkpoint after this step ({again})", file=sys.stderr)

    def _out_of_time(self, elapsed: float) -> bool:
        return 0 < self.cfg.time_budget_s <= elapsed

    def fit(self) -> dict:
        total = self.total_steps()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._tidy_run_dir()
        pixels_per_batch = self.stream.batch_size * self.data.info.dims
        old_handlers = {}
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: no handlers
                old_handlers[sig] = signal.signal(sig, self._request_stop)
        bar = tqdm(
            total=None if self.cfg.time_budget_s else total,
            initial=self.step,
            desc="train",
            disable=self.quiet,
            dynamic_ncols=True,
        )
        t0, b0, last = time.perf_counter(), self.batches, {}
        for cb in self.callbacks:
            cb.on_fit_start(self)
        self.train_seconds = 0.0  # time inside optimiser rounds only: the throughput denominator
        try:
            while self.step < total:
                self.model.train()
                r0 = time.perf_counter()
                self._scale_lr(total)
                self.model.log_metrics = self._logs(self.step + 1, total, r0 - t0)
                metrics = self._round()
                if self.ema is not None:
                    self.ema.update(self.model, self.step + 1)
                now = time.perf_counter()
                self._proven()  # every loss of the round was finite, the first from the saved weights
                self.last_round_seconds = now - r0
                self.train_seconds += self.last_round_seconds
                self.step += 1
                bar.update(1)
                px_s = (self.batches - b0) * pixels_per_batch / max(self.train_seconds, 1e-9)
                record = {
                    "step": self.step,
                    "epoch": self.batches / self.stream.per_epoch,
                    **metrics,
                    "pixels_per_s": px_s,
                }
                out_of_time = self._out_of_time(now - t0)
                self.is_final_step = self.step == total or out_of_time
                self.is_checkpoint_step = (
                    self.step % self.cfg.checkpoint_every == 0 or self.is_final_step or self._stop_requested
                )
                self.is_eval_step = (self.cfg.eval_every > 0 and self.step % self.cfg.eval_every == 0) or (
                    self.cfg.eval_every == 0 and self.is_checkpoint_step
                )
                self.is_log_step = self.step % self.cfg.log_every == 0 or self.is_checkpoint_step or self.is_eval_step
                for cb in self.callbacks:
                    cb.on_step_end(self, record)
                if self.is_log_step:
                    show = {
                        k: f"{v:.4g}" for k, v in record.items() if k in ("loss", "bits_per_dim") or k.endswith("/loss")
                    }
                    bar.set_postfix(**show, px_s=f"{px_s:,.0f}")
                last = record
                if out_of_time:
                    if not self.quiet:
                        tqdm.write(
                            f"\ntime budget of {self.cfg.time_budget_s:g}s reached at step {self.step}", file=sys.stderr
                        )
                    break
                if self._stop_requested:
                    if self.saved_step != self.step:
                        self.save()
                    break
            # the last checkpoint has no next round to prove it: a loss-only probe does
            if self._unproven and self.saved_step == self.step:
                if not self._losses_are_finite():
                    raise _NonFinite(f"the weights of step {self.step} give a non-finite loss")
                self._proven()
        except _NonFinite as e:
            raise GenzooError(f"{e}; stopped; {self._keep_last_good()}") from None
        finally:
            bar.close()
            for cb in self.callbacks:
                cb.on_fit_end(self)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        if self._stop_requested:
            what = "terminated" if self._stop_signal == signal.SIGTERM else "interrupted"
            raise TrainingInterrupted(
                f"{what} at step {self.step}; checkpoint saved in {self.run_dir}", self._stop_signal
            )
        return last


def _keep_copy(path: Path, copy_path: Path) -> None:
    """``copy_path`` becomes a copy of ``path`` atomically: a hard link where the file system has them."""

    def link_or_copy(tmp: str) -> None:
        os.unlink(tmp)
        try:
            os.link(path, tmp)
        except OSError:  # no hard links here (some network and FUSE file systems)
            shutil.copyfile(path, tmp)

    atomic_write(copy_path, link_or_copy)
