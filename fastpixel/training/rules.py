"""The rules a training setting must meet: one table (type and range per field), checked in one place.

:data:`RULES` maps every field of :class:`~fastpixel.training.config.TrainConfig` to a :class:`Rule`;
:data:`OPTION_RULES` the options of sampling, evaluation and the demo; :func:`check_field` applies
one, and ``fastpixel.cli.args.from_rule`` turns a row into the argparse type of its flag, so the
commands and the API refuse the same values in the same words. A bool is never an int, a string never a bool, a count is an int
with a lower bound (>= 1 where zero makes no sense), a real number is finite. The messages name
the setting, the rule and the value: ``steps must be an int >= 1, got 0``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from fastpixel.backend import BACKENDS
from fastpixel.data import DATASETS
from fastpixel.data.datasets import BINARIZE
from fastpixel.models import MODELS
from fastpixel.models.heads import HEADS
from fastpixel.presets import PRESETS
from fastpixel.training.schedule import SCHEDULES

INT, NUMBER, BOOL, TEXT, PATH = "int", "number", "bool", "text", "path"
#: Data sets a config may name: the readers of fastpixel.data, and "user" (images given to fit()).
DATASET_NAMES = (*DATASETS, "user")
MODEL_NAMES = tuple(sorted(MODELS))
MULTISCALE_KINDS = ("row_lstm", "diagonal_bilstm")


@dataclass(frozen=True)
class Rule:
    """What one setting accepts.

    kind: INT (an int, never a bool), NUMBER (a finite int or float, never a bool), BOOL (True /
      False only), TEXT (a str) or PATH (a str or os.PathLike).
    low / high: bounds of an INT or NUMBER, closed unless low_open / high_open.
    choices: the values a TEXT may take. optional: None is allowed too (meaning "unset").
    range_text: how the range is said in the message (default: derived from the bounds).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    range_text: str | None = None

    def describe(self) -> str:
        """The rule in words, as the messages say it: "an int >= 1", "> 0", "one of (...)"."""
        if self.range_text is not None:
            return self.range_text
        return self._describe_kind() + (" or None" if self.optional else "")

    def _describe_kind(self) -> str:
        if self.kind == INT:
            if self.high is None:
                return f"an int >= {self.low:g}"
            return f"an int in [{self.low:g}, {self.high:g}]"
        if self.kind == NUMBER:
            return "a finite number"
        if self.kind == BOOL:
            return "a bool (True or False)"
        if self.choices is not None:
            return f"one of {self.choices}"
        return "a path (str)" if self.kind == PATH else "a str"


def count(low: int, high: int | None = None, **kw) -> Rule:
    """An int in [low, high]."""
    return Rule(INT, low=low, high=high, **kw)


#: Every field of TrainConfig and its rule. Add a field to TrainConfig and a row here together.
RULES: dict[str, Rule] = {
    # the model
    "model": Rule(TEXT, choices=MODEL_NAMES),
    "hidden": count(1),
    "layers": count(0),
    "output_hidden": count(1, optional=True),
    "skip": Rule(BOOL),
    "conditional": Rule(BOOL),
    # the head (fastpixel.training.model_settings says which model takes which; None: the model's own)
    "head": Rule(TEXT, choices=HEADS, optional=True),
    "nr_logistic_mix": count(1, optional=True),
    "dropout": Rule(NUMBER, low=0, high=1, high_open=True, optional=True,
                    range_text="a probability in [0, 1) or None"),
    # the data
    "dataset": Rule(TEXT, choices=DATASET_NAMES),
    "data_dir": Rule(PATH, optional=True),
    "binarize": Rule(TEXT, choices=BINARIZE),
    "binarize_seed": count(0),
    "allow_pickle": Rule(BOOL),
    "png_convert": Rule(BOOL),
    "train_limit": count(1, optional=True),
    "test_limit": count(1, optional=True),
    # the optimisation
    "batch_size": count(1),
    "eval_batch_size": count(1),
    "steps": count(1),
    "lr": Rule(NUMBER, low=0, low_open=True, range_text="> 0"),
    "clip_grad": Rule(NUMBER, low=0, range_text=">= 0 (0: off)"),
    "ema": Rule(NUMBER, low=0, high=1, high_open=True, range_text="a decay in [0, 1) (0: off)"),
    "bf16": Rule(BOOL),
    "seed": count(0),
    "lr_schedule": Rule(TEXT, choices=SCHEDULES),
    "warmup_steps": count(0),
    "lr_step_every": count(1, optional=True),
    "lr_gamma": Rule(NUMBER, low=0, high=1, low_open=True, range_text="in (0, 1]"),
    # the Multi-Scale PixelRNN
    "kind": Rule(TEXT, choices=MULTISCALE_KINDS, optional=True),
    "factor": count(2, optional=True),
    "small_hidden": count(1, optional=True),
    "small_layers": count(1, optional=True),
    "condition_features": count(1, optional=True),
    # what the run writes and shows
    "log_every": count(1),
    "eval_every": count(0),
    "checkpoint_every": count(1),
    "keep": count(1),
    "sample_grid": count(0),
    "tensorboard": Rule(BOOL),
    # how this invocation runs (not part of the trajectory)
    "preset": Rule(TEXT, choices=tuple(sorted(PRESETS)), optional=True),
    "run_dir": Rule(PATH, optional=True),
    "resume": Rule(BOOL),
    "overwrite": Rule(BOOL),
    "backend": Rule(TEXT, choices=BACKENDS, optional=True),
    "device": Rule(TEXT, optional=True),
    "progress": Rule(BOOL),
    "quiet": Rule(BOOL),
}


