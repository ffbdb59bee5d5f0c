"""The pure-PyTorch reference path: readable, follows the paper's equations, the ground truth.

Every Triton kernel in :mod:`fastpixel.kernels` is tested against the function of the same stem here.
"""

from fastpixel.reference.cross_entropy import pixel_cross_entropy
from fastpixel.reference.diagonal_bilstm import diagonal_bilstm_scan, diagonal_lstm_scan, skew, unskew
from fastpixel.reference.diagonal_bilstm_layer import conv_diagonal_bilstm
from fastpixel.reference.dmol import dmol_log_probs, dmol_nll, dmol_sample
from fastpixel.reference.masked_conv import masked_conv2d
from fastpixel.reference.row_lstm import lstm_cell, row_lstm_scan

__all__ = [
    "conv_diagonal_bilstm",
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
