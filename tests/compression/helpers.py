"""Tiny random-weight models and images for the compression tests."""

from __future__ import annotations

import torch

import fastpixel

KINDS = ("pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale")


def tiny_model(kind: str, *, channels: int = 1, levels: int = 2, dtype: torch.dtype = torch.float32,
               seed: int = 0) -> torch.nn.Module:
    """A 2-wide random model whose logits are spread (output weights scaled up), in eval mode."""
    torch.manual_seed(seed)
    options = dict(kind="row_lstm", factor=2) if kind == "multiscale" else {}
    model = fastpixel.create_model(kind, channels=channels, levels=levels, hidden=2, layers=1, output_hidden=4,
                                   **options)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "output_conv2.weight" in name:
                p.mul_(4.0)
    return model.to(dtype).eval()


def sample_images(model: torch.nn.Module, num: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Images the model finds plausible (its own samples) mixed with uniform noise: int64 (num, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, model.levels, (num, model.channels, height, width), generator=g)
    if isinstance(model, fastpixel.MultiScalePixelRNN):
        return noise
    drawn = fastpixel.sample(model, num, height=height, width=width, generator=g)
    mask = torch.rand(drawn.shape, generator=g) < 0.3
    return torch.where(mask, noise, drawn)
