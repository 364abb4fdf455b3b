"""from_torch(module): the cnnfast.nn copy of a torch.nn module tree built from the layers that
cnnfast.nn has (Sequential and the leaf layers, matched by exact type: a subclass may have its
own forward), with the same child names, so the torch state_dict loads key for key. torch is
imported only by the caller; cnnfast never depends on it.
"""

import collections
from typing import Any

from . import activation, containers, conv, linear, norm, pool
from .init import skip_init
from .module import Module


def _conv_args(m):
    args = dict(in_channels=m.in_channels, out_channels=m.out_channels,
                kernel_size=tuple(m.kernel_size), stride=tuple(m.stride),
                padding=m.padding if isinstance(m.padding, str) else tuple(m.padding),
                dilation=tuple(m.dilation), groups=m.groups, bias=m.bias is not None,
                padding_mode=m.padding_mode)
    if getattr(m, "transposed", False):
        args["output_padding"] = tuple(m.output_padding)
    return args


def _bn_args(m):
    return dict(num_features=m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                track_running_stats=m.track_running_stats)


def _max_pool_args(m):
    return dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                dilation=m.dilation, return_indices=m.return_indices, ceil_mode=m.ceil_mode)


def _avg_pool_args(m):
    return dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad,
                divisor_override=getattr(m, "divisor_override", None))


def _converters(tnn):
    """torch.nn class -> (cnnfast class, function of the torch module giving the arguments)."""
    none = lambda m: {}  # noqa: E731
    table = {
        tnn.Conv1d: (conv.Conv1d, _conv_args), tnn.Conv2d: (conv.Conv2d, _conv_args),
        tnn.ConvTranspose1d: (conv.ConvTranspose1d, _conv_args),
        tnn.ConvTranspose2d: (conv.ConvTranspose2d, _conv_args),
        tnn.BatchNorm1d: (norm.BatchNorm1d, _bn_args),
        tnn.BatchNorm2d: (norm.BatchNorm2d, _bn_args),
        tnn.BatchNorm3d: (norm.BatchNorm3d, _bn_args),
        tnn.Linear: (linear.Linear, lambda m: dict(in_features=m.in_features,
                                                   out_features=m.out_features,
                                                   bias=m.bias is not None)),
        tnn.Flatten: (containers.Flatten, lambda m: dict(start_dim=m.start_dim,
                                                         end_dim=m.end_dim)),
        tnn.Identity: (containers.Identity, none),
        tnn.Dropout: (activation.Dropout, lambda m: dict(p=m.p)),
        tnn.ReLU: (activation.ReLU, none), tnn.ReLU6: (activation.ReLU6, none),
        tnn.LeakyReLU: (activation.LeakyReLU, lambda m: dict(negative_slope=m.negative_slope)),
        tnn.Sigmoid: (activation.Sigmoid, none), tnn.Tanh: (activation.Tanh, none),
        tnn.SiLU: (activation.SiLU, none), tnn.Hardswish: (activation.Hardswish, none),
    }
    for dims in (1, 2, 3):
        table[getattr(tnn, f"MaxPool{dims}d")] = (getattr(pool, f"MaxPool{dims}d"),
                                                  _max_pool_args)
        table[getattr(tnn, f"AvgPool{dims}d")] = (getattr(pool, f"AvgPool{dims}d"),
                                                  _avg_pool_args)
    for dims in (2, 3):
        table[getattr(tnn, f"AdaptiveAvgPool{dims}d")] = (
            getattr(pool, f"AdaptiveAvgPool{dims}d"), lambda m: dict(output_size=m.output_size))
        table[getattr(tnn, f"AdaptiveMaxPool{dims}d")] = (
            getattr(pool, f"AdaptiveMaxPool{dims}d"),
            lambda m: dict(output_size=m.output_size, return_indices=m.return_indices))
    return table


