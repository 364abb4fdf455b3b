"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d over cnnfast's functional
convolutions. Constructor arguments, weight layouts (OIHW; transposed IOHW) and state_dict keys
("weight", "bias") follow torch.nn, plus ``activation=`` / ``negative_slope=`` for the fused
epilogue that fuse() fills in. A further dimensionality (Conv3d, ConvTranspose3d) is a subclass
that sets ``dims`` and ``_op``.
"""

import math

import numpy as np

from .. import _C, functional
from .. import transposed as transposed_ops
from .._args import check_activation, conv_padding, int_tuple, is_int
from .module import Module, register
from .init import initializing, make_rng, uniform
from .._typing import Activation, Float32Array, IntOrTuple, OptionalArray, OutputSize, Padding, Rng


def _positive(value, name, op):
    if not is_int(value) or value < 1:
        raise ValueError(f"{op}: {name} must be an int >= 1, got {value!r}")
    return int(value)


class _ConvBase(Module):
    """Shared construction: argument checks, the weight of shape
    (out_channels, in_channels/groups, *kernel) or, transposed, (in_channels,
    out_channels/groups, *kernel), and torch's default initialisation (kaiming_uniform with
    a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias)."""

    dims = 2
    transposed = False
    _not_saved = ("rng",)

    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
               bias, padding_mode, activation, negative_slope, rng, output_padding=0):
        op = type(self).__name__
        super().__init__()
        self.in_channels = _positive(in_channels, "in_channels", op)
        self.out_channels = _positive(out_channels, "out_channels", op)
        self.groups = _positive(groups, "groups", op)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{op}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.kernel_size = int_tuple(kernel_size, self.dims, op, "kernel_size")
        self.stride = int_tuple(stride, self.dims, op, "stride")
        self.dilation = int_tuple(dilation, self.dims, op, "dilation")
        for name, values in (("kernel_size", self.kernel_size), ("stride", self.stride),
                             ("dilation", self.dilation)):
            if min(values) < 1:
                raise ValueError(f"{op}: {name} must be >= 1, got {values}")
        modes = ("zeros",) if self.transposed else ("zeros", "reflect", "replicate", "circular")
        if padding_mode not in modes:
            raise ValueError(f"{op}: padding_mode must be one of {modes}, got {padding_mode!r}")
        if self.transposed and isinstance(padding, str):
            raise ValueError(f"{op}: padding must be an int or a tuple (no padding strings for "
                             f"transposed convolutions), got {padding!r}")
        # Checked now with the kernel as a stand-in size; the real pads depend on the input only
        # for "same".
        conv_padding(padding, self.kernel_size, self.kernel_size, self.stride, self.dilation, op)
        self.padding = padding if isinstance(padding, str) or is_int(padding) else tuple(padding)
        self.padding_mode = padding_mode
        self.output_padding = int_tuple(output_padding, self.dims, op, "output_padding")
        if any(p >= max(s, d) for p, s, d in zip(self.output_padding, self.stride,
                                                 self.dilation)):
            raise ValueError(f"{op}: output_padding {self.output_padding} must be smaller than "
                             f"the stride {self.stride} or the dilation {self.dilation}")
        check_activation(activation, op)
        self.activation, self.negative_slope = activation, float(negative_slope)

        if self.transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        fan_in = shape[1] * math.prod(self.kernel_size)  # torch's fan_in of this weight
        bound = 1.0 / math.sqrt(fan_in)
        rng = make_rng(rng) if initializing() else None
        self.register_parameter("weight", uniform(rng, bound, shape))
        self.register_parameter("bias", uniform(rng, bound, (self.out_channels,)) if bias
                                else None)


class _Conv(_ConvBase):
    _op = staticmethod(functional.conv2d)
    # None: the op's default layout (NCHW); "NHWC" once a network runs channels-last
    # (cnnfast.models' channels_last()). Not a constructor argument: it is how the layer is run.
    layout = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 activation: Activation = None, negative_slope: float = 0.01,
                 rng: Rng = None) -> None:
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, activation, negative_slope, rng)

    def forward(self, x: Float32Array) -> Float32Array:
        kw = {} if self.layout is None else {"layout": self.layout}
        return self._op(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups, padding_mode=self.padding_mode, activation=self.activation,
                        negative_slope=self.negative_slope, **kw)

    def _packed_weight(self, nhwc=None):
        """The weight packed for the GEMM kernel that runs and the layer's layout
        (_C.conv2d_prepack_weight), made on first use and kept until a new array is assigned
        (assigning, load_state_dict and fuse() replace the array; the original is then marked
        read-only so that an in-place edit raises instead of going stale), a max_isa cap
        changes the kernel, or the layout changes. None when the weights run a non-GEMM
        algorithm (depthwise, direct), which reads them as they are. ``nhwc`` overrides the
        layout's packing (an NCHW call that computes as NHWC, _C.conv2d_runs_via_nhwc)."""
        if self.dims != 2:
            return None
        if nhwc is None:
            nhwc = self.layout == "NHWC"
        return self._pack_once(self.weight, (_C.gemm_kernel(), nhwc),
                               lambda w: _C.conv2d_prepack_weight(w, self.groups, nhwc))


