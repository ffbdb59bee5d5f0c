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
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _pretrained_digits import DIMS, build_parser, train, trained_with, write_tiles  # noqa: E402
from fastpixel import create_model  # noqa: E402
from fastpixel.data import batch_labels, load_dataset, training_batch  # noqa: E402
from fastpixel.models.build import from_pretrained, save_pretrained  # noqa: E402
from fastpixel.ops.cross_entropy import pixel_cross_entropy  # noqa: E402
from fastpixel.sampling import sample  # noqa: E402

CLASSES = 10


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
    labels = torch.arange(CLASSES).repeat_interleave(per_class)
    images = sample(model, len(labels), height=28, width=28, labels=labels, generator=torch.Generator().manual_seed(seed))
    write_tiles(images, path, columns=per_class, scale=scale)
    return images


def main(argv: list[str] | None = None) -> None:
    args = build_parser(__doc__, name="digits-conditional", steps=3000, grid="digits_conditional_samples.png",
                        backend="torch", evaluates="test NLL and accuracy").parse_args(argv)
    torch.set_num_threads(1)
    train_set = load_dataset("builtin_mnist", "train", binarize="dynamic")
    test_set = load_dataset("builtin_mnist", "test", binarize="fixed", binarize_seed=0)
    if args.only_outputs:
        write_outputs(args, test_set)
        return
    subset, subset_labels = test_set.images[: args.eval_limit], test_set.labels[: args.eval_limit]

    def build() -> torch.nn.Module:
        return create_model(args.model, channels=1, levels=2, hidden=args.hidden, layers=args.layers,
                            output_hidden=args.output_hidden, skip=args.skip, num_classes=train_set.num_classes,
                            backend=args.backend)

    def batch_nll(model: torch.nn.Module, step: int) -> torch.Tensor:
        x = training_batch(train_set, args.batch_size, seed=args.seed, step=step).long()
        y = batch_labels(train_set, args.batch_size, seed=args.seed, step=step)
        logits = model(x, labels=y, validate=False)
        return pixel_cross_entropy(logits, x, reduction="none", validate=False, backend=model.backend).sum(dim=(1, 2, 3))

    def ema_figures(model: torch.nn.Module, ema: torch.nn.Module) -> dict:
        return {f"test{args.eval_limit}_ema": figures(ema, subset, subset_labels)}

    def both_figures(model: torch.nn.Module, ema: torch.nn.Module) -> dict:
        return {f"test{args.eval_limit}_model": figures(model, subset, subset_labels), **ema_figures(model, ema)}

    trained = train(args, train_set, build, batch_nll, ema_figures, both_figures,
                    note=f" (conditional, {train_set.num_classes} classes)")
    if trained is None:  # a pilot
        return
    model, ema, step, settings, elapsed = trained
    results = {}
    for weights, module in (("model", model), ("ema", ema.module)):
        results[weights] = figures(module, test_set.images, test_set.labels)
        print(json.dumps({"weights": weights, "test_images": len(test_set), **results[weights]}), flush=True)
    final = results["ema"]
    check = test_set.images[: args.check_images].long()
    with torch.no_grad():
        ema.module.eval()
        check_nats = -ema.module.log_prob(check, labels=test_set.labels[: args.check_images]).double().mean().item()
    info = {
        "dataset": "builtin_mnist", "binarize": "fixed", "binarize_seed": 0, "height": 28, "width": 28,
        "classes": list(range(CLASSES)), "class_names": [str(d) for d in range(CLASSES)],
        "labels": "the MNIST digit of each image (the data set's own label, 0-9)",
        "trained_with": trained_with("train_pretrained_digits_conditional.py", settings, "--backend", args.backend,
                                     *(["--skip"] if args.skip else [])),
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
