"""One training loop for every family.

Each *round* updates every player in ``model.schedule`` order, ``k`` times each (likelihood
models: one player, one update; GANs: k discriminator updates, then one generator update,
Algorithm 1 of Goodfellow et al. 2014). Each player has its own optimiser; only that
optimiser steps after the player's loss, so the other players are held fixed.

Data order is a pure function of (seed, batch index): epoch e is a permutation drawn from a
generator seeded with (seed, e). Together with the saved weights, optimiser state and global
RNG state this makes ``--resume`` reproduce an uninterrupted run exactly.
"""
from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from genzoo._version import __version__
from genzoo.errors import GenzooError
from genzoo.io import atomic_write_text
from genzoo.models.weights import weights_version
from genzoo.training.callbacks import Callback, default_callbacks
from genzoo.training.checkpoint import save_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.run import CHECKPOINT, METRICS, data_description, load_weights

DEFAULT_STEPS = 2000


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once the checkpoint of the last finished step is on disk."""


def make_optimizer(params, cfg: TrainConfig, overrides: dict | None = None) -> torch.optim.Optimizer:
    o = {"optimizer": cfg.optimizer, "lr": cfg.lr, "beta1": cfg.beta1, "beta2": cfg.beta2,
         "weight_decay": cfg.weight_decay, **(overrides or {})}
    if o["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), weight_decay=o["weight_decay"])
    if o["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]), weight_decay=o["weight_decay"])
    if o["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=o["lr"], weight_decay=o["weight_decay"])
    return torch.optim.SGD(params, lr=o["lr"], momentum=o["beta1"], weight_decay=o["weight_decay"])


class BatchStream:
    """Training batches as a pure function of (seed, batch index); drop_last when possible."""

    def __init__(self, data, split: str, batch_size: int, seed: int):
        self.data, self.split, self.seed = data, split, seed
        self.n = data.size(split)
        self.batch_size = min(batch_size, self.n)
        self.per_epoch = self.n // self.batch_size
        self._epoch, self._perm = -1, None

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        epoch, pos = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self.data.batch(self.split, self._perm[pos * self.batch_size:(pos + 1) * self.batch_size])


class Trainer:
    def __init__(self, model, data, cfg: TrainConfig, run_dir: Path, *, model_name: str, seed: int = 0,
                 device: torch.device = torch.device("cpu"), quiet: bool = False, split: str = "train",
                 callbacks: list[Callback] | None = None):
        self.model = model.to(device)
        self.data, self.cfg, self.run_dir = data, cfg, Path(run_dir)
        self.model_name, self.seed, self.device, self.quiet = model_name, seed, device, quiet
        self.stream = BatchStream(data, split, cfg.batch_size, seed)
        self.players = list(model.schedule)
        self.params = {p: model.player_parameters(p) for p in self.players}
        self.optims = {} if model.gradient_free else {
            p: make_optimizer(self.params[p], cfg, model.optimizer_overrides(p)) for p in self.players}
        self.step = 0  # finished rounds
        self.batches = 0  # batches drawn
        self._stop_requested = False
        self.saved_step = -1  # the step of the checkpoint on disk written by this trainer
        # the caller's callbacks run first (they may add numbers to the record), then the built-in ones
        self.callbacks: list[Callback] = [*(callbacks or []), *default_callbacks()]
        # flags of the current step, set before the callbacks run
        self.is_log_step = self.is_checkpoint_step = self.is_eval_step = self.is_final_step = False

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
        rng = {"torch": torch.get_rng_state()}
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
        }

    def save(self) -> None:
        save_checkpoint(self.run_dir / CHECKPOINT, self.state())
        self.saved_step = self.step

    def restore(self, state: dict) -> None:
        load_weights(self.model, state["model"], str(self.run_dir / CHECKPOINT), state.get("weights_version", 1),
                     resume=True)
        for p, o in self.optims.items():
            o.load_state_dict(state["optim"][p])
        self.step, self.batches = int(state["step"]), int(state["batches"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self._trim_metrics()

    def _trim_metrics(self) -> None:
        """Drop log lines written after the checkpoint by the run that was interrupted."""
        path = self.run_dir / METRICS
        if not path.exists():
            return
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= self.step]

        atomic_write_text(path, "".join(ln + "\n" for ln in keep))

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
                        out = self.model.update(batch)
                    if not torch.isfinite(out.loss):
                        raise GenzooError(f"loss became {out.loss.item()} at step {self.step + 1}; stopped; "
                                          f"the last good checkpoint is kept at {self.run_dir / CHECKPOINT}")
                    metrics["loss"] = out.loss.item()
                    metrics.update({k: float(v) for k, v in out.metrics.items()})
                    continue
                opt = self.optims[player]
                opt.zero_grad(set_to_none=True)
                out = self.model.player_loss(player, batch)
                loss = out.loss
                if not torch.isfinite(loss):
                    raise GenzooError(
                        f"{'the ' + player + ' ' if multi else ''}loss became {loss.item()} at step {self.step + 1}; "
                        f"stopped; the last good checkpoint is kept at {self.run_dir / CHECKPOINT}")
                loss.backward()
                if self.cfg.grad_clip > 0:
                    gn = torch.nn.utils.clip_grad_norm_(self.params[player], self.cfg.grad_clip)
                else:
                    gn = torch.nn.utils.get_total_norm([p.grad for p in self.params[player] if p.grad is not None])
                opt.step()
                self.model.after_update(player)
                prefix = f"{player}/" if multi else ""
                metrics[prefix + "loss"] = loss.item()
                metrics[prefix + "grad_norm"] = float(gn)
                metrics.update({prefix + k: float(v) for k, v in out.metrics.items()})
        return metrics

    def log(self, record: dict) -> None:
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _request_stop(self, signum, frame):
        if self._stop_requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop_requested = True
        if not self.quiet:
            print("\ninterrupt: saving a checkpoint after this step (Ctrl-C again to abort)", file=sys.stderr)

    def fit(self) -> dict:
        total = self.total_steps()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pixels_per_batch = self.stream.batch_size * self.data.info.dims
        old_handler = None
        try:
            old_handler = signal.signal(signal.SIGINT, self._request_stop)
        except ValueError:  # not the main thread
            pass
        bar = tqdm(total=None if self.cfg.time_budget_s else total, initial=self.step, desc="train",
                   disable=self.quiet, dynamic_ncols=True)
        t0, b0, last = time.perf_counter(), self.batches, {}
        for cb in self.callbacks:
            cb.on_fit_start(self)
        self.train_seconds = 0.0  # time inside optimiser rounds only: the throughput denominator
        try:
            while self.step < total:
                self.model.train()
                r0 = time.perf_counter()
                metrics = self._round()
                now = time.perf_counter()
                self.last_round_seconds = now - r0
                self.train_seconds += self.last_round_seconds
                self.step += 1
                bar.update(1)
                px_s = (self.batches - b0) * pixels_per_batch / max(self.train_seconds, 1e-9)
                record = {"step": self.step, "epoch": self.batches / self.stream.per_epoch, **metrics,
                          "pixels_per_s": px_s}
                out_of_time = 0 < self.cfg.time_budget_s <= now - t0
                self.is_final_step = self.step == total or out_of_time
                self.is_checkpoint_step = (self.step % self.cfg.checkpoint_every == 0 or self.is_final_step
                                           or self._stop_requested)
                self.is_eval_step = (self.cfg.eval_every > 0 and self.step % self.cfg.eval_every == 0) or (
                    self.cfg.eval_every == 0 and self.is_checkpoint_step)
                self.is_log_step = self.step % self.cfg.log_every == 0 or self.is_checkpoint_step or self.is_eval_step
                for cb in self.callbacks:
                    cb.on_step_end(self, record)
                if self.is_log_step:
                    show = {k: f"{v:.4g}" for k, v in record.items() if k in ("loss", "bits_per_dim") or k.endswith("/loss")}
                    bar.set_postfix(**show, px_s=f"{px_s:,.0f}")
                last = record
                if out_of_time:
                    if not self.quiet:
                        print(f"\ntime budget of {self.cfg.time_budget_s:g}s reached at step {self.step}", file=sys.stderr)
                    break
                if self._stop_requested:
                    if self.saved_step != self.step:
                        self.save()
                    raise TrainingInterrupted(f"interrupted at step {self.step}; checkpoint saved in {self.run_dir}")
        finally:
            bar.close()
            for cb in self.callbacks:
                cb.on_fit_end(self)
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        return last
