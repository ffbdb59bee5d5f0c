"""The pure-PyTorch reference path: readable, follows the paper's equations, the ground truth.

Every Triton kernel in :mod:`fastpixel.kernels` is tested against the function of the same stem here.
"""

from fastpixel.reference.cross_entropy import pixel_cross_entropy
from fastpixel.reference.diagonal_bilstm import diagonal_bilstm_scan, diagonal_lstm_scan, skew, unskew
from fastpixel.reference.dmol import dmol_log_probs, dmol_nll, dmol_sample
from fastpixel.reference.masked_conv import masked_conv2d
from fastpixel.reference.row_lstm import lstm_cell, row_lstm_scan

__all__ = [
    "diagonal_bilstm_scan",
    "diagonal_lstm_scan",
    "dmol_log_probs",
    "dmol_nll",
    "dmol_sample",
    "lstm_cell",
    "masked_conv2d",
    "pixel_cross_entropy",
    "row_lstm_scan",
    "skew",
    "unskew",
]



def __getattr__(name: str):
    if name == "conv_diagonal_bilstm":  # deprecated: see fastpixel.reference.diagonal_bilstm.conv_diagonal_bilstm
        from fastpixel.reference.diagonal_bilstm import conv_diagonal_bilstm

        return conv_diagonal_bilstm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
