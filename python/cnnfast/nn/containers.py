"""Containers and shape layers: Sequential (torch.nn's), Add (a residual: the sum of its
branches applied to one input), Concat (the branches' outputs joined on the channel axis),
Identity and Flatten. Child key names follow torch.nn: "0", "1", ... or the given names.
"""

import collections
from typing import Any, Iterator, Union

import numpy as np

from .._args import is_int
from .module import Module, register
from .._typing import Float32Array


def _add_children(container, modules):
    """Children from positional modules, or from one OrderedDict of name -> module."""
    if len(modules) == 1 and isinstance(modules[0], collections.OrderedDict):
        items = list(modules[0].items())
    else:
        items = [(str(i), m) for i, m in enumerate(modules)]
    for name, module in items:
        if not isinstance(module, Module):
            raise TypeError(f"{type(container).__name__}: child {name!r} must be a "
                            f"cnnfast.nn.Module, got {type(module).__name__}")
        container.add_module(name, module)


@register
class Sequential(Module):
    """Runs its children in order, each on the previous one's output (torch.nn.Sequential).
    ``Sequential(OrderedDict(name=module, ...))`` names the children.

    Parameters
    ----------
    *modules : Module or collections.OrderedDict
        The children, named "0", "1", ... in order, or one OrderedDict of name -> module.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0), nn.ReLU())
    >>> model(np.ones((3, 2, 2), np.float32)).shape, len(model), type(model[1]).__name__
    ((3, 2), 3, 'Linear')
    """

    _container = True

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        _add_children(self, modules)

    def forward(self, x: Float32Array) -> Float32Array:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index: Union[int, slice]) -> Module:
        values = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(collections.OrderedDict(list(self._modules.items())[index]))
        return values[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


@register
class Add(Module):
    """The sum of its branches, each applied to the same input: ``Add(block, Identity())`` is a
    residual connection (ResNet). The branches' outputs must have one shape.

    Parameters
    ----------
    *branches : Module
        At least one branch.

    Raises
    ------
    ValueError
        No branch; at run time, outputs of different shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> residual = nn.Add(nn.ReLU(), nn.Identity())            # relu(x) + x
    >>> residual(np.array([-1, 2], np.float32))
    array([-1.,  4.], dtype=float32)
    """

    _container = True

    def __init__(self, *branches: Module) -> None:
        super().__init__()
        if not branches:
            raise ValueError("Add: needs at least one branch")
        _add_children(self, branches)

    def forward(self, x: Float32Array) -> Float32Array:
        outputs = [branch(x) for branch in self._modules.values()]
        shapes = {y.shape for y in outputs}
        if len(shapes) != 1:
            raise ValueError(f"Add: the branches' outputs differ in shape: "
                             f"{[y.shape for y in outputs]}")
        total = outputs[0] + outputs[1] if len(outputs) > 1 else outputs[0].copy()
        for y in outputs[2:]:
            total += y
        return total


@register
class Concat(Module):
    """The branches' outputs (each applied to the same input) concatenated on axis ``dim``
    (default 1, the channels of NCHW): Inception's join.

    Parameters
    ----------
    *branches : Module
        At least one branch.
    dim : int
        The axis to join on.

    Raises
    ------
    ValueError
        No branch; at run time, outputs that cannot be joined.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> join = nn.Concat(nn.Identity(), nn.MaxPool2d(3, 1, 1))
    >>> join(np.ones((1, 2, 4, 4), np.float32)).shape
    (1, 4, 4, 4)
    """

    _container = True

    def __init__(self, *branches: Module, dim: int = 1) -> None:
        super().__init__()
        if not branches:
            raise ValueError("Concat: needs at least one branch")
        self.dim = int(dim)
        _add_children(self, branches)

    def forward(self, x: Float32Array) -> Float32Array:
        outputs = [branch(x) for branch in self._modules.values()]
        try:
            return np.concatenate(outputs, axis=self.dim)
        except ValueError as error:
            raise ValueError(f"Concat: cannot join outputs of shapes "
                             f"{[y.shape for y in outputs]} on dim {self.dim}: {error}") from None


@register
class Identity(Module):
    """Returns its input (fuse() leaves one where a folded batch norm or activation was, so the
    other layers keep their state_dict keys).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> x = np.ones(3, np.float32)
    >>> nn.Identity()(x) is x
    True
    """

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: Float32Array) -> Float32Array:
        return x


@register
class Flatten(Module):
    """Joins axes start_dim..end_dim into one (torch.nn.Flatten): a view, no copy.

    Parameters
    ----------
    start_dim, end_dim : int
        The first and last axes joined (negative counts from the end).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.Flatten()(np.zeros((2, 3, 4, 5), np.float32)).shape
    (2, 60)
    >>> nn.Flatten(0, 1)(np.zeros((2, 3, 4), np.float32)).shape
    (6, 4)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not is_int(value):
                raise TypeError(f"Flatten: {name} must be an int, got {value!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Float32Array) -> Float32Array:
        if not all(-x.ndim <= d < x.ndim for d in (self.start_dim, self.end_dim)):
            raise ValueError(f"Flatten: start_dim {self.start_dim} and end_dim {self.end_dim} "
                             f"must be axes of the input, of shape {x.shape}")
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        if start > end:
            raise ValueError(f"Flatten: start_dim {self.start_dim} comes after end_dim "
                             f"{self.end_dim} for input shape {x.shape}")
        size = int(np.prod(x.shape[start:end + 1]))
        return x.reshape(x.shape[:start] + (size,) + x.shape[end + 1:])
