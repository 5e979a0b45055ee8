"""The served runs and the playground's actions: request fields in, JSON-ready results out.

Only the runs named on the command line are served; a request names one by its index in that list
or by its label (the folder name, with parents added until the labels differ, as ``genzoo
compare`` labels runs), never by a path, so no request can reach another folder.

Every action uses the models' public API and declared capabilities: ``sample`` / ``complete`` of
:class:`~genzoo.models.base.GenerativeModel`, ``decode`` / ``encode`` / ``prior`` of
:class:`~genzoo.models.base.LatentModel`, and the progress callback of the autoregressive sampling
loop (:class:`~genzoo.models.base.AutoregressiveModel`). Each request draws from its own
``torch.Generator``. The models are shared by every request thread and only read, except that
completion and inversion of non-autoregressive models may fit codes by gradient descent (which
switches the weights' ``requires_grad`` off and on) or run Gibbs chains: those run under the run's
lock, one at a time per run.

Bounds (module constants): ``n`` samples, completions per image, interpolation steps, temperature,
code values, upload bytes and pixels. A bad field is a :class:`~genzoo.serve.fields.RequestError`.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from genzoo.data import ImageDataset, ImageInfo
from genzoo.data.images import read_image
from genzoo.data.palette import quantize
from genzoo.errors import GenzooError
from genzoo.evaluation.report import metric_columns, read_run, render, run_labels
from genzoo.models.base import MAX_SAMPLE_VALUES, AutoregressiveModel, GenerativeModel, LatentModel
from genzoo.sampling.latent import interpolate
from genzoo.sampling.masks import MASKS, make_mask
from genzoo.serve.fields import RequestError, choice, integer, integers, number, numbers, shown
from genzoo.serve.jobs import Job, Jobs
from genzoo.training.run import LoadedRun, load_run
from genzoo.viz import completion_figure, grid, labelled_grid, mask_rgb, sample_picture

MAX_SAMPLES = 64  # images in one sample request
MAX_COMPLETIONS = 8  # completions of one image
MAX_PATH_STEPS = 16  # images along one interpolation
MAX_TEMPERATURE = 10.0
MAX_CODE = 10.0  # |z_i| of a decoded code vector (the prior is N(0, I))
MAX_SEED = 2**63 - 1
MAX_UPLOAD_BYTES = 4 << 20  # refused from the Content-Length, before the body is read
MAX_UPLOAD_PIXELS = 4096 * 4096  # refused from the image header, before the pixels are decoded
UPLOAD_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}


@dataclass
class ServedRun:
    index: int
    name: str
    run: LoadedRun
    data: ImageDataset
    lock: threading.Lock

    @property
    def model(self) -> Any:
        return self.run.model

    @property
    def info(self) -> ImageInfo:
        return self.run.info

    @property
    def test_split(self) -> str:
        splits = self.data.split_names()
        return "test" if "test" in splits else splits[-1]

    def describe(self) -> dict[str, Any]:
        m, info = self.model, self.info
        generative = isinstance(m, GenerativeModel)
        latent = isinstance(m, LatentModel)
        classes = list(info.class_names) or [str(i) for i in range(info.num_classes)]
        return {
            "index": self.index,
            "name": self.name,
            "model": self.run.model_name,
            "family": getattr(m, "family", "?"),
            "step": self.run.step,
            "data": self.data.spec,
            "shape": list(info.shape),
            "num_values": info.num_values,
            "continuous": info.continuous,
            "can_sample": generative,
            "can_complete": generative and not info.continuous,
            "autoregressive": isinstance(m, AutoregressiveModel),
            "latent": latent and not info.continuous,
            "latent_dim": m.latent_dim if latent else 0,
            "has_encoder": bool(latent and m.has_encoder),
            "conditional": bool(generative and m.conditional),
            "classes": classes if generative and m.conditional else [],
            "test_split": self.test_split,
            "test_images": self.data.size(self.test_split),
        }


def load_served_runs(paths: list[Path], device: str = "cpu") -> list[ServedRun]:
    """Load every run once (model and data); a run that cannot be loaded is a one-line error."""
    if not paths:
        raise GenzooError("serve: name at least one run folder")
    labels = run_labels([Path(p) for p in paths])
    served = []
    for i, (path, label) in enumerate(zip(paths, labels)):
        run = load_run(path, device)
        served.append(ServedRun(i, label, run, run.data(), threading.Lock()))
    return served


def png_uri(picture: Image.Image) -> str:
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Playground:
    """The actions of the page over a fixed list of runs; slow ones go to ``jobs``."""

    def __init__(self, runs: list[ServedRun], jobs: Jobs | None = None, device: str = "cpu"):
        self.runs = runs
        self.jobs = jobs or Jobs()
        self.device = device
        self._by_name = {r.name: r for r in runs}
        self._report: str | None = None
        self._report_lock = threading.Lock()

    # -- which run --------------------------------------------------------------------------
    def run(self, ref: Any) -> ServedRun:
        """The served run named by index or label; anything else (a path, ``../``) is a 404."""
        if isinstance(ref, int) and not isinstance(ref, bool) and 0 <= ref < len(self.runs):
            return self.runs[ref]
        if isinstance(ref, str) and ref in self._by_name:
            return self._by_name[ref]
        if isinstance(ref, str) and ref.isdigit() and int(ref) < len(self.runs):
            return self.runs[int(ref)]
        served = ", ".join(f"{r.index} ({r.name})" for r in self.runs)
        raise RequestError(f"unknown run {shown(ref)}; served runs: {served}", 404)

    def _generative(self, body: dict) -> ServedRun:
        r = self.run(body.get("run", 0))
        if not isinstance(r.model, GenerativeModel):
            raise RequestError(f"run {r.name!r} holds a {r.run.model_name!r} model, which does not generate images")
        return r

    def _latent(self, body: dict) -> ServedRun:
        r = self.run(body.get("run", 0))
        if not isinstance(r.model, LatentModel) or r.info.continuous:
            raise RequestError(f"run {r.name!r} ({r.run.model_name}) has no code space to decode or steer")
        return r

    def describe(self) -> dict[str, Any]:
        return {
            "runs": [r.describe() for r in self.runs],
            "masks": list(MASKS),
            "limits": {
                "samples": MAX_SAMPLES,
                "completions": MAX_COMPLETIONS,
                "path_steps": MAX_PATH_STEPS,
                "temperature": MAX_TEMPERATURE,
                "code": MAX_CODE,
                "seed": MAX_SEED,
                "upload_bytes": MAX_UPLOAD_BYTES,
            },
        }

    # -- checked fields ---------------------------------------------------------------------
    def _labels(self, r: ServedRun, body: dict, n: int, default: torch.Tensor | None = None) -> torch.Tensor | None:
        """The ``class`` field: labels (n,) for a conditional model; refused for an unconditional one."""
        model, k = r.model, r.info.num_classes
        if body.get("class") is None:
            if default is not None and model.conditional:
                return default
            return model.default_condition(n)
        if not model.conditional:
            raise RequestError(f"class: run {r.name!r} ({r.run.model_name}) is unconditional; it takes no class")
        label = integer(body, "class", None, 0, k - 1)
        return torch.full((n,), label, dtype=torch.long)

    def _image(self, r: ServedRun, spec: Any, key: str) -> tuple[torch.Tensor, int | None]:
        """An image (1, C, H, W) from ``{"test": i}`` or ``{"pixels": [C*H*W values]}``, and its label."""
        info = r.info
        if not isinstance(spec, dict) or len(spec) != 1 or not ({"test", "pixels"} & set(spec)):
            raise RequestError(f'{key}: expected {{"test": INDEX}} or {{"pixels": [{info.dims} values]}}')
        if "test" in spec:
            count = r.data.size(r.test_split)
            i = integer(spec, "test", None, 0, count - 1)
            batch = r.data.batch(r.test_split, [i])
            y = batch.get("y")
            return batch["x"].long(), (int(y[0]) if y is not None else None)
        values = integers(spec["pixels"], f"{key}.pixels", info.dims, 0, info.num_values - 1)
        return torch.tensor(values, dtype=torch.long).reshape(1, *info.shape), None

    def _known(self, r: ServedRun, body: dict) -> torch.Tensor:
        """The mask (C, H, W), True where shown: ``known`` (H*W zeros and ones) or a named ``mask``."""
        info = r.info
        if "known" in body:
            flat = integers(body["known"], "known", info.height * info.width, 0, 1)
            m = torch.tensor(flat, dtype=torch.bool).reshape(info.height, info.width)
            known = m.unsqueeze(0).expand(info.channels, -1, -1).clone()
        else:
            known = make_mask(choice(body, "mask", "bottom-half", list(MASKS)), info)
        if known.all():
            raise RequestError("known: nothing is hidden; paint the region the model should draw")
        return known

    def _generator(self, r: ServedRun, body: dict) -> torch.Generator:
        seed = integer(body, "seed", 0, 0, MAX_SEED)
        return torch.Generator(device=r.model.device).manual_seed(seed)

    # -- actions ----------------------------------------------------------------------------
    def sample(self, body: dict) -> Job:
        """A job drawing ``n`` images (seed, temperature, class); its result is a grid picture."""
        r = self._generative(body)
        n = integer(body, "n", 16, 1, MAX_SAMPLES)
        if n * r.info.dims > MAX_SAMPLE_VALUES:
            raise RequestError(f"n {n}: {n} samples of {r.info.dims} values exceed {MAX_SAMPLE_VALUES:,} values")
        temperature = number(body, "temperature", 1.0, 0.0, MAX_TEMPERATURE)
        labels = self._labels(r, body, n)
        generator = self._generator(r, body)
        model = r.model

        def work(job: Job) -> dict:
            start = time.perf_counter()
            options: dict[str, Any] = {"progress": job.progress} if isinstance(model, AutoregressiveModel) else {}
            with torch.no_grad():
                x = model.sample(n, generator=generator, temperature=temperature, condition=labels, **options)
            picture = sample_picture(x, r.data) if r.info.continuous else grid(r.info.to_rgb(x))
            return {"image": png_uri(picture), "n": n, "seconds": round(time.perf_counter() - start, 4)}

        return self.jobs.submit("sample", r.name, work)

    def complete(self, body: dict) -> Job:
        """A job completing one image (a test image or pixels) where ``known`` is 0, ``samples`` times."""
        r = self._generative(body)
        if r.info.continuous:
            raise RequestError(f"run {r.name!r} models 2-D points; there is no image to complete")
        x, label = self._image(r, body.get("image"), "image")
        known = self._known(r, body)
        k = integer(body, "samples", 4, 1, MAX_COMPLETIONS)
        temperature = number(body, "temperature", 1.0, 0.0, MAX_TEMPERATURE)
        default = torch.full((k,), label, dtype=torch.long) if label is not None else None
        labels = self._labels(r, body, k, default)
        generator = self._generator(r, body)
        model, info = r.model, r.info
        autoregressive = isinstance(model, AutoregressiveModel)

        def work(job: Job) -> dict:
            start = time.perf_counter()
            reps = x.repeat(k, 1, 1, 1).to(model.device)  # (k, C, H, W)
            options: dict[str, Any] = {"progress": job.progress} if autoregressive else {}
            with _maybe(r.lock, not autoregressive):
                filled = model.complete(
                    reps, known, generator=generator, temperature=temperature, condition=labels, **options
                )
            original = info.to_rgb(x)
            figure = completion_figure(original, mask_rgb(original, known.all(0).numpy()), info.to_rgb(filled)[None])
            return {"image": png_uri(figure), "samples": k, "seconds": round(time.perf_counter() - start, 4)}

        return self.jobs.submit("complete", r.name, work)

    def mask(self, body: dict) -> dict:
        """A named mask as the page's painted form: H*W zeros (hidden) and ones (shown)."""
        r = self._generative(body)
        if r.info.continuous:
            raise RequestError(f"run {r.name!r} models 2-D points; it has no images to mask")
        known = make_mask(choice(body, "mask", "bottom-half", list(MASKS)), r.info)
        return {"known": known[0].reshape(-1).int().tolist()}

    def image(self, body: dict) -> dict:
        """A test image: its pixels (for completion) and a one-to-one picture (for the canvas)."""
        r = self._generative(body)
        if r.info.continuous:
            raise RequestError(f"run {r.name!r} models 2-D points; it has no images")
        index = integer(body, "index", 0, 0, r.data.size(r.test_split) - 1)
        x, label = self._image(r, {"test": index}, "index")
        return self._image_result(r, x, label)

    def upload(self, run_ref: Any, content_type: str, data: bytes) -> dict:
        """An uploaded PNG or JPEG, fitted to the run's image size and values (palette colours, grey
        levels); the bytes were capped before reading (:data:`MAX_UPLOAD_BYTES`)."""
        r = self.run(run_ref)
        info = r.info
        if not isinstance(r.model, GenerativeModel) or info.continuous:
            raise RequestError(f"run {r.name!r} takes no images to complete")
        fmt = UPLOAD_FORMATS.get(content_type)
        if fmt is None:
            raise RequestError(f"upload: Content-Type {shown(content_type)}: send image/png or image/jpeg", 415)
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.format != fmt:
                    raise RequestError(f"upload: the bytes are {im.format or 'not an image'}, not {fmt}", 415)
                w, h = im.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise RequestError(f"upload: not a readable {fmt} image ({type(e).__name__})", 415) from None
        if w * h > MAX_UPLOAD_PIXELS:
            raise RequestError(f"upload: {w} x {h} pixels; the limit is {MAX_UPLOAD_PIXELS:,}", 413)
        if info.height != info.width:
            raise RequestError(
                f"upload: run {r.name!r} has {info.height} x {info.width} images; uploads need square ones"
            )
        rgb = read_image(data, info.height, name="upload")  # (H, W, 3) uint8
        return self._image_result(r, _discrete(rgb, info), None)

    def _image_result(self, r: ServedRun, x: torch.Tensor, label: int | None) -> dict:
        return {
            "pixels": x.reshape(-1).tolist(),
            "image": png_uri(grid(r.info.to_rgb(x), ncols=1, pad=0, scale=1)),
            "label": label,
            "shape": list(r.info.shape),
        }

    def decode(self, body: dict) -> dict:
        """The image of a code vector ``z`` (latent_dim numbers): the slider view."""
        r = self._latent(body)
        model = r.model
        z = numbers(body, "z", model.latent_dim, -MAX_CODE, MAX_CODE)
        labels = self._labels(r, body, 1)
        code = torch.tensor([z], dtype=model.dtype, device=model.device)
        with torch.no_grad():
            x = model.decode(code, None if labels is None else labels.to(model.device))
        return {"image": png_uri(grid(r.info.to_rgb(x), ncols=1, pad=0))}

    def _code(self, r: ServedRun, spec: Any, key: str, body: dict) -> torch.Tensor:
        """A code (D,): an image's (``{"test": i}`` / ``{"pixels": ...}``) or a prior draw ``{"seed": s}``."""
        model = r.model
        if isinstance(spec, dict) and set(spec) == {"seed"}:
            seed = integer(spec, "seed", None, 0, MAX_SEED)
            return model.prior(1, torch.Generator(device=model.device).manual_seed(seed))[0]
        x, label = self._image(r, spec, key)
        labels = self._labels(r, body, 1, None if label is None else torch.tensor([label]))
        with _maybe(r.lock, not model.has_encoder):  # without an encoder: fit z by gradient descent
            z = model.encode(
                x.to(model.device),
                None if labels is None else labels.to(model.device),
                generator=self._generator(r, body),
            )
        return z[0].detach()

    def encode(self, body: dict) -> dict:
        """The code of an image, to start the sliders from."""
        r = self._latent(body)
        z = self._code(r, body.get("image"), "image", body)
        return {"z": [round(float(v), 4) for v in z.clamp(-MAX_CODE, MAX_CODE)]}

    def interpolate(self, body: dict) -> dict:
        """Decoded codes along the path between two endpoints (images or prior draws)."""
        r = self._latent(body)
        model = r.model
        steps = integer(body, "steps", 8, 2, MAX_PATH_STEPS)
        kind = choice(body, "kind", "linear", ("linear", "slerp"))
        z0 = self._code(r, body.get("a"), "a", body)
        z1 = self._code(r, body.get("b"), "b", body)
        labels = self._labels(r, body, steps)
        with torch.no_grad():
            x = model.decode(interpolate(z0, z1, steps, kind), None if labels is None else labels.to(model.device))
        return {"image": png_uri(labelled_grid(r.info.to_rgb(x), ncols=steps, caption=f"a -> b ({kind})"))}

    # -- compare ----------------------------------------------------------------------------
    def compare(self) -> dict:
        """The metric table of ``genzoo compare`` for the served runs that have an ``eval.json``."""
        summaries, missing = self._summaries()
        cols, notes = metric_columns([s.records for s in summaries])
        return {
            "runs": [s.label for s in summaries],
            "missing": missing,
            "columns": [
                {"metric": c.metric, "unit": c.unit, "fields": {k: str(v) for k, v in c.shown_fields.items()}}
                for c in cols
            ],
            "rows": [[c.values[j] for c in cols] for j in range(len(summaries))],
            "notes": notes,
        }

    def compare_page(self) -> str:
        """The whole ``genzoo compare`` page (figures, curves) for the served runs; built once."""
        with self._report_lock:
            if self._report is None:
                summaries, _ = self._summaries()
                if not summaries:
                    raise RequestError("no served run has an eval.json; run `genzoo eval RUN` first", 404)
                self._report = render(summaries, self.device)
            return self._report

    def _summaries(self) -> tuple[list, list[dict]]:
        summaries, missing = [], []
        for r in self.runs:
            try:
                summaries.append(read_run(r.run.path, r.name))
            except GenzooError as e:
                missing.append({"run": r.name, "why": str(e).replace(str(r.run.path), r.name)})
        return summaries, missing


