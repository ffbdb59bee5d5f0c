"""nn.Modules for users' own models. Each takes ``backend=`` (None: the default, see fastpixel.backend),
resolved when it is built; ``module.backend`` says which runs, ``module.to_backend(name)`` switches it.
PixelCNN++'s shifted convs and gated ResNet block are plain PyTorch convolutions (no backend)."""

from fastpixel.layers.conditioning import ConditionBias
from fastpixel.layers.diagonal_bilstm import DiagonalBiLSTM
from fastpixel.layers.gated import GatedBlock
from fastpixel.layers.gated_resnet import GatedResNet
from fastpixel.layers.masked_conv import MaskedConv2d
from fastpixel.layers.residual import ResidualConvBlock, ResidualLSTMBlock
from fastpixel.layers.row_lstm import RowLSTM
from fastpixel.layers.shifted_conv import ShiftedConv2d, ShiftedDeconv2d

__all__ = ["ConditionBias", "DiagonalBiLSTM", "GatedBlock", "GatedResNet", "MaskedConv2d", "ResidualConvBlock",
           "ResidualLSTMBlock", "RowLSTM", "ShiftedConv2d", "ShiftedDeconv2d"]
