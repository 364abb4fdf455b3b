"""Safe save/load of cnnfast.nn models: one .npz holding every state_dict array under its torch
key name, plus "__architecture__", the UTF-8 JSON of the module tree (each layer's registered
class name and constructor arguments; containers list their children, and a layer whose
constructor builds its own children saves only its arguments). Loading reads with
allow_pickle=False, builds layers only from REGISTRY and never evaluates anything; any
malformed, truncated or tampered file raises ValueError. ``rng`` arguments are not saved: a
loaded Dropout or StochasticPool2d draws from fresh entropy until given a Generator.
"""

import collections
import json
import zipfile
import zlib

import numpy as np

from .init import skip_init
from .module import REGISTRY, Module
from .._typing import PathLike

ARCHITECTURE_KEY = "__architecture__"
FORMAT, VERSION = "cnnfast.nn", 1


def _spec(module, where):
    name = type(module).__name__
    if REGISTRY.get(name) is not type(module):
        raise TypeError(f"save: {where or 'the model'} is a {name}, which is not a registered "
                        f"cnnfast.nn layer (decorate its class with cnnfast.nn.register)")
    spec = {"type": name, "config": module._config}
    if module._container or module._composite:
        spec["children"] = [[child_name, _spec(child, f"{where}.{child_name}" if where else
                                               child_name)]
                            for child_name, child in module._modules.items()]
    elif module._modules and not module._builds_children and not module._composite:
        raise TypeError(f"save: {where or 'the model'} ({name}) has child modules but is not a "
                        f"container layer")
    return spec


def save(model: Module, path: PathLike) -> None:
    """Writes ``model`` to ``path`` (the exact name: no ".npz" is appended)."""
    architecture = {"format": FORMAT, "version": VERSION, "model": _spec(model, "")}
    try:
        text = json.dumps(architecture)
    except TypeError as error:
        raise TypeError(f"save: a constructor argument cannot be written as JSON: {error}") \
            from None
    arrays = model.state_dict()
    arrays[ARCHITECTURE_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(path: PathLike) -> Module:
    """Reads a model written by ``Module.save``; returns it in eval mode.

    Raises ValueError naming the problem for a file that is not such a model: not an .npz,
    truncated, an array that needs pickle, bad JSON, an unknown layer or bad constructor
    arguments, or arrays missing, extra, mis-shaped or of the wrong dtype.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``Module.save``.

    Returns
    -------
    cnnfast.nn.Module
        The model, in eval mode.

    Raises
    ------
    ValueError
        Any malformed, truncated or tampered file (nothing in it is executed or unpickled).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU()).save(path)
    >>> nn.load(path)
    Sequential(
      (0): Linear(in_features=3, out_features=2, bias=True)
      (1): ReLU(inplace=False)
    )
    >>> with open(path, "r+b") as f:
    ...     _ = f.write(b"garbage")
    >>> nn.load(path)
    Traceback (most recent call last):
        ...
    ValueError: cnnfast.nn.load: ...
    """
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an .npz archive")
        with data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"cnnfast.nn.load: {path} is not a readable cnnfast model file "
                         f"({type(error).__name__}: {error})") from None
    text = arrays.pop(ARCHITECTURE_KEY, None)
    if text is None or text.dtype != np.uint8 or text.ndim != 1:
        raise ValueError(f"cnnfast.nn.load: {path} has no {ARCHITECTURE_KEY} (uint8 JSON) "
                         f"entry: not a cnnfast model file")
    try:
        architecture = json.loads(text.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as error:  # also JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"cnnfast.nn.load: {path}: the architecture is not valid JSON or is "
                         f"nested too deeply ({error})") from None
    if not isinstance(architecture, dict) or architecture.get("format") != FORMAT or \
            architecture.get("version") != VERSION or "model" not in architecture:
        raise ValueError(f"cnnfast.nn.load: {path}: expected a {FORMAT} version {VERSION} "
                         f"architecture")
    try:
        with skip_init():
            model = _build(architecture["model"], "")
    except RecursionError:
        raise ValueError(f"cnnfast.nn.load: {path}: the architecture is nested too deeply") \
            from None
    try:
        model.load_state_dict(arrays, strict=True)
    except (ValueError, TypeError) as error:
        raise ValueError(f"cnnfast.nn.load: {path}: {error}") from None
    return model.eval()


def _build(spec, where):
    label = where or "the model"
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str) or \
            not isinstance(spec.get("config", {}), dict):
        raise ValueError(f"cnnfast.nn.load: {label}: expected {{'type': name, 'config': "
                         f"{{...}}}}, got {spec!r:.200}")
    cls = REGISTRY.get(spec["type"])
    if cls is None:
        raise ValueError(f"cnnfast.nn.load: {label}: unknown layer type {spec['type']!r:.100}")
    config = spec.get("config") or {}
    args, built = (), []
    if cls._container or cls._composite:
        children = spec.get("children")
        if not isinstance(children, list) or not all(
                isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) for c in children):
            raise ValueError(f"cnnfast.nn.load: {label} ({spec['type']}): 'children' must be a "
                             f"list of [name, layer] pairs")
        built = [(name, _build(child, f"{where}.{name}" if where else name))
                 for name, child in children]
    if cls._container:
        if [name for name, _ in built] == [str(i) for i in range(len(built))]:
            args = tuple(module for _, module in built)
        else:
            args = (collections.OrderedDict(built),)
    try:
        module = cls(*args, **config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cnnfast.nn.load: {label} ({spec['type']}): bad constructor "
                         f"arguments {config!r:.200}: {error}") from None
    if cls._composite:
        # The saved children replace the ones the constructor built (they may be fused), and
        # must be exactly those: a block's forward() reads its children by name.
        names = [name for name, _ in built]
        if sorted(names) != sorted(module._modules):
            raise ValueError(f"cnnfast.nn.load: {label} ({spec['type']}): children {names} "
                             f"differ from the block's {list(module._modules)}")
        for name, child in built:
            module._modules[name] = child
    return module
