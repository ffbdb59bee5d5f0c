"""PixelCNN++'s cached sampler: the U-Net evaluated as the image is generated (Ramachandran et al.
2017, "Fast Generation for Convolutional Autoregressive Models", section 3, for PixelCNN++).

Every map of ``PixelCNNPlusPlus.forward_float`` (the u and ul of every block, at each of the three
resolutions, up pass and down pass) is an :class:`~fastpixel.layers.shifted_conv_step.ActivationMap`
(its last two rows: every conv reads two input rows) filled as generation reaches it, so each
position of each map is computed once and the memory is O(B F W) per map:

* the **u stream** depends only on the rows above: at the start of image row r the engine computes
  row r of every full-resolution u map, and, when r is even / a multiple of 4, the row r/2 / r/4 of
  the lower resolutions' (their inputs, image rows < r, are all known); whole rows, one
  convolution each;
* the **ul stream** depends on the pixels before: at pixel (r, j) the engine computes every
  full-resolution ul map at (r, j), and the half- / quarter-resolution ones at (r/2, j/2) / (r/4,
  j/4) when r and j are even / multiples of 4 (the first full-resolution pixel that may read them:
  a low-resolution position (i, j') reads full-resolution pixels before (2i, 2j'), and the up-
  sampling writes it to (2i + di, 2j' + dj), di, dj in {0, 1}); one small matmul per conv;
* the mixture parameters at (r, j) depend on no sub-pixel of (r, j): computed once per pixel, then
  each channel's conditional comes from the head (``model.sampling_logits``: G given the R just
  drawn, B given R and G).

Per pixel this is O(1) work per layer, against the naive sampler's full forward pass per sub-pixel.
The network is evaluated as in ``model.eval()`` (no dropout); the driver refuses a model whose
dropout is active (fastpixel.sampling.generate).
"""

from __future__ import annotations

import math

import torch

from fastpixel.layers.gated_resnet_step import GatedResNetStep
from fastpixel.layers.shifted_conv_step import ActivationMap, PixelConv, PixelDeconv, deconv_row, down_row
from fastpixel.models.pixelcnn_pp import RESOLUTIONS, PixelCNNPlusPlus


class _Stream:
    """One pass of one stream at one resolution: its maps (index 0 the input, k + 1 the output of
    block k), the blocks' steps and each block's shortcut maps."""

    def __init__(self, maps: list[ActivationMap], steps: list[GatedResNetStep],
                 shortcuts: list[list[ActivationMap]]) -> None:
        self.maps, self.steps, self.shortcuts = maps, steps, shortcuts


