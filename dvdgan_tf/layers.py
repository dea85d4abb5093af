"""Building blocks of DVD-GAN (paper v2, sections 3.1-3.2), as Keras 3 layers.

- Spectral normalisation (Miyato et al. 2018) on every weight layer of G and D
  (paper section 3.1, as BigGAN): `SNConv2D`, `SNConv3D`, `SNDense`, `SNEmbedding`.
  The kernel is divided by its top singular value inside `call`, estimated with one
  power iteration per training call; the stored kernel is never rewritten (unlike
  `keras.layers.SpectralNormalization`), so checkpoints, EMA and optimizers see the
  raw weights.
- `ConditionalBatchNorm`: BatchNorm without its own scale/offset, then a
  per-example affine map whose gamma, beta come from [z; e(y)] (paper section 3.1:
  the whole 240-d vector, no hierarchical split as in BigGAN). Frames are folded
  into the batch axis, so statistics cover B*T and BN carries no information
  between frames. With `conditional=False` it is a plain BN with learned gamma,
  beta (G's final BN, as BigGAN). Statistics are synchronised across replicas.
- `ConvGRU`: the convolutional GRU unrolled once per frame (paper section 3.1).
- `conv_same`: the stride-1 'SAME' convolution of the SN convs, whose input gradient
  is a forward convolution with the kernel flipped (`set_conv_input_grad`).

All layers are channels-last and float32 by default; under a mixed-precision
policy the SN power iteration and BN statistics stay in float32.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from dvdgan_tf import config_lib

_KERNEL_INIT = ["orthogonal"]  # Paper: orthogonal initialisation (as BigGAN).


def sublayers(model: keras.layers.Layer, cls: type) -> list:
    """Every layer of type `cls` inside `model` (not `model` itself), in a fixed order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, cls)
    ]


@contextlib.contextmanager
def kernel_initializer(name: str):
    """Temporarily builds SN kernels with another initializer.

    Orthogonal init of the paper-size models takes minutes on a CPU (a QR per
    kernel); counting parameters or restoring a checkpoint does not need it.
    """
    _KERNEL_INIT.append(name)
    try:
        yield
    finally:
        _KERNEL_INIT.pop()


_CONV_INPUT_GRAD = ["forward"]  # runtime.conv_input_grad, see set_conv_input_grad


def set_conv_input_grad(mode: str) -> None:
    """How `conv_same` and the ConvGRU compute a convolution's input gradient.

    "forward" (the default): as a forward convolution of the output gradient with the
    kernel flipped in space and C_in, C_out swapped, which is the adjoint of a
    stride-1 'SAME' convolution with an odd kernel. On the 2-vCPU AVX2-only EPYC
    Eigen's forward kernels ran the same arithmetic 1.05-5x faster than its
    backprop-input kernels, and with oneDNN's the reference point's step was 5-7%
    faster, the default config's the same (BENCHMARKS.md). "native": TF's
    Conv2DBackpropInput / Conv3DBackpropInputV2, as autodiff emits them. Same
    numbers either way (to float rounding); set before the step is traced.
    """
    _CONV_INPUT_GRAD[0] = config_lib.check_conv_input_grad(mode)


def conv_input_grad(out_grad, kernel, input_shape):
    """d(sum(out_grad * conv(x, kernel, 'SAME'))) / d x for a stride-1 conv of rank
    2 or 3 (kernel [k.., C_in, C_out]; input_shape: x's shape, a 1-D tensor)."""
    rank = kernel.shape.rank - 2
    if _CONV_INPUT_GRAD[0] == "forward" and all(k % 2 for k in kernel.shape[:rank]):
        # 'SAME' pads an odd kernel (k-1)/2 on both sides, so the adjoint is the same
        # convolution with the kernel reversed in space and its channels swapped.
        spatial = list(range(rank))
        flipped = tf.reverse(kernel, spatial)  # [k.., C_in, C_out]
        flipped = tf.transpose(
            flipped, [*spatial, rank + 1, rank]
        )  # [k.., C_out, C_in]
        return tf.nn.convolution(out_grad, flipped, padding="SAME")
    op = (
        tf.raw_ops.Conv2DBackpropInput
        if rank == 2
        else tf.raw_ops.Conv3DBackpropInputV2
    )
    return op(
        input_sizes=input_shape,
        filter=kernel,
        out_backprop=out_grad,
        strides=[1] * (rank + 2),
        padding="SAME",
    )


