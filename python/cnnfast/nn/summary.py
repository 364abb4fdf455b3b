"""summary(model, input_shape): a per-layer table of a cnnfast.nn model, found by running a zero
input through it (eval mode) with a trace hook: output shape, parameters, multiply-adds, and the
receptive field and jump (the product of strides, in input pixels) at that depth, plus totals.
Re-exported as cnnfast.analysis.summary.
"""

import math
from typing import Sequence

import numpy as np

from .containers import Flatten
from .conv import _ConvBase
from .linear import Linear
from .module import Module, trace
from .pool import SPP, StochasticPool2d, _Adaptive, _AvgPool, _MaxPool

COLUMNS = ("layer", "type", "output shape", "params", "MACs", "RF", "jump")


class Summary:
    """The table: ``rows`` (dicts with keys name, type, output_shape, params, macs,
    receptive_field, jump; the last two per spatial axis), ``total_params``, ``total_macs``,
    ``input_shape``. ``str()`` gives the printed table.

    Attributes
    ----------
    rows : list of dict
        One per layer: name, type, output_shape, params, macs, receptive_field, jump (the last
        two per spatial axis).
    total_params, total_macs : int
        Totals over the model.
    input_shape : tuple of int
        The shape the model was run on.

    Examples
    --------
    >>> from cnnfast import nn
    >>> s = nn.summary(nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU()), (1, 3, 9, 9),
    ...                quiet=True)
    >>> s.rows[0]["output_shape"], s.rows[0]["receptive_field"], s.rows[0]["jump"]
    ((1, 8, 4, 4), (3.0, 3.0), (2.0, 2.0))
    >>> print(s)
    input (1, 3, 9, 9)
    ----------------------------------------------------
    layer  type    output shape  params   MACs  RF  jump
    ----------------------------------------------------
    0      Conv2d  (1, 8, 4, 4)     224  3,456   3     2
    1      ReLU    (1, 8, 4, 4)       0      0   3     2
    ----------------------------------------------------
    total parameters: 224  (0.00 M)
    total multiply-adds: 3,456  (0.000 G)
    """

    def __init__(self, input_shape, rows, total_params):
        self.input_shape, self.rows = tuple(input_shape), rows
        self.total_params = total_params
        self.total_macs = sum(row["macs"] for row in rows)

    def __str__(self):
        cells = [COLUMNS] + [(
            r["name"], r["type"], str(r["output_shape"]), f"{r['params']:,}", f"{r['macs']:,}",
            _axes(r["receptive_field"]), _axes(r["jump"])) for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
        right = (False, False, False, True, True, True, True)

        def line(row):
            return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths,
                                                                                  right))
        rule = "-" * len(line(cells[0]))
        out = [f"input {self.input_shape}", rule, line(cells[0]), rule]
        out += [line(row) for row in cells[1:]]
        out += [rule, f"total parameters: {self.total_params:,}  "
                      f"({self.total_params / 1e6:.2f} M)",
                f"total multiply-adds: {self.total_macs:,}  ({self.total_macs / 1e9:.3f} G)"]
        return "\n".join(out)

    def __repr__(self):
        return str(self)


def _axes(values):
    text = [f"{v:g}" for v in values]
    return "-" if not text else text[0] if len(set(text)) == 1 else "x".join(text)


