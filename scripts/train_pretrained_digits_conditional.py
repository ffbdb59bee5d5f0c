"""Train the class-conditional pretrained model ``fastpixel.from_pretrained("digits-conditional")``.

    python scripts/train_pretrained_digits_conditional.py            # the shipped model (defaults below)
    python scripts/train_pretrained_digits_conditional.py --pilot-seconds 120 --model diagonal_bilstm --hidden 16

The protocol of ``scripts/train_pretrained_digits.py`` (the unconditional "digits") with labels:
the built-in digits, 9,000 training images binarized afresh for every batch, each with its MNIST
digit (0-9, the data set's own label) as the class; scored on the 1,000 test digits under the
fixed binarization (seed 0). Adam, linear warm-up then cosine decay, gradient-norm clipping, an EMA
of the weights (the EMA weights ship); one torch thread, a fixed seed, the ``torch`` backend.

At the end, on the 1,000 test digits with the EMA weights: the conditional NLL ``-log p(x | y)``
under the true label, the marginal NLL ``-log p(x) = -log (1/10 sum_y p(x | y))``, and the class
accuracy: how often ``log p(x | true label)`` is the largest of the ten (the model used as a
classifier by Bayes' rule with a uniform prior). They go into config.json's ``info`` with the
class ids (``classes``: [0, ..., 9], the digits themselves), and the README's grid (one row per
digit, 10 samples each, seed 0) is written. A checkpoint every ``--checkpoint-every`` steps lets
the same command continue an interrupted run; ``--pilot-seconds S`` trains for S seconds and
prints steps/s and the NLL and accuracy on the first ``--eval-limit`` test digits (writes nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastpixel import create_model  # noqa: E402
from fastpixel.checkpoint import FORMAT, read_checkpoint, rng_state, save_checkpoint, set_rng_state  # noqa: E402
from fastpixel.data import batch_labels, load_dataset, training_batch  # noqa: E402
from fastpixel.models.build import from_pretrained, save_pretrained  # noqa: E402
from fastpixel.ops.cross_entropy import pixel_cross_entropy  # noqa: E402
from fastpixel.sampling import sample  # noqa: E402

DIMS = 28 * 28
CLASSES = 10
TRAINING_KEYS = ("model", "hidden", "layers", "output_hidden", "skip", "batch_size", "steps", "lr", "warmup",
                 "clip_grad", "ema", "seed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "fastpixel" / "pretrained" / "digits-conditional"))
    p.add_argument("--work", default=str(ROOT / "runs" / "pretrained_digits_conditional"))
    p.add_argument("--model", default="diagonal_bilstm")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--layers", type=int, default=7)
    p.add_argument("--output-hidden", type=int, default=32)
    p.add_argument("--skip", action="store_true")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--clip-grad", type=float, default=1.0)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="torch")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=1000, help="test NLL and accuracy of --eval-limit digits (0: off)")
    p.add_argument("--eval-limit", type=int, default=200)
    p.add_argument("--pilot-seconds", type=float, default=None)
    p.add_argument("--check-images", type=int, default=100)
    p.add_argument("--grid", default=str(ROOT / "docs" / "assets" / "digits_conditional_samples.png"))
    p.add_argument("--only-outputs", action="store_true", help="load --out, rewrite the grid and print the figures")
    return p


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def class_log_likelihoods(model: torch.nn.Module, images: torch.Tensor, batch: int = 200) -> torch.Tensor:
    """log p(x | y) for every image and every class y, float64 (N, 10)."""
    was = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch):
        x = images[start:start + batch].long()
        out.append(torch.stack([model.log_prob(x, labels=y, validate=False).double() for y in range(CLASSES)], 1))
    model.train(was)
    return torch.cat(out)


def figures(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Conditional NLL (true label), marginal NLL (uniform prior over the 10 digits), class accuracy."""
    ll = class_log_likelihoods(model, images)
    conditional = -ll.gather(1, labels.view(-1, 1))[:, 0]
    marginal = -(torch.logsumexp(ll, 1) - math.log(CLASSES))
    return {"nats_per_image": conditional.mean().item(), "bits_per_dim": conditional.mean().item() / (DIMS * math.log(2)),
            "marginal_nats_per_image": marginal.mean().item(),
            "class_accuracy": (ll.argmax(1) == labels).double().mean().item()}