def conv_filter_grad(inputs, out_grad, kernel):
    """d(sum(out_grad * conv(inputs, kernel, 'SAME'))) / d kernel, stride 1, rank 2
    or 3: [k.., C_in, C_out]."""
    rank = kernel.shape.rank - 2
    op = (
        tf.raw_ops.Conv2DBackpropFilter
        if rank == 2
        else tf.raw_ops.Conv3DBackpropFilterV2
    )
    return op(
        input=inputs,
        filter_sizes=tf.shape(kernel),
        out_backprop=out_grad,
        strides=[1] * (rank + 2),
        padding="SAME",
    )


@tf.custom_gradient
def _conv_same_custom(x, kernel):
    def grad(dy):
        return conv_input_grad(dy, kernel, tf.shape(x)), conv_filter_grad(x, dy, kernel)

    return tf.nn.convolution(x, kernel, padding="SAME"), grad


def conv_same(x, kernel):
    """tf.nn.convolution(x, kernel, padding='SAME'), stride 1, rank 2 or 3, whose
    input gradient follows `set_conv_input_grad`: x [N, (T,) H, W, C_in], kernel
    [k, k(, k), C_in, C_out] -> [N, (T,) H, W, C_out]."""
    if _CONV_INPUT_GRAD[0] == "native":
        return tf.nn.convolution(x, kernel, padding="SAME")
    return _conv_same_custom(x, kernel)


def _l2_normalize(x: tf.Tensor, eps: float) -> tf.Tensor:
    # tf.norm's maths in 4 graph ops instead of its ~9: every SN layer traces this
    # twice per call, and a train step calls G three times (trace time).
    return x / (tf.sqrt(tf.reduce_sum(tf.square(x))) + eps)


class SpectralNorm(keras.layers.Layer):
    """Base class: a `kernel` whose spectral norm is divided out in `call`.

    The kernel is viewed as a matrix W of shape [N, C_out] (all leading axes
    flattened; for a conv kernel [kh, kw, C_in, C_out] that is N = kh*kw*C_in). A
    non-trainable vector u [1, C_out] holds the power-iteration state:
      v = normalise(u W^T),  u' = normalise(v W),  sigma = v W u'^T,
    with u and v under `stop_gradient` (Miyato et al., as compare_gan). In training
    u' is stored; in inference the stored u is used as is. `sigma` keeps the last
    training estimate for logging.
    """

    def __init__(self, sn_epsilon: float = 1e-4, **kwargs):
        super().__init__(**kwargs)
        self.sn_epsilon = sn_epsilon

    def _build_sn(self, kernel_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=kernel_shape, initializer=_KERNEL_INIT[-1]
        )
        c_out = kernel_shape[-1]
        self.sn_u = self.add_weight(
            name="sn_u",
            shape=(1, c_out),
            initializer=keras.initializers.RandomNormal(seed=None),
            trainable=False,
            autocast=False,
        )
        self.sigma = self.add_weight(
            name="sigma", shape=(), initializer="ones", trainable=False, autocast=False
        )

    def normalized_kernel(self, training=False) -> tf.Tensor:
        """The kernel divided by its estimated top singular value (float32)."""
        kernel = tf.convert_to_tensor(self.kernel.value)
        kernel = tf.cast(kernel, tf.float32)
        c_out = kernel.shape[-1]
        w = tf.reshape(kernel, [-1, c_out])  # [N, C_out]: leading axes flattened
        u = tf.stop_gradient(tf.convert_to_tensor(self.sn_u.value))
        v = tf.stop_gradient(
            _l2_normalize(tf.matmul(u, w, transpose_b=True), self.sn_epsilon)
        )
        vw = tf.matmul(v, w)  # [1, C_out]
        u_new = tf.stop_gradient(_l2_normalize(vw, self.sn_epsilon))
        sigma = tf.reshape(tf.matmul(vw, u_new, transpose_b=True), [])
        if training:
            self.sn_u.assign(u_new)
            self.sigma.assign(tf.stop_gradient(sigma))
        return kernel / sigma

    def get_config(self):
        return {**super().get_config(), "sn_epsilon": self.sn_epsilon}


