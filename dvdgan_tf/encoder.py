"""DVD-GAN-FP's frame encoder (paper v2, section 4.2, "Future Video Prediction").

    frames [B, C, R, R, 3] in [-1, 1], C conditioning frames
    fold frames into batch: [B*C, R, R, 3]
    D_S's residual stack (same architecture, own weights), stopped at 4x4 and taken
        before D_S's final ReLU, sum pooling and linear: [B*C, 4, 4, c_last]
    unfold and concatenate each example's C feature maps on channels: [B, 4, 4, C*c_last]
    SN conv1x1 -> [B, 4, 4, ch0] = the initial state of G's first ConvGRU
    (model.encoder_states = "all": also each later GRU's state from the blocks'
    outputs at its size, 8x8, 16x16, ..., one SN conv1x1 each; see below)

Paper: "each conditioning frame goes separately through a residual network identical
to D_S; the features are concatenated channel-wise and a 1x1 convolution reduces
them to 512 channels", the width of the paper's first GRU state. Here the first
GRU state is G's ch0 wide (g_ch * g_multipliers[0][0], BigGAN's table: 1536 for the
64x64 configs at g_ch = 96, 64 for the built-in CPU config), so the 1x1 conv maps to
ch0 and scales with g_ch. No nonlinearity follows the 1x1 conv (the paper names none;
the GRU's gates take the state as it is).

Stack depth (choice: where the paper is silent, match the GRU state's 4x4): D_S's
blocks halve H and W except the last, so with the BigGAN tables every D_S (16x16 to
256x256) already ends at 4x4 and the encoder is D_S's whole stack. A custom
ds_multipliers that would end below 4x4 is cut after the block that reaches 4x4;
one that ends above 4x4 cannot produce the state and is refused.

Later ConvGRUs (groups 2..n, at 8x8, 16x16, ...), `model.encoder_states`:
- "first" (default; the paper's text): they start from zeros, as in plain generation.
  The paper only states that the encoder sets "the" RNN's initial state; the later
  states have other resolutions and widths than the encoder's 4x4 output, and the
  conditioning still reaches them through the first GRU's outputs, which are the
  input of every later group.
- "all" (a departure, used by the built-in FP config): every GRU starts from the
  encoder's features at its own resolution. D_S's stack passes through every size a
  GRU state has (R/2, R/4, ..., 4), so group i's state is the output of the last
  encoder block at that size, concatenated over frames and reduced by its own SN 1x1
  conv to the GRU's width. This gives G the conditioning frames' colour and
  position at full detail (a 4x4 state must encode a shape's pixel position and
  colour in its channels), which on the built-in dataset is what a continuation that
  starts where the conditioning clip stops needs (BENCHMARKS.md).

Padding, `model.encoder_padding`:
- "zeros" (default): D_S's convolutions as they are ('SAME' zero padding).
- "reflect" (a departure, used by the built-in FP config): the encoder's 3x3 convs
  mirror their input at the borders instead. With zero padding a frame's border is
  an edge between the frame and zeros, so a flat background (the built-in dataset's,
  any shade but exactly 0 in [-1, 1]) gives states with a strong spatial pattern: at
  4x4 every cell touches a border. In run `fp_cpu_v2_s0` (step 4,422) G drew that
  pattern into its first predicted frames as a U-shaped shadow, the same for every
  clip and also for conditioning frames without any shape; zeroing the 4x4 state
  removed it (BENCHMARKS.md). With reflect padding a flat frame gives spatially
  constant states, so the states carry the background's shade and the shape, not the
  frame's borders.

Parameters: the encoder is part of G (`Generator.frame_encoder`), so G's counts for
the -FP configs in the README include it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvdgan_tf import layers
from dvdgan_tf.discriminators import (
    build_dblock_stack,
    dblock_output_shapes,
    dblock_stack,
)

STATE_SIZE = 4  # H = W of G's first ConvGRU state.


def encoder_num_blocks(resolution: int, multipliers) -> int:
    """How many of D_S's blocks (all but the last halve H, W) take R x R to 4x4."""
    n = len(multipliers)
    halvings = (resolution // STATE_SIZE).bit_length() - 1  # log2(R / 4)
    if resolution != STATE_SIZE * 2**halvings or n - 1 < halvings:
        raise ValueError(
            f"the frame encoder must bring {resolution}x{resolution} frames to "
            f"{STATE_SIZE}x{STATE_SIZE} with D_S's blocks, which halve H and W "
            f"{n - 1} times; received resolution={resolution!r}, "
            f"multipliers={tuple(multipliers)!r}"
        )
    return n if n - 1 == halvings else halvings


def _tap_blocks(block_shapes, sizes) -> list[int]:
    """For each state size, the index of the last encoder block that outputs it."""
    out_sizes = [shape[1] for shape in block_shapes]  # [N, s, s, F] -> s
    taps = []
    for s in sizes:
        if s not in out_sizes:
            raise ValueError(
                f"the frame encoder's blocks output sizes {out_sizes}; a GRU state of "
                f"{s}x{s} cannot be taken from them; received state size {s!r}"
            )
        taps.append(len(out_sizes) - 1 - out_sizes[::-1].index(s))
    return taps


def _reduce_name(i: int) -> str:
    """State i's 1x1 reduction: "reduce" for the first (checkpoints of first-state-only
    encoders keep loading), "reduce2", "reduce3", ... for the later GRUs."""
    return "reduce" if i == 0 else f"reduce{i + 1}"


class FrameEncoder(keras.layers.Layer):
    """frames float32 [B, C, R, R, 3] in [-1, 1] -> G's GRU initial states.

    `ch`, `multipliers`: D_S's width and channel table (model.d_ch,
    model.ds_multipliers); `out_channels`: the widths of the states to produce, one
    per ConvGRU from the first (4x4), then 8x8, 16x16, ... (an int: only the first);
    `padding`: the residual blocks' 3x3 convs', "zeros" or "reflect" (see above).
    `call` returns a list of states [B, 4, 4, c0], [B, 8, 8, c1], ...
    """

    def __init__(
        self,
        num_frames: int,
        resolution: int,
        ch: int,
        multipliers,
        out_channels,
        padding: str = "zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_frames < 1:
            raise ValueError(
                f"num_frames must be >= 1; received num_frames={num_frames!r}"
            )
        if isinstance(out_channels, int):
            out_channels = (out_channels,)
        out_channels = tuple(int(c) for c in out_channels)
        if not out_channels or min(out_channels) < 1:
            raise ValueError(
                f"out_channels must be >= 1; received out_channels={out_channels!r}"
            )
        multipliers = tuple(int(m) for m in multipliers)
        self.num_frames = num_frames
        self.resolution = resolution
        self.ch = ch
        self.multipliers = multipliers
        self.out_channels = out_channels
        self.padding = padding
        num_blocks = encoder_num_blocks(resolution, multipliers)
        blocks = dblock_stack(
            ch, multipliers, "FE", num_blocks=num_blocks, padding=padding
        )
        for i, block in enumerate(blocks):  # attributes, not a list: see Generator
            setattr(self, f"block{i + 1}", block)
        self.num_blocks = num_blocks
        self.state_sizes = tuple(STATE_SIZE * 2**i for i in range(len(out_channels)))
        self._block_shapes = dblock_output_shapes(
            blocks, (None, resolution, resolution, 3)
        )
        self.taps = _tap_blocks(self._block_shapes, self.state_sizes)
        for i, c in enumerate(out_channels):
            name = _reduce_name(i)
            setattr(self, name, layers.SNConv2D(c, 1, name=f"FE_{name}"))

    @property
    def blocks(self):
        return [getattr(self, f"block{i + 1}") for i in range(self.num_blocks)]

    @property
    def reductions(self):
        return [getattr(self, _reduce_name(i)) for i in range(len(self.out_channels))]

    def build(self, frames_shape=None):
        r = self.resolution
        build_dblock_stack(self.blocks, (None, r, r, 3))
        for reduce, tap in zip(self.reductions, self.taps):
            _, s, _, c = self._block_shapes[tap]
            reduce.build((None, s, s, self.num_frames * c))
        self.built = True

    def call(self, frames, training=False):
        b, c, h, w, ch = frames.shape
        b = tf.shape(frames)[0] if b is None else b
        x = tf.reshape(frames, [b * c, h, w, ch])  # [B*C, R, R, 3]: frames as batch
        x = tf.cast(x, self.compute_dtype)
        outputs = []
        for block in self.blocks:
            x = block(x, training=training)  # [B*C, s, s, F]
            outputs.append(x)
        states = []
        for reduce, tap in zip(self.reductions, self.taps):
            f_map = outputs[tap]  # [B*C, s, s, F]: before D_S's ReLU and sum pooling
            _, s, _, f = f_map.shape
            f_map = tf.reshape(f_map, [b, c, s, s, f])  # [B, C, s, s, F]: unfold frames
            f_map = tf.transpose(f_map, [0, 2, 3, 1, 4])  # [B, s, s, C, F]
            f_map = tf.reshape(
                f_map, [b, s, s, c * f]
            )  # [B, s, s, C*F]: frames on channels
            states.append(reduce(f_map, training=training))  # [B, s, s, c_i]
        return states

    def compute_output_shape(self, frames_shape):
        return [
            (frames_shape[0], s, s, c)
            for s, c in zip(self.state_sizes, self.out_channels)
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "num_frames": self.num_frames,
            "resolution": self.resolution,
            "ch": self.ch,
            "multipliers": self.multipliers,
            "out_channels": self.out_channels,
            "padding": self.padding,
        }
