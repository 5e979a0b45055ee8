"""Text benchmarks: Tang poems by character (char_rnn vs smoothed n-grams; form of generated quatrains)
and Penn Treebank by word (sentence_vae vs the word-level char_rnn, beside Bowman et al. 2016).

    nice -n 10 python benchmarks/text.py tang --cpu-seconds 900
    nice -n 10 python benchmarks/text.py ptb_vae --cpu-seconds 900
    nice -n 10 python benchmarks/text.py ptb_lm --cpu-seconds 900
    python benchmarks/text.py ptb_lm --device cuda --preset words_gpu --steps 13000 --cpu-seconds 270 --tag _gpu
    python benchmarks/text.py tang --form all --device cuda --preset large --cpu-seconds 270 --tag _gpu

Each task trains one model through genzoo's Trainer into benchmarks/results/runs/<task>, stopping at
the first step after the process has used ``--cpu-seconds`` of CPU time (``_common.cpu_seconds``;
one torch thread; on ``--device cuda`` the process's CPU time runs a little slower than the wall clock:
270 CPU-s took about 390 s with 14 jobs on one GPU) or
after ``--steps`` rounds, then measures on the test split (on the same device) and writes
benchmarks/results/text_<task><tag>.json:

* tang: test bits per character (every character and the end of each poem counted) of char_rnn and
  of interpolated Kneser-Ney n-grams of order 1-5 fitted on the same training split (in a second
  process while the model trains); ``--form quatrain5`` (default) or ``all`` poems; the share of
  200 sampled poems (temperature 1) with the five-character quatrain form (24 characters, a
  punctuation mark ending each half line, none elsewhere); 20 sampled poems and 10 completions of
  a first verse (床前明月光 and the first verses of nine test poems).
* ptb_vae / ptb_lm: test NLL per sentence (the ELBO for the VAE, exact for the LM), the
  importance-sampled NLL of the VAE (``--k`` draws on the first ``--is-sentences`` test sentences),
  perplexity exp(NLL / tokens) (words plus one end of sentence each, as in Mikolov's setup), the
  KL term and active units; greedy samples from the prior and homotopies between test sentences.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, cpu_seconds, peak_rss_mb, write_result  # noqa: E402
from genzoo.data import ImageDataset, load_dataset  # noqa: E402
from genzoo.data.text import poem_form_ok  # noqa: E402
from genzoo.data.tokens import BOS_ID, UNK_ID  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.metrics.importance import importance_nll  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.models.text._sequence import as_sequence, sentence_mask  # noqa: E402
from genzoo.sampling.latent import interpolate  # noqa: E402
from genzoo.training.callbacks import OnStep  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, load_run, run_description  # noqa: E402
from genzoo.training.trainer import Trainer, TrainingInterrupted  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
TANG = f"tang:{SHARED / 'tang_poetry' / 'tang_poetry.tar.gz'}"
PTB = f"ptb:{SHARED / 'ptb' / 'ptb.zip'}"
BOWMAN = {
    "source": "Bowman et al. 2016, arXiv:1511.06349, Table 2 (PTB language modelling, test set)",
    "LSTM LM": {"perplexity": 116},
    "VAE": {"perplexity": 119},
}


# -- n-gram baseline --------------------------------------------------------------------------------
def sentences(data, split):
    """Each example's ids up to and including <eos> (or all max_len ids)."""
    x = as_sequence(data.images(split))
    mask = sentence_mask(x)
    return [row[m].tolist() for row, m in zip(x, mask)]


class KneserNey:
    """Interpolated Kneser-Ney (Chen & Goodman 1998, one discount D per order) over a fixed vocabulary,
    contexts padded with <bos>; the order-0 base is uniform over the V tokens, so every p sums to 1."""

    def __init__(self, train, order, vocab_size, discount=0.75):
        self.n, self.v, self.d = order, vocab_size, discount
        self.counts = [defaultdict(Counter) for _ in range(order)]  # counts[k][context of length k][w]
        for s in train:
            seq = [BOS_ID] * (order - 1) + s
            for i in range(order - 1, len(seq)):
                w = seq[i]
                self.counts[order - 1][tuple(seq[i - order + 1 : i])][w] += 1
        # lower orders use continuation counts: the number of distinct left contexts of (context, w)
        for k in range(order - 1, 0, -1):
            for ctx, ws in self.counts[k].items():
                for w in ws:
                    self.counts[k - 1][ctx[1:]][w] += 1
        self.totals = [{c: sum(ws.values()) for c, ws in level.items()} for level in self.counts]

    def prob(self, ctx, w):
        p = 1.0 / self.v
        for k in range(self.n):
            c = tuple(ctx[len(ctx) - k :]) if k else ()
            ws = self.counts[k].get(c)
            if not ws:
                continue
            total = self.totals[k][c]
            p = max(ws.get(w, 0) - self.d, 0) / total + self.d * len(ws) / total * p
        return p

    def bits(self, test):
        nll, tokens = 0.0, 0
        for s in test:
            seq = [BOS_ID] * (self.n - 1) + s
            for i in range(self.n - 1, len(seq)):
                nll -= math.log2(self.prob(seq[i - self.n + 1 : i] if self.n > 1 else [], seq[i]))
                tokens += 1
        return nll / tokens


