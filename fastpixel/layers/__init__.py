"""nn.Modules for users' own models. Each takes ``backend=`` (None: the default, see fastpixel.backend),
resolved when it is built; ``module.backend`` says which runs, ``module.to_backend(name)`` switches it."""

from fastpixel.layers.conditioning import ConditionBias
from fastpixel.layers.diagonal_bilstm import DiagonalBiLSTM
from fastpixel.layers.gated import GatedBlock
from fastpixel.layers.masked_conv import MaskedConv2d
from fastpixel.layers.residual import ResidualConvBlock, ResidualLSTMBlock
from fastpixel.layers.row_lstm import RowLSTM

__all__ = ["ConditionBias", "DiagonalBiLSTM", "GatedBlock", "MaskedConv2d", "ResidualConvBlock", "ResidualLSTMBlock",
           "RowLSTM"]
