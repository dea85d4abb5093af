"""DVD-GAN's two discriminators (paper v2, section 3.2).

Both are BigGAN discriminators (pre-activation ResNet down blocks, ReLU, sum pooling,
SN linear to 1, plus a class projection <embed(y), h>, Miyato & Koyama 2018); the
hinge loss sums their scores' terms (see `losses.py`).

- `SpatialDiscriminator` (D_S): samples k frames per video uniformly at random
  without replacement, at full resolution, folds them into the batch, scores each
  frame, and returns the sum of the k per-frame scores: [B]. Cost is flat in T.
- `TemporalDiscriminator` (D_T): 2x2 average-pools every frame (phi in the paper),
  then runs a BigGAN D whose first two residual blocks are 3-D (every conv 3x3x3)
  and the rest 2-D with time folded into batch; sums over T, H, W: [B].
  Choice (the paper is silent): the 3-D blocks downsample H and W only, never T,
  so any T >= 1 works (12- and 48-frame configs alike) and the 2-D blocks still see
  every time step; the 3x3x3 convs alone give D_T its temporal receptive field.

Block layout (BigGAN D): the first block is "optimised" (conv-ReLU-conv-pool with a
pool-conv shortcut, no ReLU before it); the others are ReLU-conv-ReLU-conv-(pool)
with a conv1x1-(pool) shortcut when the width changes or the block downsamples.
Every block but the last halves H and W (`dblock_stack`, which the DVD-GAN-FP frame
encoder in `encoder.py` reuses). With model.conditioning_frames = C > 0 both
discriminators are built for clips of C + T frames: conditioning frames followed by
predicted ones.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvdgan_tf import config_lib, layers
from dvdgan_tf.layers import check_labels


def _avg_pool_hw(x: tf.Tensor) -> tf.Tensor:
    """2x2 average pooling of H, W for [N, H, W, C] or [N, T, H, W, C]."""
    if x.shape.rank == 4:
        return tf.nn.avg_pool2d(x, 2, 2, "VALID")
    return tf.nn.avg_pool3d(x, [1, 2, 2], [1, 2, 2], "VALID")  # T kept


class DBlock(keras.layers.Layer):
    """BigGAN D block, 2-D ([N, H, W, C]) or 3-D ([N, T, H, W, C], 3x3x3 convs).

    padding: the 3x3 convs' ("zeros", D's; "reflect", see layers._SNConv).
    """

    def __init__(
        self,
        out_channels: int,
        downsample: bool,
        optimized: bool = False,
        rank: int = 2,
        padding: str = "zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if rank not in (2, 3):
            raise ValueError(f"rank must be 2 or 3; received rank={rank!r}")
        self.out_channels = out_channels
        self.downsample = downsample
        self.optimized = optimized
        self.rank = rank
        self.padding = padding

    def build(self, x_shape):
        conv = layers.SNConv2D if self.rank == 2 else layers.SNConv3D
        c_in = x_shape[-1]
        self.conv1 = conv(self.out_channels, 3, padding=self.padding, name="conv1")
        self.conv2 = conv(self.out_channels, 3, padding=self.padding, name="conv2")
        self.conv1.build(x_shape)
        self.conv2.build((*x_shape[:-1], self.out_channels))
        self.learnable_sc = c_in != self.out_channels or self.downsample
        if self.learnable_sc:
            self.conv_sc = conv(self.out_channels, 1, name="conv_sc")
            self.conv_sc.build(x_shape)

    def call(self, x, training=False):
        h = x if self.optimized else tf.nn.relu(x)
        h = self.conv1(h, training=training)
        h = self.conv2(tf.nn.relu(h), training=training)
        if self.downsample:
            h = _avg_pool_hw(h)
        sc = x
        if self.optimized:  # pool then conv (BigGAN's optimised first block)
            sc = _avg_pool_hw(sc) if self.downsample else sc
            sc = self.conv_sc(sc, training=training) if self.learnable_sc else sc
        elif self.learnable_sc:  # conv then pool
            sc = self.conv_sc(sc, training=training)
            sc = _avg_pool_hw(sc) if self.downsample else sc
        return h + sc

    def compute_output_shape(self, x_shape):
        s = 2 if self.downsample else 1
        *lead, h, w, _ = x_shape
        div = lambda v: None if v is None else v // s  # noqa: E731
        return (*lead, div(h), div(w), self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "out_channels": self.out_channels,
            "downsample": self.downsample,
            "optimized": self.optimized,
            "rank": self.rank,
            "padding": self.padding,
        }


def dblock_stack(
    ch: int,
    multipliers,
    prefix: str,
    num_blocks: int | None = None,
    block_rank=None,
    padding: str = "zeros",
) -> list[DBlock]:
    """BigGAN D's residual stack: block i is `{prefix}_B{i+1}`, ch * multipliers[i] wide.

    The first block is optimised and every block but the table's last halves H and
    W. `num_blocks` keeps only the first blocks (the DVD-GAN-FP frame encoder);
    `block_rank(i)` gives each block's rank (default 2); `padding`: the convs'.
    """
    n = len(multipliers)
    return [
        DBlock(
            ch * m,
            downsample=i < n - 1,
            optimized=i == 0,
            rank=2 if block_rank is None else block_rank(i),
            padding=padding,
            name=f"{prefix}_B{i + 1}",
        )
        for i, m in enumerate(multipliers[:num_blocks])
    ]


def dblock_output_shapes(blocks, shape) -> list[tuple]:
    """Each of the 2-D `blocks`' output shape, in order, from input [N, H, W, C]."""
    shapes = []
    for block in blocks:
        shape = block.compute_output_shape(shape)
        shapes.append(shape)
    return shapes