def summary(model: Module, input_shape: Sequence[int], *, quiet: bool = False) -> Summary:
    """Prints (unless ``quiet``) and returns the :class:`Summary` of ``model`` for an input of
    ``input_shape`` (the full shape, batch first: e.g. (1, 3, 224, 224)).

    Multiply-adds count convolutions (output elements x C_in/groups x kernel taps; transposed:
    input elements x C_out/groups x taps) and Linear layers; batch norm, pooling and
    activations count 0 (the published ResNet/MobileNet figures count the same way). The
    receptive field r and jump j of a layer's output, per spatial axis, in input pixels:
    r = r_in + (k_eff - 1) * j_in and j = j_in * stride for windows (k_eff = dilation*(k-1)+1);
    adaptive pooling uses its largest bin and in/out as stride; Flatten and SPP see the whole
    map. Parallel branches (Add, Concat) take the largest. A deformable convolution counts as
    its regular grid (its learned offsets can reach further). The model runs in eval mode (its
    modes are restored afterwards), so nothing in it changes.

    Parameters
    ----------
    model : cnnfast.nn.Module
        The model.
    input_shape : tuple of int
        The full input shape, batch first.
    quiet : bool
        Do not print the table.

    Returns
    -------
    Summary
        The table.

    Raises
    ------
    ValueError
        An input_shape that is not ``(N, C, *spatial)`` with sizes >= 1, or that the model rejects.

    Examples
    --------
    >>> from cnnfast import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    ...                       nn.Conv2d(4, 4, 3, padding=1))
    >>> s = nn.summary(model, (1, 1, 8, 8), quiet=True)
    >>> s.total_params, s.total_macs, s.rows[-1]["receptive_field"]
    (188, 4608, (8.0, 8.0))
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"summary: input_shape must be (N, C, *spatial) with sizes >= 1, got "
                         f"{tuple(input_shape)}")
    x = np.zeros(shape, np.float32)
    dims = len(shape) - 2
    info = {id(x): ((1.0,) * dims, (1.0,) * dims)}
    keep = [x]  # every traced array stays alive, so no id() is reused during the trace
    frames = [[]]
    rows = []
    names = {id(m): name for name, m in model.named_modules()}

    def tracer(module, args, kwargs):
        frames.append([])
        out = module.forward(*args, **kwargs)
        children = frames.pop()
        first = out[0] if isinstance(out, tuple) else out
        src = args[0] if args else None
        field_in = info.get(id(src), ((1.0,) * dims, (1.0,) * dims))
        if not module._modules or module._builds_children:  # a leaf, or a block's own op
            field = _field(module, src, field_in)
            rows.append({"name": names.get(id(module), "?"), "type": type(module).__name__,
                         "output_shape": tuple(first.shape),
                         "params": sum(p.size for p in module._parameters.values()
                                       if p is not None),
                         "macs": _macs(module, src, first),
                         "receptive_field": field[0], "jump": field[1]})
        elif id(first) in info:
            field = info[id(first)]
        else:
            field = _widest(children or [field_in])
        info[id(first)] = field
        keep.extend((out, first))
        frames[-1].append(field)
        return out

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with trace(tracer):
            model(x)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    result = Summary(shape, rows, sum(p.size for p in model.parameters()))
    if not quiet:
        print(result)
    return result


def _widest(fields):
    """Branches joined: per axis the largest receptive field, and the largest jump."""
    rf = tuple(max(f[0][a] for f in fields) for a in range(len(fields[0][0])))
    jump = tuple(max(f[1][a] for f in fields) for a in range(len(fields[0][1])))
    return rf, jump


def _field(module, x, field_in):
    """(receptive field, jump) per spatial axis of a leaf layer's output."""
    rf, jump = field_in
    spatial = tuple(x.shape[2:]) if isinstance(x, np.ndarray) else ()
    window = None
    if isinstance(module, _ConvBase):
        window = module.kernel_size, module.stride, module.dilation, module.transposed
    elif isinstance(module, (_MaxPool, _AvgPool)):
        window = module.kernel_size, module.stride, module.dilation, False
    elif isinstance(module, StochasticPool2d):
        window = module.kernel_size, module.stride, (1, 1), False
    if window is not None and len(window[0]) == len(rf):
        kernel, stride, dilation, transposed = window
        new_rf, new_jump = [], []
        for r, j, k, s, d in zip(rf, jump, kernel, stride, dilation):
            span = d * (k - 1) + 1
            if transposed:  # each output sees about span / stride inputs
                new_rf.append(r + (math.ceil(span / s) - 1) * j)
                new_jump.append(j / s)
            else:
                new_rf.append(r + (span - 1) * j)
                new_jump.append(j * s)
        return tuple(new_rf), tuple(new_jump)
    if isinstance(module, _Adaptive) and len(spatial) == len(rf):
        size = module.output_size
        size = (size,) * len(spatial) if not isinstance(size, tuple) else size
        new_rf, new_jump = [], []
        for r, j, i, o in zip(rf, jump, spatial, size):
            o = i if o is None else o
            biggest = max(-(-(b + 1) * i // o) - b * i // o for b in range(o))
            new_rf.append(r + (biggest - 1) * j)
            new_jump.append(j * i / o)
        return tuple(new_rf), tuple(new_jump)
    if isinstance(module, (Flatten, SPP)) and len(spatial) == len(rf):
        return (tuple(r + (i - 1) * j for r, j, i in zip(rf, jump, spatial)),
                tuple(j * i for j, i in zip(jump, spatial)))
    return field_in


def _macs(module, x, y):
    if isinstance(module, _ConvBase):
        taps = math.prod(module.kernel_size)
        if module.transposed:
            return int(x.size * module.out_channels // module.groups * taps)
        return int(y.size * module.in_channels // module.groups * taps)
    if isinstance(module, Linear):
        return int(y.size * module.in_features)
    return 0