def ngram_table(train_s, test_s, vocab_size):
    """Test bits per token of the Kneser-Ney n-grams of order 1-5 (pure Python: run in its own process)."""
    out = {}
    for order in range(1, 6):
        t = time.time()
        out[order] = round(KneserNey(train_s, order, vocab_size).bits(test_s), 4)
        print("ngram", order, out[order], round(time.time() - t, 1), flush=True)
    return out


# -- training under a CPU budget --------------------------------------------------------------------
def train(task, model_name, preset, data, budget, seed=0, steps=0, device="cpu"):
    cls = get_model_class(model_name)
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, preset, {"steps": str(steps or 1000000), "sample_every": "0",
                                                                      "eval_every": "-1", "checkpoint_every": "500",
                                                                      "log_every": "50"})
    torch.manual_seed(seed)
    model = cls(model_cfg, data.info)
    run_dir = RESULTS / "runs" / task
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists; remove it to rerun")
    trainer = Trainer(model, data, train_cfg, run_dir, model_name=model_name, seed=seed, quiet=True,
                      device=torch.device(device))
    write_json(run_dir / RUN_JSON, run_description(model_name, model, train_cfg, data, seed))
    c0, w0 = cpu_seconds(), time.time()
    curve = []

    def watch(t):
        if t.step % 50 == 0:
            rec = {"step": t.step, "cpu_s": round(cpu_seconds() - c0, 1), "wall_s": round(time.time() - w0, 1)}
            print(rec, flush=True)
            curve.append(rec)
        if cpu_seconds() - c0 >= budget:
            t._stop_requested = True  # the trainer saves a checkpoint after this step and stops

    trainer.callbacks.append(OnStep(watch))
    with contextlib.suppress(TrainingInterrupted):
        trainer.fit()
    model = trainer.model.eval()
    return model, {
        "model": model_name,
        "preset": preset,
        "device": str(model.device) if model.device.type == "cpu" else torch.cuda.get_device_name(model.device),
        "config": {k: v for k, v in vars(model_cfg).items()},
        "batch_size": train_cfg.batch_size,
        "lr": train_cfg.lr,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": trainer.step,
        "epochs": round(trainer.step * train_cfg.batch_size / data.size("train"), 2),
        "cpu_seconds_budget": budget,
        "steps_cap": steps or None,
        "cpu_seconds": round(cpu_seconds() - c0, 1),
        "wall_seconds": round(time.time() - w0, 1),
        "torch_threads": torch.get_num_threads(),
        "curve": curve,
        "run_dir": str(run_dir.relative_to(RESULTS.parent.parent)),
    }


@torch.no_grad()
def exact_nll(model, data, split, limit=None, batch=256):
    """Sum of -log p (nats) over the split's first ``limit`` examples and the number of scored tokens."""
    n, total, tokens = data.size(split) if limit is None else min(limit, data.size(split)), 0.0, 0
    for s in range(0, n, batch):
        x = data.images(split, torch.arange(s, min(n, s + batch)))
        total -= model.log_prob(x.to(model.device)).double().sum().item()
        tokens += int(sentence_mask(as_sequence(x)).sum())
    return total, tokens, n


def decode(data, rows):
    vocab = data.info.vocabulary
    return [vocab.decode(r.flatten().tolist()) for r in rows]