class SNDense(SpectralNorm):
    """Spectrally normalised dense layer: [..., C_in] -> [..., units]."""

    def __init__(self, units: int, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"units must be >= 1; received units={units!r}")
        self.units = units
        self.use_bias = use_bias

    def build(self, input_shape):
        self._build_sn((input_shape[-1], self.units))
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer="zeros"
            )

    def call(self, x, training=False):
        w = tf.cast(self.normalized_kernel(training), x.dtype)
        if x.shape.rank == 2:  # [B, C_in] @ [C_in, units]: one op, not tensordot's ~20
            y = tf.matmul(x, w)
        else:
            y = tf.tensordot(x, w, axes=1)  # [..., units]
        if self.use_bias:
            y = y + tf.cast(self.bias, x.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias}


def check_labels(labels, num_classes: int) -> None:
    """In eager mode, raises ValueError quoting any label outside [0, num_classes)."""
    if not tf.executing_eagerly():
        return
    y = tf.convert_to_tensor(labels)
    if y.shape.rank != 1:
        raise ValueError(f"labels must be a vector [B]; received shape {y.shape}")
    bad = tf.boolean_mask(y, (y < 0) | (y >= num_classes)).numpy()
    if bad.size:
        raise ValueError(
            f"labels must be in [0, {num_classes}); received out-of-range labels "
            f"{bad.tolist()[:8]}"
        )