class _ConvTranspose(_ConvBase):
    transposed = True
    _op = staticmethod(transposed_ops.conv_transpose2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                 groups: int = 1, bias: bool = True, dilation: IntOrTuple = 1,
                 padding_mode: str = "zeros", *, activation: Activation = None,
                 negative_slope: float = 0.01, rng: Rng = None) -> None:
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, activation, negative_slope, rng, output_padding)

    def forward(self, x: Float32Array, output_size: OutputSize = None) -> Float32Array:
        return self._op(x, self.weight, self.bias, self.stride, self.padding,
                        self.output_padding, self.groups, self.dilation, output_size=output_size,
                        activation=self.activation, negative_slope=self.negative_slope)


@register
class Conv1d(_Conv):
    """torch.nn.Conv1d on (N, C_in, L): cnnfast.conv1d with the layer's weight and bias.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out; both divisible by ``groups``.
    kernel_size, stride, dilation : int
    padding : int, (int, int) or str
        As :func:`cnnfast.conv1d`.
    groups : int
    bias : bool
        Learn a bias (initialised as torch's).
    padding_mode : str
        "zeros", "reflect", "replicate" or "circular".
    activation : str, optional
        A fused activation (fuse() sets it when it folds a following activation layer).
    negative_slope : float
        The slope of "leaky_relu".
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights (torch's kaiming-uniform default).

    Attributes
    ----------
    weight : numpy.ndarray
        (out_channels, in_channels/groups, kernel_size) float32.
    bias : numpy.ndarray or None
        (out_channels,) float32.

    Raises
    ------
    ValueError
        Channels, kernel, stride or dilation < 1, groups that do not divide the channels, a bad
        padding or padding_mode.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> conv = nn.Conv1d(2, 4, 3, padding=1, rng=0)
    >>> conv.weight.shape, conv(np.ones((1, 2, 10), np.float32)).shape
    ((4, 2, 3), (1, 4, 10))
    """

    dims = 1
    _op = staticmethod(functional.conv1d)