def write_grid(model: torch.nn.Module, path: str | Path, *, per_class: int = 10, seed: int = 0, scale: int = 2) -> torch.Tensor:
    """One row per digit class, ``per_class`` samples each (generator seeded with ``seed``), as a PNG."""
    import numpy as np
    from PIL import Image

    labels = torch.arange(CLASSES).repeat_interleave(per_class)
    images = sample(model, len(labels), height=28, width=28, labels=labels, generator=torch.Generator().manual_seed(seed))
    tiles = (1 - images[:, 0].numpy()).astype(np.uint8) * 255  # ink black on white
    pad = 2
    out = np.full((CLASSES * (28 + pad) + pad, per_class * (28 + pad) + pad), 200, dtype=np.uint8)
    for k in range(len(labels)):
        r, c = divmod(k, per_class)
        out[pad + r * 30: pad + r * 30 + 28, pad + c * 30: pad + c * 30 + 28] = tiles[k]
    out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(path, optimize=True)
    return images


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    train_set = load_dataset("builtin_mnist", "train", binarize="dynamic")
    test_set = load_dataset("builtin_mnist", "test", binarize="fixed", binarize_seed=0)
    if args.only_outputs:
        write_outputs(args, test_set)
        return
    torch.manual_seed(args.seed)
    model = create_model(args.model, channels=1, levels=2, hidden=args.hidden, layers=args.layers,
                         output_hidden=args.output_hidden, skip=args.skip, num_classes=train_set.num_classes,
                         backend=args.backend)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
    settings = {k: getattr(args, k) for k in TRAINING_KEYS}
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model} h={args.hidden} layers={args.layers} (conditional, {train_set.num_classes} classes): "
          f"{params} parameters; {train_set.protocol}", flush=True)
    work = Path(args.work)
    ckpt_path = work / "checkpoint.pt"
    step = 0
    if args.pilot_seconds is None and ckpt_path.is_file():
        ckpt = read_checkpoint(ckpt_path)
        if ckpt["train_config"] != settings:
            raise SystemExit(f"{ckpt_path} was written with other settings {ckpt['train_config']}; "
                             "move it away or pass the same arguments")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        ema.load_state_dict(ckpt["ema"])
        set_rng_state(ckpt["rng"])
        step = ckpt["step"]
        print(f"resumed from {ckpt_path} at step {step}", flush=True)

    def save(at: int) -> None:
        save_checkpoint(ckpt_path, {"format": FORMAT, "step": at, "model_config": model.config,
                                    "train_config": settings, "model": model.state_dict(),
                                    "optimizer": optimizer.state_dict(), "ema": ema.state_dict(),
                                    "running": torch.zeros(2, dtype=torch.float64), "rng": rng_state()})

    started = time.perf_counter()
    running, seen = 0.0, 0
    subset, subset_labels = test_set.images[: args.eval_limit], test_set.labels[: args.eval_limit]
    while step < args.steps:
        if args.pilot_seconds is not None and time.perf_counter() - started > args.pilot_seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        x = training_batch(train_set, args.batch_size, seed=args.seed, step=step).long()
        y = batch_labels(train_set, args.batch_size, seed=args.seed, step=step)
        logits = model(x, labels=y, validate=False)
        nll = pixel_cross_entropy(logits, x, reduction="none", validate=False, backend=model.backend).sum(dim=(1, 2, 3))
        loss = nll.mean() / DIMS
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        ema.update_parameters(model)
        if not math.isfinite(float(loss.detach())):
            raise SystemExit(f"non-finite training loss at step {step}; nothing saved")
        running += float(nll.detach().double().sum())
        seen += x.shape[0]
        step += 1
        elapsed = time.perf_counter() - started
        if step % args.log_every == 0:
            print(json.dumps({"step": step, "train_nats": round(running / seen, 3),
                              "lr": round(learning_rate(step - 1, args), 6), "seconds": round(elapsed, 1)}), flush=True)
            running, seen = 0.0, 0
        if args.eval_every and step % args.eval_every == 0 and args.pilot_seconds is None:
            print(json.dumps({"step": step, f"test{args.eval_limit}_ema": figures(ema.module, subset, subset_labels)}),
                  flush=True)
        if args.pilot_seconds is None and (step % args.checkpoint_every == 0 or step == args.steps):
            save(step)

    elapsed = time.perf_counter() - started
    if args.pilot_seconds is not None:
        result = {"model": args.model, "hidden": args.hidden, "layers": args.layers, "parameters": params,
                  "steps": step, "seconds": round(elapsed, 1), "steps_per_second": round(step / elapsed, 3),
                  f"test{args.eval_limit}_model": figures(model, subset, subset_labels),
                  f"test{args.eval_limit}_ema": figures(ema.module, subset, subset_labels)}
        print("PILOT " + json.dumps(result), flush=True)
        return

    results = {}
    for weights, module in (("model", model), ("ema", ema.module)):
        results[weights] = figures(module, test_set.images, test_set.labels)
        print(json.dumps({"weights": weights, "test_images": len(test_set), **results[weights]}), flush=True)
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items() if not isinstance(v, bool))
    final = results["ema"]
    check = test_set.images[: args.check_images].long()
    with torch.no_grad():
        ema.module.eval()
        check_nats = -ema.module.log_prob(check, labels=test_set.labels[: args.check_images]).double().mean().item()
    info = {
        "dataset": "builtin_mnist", "binarize": "fixed", "binarize_seed": 0, "height": 28, "width": 28,
        "classes": list(range(CLASSES)), "class_names": [str(d) for d in range(CLASSES)],
        "labels": "the MNIST digit of each image (the data set's own label, 0-9)",
        "trained_with": f"scripts/train_pretrained_digits_conditional.py {flags} --backend {args.backend}"
                        + (" --skip" if args.skip else ""),
        "train_binarization": "dynamic", "weights": "ema", "steps": step, "seconds": round(elapsed, 1),
        "torch": torch.__version__, "test_images": len(test_set),
        "test_nats_per_image": final["nats_per_image"], "test_bits_per_dim": final["bits_per_dim"],
        "test_marginal_nats_per_image": final["marginal_nats_per_image"],
        "test_class_accuracy": final["class_accuracy"], "test_protocol": test_set.protocol,
        "check_images": args.check_images, "check_nats_per_image": check_nats,
    }
    path = save_pretrained(ema.module, args.out, info=info)
    print(f"wrote {path} (EMA weights): test NLL {final['nats_per_image']:.4f} nats/image given the digit, "
          f"class accuracy {final['class_accuracy']:.3f}", flush=True)
    write_outputs(args, test_set)


def write_outputs(args: argparse.Namespace, test_set) -> None:
    """Reload the saved model from disk, recompute its figures, and write the README grid."""
    model = from_pretrained(args.out)
    got = figures(model, test_set.images, test_set.labels)
    print(json.dumps({"reloaded": args.out, **got, "recorded_nats": model.pretrained_info["test_nats_per_image"],
                      "recorded_accuracy": model.pretrained_info["test_class_accuracy"]}), flush=True)
    write_grid(model, args.grid)
    print(f"wrote {args.grid}", flush=True)


if __name__ == "__main__":
    main()
