"""The training settings only some models take: ``head``, ``nr_logistic_mix`` and ``dropout``.

Each is None ("the model's own") unless given, so a run that does not name them, and one written
before they were settings, builds the model it always did. Which model takes which is read from
``fastpixel.models.OPTIONS`` (create_model's options):

* ``head``: "softmax" or "dmol" on the paper's models and the Gated PixelCNN (default softmax);
  PixelCNN++ has only the DMoL head, the Multi-Scale PixelRNN only the softmax head, so each
  accepts its own head by name and refuses the other.
* ``nr_logistic_mix`` (K): the DMoL head's mixture components (default 10); refused where the
  head is softmax.
* ``dropout``: PixelCNN++'s dropout probability in training (default 0.5); refused elsewhere.

A setting given where it does not apply is refused (ValueError, the commands' one-line message),
as the Multi-Scale options and ``--output-hidden`` / ``--skip`` for PixelCNN++ are; one a preset set
for its own model is dropped when another model is asked for (``is_model_option``, ``takes``).
``settings_of_model`` reads these settings, and the others that describe a model, back from a model.
"""

from __future__ import annotations

from typing import Any

from fastpixel.models import OPTIONS
from fastpixel.presets import DEFAULTS

#: The settings of this module, in the order the commands list them.
HEAD_SETTINGS = ("head", "nr_logistic_mix", "dropout")
#: What None means for each where it applies (the models' own defaults; tests check they agree).
MODEL_DEFAULTS = {"nr_logistic_mix": 10, "dropout": 0.5}
#: Models whose only head is fixed (they take no ``head`` option).
FIXED_HEAD = {"pixelcnn_pp": "dmol", "multiscale": "softmax"}


def takes(model: str, option: str) -> bool:
    """Whether ``create_model(model, ...)`` takes ``option``."""
    return option in OPTIONS.get(model, ())


def is_model_option(name: str) -> bool:
    """Whether the setting ``name`` is an option of some model's ``create_model`` (output_hidden, skip,
    the Multi-Scale options, the head settings), as opposed to one every model takes or a training one."""
    return any(name in options for options in OPTIONS.values())


def settings_of_model(model: Any) -> dict[str, Any]:
    """The training settings that describe ``model`` (the keys of its ``config`` that are settings, its
    name as ``model``), so a run's config.json says what was trained; {} for a module without a
    fastpixel config (the user's own: the settings' defaults are recorded, the model's config beside them)."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or config.get("name") not in OPTIONS:
        return {}
    settings = {k: v for k, v in config.items() if k in DEFAULTS and k not in ("model", "conditional")}
    return {**settings, "model": config["name"]}


def head_of(model: str, head: str | None) -> str:
    """The head a ``model`` built with the setting ``head`` has (None: the model's own)."""
    return FIXED_HEAD.get(model) or head or "softmax"


def effective(config: Any, name: str) -> Any:
    """The value the model is built with for the setting ``name`` (one of HEAD_SETTINGS) of
    ``config`` (a TrainConfig): the given one, else the model's own; None where it does not apply."""
    value = getattr(config, name)
    if name == "head":
        return head_of(config.model, value)
    if name == "nr_logistic_mix":
        applies = head_of(config.model, config.head) == "dmol"
    else:
        applies = takes(config.model, "dropout")
    return (MODEL_DEFAULTS[name] if value is None else value) if applies else None


def check_head_settings(config: Any) -> None:
    """ValueError (the commands' one-line message) for a head setting ``config``'s model does not take."""
    model, head = config.model, config.head
    if head is not None and model in FIXED_HEAD and head != FIXED_HEAD[model]:
        if FIXED_HEAD[model] == "dmol":
            raise ValueError(f"--head {head}: --model {model} has only the dmol head (discretized mixture of "
                             f"logistics); leave --head out")
        dmol = ", ".join([*(m for m in OPTIONS if takes(m, "head")), "pixelcnn_pp"])
        raise ValueError(f"--head {head}: --model {model} has only the softmax head; leave --head out (the dmol "
                         f"head is on --model {dmol})")
    if config.nr_logistic_mix is not None and head_of(model, head) != "dmol":
        if model in FIXED_HEAD:
            why = f"--model {model} has only the softmax head"
        elif head is None:
            why = f"--model {model} has the softmax head unless given --head dmol"
        else:
            why = "give --head dmol, or leave --nr-logistic-mix out"
        raise ValueError(f"--nr-logistic-mix {config.nr_logistic_mix} applies only to the dmol head; {why}")
    if config.dropout is not None and not takes(model, "dropout"):
        only = ", ".join(m for m in OPTIONS if takes(m, "dropout"))
        raise ValueError(f"--dropout {config.dropout} applies only to --model {only}, not {model!r} (it has no "
                         f"dropout)")


def head_options(config: Any) -> dict[str, Any]:
    """create_model's keyword arguments for the head settings ``config`` gives (those left None:
    none, so the model's own defaults and its recorded config stay what they were)."""
    options = {}
    if config.head is not None and takes(config.model, "head"):
        options["head"] = config.head
    for name in ("nr_logistic_mix", "dropout"):
        if getattr(config, name) is not None:
            options[name] = getattr(config, name)
    return options
