"""A run folder and how to rebuild everything from it.

RUN/run.json        model name + config, trainer config, data spec/options/info, seed, version
RUN/checkpoint.pt   latest training state (atomic; see :mod:`genzoo.training.checkpoint`)
RUN/metrics.jsonl   one JSON object per logged step
RUN/samples/        periodic sample grids
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from genzoo._version import __version__
from genzoo.data import ImageInfo, load_dataset
from genzoo.errors import GenzooError
from genzoo.models.base import TrainableModel
from genzoo.models.registry import build_model_checked, get_model_class, make_config
from genzoo.models.weights import upgrade, weights_version
from genzoo.training.checkpoint import check_data_description, load_checkpoint
from genzoo.training.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
EVAL_JSON = "eval.json"
SAMPLES_DIR = "samples"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GenzooError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        return torch.device(name)
    raise GenzooError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")


def data_description(data) -> dict:
    """What is needed to reload the same images: the spec, the loader options, the info."""
    options = {k: v for k, v in data.meta.get("options", {}).items() if v is not None}
    return {"spec": data.spec, "options": options, "info": data.info.to_dict()}


def reload_data(desc: dict):
    """Load a run's data again; a palette saved with the run is reused, never refitted."""
    info = check_data_description(desc, "run data description")
    options = dict(desc.get("options", {}))
    if desc["spec"].startswith("folder:"):
        if info.palette is None:
            raise GenzooError(f"data {desc['spec']!r}: the run's image info has no palette to quantise with")
        options["palette"] = [list(c) for c in info.palette]
    data = load_dataset(desc["spec"], **options)
    if data.info.shape != info.shape or data.info.num_values != info.num_values:
        raise GenzooError(
            f"data {desc['spec']!r} no longer matches the run: now {data.info.shape} with "
            f"{data.info.num_values} values, trained on {info.shape} with {info.num_values}"
        )
    return data


@dataclass
class LoadedRun:
    path: Path
    model: TrainableModel
    model_name: str
    train_config: TrainConfig
    data_desc: dict
    step: int
    state: dict

    @property
    def info(self) -> ImageInfo:
        return self.model.info

    def data(self):
        return reload_data(self.data_desc)


def build_from_state(state: dict, source: str):
    """Model from a checkpoint's name, config and info, every key and value checked, within the model
    size limits (:func:`~genzoo.models.registry.build_model_checked`)."""
    try:
        cls = get_model_class(state["model_name"])
    except GenzooError as e:
        raise GenzooError(f"{source}: {e}") from None
    config = make_config(cls.Config, state["model_config"], what="model config key", source=source)
    info = check_data_description(state["data"], source)
    return build_model_checked(cls, config, info, source=source)


def load_weights(model: torch.nn.Module, weights: dict, source: str, version: int = 1, *, resume: bool = False) -> None:
    """Load ``weights`` saved at layout ``version`` (a checkpoint's ``weights_version``; 1 when it has
    none), converting an older layout (:mod:`genzoo.models.weights`) -- except to ``resume`` training,
    whose optimiser state keeps the old shapes."""
    if resume and version != weights_version(model):
        raise GenzooError(
            f"{source}: the weights of {type(model).__name__} are in format version {version}; this "
            f"genzoo reads version {weights_version(model)} and converts them for sampling and "
            "evaluation, but cannot resume their training (start a new run)"
        )
    weights = upgrade(model, weights, version, source)
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        what = f"missing weight {missing[0]!r}" if missing else f"unexpected weight {unexpected[0]!r}"
        raise GenzooError(f"{source}: weights do not fit {type(model).__name__} ({what})")
    for k, v in weights.items():
        if not isinstance(v, torch.Tensor) or v.shape != own[k].shape:
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise GenzooError(f"{source}: weight {k!r} has shape {shape}, model expects {tuple(own[k].shape)}")
    model.load_state_dict(weights)


def load_run(path: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the exact model of a run folder (or a checkpoint file) from its latest checkpoint."""
    path = Path(path)
    ckpt = path if path.is_file() else path / CHECKPOINT
    if not path.exists():
        raise GenzooError(f"{path}: no such run folder")
    state = load_checkpoint(ckpt)
    model = build_from_state(state, str(ckpt))
    # a run trained with ema samples and evaluates with the averaged weights (genzoo.training.ema)
    load_weights(model, state.get("ema", state["model"]), str(ckpt), state.get("weights_version", 1))
    dev = resolve_device(device) if isinstance(device, str) else device
    model.to(dev).eval()
    train_cfg = make_config(TrainConfig, state["train_config"], what="train config key", source=str(ckpt))
    return LoadedRun(
        path if path.is_dir() else path.parent,
        model,
        state["model_name"],
        train_cfg,
        state["data"],
        int(state["step"]),
        state,
    )


def run_description(model_name: str, model, train_cfg: TrainConfig, data, seed: int) -> dict:
    return {
        "genzoo_version": __version__,
        "model_name": model_name,
        "model_config": dataclasses.asdict(model.config),
        "train_config": dataclasses.asdict(train_cfg),
        "data": data_description(data),
        "seed": seed,
    }
