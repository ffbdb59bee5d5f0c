"""What is benchmarked: one :class:`Case` per distinct op call of a model, plus the whole model.

A case is a function ``case.fn(backend)(*case.inputs) -> tensor`` (backend "reference", "torch" or
"triton"), the same under ``torch.compile`` as a user writes it (``case.compiled(backend)``), its
inputs (leaf tensors; the floating ones are differentiated), how many times a training step of the
model calls it, and its FLOP/byte cost. Op cases are found by walking the
model: each MaskedConv2d *role* (module path with block indices replaced by ``*``, e.g.
``blocks.*.conv``) is one case, each LSTM scan kind one, the loss one.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

import torch
from torch import nn

import fastpixel
from fastpixel import ops
from fastpixel.layers import DiagonalBiLSTM, MaskedConv2d, RowLSTM
from fastpixel.models import PixelModel

from bench import accounting
from bench.accounting import OpCost


@dataclasses.dataclass
class Case:
    """One benchmarked call.

    key: ``stem:role`` (``masked_conv:blocks.*.conv``); stem: the op's stem, or "model".
    label: short human description; count: calls per training step of the model.
    fn: backend name -> callable(*inputs) returning one tensor.
    names: names of the floating inputs (for parity reports).
    compiled_fn: backend name -> the same callable with what a user compiles wrapped in
      ``torch.compile`` (default: the op call itself); see :meth:`compiled`.
    """

    key: str
    stem: str
    label: str
    count: int
    inputs: list[torch.Tensor]
    names: list[str]
    fn: Callable[[str], Callable[..., torch.Tensor]]
    cost: OpCost
    images: int = 0  # images per call (model cases)
    compiled_fn: Callable[[str], Callable[..., torch.Tensor]] | None = None

    def compiled(self, backend: str) -> Callable[..., torch.Tensor]:
        """``torch.compile`` as a user calls it, default options: the op call (op cases) or the model
        (model case), with ``backend`` chosen through fastpixel's public API, never by editing modules."""
        if self.compiled_fn is not None:
            return self.compiled_fn(backend)
        return torch.compile(self.fn(backend))


def _role(name: str) -> str:
    return re.sub(r"(^|\.)\d+(?=\.|$)", r"\1*", name)


def _conv_label(spec) -> str:
    kh, kw = spec.kernel_size
    return f"{kh}x{kw} {spec.mask_type or '-'} {spec.in_channels}->{spec.out_channels}"


def _rand(*shape: int, dtype: torch.dtype, device, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=gen, dtype=torch.float32) * scale).to(device=device, dtype=dtype)