class SNEmbedding(SpectralNorm):
    """Spectrally normalised class embedding: int [B] -> [B, output_dim].

    The table [num_classes, output_dim] is the matrix normalised (a lookup is a
    linear map of the one-hot label, so this is BigGAN's SN linear embedding).
    """

    def __init__(self, num_classes: int, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(
                f"num_classes must be >= 1; received num_classes={num_classes!r}"
            )
        self.num_classes = num_classes
        self.output_dim = output_dim

    def build(self, input_shape):
        self._build_sn((self.num_classes, self.output_dim))

    def call(self, labels, training=False):
        table = self.normalized_kernel(training)  # [K, D]
        return tf.cast(tf.gather(table, tf.cast(labels, tf.int32)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "output_dim": self.output_dim,
        }


PADDINGS = ("zeros", "reflect")


class _SNConv(SpectralNorm):
    """Spectrally normalised convolution, stride 1, output size = input size.

    padding: "zeros" ('SAME', the paper's and BigGAN's) or "reflect" (the input is
    mirrored at its borders, without repeating the edge, before a 'VALID' conv, so
    a constant input gives a constant output; used by the DVD-GAN-FP frame encoder
    on request, see encoder.py).
    """

    rank = 2

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        use_bias: bool = True,
        padding: str = "zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if filters < 1:
            raise ValueError(f"filters must be >= 1; received filters={filters!r}")
        if kernel_size < 1:
            raise ValueError(
                f"kernel_size must be >= 1; received kernel_size={kernel_size!r}"
            )
        if padding not in PADDINGS:
            raise ValueError(
                f"padding must be one of {PADDINGS}; received padding={padding!r}"
            )
        self.filters = filters
        self.kernel_size = kernel_size
        self.use_bias = use_bias
        self.padding = padding

    def build(self, input_shape):
        # Kernel layout: [k, k(, k), C_in, C_out] as tf.nn.convolution expects.
        self._build_sn(
            (self.kernel_size,) * self.rank + (input_shape[-1], self.filters)
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer="zeros"
            )

    def call(self, x, training=False):
        w = tf.cast(self.normalized_kernel(training), x.dtype)
        k = self.kernel_size
        if self.padding == "reflect" and k > 1:
            lo, hi = (k - 1) // 2, k - 1 - (k - 1) // 2  # as 'SAME' splits it
            pads = [[0, 0]] + [[lo, hi]] * self.rank + [[0, 0]]
            x = tf.pad(x, pads, mode="REFLECT")  # [N, (T+k-1,) H+k-1, W+k-1, C]
            y = tf.nn.convolution(x, w, padding="VALID")
        else:
            y = conv_same(x, w)
        if self.use_bias:
            y = y + tf.cast(self.bias, x.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "use_bias": self.use_bias,
            "padding": self.padding,
        }


class SNConv2D(_SNConv):
    """SN conv on [N, H, W, C_in] -> [N, H, W, filters]."""

    rank = 2


class SNConv3D(_SNConv):
    """SN conv on [N, T, H, W, C_in] -> [N, T, H, W, filters] (3x3x3 in D_T)."""

    rank = 3


class ConditionalBatchNorm(keras.layers.Layer):
    """Class-conditional BatchNorm of G (paper section 3.1).

    x: [B*T, H, W, C] (time folded into batch, example-major: row b*T + t);
    cond: [B, D] = [z; e(y)]. Output
      y = (x - mean) / sqrt(var + eps) * gamma + beta,
      gamma = 1 + SNDense(cond), beta = SNDense(cond)  (per example, repeated over T),
    with mean, var over (B*T, H, W) in training (all replicas together when
    `synchronized`) and the moving averages in inference. `conditional=False` gives
    a plain BN with learned per-channel gamma, beta (BigGAN's final BN).
    """

    def __init__(
        self,
        conditional: bool = True,
        momentum: float = 0.99,
        epsilon: float = 1e-4,
        synchronized: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"momentum must be in [0, 1); received momentum={momentum!r}"
            )
        self.conditional = conditional
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized

    def build(self, x_shape, cond_shape=None):
        c = x_shape[-1]
        if self.conditional:
            self.gain = SNDense(c, name="gain")
            self.bias = SNDense(c, name="bias")
            self.gain.build(cond_shape)
            self.bias.build(cond_shape)
        else:
            self.gamma = self.add_weight(name="gamma", shape=(c,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(c,), initializer="zeros")
        self.moving_mean = self.add_weight(
            name="moving_mean",
            shape=(c,),
            initializer="zeros",
            trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            name="moving_variance",
            shape=(c,),
            initializer="ones",
            trainable=False,
            autocast=False,
        )

    def _moments(self, x):
        """Mean and variance over all axes but channels and all replicas: [C], [C].

        Two passes, two all-reduces of [C] vectors: the mean, then the squares about
        it. One pass (E[x^2] - E[x]^2 from one all-reduce) loses the variance of a
        channel whose mean is large against its spread to float32 rounding (mean 50,
        std 0.5: ~1e-3 of it), and the replicas' step then differs from one device's.
        Called in a replica context (`_synchronised()`).
        """
        axes = list(range(len(x.shape) - 1))
        ctx = tf.distribute.get_replica_context()
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        s, n = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.reduce_sum(x, axes), n])
        mean = s / n  # [C]
        ss = tf.reduce_sum(tf.square(x - mean), axes)  # [C]
        return mean, ctx.all_reduce(tf.distribute.ReduceOp.SUM, ss) / n

    def _synchronised(self) -> bool:
        ctx = tf.distribute.get_replica_context()
        return self.synchronized and ctx is not None and ctx.num_replicas_in_sync > 1

    def _normalize(self, x, training):
        """(x - mean) / sqrt(var + eps) in x's dtype, updating the moving averages.

        Training on one replica: oneDNN's (or XLA's) fused BatchNorm, forward and
        backward (~3x faster than the same maths as separate element-wise ops, which
        were ~15% of a bfloat16 step); statistics in float32 whatever x's dtype. Several
        replicas with `synchronized`: moments summed across them, then the maths
        by hand in float32.
        """
        c = x.shape[-1]
        m = self.momentum
        if training and self._synchronised():
            dtype = x.dtype
            x = tf.cast(x, tf.float32)
            mean, var = self._moments(x)
            self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * mean)
            self.moving_variance.assign(m * self.moving_variance + (1.0 - m) * var)
            return tf.cast((x - mean) * tf.math.rsqrt(var + self.epsilon), dtype)
        if training:
            ones, zeros = tf.ones([c], tf.float32), tf.zeros([c], tf.float32)
            empty = tf.zeros([0], tf.float32)
            y, mean, var, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=ones, offset=zeros, mean=empty, variance=empty,
                epsilon=self.epsilon, is_training=True,
            )  # fmt: skip
            # The fused op returns the unbiased variance; normalise with the biased
            # one (it does) and average the biased one, as `_moments`.
            n = tf.cast(tf.size(x) // c, tf.float32)
            var = var * (n - 1.0) / n
            self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * mean)
            self.moving_variance.assign(m * self.moving_variance + (1.0 - m) * var)
            return y
        # Inference: one multiply-add with constants (faster here than the fused op).
        scale = tf.math.rsqrt(self.moving_variance + self.epsilon)  # [C], float32
        shift = -self.moving_mean * scale  # [C]
        return x * tf.cast(scale, x.dtype) + tf.cast(shift, x.dtype)

    def call(self, x, cond=None, training=False):
        y = self._normalize(x, training)  # [N, H, W, C], x's dtype
        if self.conditional:
            b = tf.shape(cond)[0]
            n, h, w, c = tf.shape(x)[0], x.shape[1], x.shape[2], x.shape[3]
            gamma = 1.0 + tf.cast(self.gain(cond, training=training), y.dtype)  # [B, C]
            beta = tf.cast(self.bias(cond, training=training), y.dtype)  # [B, C]
            y = tf.reshape(y, [b, n // b, h, w, c])  # [B, T, H, W, C]: unfold time
            y = y * gamma[:, None, None, None, :] + beta[:, None, None, None, :]
            return tf.reshape(y, [n, h, w, c])  # [B*T, H, W, C]: fold time again
        return y * tf.cast(self.gamma, y.dtype) + tf.cast(self.beta, y.dtype)

    def compute_output_shape(self, x_shape, cond_shape=None):
        return x_shape

    def get_config(self):
        return {
            **super().get_config(),
            "conditional": self.conditional,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "synchronized": self.synchronized,
        }


@tf.custom_gradient
def gru_recurrence(gx, cx, wg_h, wc_h, h0):
    """The ConvGRU's time loop, given the x-halves of its gates for every frame.

    gx: [B, T, H, W, 2k] (r, u pre-activations from x_t, bias included), cx:
    [B, T, H, W, k] (the candidate's), wg_h: [3, 3, k, 2k], wc_h: [3, 3, k, k] (the
    h-halves of the kernels), h0: [B, H, W, k] -> every h_t: [B, T, H, W, k].

    The backward pass is written out (backpropagation through time) so that the
    gradients of the two h-kernels are one convolution-filter gradient each over
    all T frames (time folded into batch), not T small ones summed: T per-frame
    Conv2DBackpropFilters on a batch of B were ~10% of a bfloat16 step, the
    largest single cost of the generator. Everything else is what autodiff of
    the loop computes.
    """
    t = gx.shape[1]  # Static: a plain unrolled loop (XLA-friendly).
    gxs, cxs = tf.unstack(gx, axis=1), tf.unstack(cx, axis=1)  # T x [B, H, W, .]
    state = h0
    prev, gates, cands, resets = [], [], [], []  # per frame, for the backward pass
    for i in range(t):
        g = tf.sigmoid(gxs[i] + tf.nn.conv2d(state, wg_h, 1, "SAME"))  # [B, H, W, 2k]
        r, u = tf.split(g, 2, axis=-1)  # 2 x [B, H, W, k]
        rh = r * state
        cand = tf.nn.relu(cxs[i] + tf.nn.conv2d(rh, wc_h, 1, "SAME"))
        prev.append(state)
        gates.append(g)
        cands.append(cand)
        resets.append(rh)
        state = u * state + (1.0 - u) * cand
    outputs = prev[1:] + [state]
    out = tf.stack(outputs, axis=1)  # [B, T, H, W, k]

    def grad(d_out):  # d_out: [B, T, H, W, k]
        d_outs = tf.unstack(d_out, axis=1)
        dh = tf.zeros_like(h0)  # gradient reaching h_t from later frames
        d_gates, d_cands = [None] * t, [None] * t
        for i in reversed(range(t)):
            dh = dh + d_outs[i]  # total gradient of h_i, [B, H, W, k]
            r, u = tf.split(gates[i], 2, axis=-1)
            h_prev, cand = prev[i], cands[i]
            du = dh * (h_prev - cand)
            db = dh * (1.0 - u) * tf.cast(cand > 0, cand.dtype)  # through the ReLU
            d_rh = conv_input_grad(db, wc_h, tf.shape(h_prev))  # [B, H, W, k]
            da = tf.concat([d_rh * h_prev, du], -1) * gates[i] * (1.0 - gates[i])
            # -> h_{i-1}
            dh = dh * u + d_rh * r + conv_input_grad(da, wg_h, tf.shape(h_prev))
            d_gates[i], d_cands[i] = da, db
        d_gx = tf.stack(d_gates, axis=1)  # [B, T, H, W, 2k]
        d_cx = tf.stack(d_cands, axis=1)  # [B, T, H, W, k]
        fold = lambda xs: tf.concat(xs, axis=0)  # noqa: E731  T x [B, ...] -> [T*B, ...]
        d_wg = conv_filter_grad(fold(prev), fold(d_gates), wg_h)  # [3, 3, k, 2k]
        d_wc = conv_filter_grad(fold(resets), fold(d_cands), wc_h)  # [3, 3, k, k]
        return d_gx, d_cx, d_wg, d_wc, dh

    return out, grad


class ConvGRU(keras.layers.Layer):
    """Convolutional GRU unrolled once per frame (paper section 3.1).

    Inputs x: [B, T, H, W, C_x]; optional initial state h0: [B, H, W, units]
    (zeros when absent, the paper's pure-generation case; DVD-GAN-FP feeds a frame
    encoder's output). For t = 1..T, with SN 3x3 convs (paper: size not stated):
      r = sigmoid(W_r * [h; x_t]),  u = sigmoid(W_u * [h; x_t]),
      c = ReLU(W_c * [x_t; r . h]),
      h_t = u . h_{t-1} + (1 - u) . c.
    Returns every h_t: [B, T, H, W, units].

    A convolution of a channel concatenation is the sum of the convolutions of its
    parts, so the x-half of every gate is computed for all frames in one conv
    (time folded into batch) and only the h-half runs inside the time loop.
    """

    def __init__(
        self, units: int, kernel_size: int = 3, sn_epsilon: float = 1e-4, **kwargs
    ):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"units must be >= 1; received units={units!r}")
        self.units = units
        self.kernel_size = kernel_size
        self.sn_epsilon = sn_epsilon

    def build(self, x_shape, h0_shape=None):
        c_x = x_shape[-1]
        concat_shape = (None, None, None, self.units + c_x)
        kw = dict(kernel_size=self.kernel_size, sn_epsilon=self.sn_epsilon)
        # Input channel order of each kernel: [h; x] for r/u, [x; r.h] for c.
        self.gates = SNConv2D(2 * self.units, name="gates", **kw)  # r and u together
        self.candidate = SNConv2D(self.units, name="candidate", **kw)
        self.gates.build(concat_shape)
        self.candidate.build(concat_shape)

    def call(self, x, h0=None, training=False):
        b, t, h, w, c_x = x.shape
        b = tf.shape(x)[0] if b is None else b
        k = self.units
        wg = tf.cast(self.gates.normalized_kernel(training), x.dtype)  # [3,3,k+Cx,2k]
        wc = tf.cast(
            self.candidate.normalized_kernel(training), x.dtype
        )  # [3,3,Cx+k,k]
        wg_h, wg_x = wg[:, :, :k], wg[:, :, k:]
        wc_x, wc_h = wc[:, :, :c_x], wc[:, :, c_x:]
        bg = tf.cast(self.gates.bias, x.dtype)
        bc = tf.cast(self.candidate.bias, x.dtype)

        x_flat = tf.reshape(x, [-1, h, w, c_x])  # [B*T, H, W, Cx]: time folded
        gx = conv_same(x_flat, wg_x) + bg  # [B*T, H, W, 2k]
        cx = conv_same(x_flat, wc_x) + bc  # [B*T, H, W, k]
        gx = tf.reshape(gx, [b, t, h, w, 2 * k])  # [B, T, H, W, 2k]
        cx = tf.reshape(cx, [b, t, h, w, k])  # [B, T, H, W, k]
        state = tf.zeros([b, h, w, k], x.dtype) if h0 is None else tf.cast(h0, x.dtype)
        return gru_recurrence(gx, cx, wg_h, wc_h, state)  # [B, T, H, W, k]

    def compute_output_shape(self, x_shape, h0_shape=None):
        return (*x_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_size": self.kernel_size,
            "sn_epsilon": self.sn_epsilon,
        }
