"""Named training configurations; every value can be overridden by a command-line flag.

Data only: ``TrainConfig.from_preset(name, **overrides)`` (fastpixel.training.config) turns a preset
into a checked config; ``DEFAULTS`` are TrainConfig's defaults, ``resolve`` the plain-dict merge.

``paper_*`` follow the architectures of the paper (van den Oord et al., 2016, Section 5 and
Table 1: h, layers, output width); the optimiser settings are fastpixel's defaults, not taken
from the paper. The ``cpu_*`` presets train on the built-in digits in minutes on a CPU.
"""

from __future__ import annotations

from typing import Any

#: Values every preset starts from (and TrainConfig's field defaults).
DEFAULTS: dict[str, Any] = dict(
    model="pixelcnn", hidden=8, layers=2, output_hidden=None, skip=False,
    # a class-conditional model (num_classes from the data set's labels; every batch trains with its labels)
    conditional=False,
    dataset="builtin_mnist", data_dir=None, binarize="none", binarize_seed=0, allow_pickle=False, png_convert=False,
    train_limit=None, test_limit=None,
    batch_size=16, eval_batch_size=256, steps=1000, lr=1e-3, clip_grad=1.0, ema=0.0, bf16=False,
    seed=0, log_every=50, eval_every=500, checkpoint_every=500,
    # learning-rate schedule (fastpixel.training.schedule): constant, cosine or step, after a linear warmup
    lr_schedule="constant", warmup_steps=0, lr_step_every=None, lr_gamma=0.1,
    # Multi-Scale PixelRNN (model="multiscale") only: the networks' kind, subsampling factor, small net, c
    kind=None, factor=None, small_hidden=None, small_layers=None, condition_features=None,
    # the likelihood head and PixelCNN++'s dropout (fastpixel.training.model_settings); None: the model's own
    # (softmax, dmol for pixelcnn_pp; K = 10 mixture components; dropout 0.5 for pixelcnn_pp)
    head=None, nr_logistic_mix=None, dropout=None,
    # what a run keeps and shows: last N checkpoints, sample grid size at each evaluation (0: none)
    keep=1, sample_grid=16, tensorboard=False,
)

PRESETS: dict[str, dict[str, Any]] = {
    # Built-in digits, fixed binarization; about two minutes on one CPU core.
    "cpu_tiny": dict(model="pixelcnn", hidden=8, layers=2, output_hidden=32, binarize="fixed",
                     batch_size=32, steps=300, lr=3e-3, eval_every=100, checkpoint_every=100, log_every=25),
    # A small Diagonal BiLSTM on the same data; minutes on a CPU (the reference LSTM scan is serial).
    "cpu_small": dict(model="diagonal_bilstm", hidden=8, layers=1, output_hidden=32, binarize="fixed",
                      batch_size=16, steps=300, lr=3e-3, eval_every=100, checkpoint_every=100, log_every=25),
    # 8-bit (256-level) built-in digits, PixelCNN.
    "cpu_digits256": dict(model="pixelcnn", hidden=8, layers=2, output_hidden=32, binarize="none",
                          batch_size=16, steps=300, lr=3e-3, eval_every=100, checkpoint_every=100, log_every=25),
    # 8-bit built-in digits, PixelCNN++ (DMoL head, K = 10) about the size of cpu_digits256's PixelCNN
    # (14,550 parameters against 11,520): nr_filters 5, nr_resnet 1. Its samples come from the naive
    # sampler (no cached one yet): a 4-image grid per evaluation.
    "cpu_digits256_pp": dict(model="pixelcnn_pp", hidden=5, layers=1, binarize="none", batch_size=16, steps=300,
                             lr=3e-3, eval_every=100, checkpoint_every=100, log_every=25, sample_grid=4),
    # The paper's binarized MNIST model: 7-layer Diagonal BiLSTM, h = 16, output layers 32 wide.
    "paper_binarized_mnist": dict(model="diagonal_bilstm", hidden=16, layers=7, output_hidden=32,
                                  dataset="binarized_mnist", batch_size=16, steps=200_000,
                                  eval_every=10_000, checkpoint_every=2_000),
    # The paper's CIFAR-10 models: 12-layer Diagonal BiLSTM / Row LSTM, h = 128, output 1024 wide.
    "paper_cifar10": dict(model="diagonal_bilstm", hidden=128, layers=12, output_hidden=1024,
                          dataset="cifar10", batch_size=16, steps=500_000, eval_every=10_000, checkpoint_every=2_000),
    "paper_cifar10_row_lstm": dict(model="row_lstm", hidden=128, layers=12, output_hidden=1024,
                                   dataset="cifar10", batch_size=16, steps=500_000, eval_every=10_000,
                                   checkpoint_every=2_000),
    # PixelCNN with 15 residual blocks, h = 128.
    "paper_pixelcnn_cifar10": dict(model="pixelcnn", hidden=128, layers=15, output_hidden=1024,
                                   dataset="cifar10", batch_size=16, steps=500_000, eval_every=10_000,
                                   checkpoint_every=2_000),
    # PixelCNN++ at the published CIFAR-10 size (Salimans et al. 2017; openai/pixel-cnn's defaults):
    # nr_resnet 5, nr_filters 160, K = 10 logistics, dropout 0.5, Adam at 1e-3 multiplied by 0.999995
    # every step (the published lr_decay), Polyak averaging of the weights at 0.9995 (the published
    # polyak_decay; evaluated and sampled with --weights ema), 16 images per batch (the published
    # per-GPU batch); 53.6M parameters. GPU.
    "paper_pixelcnn_pp_cifar10": dict(model="pixelcnn_pp", hidden=160, layers=5, dataset="cifar10", batch_size=16,
                                      lr=1e-3, lr_schedule="step", lr_step_every=1, lr_gamma=0.999995,
                                      ema=0.9995, steps=500_000, eval_every=10_000, checkpoint_every=2_000,
                                      sample_grid=0),
}


def resolve(preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """DEFAULTS, then the preset, then every override that is not None."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}")
    config = {**DEFAULTS, **PRESETS[preset]}
    config.update({k: v for k, v in overrides.items() if v is not None})
    config["preset"] = preset
    return config

# The paper's ordering on the built-in digits (docs/results.md): the three Table 1 kinds with the
# paper's binarized-MNIST sizes (h = 16, 7 layers, output 32) and one step budget: 3-26 minutes
# each on one shared CPU core with the fast backend (--backend torch, OMP_NUM_THREADS=1).
_DIGITS_ORDERING = dict(hidden=16, layers=7, output_hidden=32, binarize="fixed", batch_size=16, steps=1500,
                        lr=2e-3, eval_every=500, checkpoint_every=500, log_every=50)
PRESETS["cpu_diagonal_bilstm_digits"] = dict(model="diagonal_bilstm", **_DIGITS_ORDERING)
PRESETS["cpu_row_lstm_digits"] = dict(model="row_lstm", **_DIGITS_ORDERING)
PRESETS["cpu_pixelcnn_digits"] = dict(model="pixelcnn", **_DIGITS_ORDERING)
# The Gated PixelCNN (van den Oord et al. 2016) with the same depth and stream width (p = 2h = 32).
PRESETS["cpu_gated_pixelcnn_digits"] = dict(model="gated_pixelcnn", **(_DIGITS_ORDERING | dict(hidden=32)))