def build_dblock_stack(blocks, shape) -> list[tuple]:
    """Builds 2-D `blocks` in order from input shape [N, H, W, C]; returns each
    block's output shape (the last is the stack's)."""
    outputs = dblock_output_shapes(blocks, shape)
    for block, block_input in zip(blocks, [shape, *outputs[:-1]]):
        block.build(block_input)
    return outputs


class _ProjectionHead(keras.layers.Layer):
    """features h [N, C] -> SNDense(h) + <SNEmbedding(y), h>: [N] (projection D)."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, h_shape, labels_shape=None):
        c = h_shape[-1]
        self.linear = layers.SNDense(1, name="linear")
        self.embed = layers.SNEmbedding(self.num_classes, c, name="embed")
        self.linear.build((None, c))
        self.embed.build((None,))

    def call(self, h, labels, training=False):
        h = tf.cast(h, tf.float32)
        out = tf.squeeze(tf.cast(self.linear(h, training=training), tf.float32), -1)
        proj = tf.cast(self.embed(labels, training=training), tf.float32)  # [N, C]
        return out + tf.reduce_sum(proj * h, axis=-1)  # [N]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


class _BigGANDiscriminator(keras.Model):
    """Shared body: a stack of DBlocks, ReLU, sum pooling and a projection head."""

    prefix = "D"

    def __init__(self, num_classes: int, ch: int, multipliers, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(
                f"num_classes must be >= 1; received num_classes={num_classes!r}"
            )
        multipliers = tuple(int(m) for m in multipliers)
        if len(multipliers) < 2:
            raise ValueError(
                f"a discriminator needs >= 2 blocks; received multipliers={multipliers!r}"
            )
        self.num_classes = num_classes
        self.ch = ch
        self.multipliers = multipliers
        blocks = dblock_stack(ch, multipliers, self.prefix, block_rank=self._block_rank)
        for i, block in enumerate(blocks):  # attributes, not a list: see Generator
            setattr(self, f"block{i + 1}", block)
        self.head = _ProjectionHead(num_classes, name=f"{self.prefix}_head")

    @property
    def blocks(self) -> list[DBlock]:
        return [getattr(self, f"block{i + 1}") for i in range(len(self.multipliers))]

    def _block_rank(self, i: int) -> int:
        return 2

    def _config(self):
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "ch": self.ch,
            "multipliers": self.multipliers,
        }


class SpatialDiscriminator(_BigGANDiscriminator):
    """D_S: video [B, T, H, W, 3], labels [B] -> sum of k per-frame scores [B]."""

    prefix = "DS"

    def __init__(
        self, num_classes, ch, multipliers, num_frames: int, k: int = 8, **kwargs
    ):
        super().__init__(num_classes, ch, multipliers, **kwargs)
        if not 1 <= k <= num_frames:
            raise ValueError(
                f"k must satisfy 1 <= k <= num_frames; received k={k!r}, "
                f"num_frames={num_frames!r}"
            )
        self.num_frames = num_frames
        self.k = k
        self.seed_generator = keras.random.SeedGenerator(0, name="DS_seed")

    def build(self, video_shape, labels_shape=None):
        _, _, h, w, c = video_shape
        shape = build_dblock_stack(self.blocks, (None, h, w, c))[-1]
        self.head.build((None, shape[-1]))
        self.built = True

    def sample_frame_indices(self, batch_size, seed=None) -> tf.Tensor:
        """k distinct frame indices per video, uniform without replacement: int32 [B, k].

        `seed`: an int for a reproducible draw; None draws from the
        layer's seed generator.
        """
        seed = self.seed_generator if seed is None else seed
        keys = keras.random.uniform((batch_size, self.num_frames), seed=seed)  # [B, T]
        # The k smallest of T i.i.d. uniforms: a uniformly random k-subset.
        return tf.cast(tf.math.top_k(-keys, k=self.k).indices, tf.int32)  # [B, k]

    def call(self, video, labels, training=False, frame_indices=None):
        check_labels(labels, self.num_classes)
        b, t, h, w, c = video.shape
        b = tf.shape(video)[0] if b is None else b
        if frame_indices is None:
            frame_indices = self.sample_frame_indices(b)
        frames = tf.gather(
            video, frame_indices, axis=1, batch_dims=1
        )  # [B, k, H, W, C]
        x = tf.reshape(frames, [b * self.k, h, w, c])  # [B*k, H, W, C]: frames as batch
        x = tf.cast(x, self.compute_dtype)
        for block in self.blocks:
            x = block(x, training=training)
        x = tf.reduce_sum(tf.nn.relu(x), axis=[1, 2])  # [B*k, C]: sum pooling
        y = tf.repeat(labels, self.k)  # [B*k]: video label for each of its frames
        scores = self.head(x, y, training=training)  # [B*k]
        return tf.reduce_sum(tf.reshape(scores, [b, self.k]), axis=1)  # [B]

    def get_config(self):
        return {**self._config(), "num_frames": self.num_frames, "k": self.k}

    @classmethod
    def from_model_config(cls, m, name: str = "spatial_discriminator"):
        t = config_lib.clip_frames(m)  # DVD-GAN-FP: conditioning + predicted frames
        d = cls(m.num_classes, m.d_ch, m.ds_multipliers, t, m.k, name=name)
        d.build((None, t, m.resolution, m.resolution, 3))
        return d


class TemporalDiscriminator(_BigGANDiscriminator):
    """D_T: video [B, T, H, W, 3], labels [B] -> score [B] on the pooled video."""

    prefix = "DT"

    def __init__(self, num_classes, ch, multipliers, pool: int = 2, **kwargs):
        super().__init__(num_classes, ch, multipliers, **kwargs)
        if pool < 1:
            raise ValueError(f"pool must be >= 1; received pool={pool!r}")
        self.pool = pool

    def _block_rank(self, i: int) -> int:
        return 3 if i < 2 else 2  # Paper: the first two residual blocks are 3-D.

    def build(self, video_shape, labels_shape=None):
        _, t, h, w, c = video_shape
        shape = (None, t, h // self.pool, w // self.pool, c)
        for i, block in enumerate(self.blocks):
            if i == 2:
                shape = (None, *shape[2:])  # time folded into batch from here on
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.head.build((None, shape[-1]))
        self.built = True

    def call(self, video, labels, training=False):
        check_labels(labels, self.num_classes)
        b, t, h, w, c = video.shape
        b = tf.shape(video)[0] if b is None else b
        p = self.pool
        x = tf.reshape(video, [b * t, h, w, c])  # [B*T, H, W, C]
        x = tf.nn.avg_pool2d(x, p, p, "VALID")  # [B*T, H/p, W/p, C]: phi
        x = tf.reshape(x, [b, t, h // p, w // p, c])  # [B, T, H/p, W/p, C]
        x = tf.cast(x, self.compute_dtype)
        for i, block in enumerate(self.blocks):
            if i == 2:
                _, _, hh, ww, cc = x.shape
                x = tf.reshape(x, [b * t, hh, ww, cc])  # [B*T, h, w, C]: fold time
            x = block(x, training=training)
        if len(self.blocks) <= 2:
            x = tf.reduce_sum(tf.nn.relu(x), axis=[1, 2, 3])  # [B, C]: sum over T, H, W
        else:
            _, hh, ww, cc = x.shape
            x = tf.reshape(tf.nn.relu(x), [b, t, hh, ww, cc])  # [B, T, h, w, C]
            x = tf.reduce_sum(x, axis=[1, 2, 3])  # [B, C]: sum pooling over T, H, W
        return self.head(x, labels, training=training)  # [B]

    def get_config(self):
        return {**self._config(), "pool": self.pool}

    @classmethod
    def from_model_config(cls, m, name: str = "temporal_discriminator"):
        d = cls(m.num_classes, m.d_ch, m.dt_multipliers, m.dt_pool, name=name)
        t = config_lib.clip_frames(m)  # DVD-GAN-FP: conditioning + predicted frames
        d.build((None, t, m.resolution, m.resolution, 3))
        return d