class PixelCNNPPEngine:
    """The engine protocol of :mod:`fastpixel.sampling.cached` (start_row, write, logits, settle,
    end_row) for a :class:`PixelCNNPlusPlus` generating ``images`` (B, C, H, W) in place."""

    def __init__(
        self, model: PixelCNNPlusPlus, images: torch.Tensor, gate_biases: list[torch.Tensor] | None = None,
        cond_biases: list[torch.Tensor] | None = None,
    ) -> None:
        if gate_biases is not None:
            raise TypeError("PixelCNN++ takes no gate_biases (it is conditioned through cond_biases)")
        self.model, self.images = model, images
        batch, channels, _, width = images.shape
        like = model.output_conv.weight
        self.dtype, self.scale = like.dtype, 2.0 / (model.levels - 1)  # model.embed: x * 2/(L-1) - 1
        f, n = model.nr_filters, model.nr_resnet
        self.widths = [width]  # of each resolution (strided convs: ceil); rows come one at a time
        for _ in range(RESOLUTIONS - 1):
            self.widths.append(math.ceil(self.widths[-1] / 2))
        biases = dict(zip(map(id, model.gated_blocks()), cond_biases)) if cond_biases is not None else {}

        # the embedded image with its channel of ones (zero in the padding, as the convs pad): row r is
        # set to zeros and ones when its first sub-pixel is written
        self.image = ActivationMap(batch, channels + 1, width, like, with_ce=False)
        self.ones = like.new_ones(batch, width)
        self.ul_input_left = PixelConv(model.ul_input_left)
        self.ul_above = like.new_zeros(batch, f, width)  # down_shift(ul_input_above(y)) at the current row

        def maps(level: int, count: int) -> list[ActivationMap]:
            return [ActivationMap(batch, f, self.widths[level], like) for _ in range(count)]

        def step(block, level: int, parts: int) -> GatedResNetStep:
            return GatedResNetStep(block, batch, self.widths[level], like, shortcut_parts=parts,
                                   cond_bias=biases.get(id(block)))

        # up pass: the u / ul maps in forward_float's order of appending to ``us`` / ``uls``
        self.up_u, self.up_ul = [], []
        for level in range(RESOLUTIONS):
            u_maps, ul_maps = maps(level, n + 1), maps(level, n + 1)
            self.up_u.append(_Stream(u_maps, [step(b, level, 0) for b in model.up_u[level]], [[]] * n))
            self.up_ul.append(_Stream(ul_maps, [step(b, level, 1) for b in model.up_ul[level]],
                                      [[u_maps[k + 1]] for k in range(n)]))
        us = [m for stream in self.up_u for m in stream.maps]
        uls = [m for stream in self.up_ul for m in stream.maps]
        # down pass, lowest resolution first: its input is the last up map there, then an upsampling
        self.down_u, self.down_ul = [], []
        u, ul = us.pop(), uls.pop()
        for index, level in enumerate(reversed(range(RESOLUTIONS))):
            m = len(model.down_u[index])
            if index:
                u, ul = maps(level, 1)[0], maps(level, 1)[0]
            u_maps, ul_maps = [u] + maps(level, m), [ul] + maps(level, m)
            u_shortcuts = [[us.pop()] for _ in range(m)]
            ul_shortcuts = [[u_maps[k + 1], uls.pop()] for k in range(m)]
            self.down_u.append(_Stream(u_maps, [step(b, level, 1) for b in model.down_u[index]], u_shortcuts))
            self.down_ul.append(_Stream(ul_maps, [step(b, level, 2) for b in model.down_ul[index]], ul_shortcuts))
            u, ul = u_maps[-1], ul_maps[-1]
        assert not us and not uls, "every kept map is one shortcut"
        self.downsample_ul = [PixelConv(conv) for conv in model.downsample_ul]
        self.upsample_ul = [PixelDeconv(deconv) for deconv in model.upsample_ul]
        self.output_t = model.output_conv.weight[:, :, 0, 0].t().contiguous()  # (F, P)
        self.computed: tuple[int, int] | None = None  # the pixel whose parameters are in self.params
        self.params: torch.Tensor | None = None

    # -- rows: the u stream --------------------------------------------------------------------
    def start_row(self, r: int) -> None:
        """Row r of every u map whose row starts here (image rows < r are known)."""
        model = self.model
        if r:  # down_shift: row r reads the image's rows r - 2 and r - 1 (the window, before row r is written)
            y = self.image.window(r - 1)
            self.up_u[0].maps[0].write_row(r, down_row(model.u_input, y))
            self.ul_above = torch.nn.functional.conv2d(y[:, :, 1:], model.ul_input_above.conv.weight,
                                                       model.ul_input_above.conv.bias)[:, :, 0]
        else:
            self.up_u[0].maps[0].write_row(0, torch.zeros_like(self.ul_above))
        for level in range(RESOLUTIONS):
            if r % 2**level:
                break
            i, stream = r >> level, self.up_u[level]
            if level:
                above = self.up_u[level - 1].maps[-1].window(2 * i)  # rows 2i - 1, 2i of the resolution above
                stream.maps[0].write_row(i, down_row(model.downsample_u[level - 1], above))
            self._rows(stream, i)
        for index, level in enumerate(reversed(range(RESOLUTIONS))):
            if r % 2**level:
                continue
            i, stream = r >> level, self.down_u[index]
            if index:
                low = self.down_u[index - 1].maps[-1]
                stream.maps[0].write_row(i, deconv_row(model.upsample_u[index - 1], low.row(i // 2), i,
                                                       self.widths[level]))
            self._rows(stream, i)

    @staticmethod
    def _rows(stream: _Stream, i: int) -> None:
        for k, (step, shortcut) in enumerate(zip(stream.steps, stream.shortcuts)):
            stream.maps[k + 1].write_row(i, step.row(stream.maps[k], i, shortcut))

    # -- pixels: the ul stream -----------------------------------------------------------------
    def _pixel(self, r: int, j: int) -> None:
        """Every ul map at (r, j) (and at the lower resolutions' position there, when aligned), then
        the mixture parameters at (r, j)."""
        ul = self.ul_above[:, :, j]
        if j:  # right_shift: the 2x1 conv at (r, j - 1), which reads the image at (r - 1 .. r, j - 1)
            ul = ul + self.ul_input_left(self.image.window(r), j - 1)
        for level in range(RESOLUTIONS):
            if r % 2**level or j % 2**level:
                break
            i, jj, stream = r >> level, j >> level, self.up_ul[level]
            if level:
                ul = self.downsample_ul[level - 1](self.up_ul[level - 1].maps[-1].window(2 * i), jj)
            stream.maps[0].write_pixel(i, jj, ul)
            self._pixels(stream, i, jj)
        for index, level in enumerate(reversed(range(RESOLUTIONS))):
            if r % 2**level or j % 2**level:
                continue
            i, jj, stream = r >> level, j >> level, self.down_ul[index]
            if index:
                low = self.down_ul[index - 1].maps[-1].at(i // 2, jj // 2)
                stream.maps[0].write_pixel(i, jj, self.upsample_ul[index - 1](low, i, jj))
            self._pixels(stream, i, jj)
        features = torch.nn.functional.elu(self.down_ul[-1].maps[-1].at(r, j))
        self.params = torch.addmm(self.model.output_conv.bias, features, self.output_t)
        self.computed = (r, j)

    @staticmethod
    def _pixels(stream: _Stream, i: int, j: int) -> None:
        for k, (step, shortcut) in enumerate(zip(stream.steps, stream.shortcuts)):
            stream.maps[k + 1].write_pixel(i, j, step.pixel(stream.maps[k], i, j, shortcut))

    # -- the engine protocol -------------------------------------------------------------------
    def write(self, r: int, j: int, c: int, values: torch.Tensor) -> None:
        """values: (B,) integers, sub-pixel c of pixel (r, j) (also in ``images``, written by the driver)."""
        if self.image.current != r:  # the row's first sub-pixel: zeros, and the channel of ones
            self.image.write_row(r, torch.cat([torch.zeros_like(self.image.value[:, :-1, 1, 1:-1]),
                                               self.ones[:, None]], dim=1))
        self.image.value[:, c, 1, j + 1] = values.to(self.dtype) * self.scale - 1.0

    def parameters_at(self, r: int, j: int) -> torch.Tensor:
        """The mixture parameters (B, P) at (r, j); the pixels before it must be written."""
        if self.computed != (r, j):
            self._pixel(r, j)
        return self.params

    def logits(self, r: int, j: int, c: int) -> torch.Tensor:
        """(B, L): sub-pixel c's log-probabilities given the channels of (r, j) before it."""
        params = self.parameters_at(r, j)[:, :, None, None]
        return self.model.sampling_logits(params, self.images[:, :, r, j, None, None], c)[..., 0, 0]

    def settle(self, r: int, j: int) -> None:
        self.parameters_at(r, j)

    def end_row(self, r: int) -> None:
        pass