@register
class Conv2d(_Conv):
    """torch.nn.Conv2d on (N, C_in, H, W): cnnfast.conv2d with the layer's weight and bias,
    packed once into the GEMM's panels (the functional call reorders and packs it every
    time).

    Assign a new array (or call ``load_state_dict``) to change the weight: the packed copy
    follows, and the weight array is made read-only so that an in-place edit raises instead of
    leaving a stale packed copy.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out; both divisible by ``groups``.
    kernel_size, stride, dilation : int or (int, int)
    padding : int, tuple or str
        As :func:`cnnfast.conv2d` (int, pair, 4-tuple, "same", "valid").
    groups : int
    bias : bool
        Learn a bias (initialised as torch's).
    padding_mode : str
        "zeros", "reflect", "replicate" or "circular".
    activation : str, optional
        A fused activation (fuse() sets it when it folds a following activation layer).
    negative_slope : float
        The slope of "leaky_relu".
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights (torch's kaiming-uniform default).

    Attributes
    ----------
    weight : numpy.ndarray
        (out_channels, in_channels/groups, kh, kw) float32 (OIHW, torch's key "weight").
    bias : numpy.ndarray or None
        (out_channels,) float32.

    Raises
    ------
    ValueError
        As :class:`Conv1d`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> from cnnfast import nn
    >>> conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, rng=0)
    >>> x = np.ones((1, 3, 32, 32), np.float32)
    >>> y = conv(x)
    >>> y.shape, conv.weight.shape, conv.bias.shape
    ((1, 8, 16, 16), (8, 3, 3, 3), (8,))
    >>> bool(np.allclose(y, cnnfast.conv2d(x, conv.weight, conv.bias, 2, 1), atol=1e-6))
    True
    """

    dims = 2
    _op = staticmethod(functional.conv2d)

    def forward(self, x: Float32Array, residual: OptionalArray = None,
                residual_activation: Activation = None) -> Float32Array:
        """The convolution of x; with ``residual`` (an array of the output's shape) the
        epilogue computes ``act(conv + bias + residual)``, act being ``residual_activation``
        when given, else the layer's own activation: a fused residual block's last
        convolution (ResNet's shortcut add and ReLU, with no pass of their own)."""
        activation = self.activation
        if residual is not None and residual_activation is not None:
            check_activation(residual_activation, "Conv2d")
            activation = residual_activation
        if (self.padding_mode == "zeros" and type(x) is np.ndarray and x.ndim == 4
                and x.dtype == np.float32 and x.flags.c_contiguous):
            # The common case goes straight to the extension: the layer's arguments were
            # checked at construction and its arrays are owned float32 (Module), so only the
            # padding, which "same" makes depend on the input size, is resolved, once per size
            # (with whether the call runs via NHWC, which decides how the weight is packed).
            # The extension validates the shapes and names them in its errors, as the
            # functional path does. Saves ~10-20 us of argument parsing per call.
            nhwc = self.layout == "NHWC"
            spatial = x.shape[1:3] if nhwc else x.shape[2:4]
            key = (self.padding, nhwc, x.shape[1:])
            cache = self.__dict__.setdefault("_pads", {})
            plan = cache.get(key)
            if plan is None or plan[2] is not self.weight:
                (top, bottom), (left, right) = conv_padding(
                    self.padding, spatial, self.kernel_size, self.stride, self.dilation, "conv2d")
                pads = (top, bottom, left, right)
                # An NCHW call that computes as NHWC (A read in place from a padded NHWC copy,
                # or NHWC copies of small images) reads the weight packed for NHWC.
                via = not nhwc and _C.conv2d_runs_via_nhwc(
                    x, self.weight, self.stride, pads, self.dilation, self.groups)
                plan = cache[key] = (pads, nhwc or via, self.weight)
            packed = self._packed_weight(plan[1])
            return _C.conv2d(x, self.weight, self.bias, self.stride, plan[0], self.dilation,
                             self.groups, activation, self.negative_slope, nhwc, "auto", None,
                             False, None, packed, residual)
        packed = self._packed_weight()
        return functional._conv2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.dilation, self.groups, self.padding_mode, activation,
                                  self.negative_slope, self.layout or "NCHW", "auto", None,
                                  "conv2d", packed=packed, residual=residual)


@register
class ConvTranspose1d(_ConvTranspose):
    """torch.nn.ConvTranspose1d: cnnfast.conv_transpose1d; ``forward(x, output_size=None)``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, dilation
        As torch.nn.ConvTranspose1d (padding an int or (left, right); no padding strings).
    padding_mode : str
        "zeros" only.
    activation, negative_slope, rng
        As :class:`Conv1d`.

    Attributes
    ----------
    weight : numpy.ndarray
        (in_channels, out_channels/groups, kernel_size) float32.
    bias : numpy.ndarray or None
        (out_channels,) float32.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> up = nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1, rng=0)
    >>> up.weight.shape, up(np.ones((1, 4, 8), np.float32)).shape
    ((4, 2, 4), (1, 2, 16))
    """

    dims = 1
    _op = staticmethod(transposed_ops.conv_transpose1d)


@register
class ConvTranspose2d(_ConvTranspose):
    """torch.nn.ConvTranspose2d: cnnfast.conv_transpose2d; ``forward(x, output_size=None)``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, dilation
        As torch.nn.ConvTranspose2d (padding an int, pair or 4-tuple; no padding strings).
    padding_mode : str
        "zeros" only.
    activation, negative_slope, rng
        As :class:`Conv2d`.

    Attributes
    ----------
    weight : numpy.ndarray
        (in_channels, out_channels/groups, kh, kw) float32.
    bias : numpy.ndarray or None
        (out_channels,) float32.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, rng=0)
    >>> x = np.ones((1, 8, 7, 7), np.float32)
    >>> up(x).shape, up(x, output_size=(14, 14)).shape
    ((1, 4, 13, 13), (1, 4, 14, 14))
    """

    dims = 2
    _op = staticmethod(transposed_ops.conv_transpose2d)