def _torchvision_model(m):
    """The cnnfast.models network of the same architecture as a torchvision ResNet, MobileNetV2
    or VGG (by class name and module, so torchvision is never imported here), or None."""
    from .. import models

    kind = type(m).__name__
    if not type(m).__module__.startswith("torchvision.models."):
        return None
    if kind == "ResNet":
        block = "bottleneck" if type(m.layer1[0]).__name__ == "Bottleneck" else "basic"
        return models.ResNet(block, [len(getattr(m, f"layer{i}")) for i in range(1, 5)],
                             m.fc.out_features)
    if kind == "MobileNetV2":
        return models.MobileNetV2(m.classifier[-1].out_features,
                                  m.features[0][0].out_channels / 32, m.classifier[0].p)
    if kind == "VGG":
        layout, batch_norm = [], False
        for layer in m.features:
            name = type(layer).__name__
            if name == "Conv2d":
                layout.append(layer.out_channels)
            elif name == "MaxPool2d":
                layout.append("M")
            batch_norm |= name == "BatchNorm2d"
        config = next((k for k, v in models.VGG_CONFIGS.items() if v == layout), None)
        if config is not None:
            return models.VGG(config, m.classifier[-1].out_features, batch_norm,
                              m.classifier[2].p)
    return None


def _is_sequential(torch, m):
    """torch.nn.Sequential itself, or torchvision's Conv2dNormActivation (a Sequential subclass
    with no forward of its own)."""
    return type(m) is torch.nn.Sequential or (
        isinstance(m, torch.nn.Sequential) and type(m).forward is torch.nn.Sequential.forward
        and type(m).__module__.startswith("torchvision."))


def from_torch(module: Any) -> Module:
    """A cnnfast.nn model equal to the torch.nn ``module`` (weights copied, train/eval modes
    kept). Supported: torch.nn.Sequential and the torch.nn classes of the layers cnnfast.nn has
    (Conv1d/2d, ConvTranspose1d/2d, BatchNorm1d/2d/3d, the poolings, the activations, Flatten,
    Linear, Dropout, Identity), and torchvision's ResNet, MobileNetV2 and VGG (as the
    cnnfast.models network of the same architecture). Any other module raises TypeError naming
    its path and type.

    Parameters
    ----------
    module : torch.nn.Module
        The module to convert (PyTorch must be installed).

    Returns
    -------
    cnnfast.nn.Module
        The equivalent cnnfast.nn model, with copies of the weights.

    Raises
    ------
    TypeError
        A module (or submodule) that cnnfast.nn cannot convert; the message names its path.
    ImportError
        PyTorch is not installed.

    Examples
    --------
    Needs PyTorch, so not run by the doctests (tests/test_nn.py checks it against torch):

    >>> import torch                                                    # doctest: +SKIP
    >>> from cnnfast import nn
    >>> t = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()  # doctest: +SKIP
    >>> model = nn.from_torch(t)                                        # doctest: +SKIP
    >>> model                                                           # doctest: +SKIP
    Sequential(
      (0): Conv2d(in_channels=3, out_channels=8, kernel_size=(3, 3), ...)
      (1): ReLU(inplace=False)
    )
    """
    import torch

    table = _converters(torch.nn)

    def convert(m, where):
        network = _torchvision_model(m)
        if network is not None:
            modes = {name: sub.training for name, sub in m.named_modules()}
            for name, sub in network.named_modules():
                object.__setattr__(sub, "training", modes.get(name, m.training))
            return network
        if _is_sequential(torch, m):
            children = collections.OrderedDict(
                (name, convert(child, f"{where}.{name}" if where else name))
                for name, child in m.named_children())
            out = containers.Sequential(children)
        elif type(m) in table:
            cls, args = table[type(m)]
            out = cls(**args(m))
        else:
            raise TypeError(f"from_torch: {where or 'the module'} is a {type(m).__module__}."
                            f"{type(m).__name__}, which cnnfast.nn cannot convert (supported: "
                            f"Sequential and {', '.join(sorted(c.__name__ for c in table))})")
        object.__setattr__(out, "training", m.training)
        return out

    with skip_init():  # the weights come from the torch module
        model = convert(module, "")
    model.load_state_dict({key: value.detach().cpu().numpy()
                           for key, value in module.state_dict().items()})
    return model
