"""What is benchmarked: one :class:`Case` per distinct op call of a model, plus the whole model.

A case is a function ``case.fn(backend)(*case.inputs) -> tensor`` (backend "reference", "torch" or
"triton"), the same under ``torch.compile`` as a user writes it (``case.compiled(backend)``), its
inputs (leaf tensors; the floating ones are differentiated), how many times a training step of the
model calls it, and its FLOP/byte cost. Op cases are found by walking the
model: each MaskedConv2d *role* (module path with block indices replaced by ``*``, e.g.
``blocks.*.conv``) is one case, each LSTM scan kind one, the loss one: ``cross_entropy`` for a
softmax head, ``dmol`` (the discretized mixture of logistics) for a model whose ``head_kind`` is
"dmol" (PixelCNN++, and the paper's models built with ``head="dmol"``). PixelCNN++'s convolutions
are PyTorch's ``nn.Conv2d`` / ``nn.ConvTranspose2d``, no fastpixel op: they are no case (every
backend runs them alike), only their cost counts in the model step's (:func:`step_cost`).
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
from fastpixel.models.heads import head_nll

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


def op_cases(model: nn.Module, batch: int, size: int, dtype: torch.dtype, device, seed: int = 0) -> list[Case]:
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
    key, case = loss_case(model, batch, size, dtype, device, gen)
    cases[key] = case
    return list(cases.values())


def loss_case(model, batch: int, size: int, dtype: torch.dtype, device, gen: torch.Generator) -> tuple[str, Case]:
    """The model's loss on (batch, channels, size, size) images: ``cross_entropy:loss`` on logits
    (B, levels, C, H, W), or for a DMoL head ``dmol:loss`` on mixture parameters (B, P, H, W) ~ N(0, 1)."""
    levels, channels, h = model.levels, model.channels, size
    targets_shape = (batch, channels, h, h)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if getattr(model, "head_kind", "softmax") == "dmol":
        k = model.nr_logistic_mix
        params = _rand(batch, (10 if channels == 3 else 3) * k, h, h, dtype=dtype, device=device, gen=gen)
        x = torch.randint(0, levels, targets_shape, generator=gen).to(device)

        def dmol_fn(backend):
            return lambda params, x: ops.dmol_nll(params, x, levels=levels, num_mixtures=k, reduction="none",
                                                  validate=False, backend=backend)

        cost = accounting.dmol_cost(batch, channels, h, h, k, itemsize, x_itemsize=x.element_size())
        return "dmol:loss", Case("dmol:loss", "dmol", f"K={k} L={levels} C={channels}", 1, [params, x], ["params"],
                                 dmol_fn, cost)
    logits = _rand(batch, levels, channels, h, h, dtype=dtype, device=device, gen=gen, scale=3.0)
    targets = torch.randint(0, levels, targets_shape, generator=gen).to(device)

    def ce_fn(backend):
        return lambda logits, targets: ops.pixel_cross_entropy(logits, targets, "none", validate=False, backend=backend)

    cost = accounting.cross_entropy_cost(batch, levels, channels, h, h, itemsize)
    return "cross_entropy:loss", Case(
        "cross_entropy:loss", "cross_entropy", f"L={levels} C={channels}", 1, [logits, targets], ["logits"], ce_fn, cost
    )


def plain_conv_cost(model: nn.Module, batch: int, size: int, itemsize: int) -> OpCost | None:
    """Cost of every ``nn.Conv2d`` / ``nn.ConvTranspose2d`` call of one forward on (batch, C, size, size)
    images (PixelCNN++'s convolutions; fastpixel's MaskedConv2d is not one), found by running the
    model (rebuilt from ``model.config``) once on ``meta`` tensors with forward hooks; None when the
    model has none."""
    kinds = (nn.Conv2d, nn.ConvTranspose2d)
    if not any(isinstance(m, kinds) for m in model.modules()):
        return None
    total: list[OpCost] = []

    def hook(module, args, out):
        x = args[0]
        total.append(accounting.conv_cost(
            batch, module.in_channels, module.out_channels, module.kernel_size, module.groups,
            tuple(x.shape[-2:]), tuple(out.shape[-2:]), itemsize, bias=module.bias is not None,
            transposed=isinstance(module, nn.ConvTranspose2d)))

    with torch.device("meta"):  # the same model, without its weights' memory
        meta = fastpixel.create_model(**model.config)
    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            meta(torch.zeros(batch, model.channels, size, size, dtype=torch.long, device="meta"), validate=False)
    finally:
        for h in handles:
            h.remove()
    out = total[0]
    for c in total[1:]:
        out = out + c
    return out


def step_cost(model: nn.Module, cases: list[Case], batch: int, size: int, dtype: torch.dtype) -> OpCost:
    """Cost of one training step: :func:`total_cost` of the op cases plus PyTorch's own convolutions
    (:func:`plain_conv_cost`; PixelCNN++'s)."""
    total = total_cost(cases)
    convs = plain_conv_cost(model, batch, size, torch.empty((), dtype=dtype).element_size())
    return total if convs is None else total + convs


def _model_for_backend(model: nn.Module, backend: str, device) -> nn.Module:
    """A copy of ``model`` built for ``backend`` as a user builds one: ``create_model(..., backend=)``
    and the same weights (``load_state_dict``); no module attribute is rewritten."""
    copy_ = fastpixel.create_model(**{**model.config, "backend": backend})
    copy_.load_state_dict(model.state_dict())
    return copy_.to(device)


def model_case(model: nn.Module, batch: int, size: int, dtype: torch.dtype, device, cost: OpCost, seed: int = 0) -> Case:
    """The whole model's training loss as a case: inputs are its parameters, then the images.

    The loss is what ``fastpixel.train`` computes: ``out = net(x, validate=False)`` then the model
    head's per-image NLL (``fastpixel.models.heads.head_nll``: the sum of ``pixel_cross_entropy``
    over sub-pixels, or of ``dmol_nll`` over pixels for a DMoL head), averaged over the batch
    (= ``-model.log_prob(x).mean()``). ``net`` is the model built for the backend, or, for
    :meth:`Case.compiled`, ``torch.compile(net)`` with default options, as a user compiles it.
    ``cost``: the step's cost, usually :func:`step_cost` of the model's op cases.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.levels, (batch, model.channels, size, size), generator=gen).to(device)
    names = [f"model.{n}" for n, _ in model.named_parameters()]
    params = [p.detach().to(device=device, dtype=dtype).clone() for p in model.parameters()]
    nets: dict[tuple[str, bool], nn.Module] = {}
    head = getattr(model, "head_kind", "softmax")

    def step(backend: str, compiled: bool):
        if (backend, compiled) not in nets:
            net = _model_for_backend(model, backend, device)
            nets[backend, compiled] = torch.compile(net) if compiled else net
        net = nets[backend, compiled]
        keys = [n for n, _ in net.named_parameters()]  # "_orig_mod."-prefixed for a compiled module

        def call(*tensors):
            images = tensors[-1]
            out = torch.func.functional_call(net, dict(zip(keys, tensors[:-1])), (images,), {"validate": False})
            nll = head_nll(head, out, images, levels=model.levels, nr_logistic_mix=model.nr_logistic_mix,
                           backend=backend)
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


def build_model(name: str, *, channels: int, levels: int, hidden: int, layers: int, output_hidden: int | None,
                seed: int = 0, head: str = "softmax") -> nn.Module:
    """``fastpixel.create_model`` with a fixed seed. ``head``: the paper's models' likelihood head
    ("softmax" or "dmol"). "pixelcnn_pp" (hidden = nr_filters, layers = nr_resnet; no output_hidden,
    always DMoL) is built with dropout 0: the parity gate compares backends on one deterministic step."""
    torch.manual_seed(seed)
    if name == "pixelcnn_pp":
        if head != "dmol":
            raise ValueError(f"pixelcnn_pp has a DMoL head only, got head={head!r}")
        return fastpixel.create_model(name, channels=channels, levels=levels, hidden=hidden, layers=layers,
                                      dropout=0.0)
    extra = {"head": "dmol"} if head == "dmol" else {}
    return fastpixel.create_model(
        name, channels=channels, levels=levels, hidden=hidden, layers=layers, output_hidden=output_hidden, **extra
    )
