"""The "torch" backend: hand-written pure-PyTorch ops, much faster than the reference on a CPU.

One module per op stem, each exporting the reference's function with the same signature and
result (up to float rounding): :func:`masked_conv.masked_conv2d`, :func:`cross_entropy.pixel_cross_entropy`,
:func:`row_lstm.row_lstm_scan`, :func:`diagonal_bilstm.diagonal_bilstm_scan`,
:func:`diagonal_bilstm_layer.conv_diagonal_bilstm` (the whole Diagonal BiLSTM layer, its
input-to-state conv folded into the scan). The scans are ``torch.autograd.Function``s with
hand-written backward passes; see each module's docstring.
"""
