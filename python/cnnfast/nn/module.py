"""Module: the base of every cnnfast.nn layer. It keeps named parameters, buffers and child
modules (torch.nn's registry and state_dict key names: "features.0.weight"), the train/eval
flag, the constructor arguments (for save/load) and the per-thread trace hook that summary()
and the demo's per-layer timing use. Layers store no per-call state, so one model can serve
several Python threads at once.
"""

import collections
import contextlib
import functools
import inspect
import threading
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from .._typing import AnyArray, ArrayLike, Float32Array, ModuleT, PathLike, StateDict

# Layer classes by name: what a saved architecture may name (cnnfast.nn.load builds from it).
REGISTRY = {}

# The per-thread trace hook: when set, Module.__call__ hands (module, args, kwargs) to it
# instead of calling forward directly (it calls forward itself). Thread-local, so tracing one
# call does not disturb other threads running the same model.
_local = threading.local()

IncompatibleKeys = collections.namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")


def register(cls):
    """Class decorator: adds the layer to REGISTRY and records its constructor arguments.

    The outermost __init__ call stores its bound arguments (minus self, the positional child
    modules of containers, and the names in ``cls._not_saved``, such as ``rng``) in
    ``self._config``; save() writes them as JSON and load() calls the class with them.

    Parameters
    ----------
    cls : type
        A subclass of :class:`Module` whose constructor arguments are JSON values.

    Returns
    -------
    type
        ``cls`` itself.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> @nn.register
    ... class Scale(nn.Module):
    ...     def __init__(self, factor=2.0):
    ...         super().__init__()
    ...         self.factor = factor
    ...     def forward(self, x):
    ...         return x * np.float32(self.factor)
    >>> "Scale" in nn.REGISTRY, Scale(3.0)
    (True, Scale(factor=3.0))
    """
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        outermost = not hasattr(self, "_config")
        if outermost:
            object.__setattr__(self, "_config", None)
        init(self, *args, **kwargs)
        if outermost and type(self) is cls:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            config = {}
            for name, param in signature.parameters.items():
                if name == "self" or name in cls._not_saved or param.kind in (
                        param.VAR_POSITIONAL, param.VAR_KEYWORD):
                    continue
                config[name] = bound.arguments[name]
            object.__setattr__(self, "_config", config)

    cls.__init__ = wrapped
    REGISTRY[cls.__name__] = cls
    return cls


