"""DVD-GAN-FP's frame encoder (paper v2, section 4.2, "Future Video Prediction").

    frames [B, C, R, R, 3] in [-1, 1], C conditioning frames
    fold frames into batch: [B*C, R, R, 3]
    D_S's residual stack (same architecture, own weights), stopped at 4x4 and taken
        before D_S's final ReLU, sum pooling and linear: [B*C, 4, 4, c_last]
    unfold and concatenate each example's C feature maps on channels: [B, 4, 4, C*c_last]
    SN conv1x1 -> [B, 4, 4, ch0] = the initial state of G's first ConvGRU

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

Later ConvGRUs (groups 2..n, at 8x8, 16x16, ...) start from zeros, as in plain
generation: the paper only states that the encoder sets the first RNN's initial
state, the later states have other resolutions and widths than the encoder's 4x4
output, and the conditioning already reaches them through the first GRU's outputs,
which are the input of every later group.

Parameters: the encoder is part of G (`Generator.frame_encoder`), so G's counts for
the -FP configs in the README include it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvdgan_tf import layers
from dvdgan_tf.discriminators import build_dblock_stack, dblock_stack

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


class FrameEncoder(keras.layers.Layer):
    """frames float32 [B, C, R, R, 3] in [-1, 1] -> G's first GRU state [B, 4, 4, ch0].

    `ch`, `multipliers`: D_S's width and channel table (model.d_ch,
    model.ds_multipliers); `out_channels`: G's ch0.
    """

    def __init__(
        self,
        num_frames: int,
        resolution: int,
        ch: int,
        multipliers,
        out_channels: int,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_frames < 1:
            raise ValueError(
                f"num_frames must be >= 1; received num_frames={num_frames!r}"
            )
        if out_channels < 1:
            raise ValueError(
                f"out_channels must be >= 1; received out_channels={out_channels!r}"
            )
        multipliers = tuple(int(m) for m in multipliers)
        self.num_frames = num_frames
        self.resolution = resolution
        self.ch = ch
        self.multipliers = multipliers
        self.out_channels = out_channels
        num_blocks = encoder_num_blocks(resolution, multipliers)
        blocks = dblock_stack(ch, multipliers, "FE", num_blocks=num_blocks)
        for i, block in enumerate(blocks):  # attributes, not a list: see Generator
            setattr(self, f"block{i + 1}", block)
        self.num_blocks = num_blocks
        self.reduce = layers.SNConv2D(out_channels, 1, name="FE_reduce")

    @property
    def blocks(self):
        return [getattr(self, f"block{i + 1}") for i in range(self.num_blocks)]

    def build(self, frames_shape=None):
        r = self.resolution
        _, s, _, c = build_dblock_stack(self.blocks, (None, r, r, 3))
        self.reduce.build((None, s, s, self.num_frames * c))
        self.built = True

    def call(self, frames, training=False):
        b, c, h, w, ch = frames.shape
        b = tf.shape(frames)[0] if b is None else b
        x = tf.reshape(frames, [b * c, h, w, ch])  # [B*C, R, R, 3]: frames as batch
        x = tf.cast(x, self.compute_dtype)
        for block in self.blocks:
            x = block(x, training=training)
        _, s, _, f = x.shape  # [B*C, 4, 4, F]: before D_S's ReLU and sum pooling
        x = tf.reshape(x, [b, c, s, s, f])  # [B, C, 4, 4, F]: unfold frames
        x = tf.transpose(x, [0, 2, 3, 1, 4])  # [B, 4, 4, C, F]
        x = tf.reshape(x, [b, s, s, c * f])  # [B, 4, 4, C*F]: frames on channels
        return self.reduce(x, training=training)  # [B, 4, 4, ch0]

    def compute_output_shape(self, frames_shape):
        return (frames_shape[0], STATE_SIZE, STATE_SIZE, self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "num_frames": self.num_frames,
            "resolution": self.resolution,
            "ch": self.ch,
            "multipliers": self.multipliers,
            "out_channels": self.out_channels,
        }
