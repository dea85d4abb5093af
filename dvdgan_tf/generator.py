"""DVD-GAN generator (paper v2, section 3.1 and figure 2).

    z ~ N(0, I) [B, 120], e(y) = SN embedding [B, 120], cond = [z; e(y)] [B, 240]
    SNDense(cond) -> [B, 4, 4, ch0], the same tensor at every frame -> [B, T, 4, 4, ch0]
    for each group i (resolution 4 -> 8 -> ... -> R):
        ConvGRU_i over T frames (state zeros, or `initial_state` for group 1)
        G_B(2i-1): residual block, no upsampling   } time folded into batch,
        G_B(2i):   residual block, H, W doubled    } CBN fed by cond
    BN -> ReLU -> SN conv3x3 -> 3 channels -> tanh: video [B, T, R, R, 3] in [-1, 1]

DVD-GAN-FP (future prediction, paper v2 section 4.2): with conditioning_frames = C > 0
G owns a `frame_encoder` (encoder.py) and takes `frames` [B, C, R, R, 3], the first C
frames of a real clip; the encoder's output is the first GRU's initial state (with
`encoder_states="all"` every GRU's, see encoder.py) and G returns the T frames that
follow (not the C it was given).

`output_skip="last_frame"` (DVD-GAN-FP only; a departure from the paper, which has no
such path): G's output is tanh(out_conv(x) + atanh(last conditioning frame)) at every
predicted frame, so a G whose last conv outputs zeros predicts "the clip freezes" and
the network learns the change from there. Without it the first predicted frame must be
redrawn from the encoder's features, and on the built-in dataset the seam between the
crisp real frame and G's first blurry one is what D_T keys on (BENCHMARKS.md).

Residual block (BigGAN G block): CBN-ReLU-(upsample)-conv3x3-CBN-ReLU-conv3x3, plus a
(upsample)-conv1x1 shortcut when the width changes or the block upsamples. Choices
where the paper is silent: the first block of a group keeps the group's input width
and the second changes it to the group's output width (BigGAN's table); upsampling
is nearest-neighbour (BigGAN); GRU state width = the group's input width; GRUs
start from a zero state unless given one (DVD-GAN-FP's encoder seeds the first).

Class-embedding scale: e(y) is an SN embedding (SN on every weight layer), so its
rows have norm <= 1, while |z| ~ sqrt(z_dim) ~ 11. Fed as is, the class would move
each CBN gain by ~1/sqrt(embed_dim) of what z moves it, and the SN'd (1-Lipschitz)
CBN linears could never amplify it. So e(y) is multiplied by sqrt(embed_dim), which
gives class and noise the same scale in [z; e(y)] (BigGAN's G uses an un-normalised
N(0, 1) embedding, whose rows have that norm too).

Parameter counts for the shipped configs are in the README (printed by
`python -m dvdgan_tf.summary`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvdgan_tf import layers
from dvdgan_tf.config_lib import OUTPUT_SKIPS
from dvdgan_tf.encoder import FrameEncoder

# |frame| is clipped to this before atanh: half a uint8 level below 1, so tanh(atanh(f))
# is f to within uint8 rounding and atanh stays finite (~3.1) at pure black or white.
_SKIP_BOUND = 1.0 - 1.0 / 255.0


def _atanh_frame(frame):
    """A frame in [-1, 1] -> tanh's argument that reproduces it: [B, R, R, 3]."""
    frame = tf.cast(frame, tf.float32)
    return tf.atanh(tf.clip_by_value(frame, -_SKIP_BOUND, _SKIP_BOUND))


@tf.custom_gradient
def upsample2x(x):
    """Nearest-neighbour x2 upsampling: [N, H, W, C] -> [N, 2H, 2W, C].

    Forward by broadcasting (XLA has no ResizeNearestNeighborGrad). Backward as 4 x a
    2x2 average pool (each input pixel's gradient is the sum over its 2x2 copies):
    oneDNN's pooling, where the broadcast's own gradient, a Sum over two inner
    axes, cost ~5% of a step.
    """
    _, h, w, c = x.shape
    y = tf.reshape(x, [-1, h, 1, w, 1, c])  # [N, H, 1, W, 1, C]
    y = tf.broadcast_to(y, [tf.shape(x)[0], h, 2, w, 2, c])  # [N, H, 2, W, 2, C]
    y = tf.reshape(y, [-1, 2 * h, 2 * w, c])  # [N, 2H, 2W, C]

    def grad(dy):  # dy: [N, 2H, 2W, C]
        return 4.0 * tf.nn.avg_pool2d(dy, 2, 2, "VALID")  # [N, H, W, C]

    return y, grad