#: The options of sampling, evaluation and the demo, in the API and the commands, that are not
#: training settings (those, and ``overwrite``, are RULES' rows and are read from there). One table: ``fastpixel-sample
#: --num 0`` and ``fastpixel.sample(model, 0, ...)`` are refused by the same row, in the same words.
OPTION_RULES: dict[str, Rule] = {
    # sampling (fastpixel.sample / complete, fastpixel-sample)
    "num": count(1, 100_000),
    "height": count(1, 4096),
    "width": count(1, 4096),
    "temperature": Rule(NUMBER, low=0, range_text="a finite number >= 0 (0: greedy)"),
    "per_image": count(1, 64),
    "columns": count(1, 10_000, optional=True),
    "scale": count(1, 64),
    "sample_batch_size": count(1),
    # evaluation (fastpixel-evaluate; its --batch-size is RULES' eval_batch_size)
    "limit": count(1, optional=True),
    # the demo (its other flags are RULES' rows: hidden, layers, steps, batch_size, lr, seed)
    "threads": count(1, 1024),
    # compression (fastpixel.compress, fastpixel-compress; --limit and --threads as above)
    "chunk_size": count(1),
    # class-conditional sampling (fastpixel-sample --label)
    "label": count(0),
}


def check_option(name: str, value: Any, *, label: str | None = None) -> Any:
    """``value`` when it meets the row ``name`` of OPTION_RULES (else RULES); ValueError otherwise
    (the message names ``label``, default ``name``)."""
    rule = OPTION_RULES.get(name) or RULES[name]
    check_field(label or name, value, rule)
    return value


def rule_for(name: str) -> Rule:
    """The row of ``name``: OPTION_RULES, else RULES (KeyError for a name in neither)."""
    return OPTION_RULES.get(name) or RULES[name]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_range(rule: Rule, value: float) -> bool:
    if rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low):
        return False
    return rule.high is None or (value < rule.high if rule.high_open else value <= rule.high)


def check_field(name: str, value: Any, rule: Rule) -> None:
    """Raise ValueError ("<name> must be <rule>, got <value!r>") unless ``value`` meets ``rule``."""
    if value is None and rule.optional:
        return
    if rule.kind == INT:
        ok = _is_int(value) and _in_range(rule, value)
    elif rule.kind == NUMBER:
        finite = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
        if not finite:
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        ok = _in_range(rule, value)
    elif rule.kind == BOOL:
        ok = isinstance(value, bool)
    elif rule.kind == PATH:
        ok = isinstance(value, (str, os.PathLike))
    else:
        ok = isinstance(value, str) and (rule.choices is None or value in rule.choices)
    if not ok:
        raise ValueError(f"{name} must be {rule.describe()}, got {value!r}")