def op_cases(model: PixelModel, batch: int, size: int, dtype: torch.dtype, device, seed: int = 0) -> list[Case]:
    """The distinct op calls of ``model`` on (batch, channels, size, size) images, inputs in ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    itemsize = torch.empty((), dtype=dtype).element_size()
    cases: dict[str, Case] = {}
    h = w = size
    for name, module in model.named_modules():
        role = _role(name)
        if isinstance(module, MaskedConv2d):
            key = f"masked_conv:{role}"
            if key in cases:
                cases[key].count += 1
                continue
            spec = module.spec
            x = _rand(batch, spec.in_channels, h, w, dtype=dtype, device=device, gen=gen)
            weight = module.weight.detach().to(device=device, dtype=dtype).clone()
            has_bias = module.bias is not None
            inputs, names = [x, weight], ["x", "weight"]
            if has_bias:
                inputs.append(module.bias.detach().to(device=device, dtype=dtype).clone())
                names.append("bias")

            def fn(backend, spec=spec):
                return lambda x, weight, bias=None: ops.masked_conv2d(x, weight, bias, spec, backend=backend)

            cost = accounting.masked_conv_cost(spec, batch, h, w, itemsize, bias=has_bias)
            cases[key] = Case(key, "masked_conv", _conv_label(spec), 1, inputs, names, fn, cost)
        elif isinstance(module, RowLSTM):
            key = f"row_lstm:{role}"
            if key in cases:
                cases[key].count += 1
                continue
            hid = module.hidden
            gates = _rand(batch, 4 * hid, h, w, dtype=dtype, device=device, gen=gen)
            weight = module.state_weight.detach().to(device=device, dtype=dtype).clone()

            def fn(backend):
                return lambda gates, weight: ops.row_lstm_scan(gates, weight, backend=backend)

            cost = accounting.row_lstm_cost(batch, hid, h, w, itemsize)
            cases[key] = Case(key, "row_lstm", f"scan h={hid}", 1, [gates, weight], ["gates", "state_weight"], fn, cost)
        elif isinstance(module, DiagonalBiLSTM):
            key = f"diagonal_bilstm:{role}"
            if key in cases:
                cases[key].count += 1
                continue
            hid = module.hidden
            g_lr = _rand(batch, 4 * hid, h, w, dtype=dtype, device=device, gen=gen)
            g_rl = _rand(batch, 4 * hid, h, w, dtype=dtype, device=device, gen=gen)
            w_lr = module.state_weight_lr.detach().to(device=device, dtype=dtype).clone()
            w_rl = module.state_weight_rl.detach().to(device=device, dtype=dtype).clone()

            def fn(backend):
                return lambda a, b, c, d: ops.diagonal_bilstm_scan(a, b, c, d, backend=backend)

            cost = accounting.diagonal_bilstm_cost(batch, hid, h, w, itemsize)
            cases[key] = Case(
                key, "diagonal_bilstm", f"bi-scan h={hid}", 1, [g_lr, w_lr, g_rl, w_rl],
                ["gates_lr", "state_weight_lr", "gates_rl", "state_weight_rl"], fn, cost,
            )
    levels, channels = model.levels, model.channels
    logits = _rand(batch, levels, channels, h, w, dtype=dtype, device=device, gen=gen, scale=3.0)
    targets = torch.randint(0, levels, (batch, channels, h, w), generator=gen).to(device)

    def ce_fn(backend):
        return lambda logits, targets: ops.pixel_cross_entropy(logits, targets, "none", validate=False, backend=backend)

    cost = accounting.cross_entropy_cost(batch, levels, channels, h, w, itemsize)
    cases["cross_entropy:loss"] = Case(
        "cross_entropy:loss", "cross_entropy", f"L={levels} C={channels}", 1, [logits, targets], ["logits"], ce_fn, cost
    )
    return list(cases.values())


def _model_for_backend(model: PixelModel, backend: str, device) -> PixelModel:
    """A copy of ``model`` built for ``backend`` as a user builds one: ``create_model(..., backend=)``
    and the same weights (``load_state_dict``); no module attribute is rewritten."""
    copy_ = fastpixel.create_model(**{**model.config, "backend": backend})
    copy_.load_state_dict(model.state_dict())
    return copy_.to(device)


def model_case(model: PixelModel, batch: int, size: int, dtype: torch.dtype, device, cost: OpCost, seed: int = 0) -> Case:
    """The whole model's training loss as a case: inputs are its parameters, then the images.

    The loss is what ``fastpixel.train`` computes: ``logits = net(x, validate=False)`` then the sum
    of ``pixel_cross_entropy(logits, x, "none")`` over sub-pixels, averaged over the batch
    (= ``-model.log_prob(x).mean()``). ``net`` is the model built for the backend, or, for
    :meth:`Case.compiled`, ``torch.compile(net)`` with default options, as a user compiles it.
    ``cost``: the step's cost, usually :func:`total_cost` of the model's op cases.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.levels, (batch, model.channels, size, size), generator=gen).to(device)
    names = [f"model.{n}" for n, _ in model.named_parameters()]
    params = [p.detach().to(device=device, dtype=dtype).clone() for p in model.parameters()]
    nets: dict[tuple[str, bool], nn.Module] = {}

    def step(backend: str, compiled: bool):
        if (backend, compiled) not in nets:
            net = _model_for_backend(model, backend, device)
            nets[backend, compiled] = torch.compile(net) if compiled else net
        net = nets[backend, compiled]
        keys = [n for n, _ in net.named_parameters()]  # "_orig_mod."-prefixed for a compiled module

        def call(*tensors):
            images = tensors[-1]
            logits = torch.func.functional_call(net, dict(zip(keys, tensors[:-1])), (images,), {"validate": False})
            nll = ops.pixel_cross_entropy(logits, images, "none", validate=False, backend=backend)
            return nll.sum() / images.shape[0]

        return call

    return Case(
        f"model:{model.name}", "model", model.name, 1, params + [x], names,
        lambda backend: step(backend, False), cost, images=batch, compiled_fn=lambda backend: step(backend, True),
    )


def total_cost(cases: list[Case]) -> OpCost:
    """Cost of one training step: every op case times its count (residual adds and ReLUs not counted)."""
    total = cases[0].cost * cases[0].count
    for c in cases[1:]:
        total = total + c.cost * c.count
    return total


def build_model(name: str, *, channels: int, levels: int, hidden: int, layers: int, output_hidden: int | None, seed: int = 0) -> PixelModel:
    """``fastpixel.create_model`` with a fixed seed."""
    torch.manual_seed(seed)
    return fastpixel.create_model(
        name, channels=channels, levels=levels, hidden=hidden, layers=layers, output_hidden=output_hidden
    )