class Module:
    """Base class of the layers: torch.nn.Module's registry and state_dict, without autograd.

    Parameters and buffers are C-contiguous float32 NumPy arrays (``num_batches_tracked`` is a
    one-element int64 array, as in torch), assigned as attributes. ``model(x)`` runs
    ``forward``. Modules start in training mode, as in torch; ``eval()`` switches batch norm to
    its running statistics, dropout to the identity and stochastic pooling to its expectation.

    Methods follow torch.nn.Module: ``forward``, ``train(mode=True)``, ``eval()``,
    ``state_dict()``, ``load_state_dict(state_dict, strict=True)``, ``named_parameters()``,
    ``parameters()``, ``named_buffers()``, ``buffers()``, ``named_children()``, ``children()``,
    ``named_modules()``, ``modules()``, ``register_parameter``, ``register_buffer``,
    ``add_module``; plus ``fuse()`` (:func:`cnnfast.nn.fuse`) and ``save(path)``
    (:func:`cnnfast.nn.load` reads it back).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2), nn.ReLU())
    >>> print(" ".join(model.state_dict()))                    # torch.nn's key names
    0.weight 0.bias 1.weight 1.bias 1.running_mean 1.running_var 1.num_batches_tracked
    >>> model.training, model.eval().training
    (True, False)
    >>> y = model(np.ones((1, 1, 5, 5), np.float32))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> model.save(path)
    >>> bool(np.array_equal(nn.load(path)(np.ones((1, 1, 5, 5), np.float32)), y))
    True
    """

    _not_saved = ()
    _container = False  # True: the constructor takes the child modules positionally
    _builds_children = False  # True: the constructor builds the child modules itself
    # True: a block whose constructor builds its children from its arguments, but whose
    # children are saved too (fuse() may have replaced them); load() rebuilds the block from its
    # arguments, then puts the saved children in place. summary() walks into it.
    _composite = False

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_buffers", collections.OrderedDict())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registry ----------------------------------------------------------------------------

    def register_parameter(self, name: str, value: Optional[ArrayLike]) -> None:
        """Adds a parameter (float32 array, or None for an absent optional one like bias).

        Parameters
        ----------
        name : str
            The attribute and state_dict name.
        value : numpy.ndarray or None
            float32 array (copied, C-contiguous), or None.

        Raises
        ------
        TypeError
            value is not float32.

        Examples
        --------
        >>> import numpy as np
        >>> from cnnfast import nn
        >>> m = nn.Identity()
        >>> m.register_parameter("scale", np.ones(3, np.float32))
        >>> list(m.state_dict()), m.scale.dtype
        (['scale'], dtype('float32'))
        """
        self._parameters[name] = None if value is None else _own_array(value, np.float32,
                                                                        self, name)

    def register_buffer(self, name: str, value: Optional[ArrayLike]) -> None:
        """Adds a buffer: state that is saved but not learned (running statistics).

        Parameters
        ----------
        name : str
            The attribute and state_dict name.
        value : numpy.ndarray or None
            float32 (or int64) array, copied; or None.

        Examples
        --------
        >>> import numpy as np
        >>> from cnnfast import nn
        >>> m = nn.Identity()
        >>> m.register_buffer("count", np.zeros((), np.int64))
        >>> m.state_dict()["count"].dtype, list(m.named_parameters())
        (dtype('int64'), [])
        """
        dtype = np.int64 if value is not None and np.asarray(value).dtype == np.int64 \
            else np.float32
        self._buffers[name] = None if value is None else _own_array(value, dtype, self, name)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: child {name!r} must be a cnnfast.nn.Module, "
                            f"got {type(module).__name__}")
        self._modules[name] = module

    def __getattr__(self, name):
        # Only called when normal lookup fails: parameters, buffers and children.
        for registry in ("_parameters", "_buffers", "_modules"):
            table = self.__dict__.get(registry)
            if table is not None and name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        if isinstance(value, Module):
            self.add_module(name, value)
        elif name in self._parameters:
            self.register_parameter(name, value)
        elif name in self._buffers:
            self.register_buffer(name, value)
        elif name in self._modules:
            self.add_module(name, value)
        else:
            object.__setattr__(self, name, value)

    # -- traversal ---------------------------------------------------------------------------

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        return ((name, m) for name, m in self._modules.items() if m is not None)

    def children(self) -> Iterator["Module"]:
        return (m for _, m in self.named_children())

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        """(qualified name, module) for this module and every descendant, depth first.

        Parameters
        ----------
        prefix : str
            Prepended to every name.

        Returns
        -------
        generator of (str, Module)

        Examples
        --------
        >>> from cnnfast import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU()))
        >>> [name for name, _ in model.named_modules()]
        ['', '0', '1', '1.0']
        """
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        return (m for _, m in self.named_modules())

    def _named_tensors(self, registry, prefix=""):
        for name, value in getattr(self, registry).items():
            if value is not None:
                yield (f"{prefix}.{name}" if prefix else name), value
        for name, child in self.named_children():
            yield from child._named_tensors(registry, f"{prefix}.{name}" if prefix else name)

    def named_parameters(self) -> Iterator[Tuple[str, Float32Array]]:
        return self._named_tensors("_parameters")

    def parameters(self) -> Iterator[Float32Array]:
        return (p for _, p in self.named_parameters())

    def named_buffers(self) -> Iterator[Tuple[str, AnyArray]]:
        return self._named_tensors("_buffers")

    def buffers(self) -> Iterator[AnyArray]:
        return (b for _, b in self.named_buffers())

    def _slots(self, prefix=""):
        """(key, owning module, registry, local name) for every present parameter and buffer,
        in torch's state_dict order (a module's parameters, its buffers, then its children)."""
        for registry in ("_parameters", "_buffers"):
            for name, value in getattr(self, registry).items():
                if value is not None:
                    yield (f"{prefix}{name}", self, registry, name)
        for name, child in self.named_children():
            yield from child._slots(f"{prefix}{name}.")

    # -- state -------------------------------------------------------------------------------

    def state_dict(self) -> "collections.OrderedDict[str, AnyArray]":
        """An ordered dict of copies of every parameter and buffer under torch.nn's key names.

        Returns
        -------
        collections.OrderedDict
            Key -> array copy: a module's parameters, then its buffers, then its children's.

        Examples
        --------
        >>> from cnnfast import nn
        >>> bn = nn.BatchNorm2d(4)
        >>> [(key, value.shape) for key, value in bn.state_dict().items()][-2:]
        [('running_var', (4,)), ('num_batches_tracked', ())]
        """
        return collections.OrderedDict(
            (key, getattr(owner, registry)[name].copy()) for key, owner, registry, name in
            self._slots())

    def load_state_dict(self, state_dict: StateDict, strict: bool = True) -> IncompatibleKeys:
        """Copies arrays (NumPy arrays, or anything with ``__array__`` such as torch tensors)
        into the parameters and buffers.

        Every key is checked before anything is assigned: a key whose shape differs, or a
        value that is not float32 (int64 for ``num_batches_tracked``), raises ValueError or
        TypeError naming the key; with ``strict`` missing or unexpected keys raise ValueError
        naming them.

        Parameters
        ----------
        state_dict : mapping
            Key -> array (or anything with ``__array__``, such as a CPU torch tensor).
        strict : bool
            Require exactly the model's keys.

        Returns
        -------
        IncompatibleKeys
            (missing_keys, unexpected_keys).

        Raises
        ------
        ValueError, TypeError
            As above; nothing is assigned then.

        Examples
        --------
        >>> import numpy as np
        >>> from cnnfast import nn
        >>> fc = nn.Linear(2, 1, rng=0)
        >>> fc.load_state_dict({"weight": np.array([[1, 2]], np.float32),
        ...                     "bias": np.zeros(1, np.float32)})
        IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        >>> fc(np.array([[3, 4]], np.float32))
        array([[11.]], dtype=float32)
        >>> fc.load_state_dict({"weight": np.ones((2, 2), np.float32)}, strict=False)
        Traceback (most recent call last):
            ...
        ValueError: load_state_dict: 'weight' has shape (2, 2), the model expects (1, 2)
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict: expected a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        slots = {key: (owner, registry, name) for key, owner, registry, name in self._slots()}
        missing = [key for key in slots if key not in state_dict]
        unexpected = [key for key in state_dict.keys() if key not in slots]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(f"load_state_dict ({type(self).__name__}): " + "; ".join(parts))
        updates = []
        for key, (owner, registry, name) in slots.items():
            if key not in state_dict:
                continue
            current = getattr(owner, registry)[name]
            value = np.asarray(state_dict[key])
            if value.shape != current.shape:
                raise ValueError(f"load_state_dict: {key!r} has shape {value.shape}, the model "
                                 f"expects {current.shape}")
            if value.dtype != current.dtype:
                raise TypeError(f"load_state_dict: {key!r} has dtype {value.dtype}, the model "
                                f"holds {current.dtype} (no silent conversion: pass "
                                f"value.astype(numpy.{current.dtype}))")
            updates.append((owner, registry, name, value))
        for owner, registry, name, value in updates:
            getattr(owner, registry)[name] = _own_array(value, value.dtype)
        return IncompatibleKeys(missing, unexpected)

    # -- mode --------------------------------------------------------------------------------

    def train(self: ModuleT, mode: bool = True) -> ModuleT:
        """Sets training mode on this module and every descendant; returns self.

        Parameters
        ----------
        mode : bool
            True: training mode; False: eval mode (as ``eval()``).

        Returns
        -------
        Module
            self.

        Examples
        --------
        >>> from cnnfast import nn
        >>> model = nn.Sequential(nn.BatchNorm2d(2), nn.Dropout())
        >>> [m.training for m in model.train(False).modules()]
        [False, False, False]
        """
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self: ModuleT) -> ModuleT:
        return self.train(False)

    # -- running -----------------------------------------------------------------------------

    def __getstate__(self) -> Dict[str, Any]:
        # copy.deepcopy and pickle: per-call caches (a packed weight is an extension object)
        # are left out and rebuilt on the copy's first call.
        return {k: v for k, v in self.__dict__.items() if k not in ("_packed", "_pads")}

    def _pack_once(self, weight: Any, key: Any, pack: Any) -> Any:
        """``pack(weight)`` made on first use and kept while ``weight`` is the same array and
        ``key`` (e.g. the GEMM kernel and layout) is unchanged; assigning a new array (or
        load_state_dict, fuse()) repacks. A packed original is made read-only, so that an
        in-place edit raises instead of leaving the packed copy stale. ``pack`` may return
        None (nothing to pack). Kept as ``self._packed = (weight, packed, key)``."""
        cached = self.__dict__.get("_packed")
        if cached is not None and cached[0] is weight and cached[2] == key:
            return cached[1]
        packed = pack(weight)
        if packed is not None:
            weight.flags.writeable = False
        object.__setattr__(self, "_packed", (weight, packed, key))
        return packed

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Every layer's first argument is its input array: a clear TypeError here instead of an
        # AttributeError from whichever attribute forward() reads first.
        if args and not isinstance(args[0], np.ndarray):
            raise TypeError(f"{type(self).__name__}: the input must be a numpy.ndarray of "
                            f"float32, got {type(args[0]).__name__}")
        tracer = getattr(_local, "tracer", None)
        if tracer is None:
            return self.forward(*args, **kwargs)
        return tracer(self, args, kwargs)

    def forward(self, x: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def fuse(self: ModuleT) -> ModuleT:
        """Folds every Conv -> BatchNorm (-> activation) chain inside a Sequential into one
        convolution with the activation in its epilogue (see cnnfast.nn.fuse); in place,
        returns self.

        Returns
        -------
        Module
            self.

        Examples
        --------
        >>> from cnnfast import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, rng=0), nn.BatchNorm2d(8), nn.ReLU())
        >>> [type(m).__name__ for m in model.eval().fuse()]
        ['Conv2d', 'Identity', 'Identity']
        """
        from .fuse import fuse

        return fuse(self)

    def save(self, path: PathLike) -> None:
        """Writes the architecture (JSON) and the state_dict into one .npz file (see
        cnnfast.nn.load).

        Parameters
        ----------
        path : str or os.PathLike
            The file name, used as given (no ".npz" is appended).

        Raises
        ------
        TypeError
            A layer in the model is not a registered cnnfast.nn layer.

        Examples
        --------
        >>> import os, tempfile
        >>> from cnnfast import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "relu.npz")
        >>> nn.Sequential(nn.ReLU()).save(path)
        >>> nn.load(path)
        Sequential(
          (0): ReLU(inplace=False)
        )
        """
        from .serialize import save

        save(self, path)

    # -- printing ----------------------------------------------------------------------------

    def extra_repr(self) -> str:
        config = getattr(self, "_config", None) or {}
        return ", ".join(f"{k}={v!r}" for k, v in config.items())

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


def _own_array(value, dtype, module=None, name=None):
    """A C-contiguous copy owned by the module (callers' arrays are never aliased)."""
    value = np.asarray(value)
    if value.dtype != dtype:
        where = f"{type(module).__name__}.{name}: " if module is not None else ""
        raise TypeError(f"{where}expected a {np.dtype(dtype)} array, got dtype {value.dtype} "
                        f"(no silent conversion: pass value.astype(numpy.{np.dtype(dtype)}))")
    return np.array(value, dtype=dtype, order="C", copy=True)


@contextlib.contextmanager
def trace(tracer):
    """Context manager: within it, every Module call in this thread goes through
    ``tracer(module, args, kwargs)``, which must call ``module.forward(*args, **kwargs)``."""
    previous = getattr(_local, "tracer", None)
    _local.tracer = tracer
    try:
        yield
    finally:
        _local.tracer = previous