def _discrete(rgb: np.ndarray, info: ImageInfo) -> torch.Tensor:
    """RGB (H, W, 3) uint8 -> the run's discrete image (1, C, H, W): nearest palette colour, or levels."""
    k = info.num_values
    if info.palette is not None:
        idx = quantize(rgb, np.asarray(info.palette, dtype=np.uint8))  # (H, W)
        return torch.as_tensor(idx.astype(np.int64)).reshape(1, 1, *idx.shape)
    values = rgb.astype(np.float64)
    if info.channels == 1:
        values = values.mean(-1, keepdims=True)  # (H, W, 1) grey
    elif info.channels != 3:
        raise RequestError(f"upload: the run's images have {info.channels} channels; only grey or RGB take uploads")
    levels = np.clip(np.rint(values / 255.0 * (k - 1)), 0, k - 1).astype(np.int64)  # (H, W, C)
    return torch.as_tensor(levels).permute(2, 0, 1).unsqueeze(0).contiguous()


class _maybe:
    """``with _maybe(lock, cond)``: hold ``lock`` only when ``cond``."""

    def __init__(self, lock: threading.Lock, cond: bool):
        self.lock, self.cond = lock, cond

    def __enter__(self) -> None:
        if self.cond:
            self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        if self.cond:
            self.lock.release()
