"""A class-conditional model's held-out figures on the built-in digits (docs/results.md).

    python scripts/conditional_nll.py runs/cpu_gated_pixelcnn_digits_seed0_conditional/checkpoint.pt [...]

For each checkpoint (or saved model, or shipped name), on the 1,000 test digits (fixed
binarization, seed 0), with the model's final weights: the conditional NLL ``-log p(x | y)`` under
the true digit, the marginal NLL ``-log (1/10 sum_y p(x | y))`` (a uniform prior), their difference
(``log 10 + log p(y | x)``, at most log 10 = 2.30 nats) and the class accuracy (how often
``log p(x | true digit)`` is the largest of the ten). One thread, the ``torch`` backend; one JSON
line per model.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpixel  # noqa: E402
from fastpixel.data import load_dataset  # noqa: E402


def main(paths: list[str]) -> None:
    torch.set_num_threads(1)
    test = load_dataset("builtin_mnist", "test", binarize="fixed", binarize_seed=0)
    for path in paths:
        model = fastpixel.from_pretrained(path, backend="torch")
        classes = model.num_classes
        with torch.no_grad():
            ll = torch.stack([torch.cat([model.log_prob(chunk.long(), labels=y, validate=False).double()
                                         for chunk in test.images.split(500)]) for y in range(classes)], 1)
        conditional = -ll.gather(1, test.labels.view(-1, 1)).mean().item()
        marginal = -(torch.logsumexp(ll, 1) - math.log(classes)).mean().item()
        accuracy = (ll.argmax(1) == test.labels).double().mean().item()
        print(json.dumps({"model": path, "conditional_nats": conditional, "marginal_nats": marginal,
                          "gap_nats": marginal - conditional, "bound_nats": math.log(classes),
                          "accuracy": accuracy}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