# -- tasks -----------------------------------------------------------------------------------------
def task_tang(args):
    data = load_dataset(TANG, form=args.form)
    task = "tang" if args.form == "quatrain5" else f"tang_{args.form}"
    train_s, test_s = sentences(data, "train"), sentences(data, "test")
    with ProcessPoolExecutor(1) as pool:  # the n-grams count in another process while the model trains
        ngram_job = pool.submit(ngram_table, train_s, test_s, data.info.num_values)
        model, training = train(task + args.tag, "char_rnn", args.preset or "poetry", data, args.cpu_seconds,
                                steps=args.steps, device=args.device)
        ngram = ngram_job.result()
    nll, tokens, n = exact_nll(model, data, "test")
    bits = nll / tokens / math.log(2)
    best = min(ngram.values())
    dev = model.device
    g = torch.Generator(device=dev).manual_seed(0)
    samples = decode(data, model.sample(200, generator=g))
    form_ok = sum(poem_form_ok(s, args.form) for s in samples) / len(samples) if args.form != "all" else None
    # completions of a first verse: the lecture's 床前明月光 and nine test poems' first verses
    vocab = data.info.vocabulary
    test_rows = data.images("test")
    firsts = [test_rows[i].flatten()[:5].tolist() for i in range(0, len(test_rows), 10)]
    prefixes = ["床前明月光"] + [vocab.decode(ids) for ids in firsts if UNK_ID not in ids][:9]
    completions = []
    gen = torch.Generator(device=dev).manual_seed(1)
    for p in prefixes:
        x = torch.zeros(1, *data.info.shape, dtype=torch.long, device=dev)
        ids = vocab.encode(p)
        x[0, 0, 0, : len(ids)] = torch.tensor(ids)
        known = torch.zeros(data.info.shape, dtype=torch.bool, device=dev)
        known[0, 0, : len(ids)] = True
        completions.append(decode(data, model.complete(x, known, generator=gen))[0])
    write_result(f"text_{task}{args.tag}", {
        "data": {"spec": "tang:.../tang_poetry.tar.gz", "form": args.form, "train": data.size("train"),
                 "test": data.size("test"), "vocabulary": data.info.num_values, "test_tokens": tokens,
                 "split": "every tenth poem (file order) is test", "vocabulary_from": "train split"},
        "training": training,
        "test_bits_per_char": round(bits, 4),
        "ngram_kneser_ney_bits_per_char": ngram,
        "best_ngram_bits_per_char": best,
        "reduction_vs_best_ngram": round(1 - bits / best, 4),
        "target_reduction": 0.15,
        "form": None if form_ok is None else {"samples": len(samples), "temperature": 1.0, "seed": 0, "quatrain5_share": form_ok,
                 "target": 0.9, "rule": "24 characters; a punctuation mark at characters 6, 12, 18, 24 and none "
                 "elsewhere"},
        "sampled_poems": samples[:20],
        "completions": [{"prefix": p, "poem": c} for p, c in zip(prefixes, completions)],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    })


def first_sentences(data, n):
    """The first ``n`` test sentences as their own data set, rows cut to the longest of them (cheaper LSTM passes)."""
    idx = data.indices("test")[:n]
    x = data.x[idx]
    length = int(sentence_mask(as_sequence(x.long())).sum(1).max())
    info = dataclasses.replace(data.info, width=length)
    return ImageDataset(spec=data.spec, x=x[..., :length].contiguous(), info=info, splits={"test": torch.arange(len(idx))})


def trained_run(task, args):
    """A run trained by this script and stopped early (SIGTERM: the trainer saved a checkpoint), reloaded."""
    run = load_run(RESULTS / "runs" / (task + args.tag))
    cfg = run.train_config
    return run.model.eval(), {
        "model": run.model_name,
        "preset": args.preset,
        "config": dict(vars(run.model.config)),
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "steps": run.step,
        "epochs": round(run.step * cfg.batch_size / 42068, 2),
        "cpu_seconds_budget": args.cpu_seconds,
        "cpu_seconds": args.train_cpu_seconds,
        "wall_seconds": args.train_wall_seconds,
        "torch_threads": 1,
        "stopped": "by SIGTERM before its budget (the shared machine gave it about 3% of a core); cpu_seconds is "
                   "the training process's whole CPU time, data loading included",
        "run_dir": str((RESULTS / "runs" / (task + args.tag)).relative_to(RESULTS.parent.parent)),
    }


