"""The softmax head against the DMoL head on the built-in 8-bit digits, at one step budget (docs/results.md).

Every run is the loop ``fastpixel-train`` runs (``fastpixel.fit``), with cpu_digits256's settings:
300 Adam steps at 3e-3, 16 images per batch, gradient clipping at 1.0, seed 0 (the model is built
right after ``torch.manual_seed(0)``, as the command builds it); the test NLL is over the 1,000 test
digits. The runs:

  pixelcnn          cpu_digits256's PixelCNN (h 8, 2 blocks, output 32), 256-way softmax
  pixelcnn_dmol     the same backbone, head="dmol" (K = 10)
  pixelcnn_pp       cpu_digits256_pp's PixelCNN++ (nr_filters 5, nr_resnet 1, K = 10, dropout 0.5)
  pixelcnn_pp_nodrop  the same with dropout 0
  row_lstm, diagonal_bilstm   the paper's LSTM models at the PixelCNN's size (h 8, 2 layers, output 32), softmax

    python scripts/compare_dmol_digits.py [--steps N] [names...]      (one JSON line per run; N default 300)
"""

from __future__ import annotations

import json
import math
import sys
import time

import torch

import fastpixel
from fastpixel.data import load_dataset

RUNS = {
    "pixelcnn": ("pixelcnn", dict(hidden=8, layers=2, output_hidden=32)),
    "pixelcnn_dmol": ("pixelcnn", dict(hidden=8, layers=2, output_hidden=32, head="dmol", nr_logistic_mix=10)),
    "pixelcnn_pp": ("pixelcnn_pp", dict(hidden=5, layers=1)),
    "pixelcnn_pp_nodrop": ("pixelcnn_pp", dict(hidden=5, layers=1, dropout=0.0)),
    # the paper's LSTM models at the PixelCNN's width and depth, 256-way softmax
    "row_lstm": ("row_lstm", dict(hidden=8, layers=2, output_hidden=32)),
    "diagonal_bilstm": ("diagonal_bilstm", dict(hidden=8, layers=2, output_hidden=32)),
}


def main(names: list[str], steps: int = 300) -> None:
    train, test = load_dataset("builtin_mnist", "train"), load_dataset("builtin_mnist", "test")
    for name in names or list(RUNS):
        kind, options = RUNS[name]
        torch.manual_seed(0)
        model = fastpixel.create_model(kind, channels=1, levels=256, **options)
        start = time.perf_counter()
        result = fastpixel.fit(model, train.images, steps=steps, batch_size=16, lr=3e-3, clip_grad=1.0, seed=0,
                               test_data=test.images, eval_every=0, sample_grid=0, log_every=300)
        nats = result["test"]["nats_per_image"]
        print(json.dumps(dict(run=name, steps=steps, model=kind, options=options,
                              parameters=sum(p.numel() for p in model.parameters()),
                              test_nats_per_image=round(nats, 2),
                              test_bits_per_dim=round(nats / (test.dims * math.log(2)), 4),
                              seconds=round(time.perf_counter() - start, 1),
                              torch=torch.__version__, threads=torch.get_num_threads())), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    steps = 300
    if args[:1] == ["--steps"]:
        steps, args = int(args[1]), args[2:]
    main(args, steps)
