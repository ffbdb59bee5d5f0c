"""The public ops. Each takes ``backend=`` ("reference", "torch", "triton", "auto"; see fastpixel.backend)."""

from fastpixel import dispatch
from fastpixel.ops.cross_entropy import pixel_cross_entropy
from fastpixel.ops.diagonal_bilstm import diagonal_bilstm_scan
from fastpixel.ops.diagonal_bilstm_layer import conv_diagonal_bilstm
from fastpixel.ops.dmol import dmol_log_probs, dmol_nll, dmol_sample
from fastpixel.ops.masked_conv import masked_conv2d
from fastpixel.ops.row_lstm import row_lstm_scan

# Enter the pure-PyTorch backends in the dispatch table now, so that a model's first call inside
# torch.compile reads the table without filling it (filling it there would cost a recompile).
dispatch.load("reference")
dispatch.load("torch")

__all__ = ["conv_diagonal_bilstm", "diagonal_bilstm_scan", "dmol_log_probs", "dmol_nll", "dmol_sample", "masked_conv2d", "pixel_cross_entropy", "row_lstm_scan"]