def task_ptb(args, model_name, preset):
    full = load_dataset(PTB)
    task = "ptb_vae" if model_name == "sentence_vae" else "ptb_lm"
    if args.eval_only:
        model, training = trained_run(task, args)
    else:
        model, training = train(task + args.tag, model_name, preset, full, args.cpu_seconds, steps=args.steps,
                                device=args.device)
    data = first_sentences(full, args.test_sentences) if args.test_sentences else full
    t = time.time()
    nll, tokens, n = exact_nll(model, data, "test")
    out = {
        "data": {"spec": "ptb:.../ptb.zip", "train": full.size("train"), "valid": full.size("valid"),
                 "test": full.size("test"), "test_measured": f"the first {n} test sentences", "vocabulary":
                 full.info.num_values, "test_tokens": tokens, "tokens_counted": "words plus one <eos> per sentence"},
        "training": training,
        "paper": BOWMAN,
        "test": {"estimator": "ELBO (bound)" if model_name == "sentence_vae" else "exact",
                 "nll_nats_per_sentence": round(nll / n, 3),
                 "perplexity": round(math.exp(nll / tokens), 2), "seconds": round(time.time() - t, 1)},
    }
    vocab = data.info.vocabulary
    dev = model.device
    if model_name == "sentence_vae":
        with torch.no_grad():
            mus, kls = [], 0.0
            x_all = data.images("test").to(dev)
            for s in range(0, n, 256):
                mu, sigma = model.posterior(x_all[s : s + 256])
                mus.append(mu)
                kls += (0.5 * (mu * mu + sigma * sigma - 1 - 2 * torch.log(sigma)).sum(-1)).sum().item()
            mu = torch.cat(mus)
            au = int((mu.var(0) > 0.01).sum())
        out["test"].update(kl_nats_per_sentence=round(kls / n, 3), active_units=au, latent_dim=model.latent_dim)
        t = time.time()
        m = min(args.is_sentences, n)
        res = importance_nll(model, data, "test", k=args.k, k_iwae=args.k, max_images=m)
        sub_tokens = int(sentence_mask(as_sequence(data.images("test", torch.arange(m)))).sum())
        sub_elbo, _, _ = exact_nll(model, data, "test", limit=m)
        out["importance"] = {"k": args.k, "sentences": m, "tokens": sub_tokens,
                             "nll_nats_per_sentence": round(res["is_nats"], 3),
                             "perplexity": round(math.exp(res["is_nats"] * m / sub_tokens), 2),
                             "elbo_nats_per_sentence_same_sentences": round(sub_elbo / m, 3),
                             "elbo_perplexity_same_sentences": round(math.exp(sub_elbo / sub_tokens), 2),
                             "seconds": round(time.time() - t, 1)}
        g = torch.Generator(device=dev).manual_seed(0)
        z = model.prior(10, g)
        out["prior_samples_greedy"] = decode(data, model.decode(z))
        out["prior_samples_t1"] = decode(data, model.sample(10, generator=torch.Generator(device=dev).manual_seed(0)))
        homs = []
        x_test = data.images("test").to(dev)
        lengths = sentence_mask(as_sequence(x_test)).sum(1)
        picks = [i for i in range(n) if 6 <= int(lengths[i]) <= 13][:6]
        for a, b in zip(picks[0::2], picks[1::2]):
            with torch.no_grad():
                za, zb = model.encode(x_test[a : a + 1])[0], model.encode(x_test[b : b + 1])[0]
                path = model.decode(interpolate(za, zb, 7))
            homs.append({"from": decode(data, x_test[a : a + 1])[0], "to": decode(data, x_test[b : b + 1])[0],
                         "path": decode(data, path)})
        out["homotopies"] = homs
    else:
        out["samples_t1"] = decode(data, model.sample(10, generator=torch.Generator(device=dev).manual_seed(0)))
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if dev.type == "cuda":
        out["peak_cuda_memory_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    del vocab
    write_result(f"text_{task}{args.tag}", out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=("tang", "ptb_vae", "ptb_lm"))
    p.add_argument("--cpu-seconds", type=float, default=900.0)
    p.add_argument("--preset", default=None)
    p.add_argument("--steps", type=int, default=0, help="stop after this many rounds if the budget lasts (0: no cap)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (training and measurements)")
    p.add_argument("--form", default="quatrain5", choices=("quatrain5", "all"), help="tang: which poems")
    p.add_argument("--tag", default="", help="suffix of the run directory and result name (e.g. _gpu)")
    p.add_argument("--k", type=int, default=100, help="importance samples per sentence (VAE)")
    p.add_argument("--is-sentences", type=int, default=500, help="test sentences in the importance-sampled NLL")
    p.add_argument("--test-sentences", type=int, default=0, help="PTB: measure on the first N test sentences (0: all)")
    p.add_argument("--eval-only", action="store_true", help="PTB: measure the run this script trained and stopped")
    p.add_argument("--train-cpu-seconds", type=float, default=None, help="with --eval-only: the training CPU time")
    p.add_argument("--train-wall-seconds", type=float, default=None, help="with --eval-only: the training wall time")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.task == "tang":
        task_tang(args)
    elif args.task == "ptb_vae":
        task_ptb(args, "sentence_vae", args.preset or "cpu")
    else:
        task_ptb(args, "char_rnn", args.preset or "words")


if __name__ == "__main__":
    main()