class GBlock(keras.layers.Layer):
    """BigGAN generator block on [N, H, W, C_in] -> [N, s*H, s*W, C_out] (s=2 if upsample)."""

    def __init__(
        self,
        out_channels: int,
        upsample: bool,
        bn_momentum: float = 0.99,
        bn_epsilon: float = 1e-4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.upsample = upsample
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon

    def build(self, x_shape, cond_shape):
        c_in = x_shape[-1]
        bn = dict(momentum=self.bn_momentum, epsilon=self.bn_epsilon)
        self.bn1 = layers.ConditionalBatchNorm(name="bn1", **bn)
        self.conv1 = layers.SNConv2D(self.out_channels, 3, name="conv1")
        self.bn2 = layers.ConditionalBatchNorm(name="bn2", **bn)
        self.conv2 = layers.SNConv2D(self.out_channels, 3, name="conv2")
        s = 2 if self.upsample else 1
        mid = (x_shape[0], x_shape[1] * s, x_shape[2] * s, self.out_channels)
        self.bn1.build(x_shape, cond_shape)
        self.conv1.build((*mid[:3], c_in))
        self.bn2.build(mid, cond_shape)
        self.conv2.build(mid)
        self.learnable_sc = c_in != self.out_channels or self.upsample
        if self.learnable_sc:
            self.conv_sc = layers.SNConv2D(self.out_channels, 1, name="conv_sc")
            self.conv_sc.build((*mid[:3], c_in))

    def _up(self, x):
        return upsample2x(x) if self.upsample else x

    def call(self, x, cond, training=False):
        h = tf.nn.relu(self.bn1(x, cond, training=training))
        h = self.conv1(self._up(h), training=training)
        h = tf.nn.relu(self.bn2(h, cond, training=training))
        h = self.conv2(h, training=training)
        # conv1x1(upsample(x)) == upsample(conv1x1(x)): a pointwise conv commutes with
        # nearest-neighbour upsampling, and after it the conv sees 4x fewer pixels.
        sc = self._up(self.conv_sc(x, training=training)) if self.learnable_sc else x
        return h + sc

    def compute_output_shape(self, x_shape, cond_shape):
        s = 2 if self.upsample else 1
        n, h, w, _ = x_shape
        return (
            n,
            None if h is None else h * s,
            None if w is None else w * s,
            self.out_channels,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "out_channels": self.out_channels,
            "upsample": self.upsample,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
        }


class Generator(keras.Model):
    """(z [B, z_dim], labels int [B]) -> video float32 [B, T, R, R, 3] in [-1, 1].

    With `conditioning_frames` C > 0 (DVD-GAN-FP) also `frames` [B, C, R, R, 3];
    `encoder_ch` and `encoder_multipliers` are D_S's width and table, which the frame
    encoder copies (unused when C = 0); `encoder_states`: "first" (the paper: the
    encoder sets the first GRU's state, later GRUs start from zeros) or "all" (every
    GRU's state from the encoder's features at its resolution; encoder.py);
    `encoder_padding`: the encoder's convs', "zeros" (D_S's) or "reflect" (encoder.py).
    `output_skip`: "none" (the paper) or "last_frame" (-FP only: the last conditioning
    frame is added to G's output in tanh's argument; see the module docstring).
    """

    def __init__(
        self,
        resolution: int,
        num_frames: int,
        num_classes: int,
        ch: int,
        multipliers,
        z_dim: int = 120,
        embed_dim: int = 120,
        gru_kernel: int = 3,
        bn_momentum: float = 0.99,
        bn_epsilon: float = 1e-4,
        conditioning_frames: int = 0,
        encoder_ch: int | None = None,
        encoder_multipliers=None,
        encoder_states: str = "first",
        encoder_padding: str = "zeros",
        output_skip: str = "none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        multipliers = tuple(tuple(int(v) for v in m) for m in multipliers)
        n_groups = (resolution // 4).bit_length() - 1
        if resolution < 8 or resolution != 4 * 2**n_groups:
            raise ValueError(
                f"resolution must be 4 * 2**n with n >= 1; received resolution={resolution!r}"
            )
        if len(multipliers) != n_groups:
            raise ValueError(
                f"multipliers needs {n_groups} (in, out) pairs for resolution {resolution}; "
                f"received multipliers={multipliers!r}"
            )
        if num_frames < 1:
            raise ValueError(
                f"num_frames must be >= 1; received num_frames={num_frames!r}"
            )
        if num_classes < 1:
            raise ValueError(
                f"num_classes must be >= 1; received num_classes={num_classes!r}"
            )
        self.resolution = resolution
        self.num_frames = num_frames
        self.num_classes = num_classes
        self.ch = ch
        self.multipliers = multipliers
        self.z_dim = z_dim
        self.embed_dim = embed_dim
        self.gru_kernel = gru_kernel
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        if conditioning_frames < 0:
            raise ValueError(
                "conditioning_frames must be >= 0; received "
                f"conditioning_frames={conditioning_frames!r}"
            )
        if conditioning_frames and (encoder_ch is None or not encoder_multipliers):
            raise ValueError(
                "conditioning_frames > 0 needs the frame encoder's encoder_ch and "
                f"encoder_multipliers; received encoder_ch={encoder_ch!r}, "
                f"encoder_multipliers={encoder_multipliers!r}"
            )
        if encoder_states not in ("first", "all"):
            raise ValueError(
                "encoder_states must be 'first' or 'all'; received "
                f"encoder_states={encoder_states!r}"
            )
        if encoder_padding not in layers.PADDINGS:
            raise ValueError(
                f"encoder_padding must be one of {layers.PADDINGS}; received "
                f"encoder_padding={encoder_padding!r}"
            )
        if output_skip not in OUTPUT_SKIPS:
            raise ValueError(
                f"output_skip must be one of {OUTPUT_SKIPS}; received "
                f"output_skip={output_skip!r}"
            )
        if output_skip != "none" and not conditioning_frames:
            raise ValueError(
                f"output_skip={output_skip!r} adds the last conditioning frame to G's "
                "output and needs conditioning_frames > 0 (DVD-GAN-FP); received "
                f"conditioning_frames={conditioning_frames!r}"
            )
        self.output_skip = output_skip
        self.conditioning_frames = conditioning_frames
        self.encoder_states = encoder_states
        self.encoder_padding = encoder_padding
        self.encoder_ch = encoder_ch
        self.encoder_multipliers = (
            None
            if encoder_multipliers is None
            else tuple(int(m) for m in encoder_multipliers)
        )

        self.ch0 = ch * multipliers[0][0]
        self.embed_scale = float(embed_dim) ** 0.5  # see the module docstring
        self.embed = layers.SNEmbedding(num_classes, embed_dim, name="G_embed")
        self.linear = layers.SNDense(4 * 4 * self.ch0, name="G_linear")
        bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
        # Sub-layers are plain attributes, not lists: tf.train.Checkpoint does not
        # track Keras 3's TrackedList, so layers held only in a list are not saved.
        for i, (m_in, m_out) in enumerate(multipliers):
            setattr(
                self,
                f"gru{i + 1}",
                layers.ConvGRU(ch * m_in, gru_kernel, name=f"G_GRU{i + 1}"),
            )
            setattr(
                self,
                f"block{2 * i + 1}",
                GBlock(ch * m_in, False, name=f"G_B{2 * i + 1}", **bn),
            )
            setattr(
                self,
                f"block{2 * i + 2}",
                GBlock(ch * m_out, True, name=f"G_B{2 * i + 2}", **bn),
            )
        self.out_bn = layers.ConditionalBatchNorm(
            conditional=False, momentum=bn_momentum, epsilon=bn_epsilon, name="G_out_bn"
        )
        self.out_conv = layers.SNConv2D(3, 3, name="G_out_conv")
        # Every GRU's state [H, W, C]: group i runs at 4 * 2**i with its input width.
        self.state_shapes = tuple(
            (4 * 2**i, 4 * 2**i, ch * m_in) for i, (m_in, _) in enumerate(multipliers)
        )
        self.state_shape = self.state_shapes[0]  # The first GRU's (for -FP).
        self.frame_encoder = None
        if conditioning_frames:  # A plain attribute (see above), so it is checkpointed.
            widths = [c for _, _, c in self.state_shapes]  # one per GRU state
            self.frame_encoder = FrameEncoder(
                conditioning_frames,
                resolution,
                encoder_ch,
                self.encoder_multipliers,
                widths[:1] if encoder_states == "first" else widths,
                padding=encoder_padding,
                name="G_frame_encoder",
            )

    @property
    def grus(self) -> list[layers.ConvGRU]:
        return [getattr(self, f"gru{i + 1}") for i in range(len(self.multipliers))]

    @property
    def blocks(self) -> list[GBlock]:
        return [
            getattr(self, f"block{i + 1}") for i in range(2 * len(self.multipliers))
        ]

    def build(self, z_shape=None, labels_shape=None):
        b = None
        cond_shape = (b, self.z_dim + self.embed_dim)
        self.embed.build((b,))
        self.linear.build(cond_shape)
        r, c_prev = 4, self.ch0
        for i, (m_in, m_out) in enumerate(self.multipliers):
            c_in, c_out = self.ch * m_in, self.ch * m_out
            self.grus[i].build((b, self.num_frames, r, r, c_prev))
            self.blocks[2 * i].build((b, r, r, c_in), cond_shape)
            self.blocks[2 * i + 1].build((b, r, r, c_in), cond_shape)
            r, c_prev = 2 * r, c_out
        self.out_bn.build((b, r, r, c_prev))
        self.out_conv.build((b, r, r, c_prev))
        if self.frame_encoder is not None:
            self.frame_encoder.build(self.frames_shape)
        self.built = True

    @property
    def frames_shape(self) -> tuple:
        """Shape of `frames` for DVD-GAN-FP: (None, C, R, R, 3)."""
        r = self.resolution
        return (None, self.conditioning_frames, r, r, 3)

    def _initial_states(self, frames, initial_state, training) -> list:
        """Each GRU's initial state (None = zeros) from `frames` (DVD-GAN-FP) or
        `initial_state` (one tensor: the first GRU's; a list: one per GRU)."""
        states = self._given_states(frames, initial_state, training)
        return states + [None] * (len(self.grus) - len(states))

    def _given_states(self, frames, initial_state, training) -> list:
        """The states for the first GRUs (the rest start from zeros)."""
        frames = None if frames is None else tf.convert_to_tensor(frames)
        if self.frame_encoder is None:
            if frames is not None:
                raise ValueError(
                    "this generator has conditioning_frames=0 and takes no frames; "
                    f"received frames of shape {tuple(frames.shape)}"
                )
            if isinstance(initial_state, (list, tuple)):
                if len(initial_state) > len(self.grus):
                    raise ValueError(
                        f"initial_state has {len(initial_state)} states for "
                        f"{len(self.grus)} ConvGRUs"
                    )
                return list(initial_state)
            return [initial_state]
        expected = "[B, {}, {}, {}, 3]".format(*self.frames_shape[1:4])
        if frames is None:
            raise ValueError(
                f"this generator predicts from {self.conditioning_frames} conditioning "
                f"frames: frames of shape {expected} are required; received None"
            )
        if initial_state is not None:
            raise ValueError(
                "pass frames or initial_state, not both: in DVD-GAN-FP the frames set "
                "the initial state"
            )
        if frames.shape.rank != 5 or not all(
            d is None or d == e for d, e in zip(frames.shape[1:], self.frames_shape[1:])
        ):
            raise ValueError(
                f"frames must have shape {expected} (B, C, H, W, 3); received shape "
                f"{tuple(frames.shape)}"
            )
        return self.frame_encoder(frames, training=training)  # [[B, 4, 4, ch0], ...]

    def call(self, z, labels, training=False, initial_state=None, frames=None):
        """z: [B, z_dim]; labels: int [B]; initial_state: optional [B, 4, 4, ch0] (the
        first GRU's state) or a list of per-GRU states `state_shapes` (None = zeros).

        frames: DVD-GAN-FP only (and then required): float32 [B, C, R, R, 3] in
        [-1, 1], the conditioning frames, encoded into the initial state. Returns
        the T generated frames [B, T, R, R, 3] in [-1, 1].
        """
        layers.check_labels(labels, self.num_classes)
        initial_states = self._initial_states(frames, initial_state, training)
        t = self.num_frames
        z = tf.cast(z, self.compute_dtype)
        cond = tf.concat(
            [z, self.embed(labels, training=training) * self.embed_scale], axis=-1
        )  # [B, 240]
        b = tf.shape(z)[0]
        x = self.linear(cond, training=training)
        x = tf.reshape(x, [b, 4, 4, self.ch0])  # [B, 4, 4, ch0]
        x = tf.tile(
            x[:, None], [1, t, 1, 1, 1]
        )  # [B, T, 4, 4, ch0]: same input each frame
        for i, gru in enumerate(self.grus):
            x = gru(x, initial_states[i], training=training)  # [B, T, H, W, C]
            _, _, hh, ww, cc = x.shape
            x = tf.reshape(
                x, [b * t, hh, ww, cc]
            )  # [B*T, H, W, C]: time folded into batch
            x = self.blocks[2 * i](x, cond, training=training)  # [B*T, H, W, C]
            x = self.blocks[2 * i + 1](x, cond, training=training)  # [B*T, 2H, 2W, C']
            _, hh, ww, cc = x.shape
            x = tf.reshape(x, [b, t, hh, ww, cc])  # [B, T, 2H, 2W, C']: unfold time
        _, _, hh, ww, cc = x.shape
        x = tf.reshape(x, [b * t, hh, ww, cc])  # [B*T, R, R, C]
        x = tf.nn.relu(self.out_bn(x, training=training))
        x = tf.cast(self.out_conv(x, training=training), tf.float32)  # [B*T, R, R, 3]
        x = tf.reshape(x, [b, t, hh, ww, 3])  # [B, T, R, R, 3]: tanh's argument
        if self.output_skip == "last_frame":
            x = x + _atanh_frame(frames[:, -1])[:, None]  # + [B, 1, R, R, 3]
        return tf.tanh(x)  # [B, T, R, R, 3] in [-1, 1]

    def get_config(self):
        return {
            "name": self.name,
            "resolution": self.resolution,
            "num_frames": self.num_frames,
            "num_classes": self.num_classes,
            "ch": self.ch,
            "multipliers": self.multipliers,
            "z_dim": self.z_dim,
            "embed_dim": self.embed_dim,
            "gru_kernel": self.gru_kernel,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "conditioning_frames": self.conditioning_frames,
            "encoder_ch": self.encoder_ch,
            "encoder_multipliers": self.encoder_multipliers,
            "encoder_states": self.encoder_states,
            "encoder_padding": self.encoder_padding,
            "output_skip": self.output_skip,
        }

    @classmethod
    def from_model_config(cls, m, name: str = "generator") -> Generator:
        """Builds G from a config's `model` section."""
        g = cls(
            resolution=m.resolution,
            num_frames=m.num_frames,
            num_classes=m.num_classes,
            ch=m.g_ch,
            multipliers=m.g_multipliers,
            z_dim=m.z_dim,
            embed_dim=m.embed_dim,
            gru_kernel=m.gru_kernel,
            bn_momentum=m.bn_momentum,
            bn_epsilon=m.bn_epsilon,
            conditioning_frames=m.conditioning_frames,
            encoder_ch=m.d_ch,
            encoder_multipliers=m.ds_multipliers,
            encoder_states=m.get("encoder_states", "first"),
            encoder_padding=m.get("encoder_padding", "zeros"),
            output_skip=m.get("output_skip", "none"),
            name=name,
        )
        g.build()
        return g
