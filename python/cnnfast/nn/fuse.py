"""fuse(model): folds every Conv -> BatchNorm (-> activation) chain, and every Conv ->
activation pair, found among the consecutive children of a Sequential into one convolution
whose epilogue adds the folded bias and applies the activation (cnnfast.fold_batch_norm for
the weights, the conv's ``activation=`` for the rest). The folded layers become Identity, so the
other layers keep their state_dict keys (as torch.ao.quantization.fuse_modules does). Blocks
(cnnfast.nn.blocks, cnnfast.models) whose convolutions are named children rather than a
Sequential list them in ``_fuse_chains``; their shared activation stays, and their forward()
skips it once the convolution applies it.
"""

from ..normalization import fold_batch_norm
from .activation import _Activation
from .containers import Identity, Sequential
from .conv import _ConvBase
from .init import skip_init
from .norm import _BatchNorm
from .._typing import ModuleT


def fuse(model: ModuleT) -> ModuleT:
    """Fuses in place (see the module docstring) and returns ``model``. Batch norms to fold must
    be in eval mode with running statistics (ValueError otherwise: call ``model.eval()``);
    chains outside a Sequential are left as they are.

    Parameters
    ----------
    model : cnnfast.nn.Module
        Any model; its Sequential children (and blocks' ``_fuse_chains``) are searched.

    Returns
    -------
    cnnfast.nn.Module
        ``model`` itself, fused.

    Raises
    ------
    ValueError
        A batch norm to fold is in training mode or has no running statistics.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU())
    >>> model.eval()[1].running_var[:] = 4.0
    >>> x = np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32)
    >>> before = model(x)
    >>> [type(m).__name__ for m in nn.fuse(model)], model[0].activation
    (['Conv2d', 'Identity', 'Identity'], 'relu')
    >>> bool(np.allclose(model(x), before, atol=1e-5))
    True
    """
    for prefix, module in list(model.named_modules()):
        if isinstance(module, Sequential):
            _fuse_sequence(module, prefix)
        for chain in getattr(module, "_fuse_chains", ()):
            _fuse_chain(module, prefix, *chain)
    return model


def _fuse_chain(block, prefix, conv_name, bn_name, act_name):
    """Folds the named children conv -> bn (-> act) of a block; the activation module is left in
    place (torchvision's blocks share one ReLU between several uses)."""
    conv, bn = block._modules.get(conv_name), block._modules.get(bn_name)
    if not isinstance(conv, _ConvBase) or conv.activation is not None or \
            not _foldable_bn(bn, conv):
        return
    if bn.training:
        name = f"{prefix}.{bn_name}" if prefix else bn_name
        raise ValueError(f"fuse: batch norm {name!r} is in training mode (it normalises with "
                         f"batch statistics, which cannot be folded); call model.eval() first")
    act = block._modules.get(act_name) if act_name else None
    block._modules[conv_name] = _fused_conv(conv, bn, act if isinstance(act, _Activation)
                                            else None)
    block._modules[bn_name] = Identity()


def _fuse_sequence(seq, prefix):
    names = list(seq._modules)
    i = 0
    while i < len(names):
        conv = seq._modules[names[i]]
        if not isinstance(conv, _ConvBase) or conv.activation is not None:
            i += 1
            continue
        j, bn, act = i + 1, None, None
        if j < len(names) and _foldable_bn(seq._modules[names[j]], conv):
            bn = seq._modules[names[j]]
            if bn.training:
                name = f"{prefix}.{names[j]}" if prefix else names[j]
                raise ValueError(f"fuse: batch norm {name!r} is in training mode (it normalises "
                                 f"with batch statistics, which cannot be folded); call "
                                 f"model.eval() first")
            j += 1
        if j < len(names) and isinstance(seq._modules[names[j]], _Activation):
            act = seq._modules[names[j]]
            j += 1
        if bn is None and act is None:
            i += 1
            continue
        seq._modules[names[i]] = _fused_conv(conv, bn, act)
        for k in range(i + 1, j):
            seq._modules[names[k]] = Identity()
        i = j


def _foldable_bn(module, conv):
    return (isinstance(module, _BatchNorm) and module.track_running_stats
            and module.num_features == conv.out_channels and conv.dims + 2 in module.ranks)


def _fused_conv(conv, bn, act):
    config = dict(conv._config)
    if act is not None:
        config.update(activation=act.activation, negative_slope=act.negative_slope)
    weight, bias = conv.weight, conv.bias
    if bn is not None:
        config["bias"] = True
        weight, bias = fold_batch_norm(weight, bias, bn.running_mean, bn.running_var, bn.weight,
                                       bn.bias, bn.eps, transposed=conv.transposed,
                                       groups=conv.groups)
    with skip_init():
        fused = type(conv)(**config)
    fused.weight = weight
    if bias is not None:
        fused.bias = bias
    for name, child in conv.named_children():  # e.g. a DCNv2 block's conv_offset, unchanged
        setattr(fused, name, child)
    fused.training = conv.training
    if "layout" in conv.__dict__:  # a channels-last network stays channels-last
        fused.layout = conv.layout
    return fused
