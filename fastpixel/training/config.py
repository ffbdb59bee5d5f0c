"""``TrainConfig``: every setting of a training run, typed, frozen and checked once, in ``__post_init__``.

Every door builds one and nothing checks settings again:

    TrainConfig.from_preset("cpu_tiny", steps=50, run_dir="runs/t")   # a preset plus overrides
    fastpixel.cli.train.config_from_args(args)                        # fastpixel-train's flags
    fastpixel.fit(model, images, steps=50, ...)                       # the Python API
    TrainConfig.from_run("runs/t")                                    # a saved run's config.json
    TrainConfig.from_saved(checkpoint["train_config"])                # a checkpoint's settings

Each field obeys its row of :data:`fastpixel.training.rules.RULES` (type and range);
:func:`check_together` then checks the rules between fields (schedule, Multi-Scale options,
the head settings of :mod:`fastpixel.training.model_settings`, binarization). A bad value raises
ValueError with the message the commands print.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fastpixel.data.datasets import GREY_8BIT
from fastpixel.presets import DEFAULTS, PRESETS, resolve
from fastpixel.training.model_settings import check_head_settings, head_options, is_model_option, takes
from fastpixel.training.rules import RULES, check_field
from fastpixel.training.schedule import check_schedule

#: Data sets that read no folder (a data_dir given with them would be ignored: refused instead).
BUILT_IN = ("builtin_mnist", "user")
#: Options of the Multi-Scale PixelRNN (``model="multiscale"``) beyond create_model's common ones.
MULTISCALE_OPTIONS = ("kind", "factor", "small_hidden", "small_layers", "condition_features")
#: Fields that say how this invocation runs, not what is trained (not stored in checkpoints).
INVOCATION = ("run_dir", "resume", "overwrite", "backend", "device", "progress", "quiet")
_D = DEFAULTS


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (the keys of ``fastpixel.presets.DEFAULTS``, with their
    defaults), the preset they came from, and how this invocation runs (INVOCATION)."""

    model: str = _D["model"]
    hidden: int = _D["hidden"]
    layers: int = _D["layers"]
    output_hidden: int | None = _D["output_hidden"]
    skip: bool = _D["skip"]
    conditional: bool = _D["conditional"]
    head: str | None = _D["head"]
    nr_logistic_mix: int | None = _D["nr_logistic_mix"]
    dropout: float | None = _D["dropout"]
    dataset: str = _D["dataset"]
    data_dir: str | None = _D["data_dir"]
    binarize: str = _D["binarize"]
    binarize_seed: int = _D["binarize_seed"]
    allow_pickle: bool = _D["allow_pickle"]
    png_convert: bool = _D["png_convert"]
    train_limit: int | None = _D["train_limit"]
    test_limit: int | None = _D["test_limit"]
    batch_size: int = _D["batch_size"]
    eval_batch_size: int = _D["eval_batch_size"]
    steps: int = _D["steps"]
    lr: float = _D["lr"]
    clip_grad: float = _D["clip_grad"]
    ema: float = _D["ema"]
    bf16: bool = _D["bf16"]
    seed: int = _D["seed"]
    log_every: int = _D["log_every"]
    eval_every: int = _D["eval_every"]
    checkpoint_every: int = _D["checkpoint_every"]
    lr_schedule: str = _D["lr_schedule"]
    warmup_steps: int = _D["warmup_steps"]
    lr_step_every: int | None = _D["lr_step_every"]
    lr_gamma: float = _D["lr_gamma"]
    kind: str | None = _D["kind"]
    factor: int | None = _D["factor"]
    small_hidden: int | None = _D["small_hidden"]
    small_layers: int | None = _D["small_layers"]
    condition_features: int | None = _D["condition_features"]
    keep: int = _D["keep"]
    sample_grid: int = _D["sample_grid"]
    tensorboard: bool = _D["tensorboard"]
    preset: str | None = None
    run_dir: str | None = None
    resume: bool = False
    overwrite: bool = False
    backend: str | None = None
    device: str | None = None
    progress: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        for name in ("run_dir", "data_dir"):  # paths are kept as str (config.json, messages)
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        for field in dataclasses.fields(self):
            check_field(field.name, getattr(self, field.name), RULES[field.name])
        if self.model == "multiscale" and self.kind is None:
            object.__setattr__(self, "kind", "diagonal_bilstm")
        check_together(self)

    # -- building one ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Every key must be a field (ValueError names the unknown ones); missing ones take defaults."""
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}")
        return cls(**values)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> TrainConfig:
        """DEFAULTS, then the preset, then every override that is not None (settings or INVOCATION)."""
        settings = {k: v for k, v in overrides.items() if k in DEFAULTS}
        rest = {k: v for k, v in overrides.items() if k not in DEFAULTS and v is not None}
        unknown = set(rest) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}")
        values = resolve(preset, settings)
        for key in PRESETS[preset]:
            # a preset's option for its own model, which the model asked for does not take (--model pixelcnn_pp
            # on cpu_tiny: output_hidden), is not the user's and does not apply (given explicitly, check_together
            # refuses it)
            if settings.get(key) is None and is_model_option(key) and not takes(values["model"], key):
                values[key] = DEFAULTS[key]
        return cls(**values, **rest)

    @classmethod
    def from_saved(cls, values: Mapping[str, Any], **invocation: Any) -> TrainConfig:
        """The settings a run recorded (its config.json, or a checkpoint's ``train_config``), as written
        by any fastpixel so far. Only the settings and the preset are taken: the recorded INVOCATION
        fields (give them as ``invocation``) and whatever else the run recorded (model config, data
        protocol, versions) are left out; settings an older fastpixel did not record take their defaults."""
        kept = {k: v for k, v in values.items() if k in DEFAULTS or k == "preset"}
        return cls(**kept, **invocation)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, **invocation: Any) -> TrainConfig:
        """The settings recorded in ``run_dir/config.json``, with ``run_dir`` set to that directory."""
        from fastpixel.training.run_dir import CONFIG

        path = Path(run_dir) / CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (a run directory written by fastpixel-train holds it)")
        try:
            values = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of settings")
        return cls.from_saved(values, **{"run_dir": os.fspath(run_dir), **invocation})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)

    # -- reading one ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The settings (DEFAULTS' keys) and the preset: what a checkpoint stores as ``train_config``."""
        return {k: getattr(self, k) for k in DEFAULTS} | {"preset": self.preset}

    def to_dict(self) -> dict[str, Any]:
        """Every field, in order (what a run's config.json starts with)."""
        return {k: getattr(self, k) for k in FIELDS}

    def model_options(self) -> dict[str, Any]:
        """``create_model``'s keyword arguments besides channels, levels and backend."""
        if self.model == "pixelcnn_pp":  # hidden -> nr_filters, layers -> nr_resnet; no output layers, no skips
            return dict(hidden=self.hidden, layers=self.layers, **head_options(self))
        options = dict(hidden=self.hidden, layers=self.layers, output_hidden=self.output_hidden, skip=self.skip)
        if self.model == "multiscale":
            options.update({k: getattr(self, k) for k in MULTISCALE_OPTIONS if getattr(self, k) is not None})
        return options | head_options(self)


FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def check_together(config: TrainConfig) -> None:
    """The rules between fields; ValueError with the message the commands print."""
    if config.binarize != "none" and config.dataset not in GREY_8BIT:
        raise ValueError(_binarize_message(config))
    if config.data_dir is not None and config.dataset in BUILT_IN:
        raise ValueError(f"--data-dir {config.data_dir}: the data set {config.dataset} is built into fastpixel and "
                         f"reads no folder; leave --data-dir out, or pick a --dataset read from files")
    check_head_settings(config)
    if config.model == "pixelcnn_pp" and (config.output_hidden is not None or config.skip):
        raise ValueError("--output-hidden and --skip do not apply to --model pixelcnn_pp (its output is one 1x1 conv "
                         "of its down-right stream; --hidden is nr_filters, --layers nr_resnet)")
    if config.model == "multiscale" and config.layers < 1:
        raise ValueError("--model multiscale needs --layers >= 1 (the small image biases every LSTM layer)")
    check_schedule(config.lr_schedule, steps=config.steps, warmup_steps=config.warmup_steps,
                   step_every=config.lr_step_every, gamma=config.lr_gamma)
    extra = sorted(k for k in MULTISCALE_OPTIONS if getattr(config, k) is not None)
    if config.model != "multiscale" and extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        verb = "applies" if len(extra) == 1 else "apply"
        raise ValueError(f"{flags} {verb} only to --model multiscale, not {config.model!r}")
    if config.steps < config.warmup_steps:
        raise ValueError(f"--warmup-steps {config.warmup_steps} exceeds --steps {config.steps}")


def _binarize_message(config: TrainConfig) -> str:
    from_preset = config.preset is not None and {**DEFAULTS, **PRESETS[config.preset]}["binarize"] == config.binarize
    if not from_preset:
        return f"--binarize {config.binarize} applies only to {', '.join(GREY_8BIT)}, not {config.dataset}"
    made_for = ", ".join(n for n, p in PRESETS.items() if p.get("dataset") == config.dataset)
    return (f"--dataset {config.dataset}: the preset {config.preset} binarizes (binarize={config.binarize!r}), "
            f"which applies only to the 8-bit grey sets {', '.join(GREY_8BIT)}; add --binarize none, or pick a "
            f"preset made for it ({made_for})")
