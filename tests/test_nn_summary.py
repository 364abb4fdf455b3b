"""cnnfast.nn.summary: receptive fields and jumps from their definition (stacked and dilated
3x3), parameters and multiply-adds counted by hand on a small model, and the published totals
of ResNet-50 (25.6 M parameters, 4.1 G multiply-adds) and MobileNetV2 (3.5 M, 0.30 G) on
networks assembled here from Sequential / Add; the model is left unchanged."""

import numpy as np
import pytest

import cnnfast.nn as nn


def test_receptive_field_of_stacked_and_dilated_convolutions():
    for depth, expected in ((1, 3), (2, 5), (3, 7)):
        model = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(depth)])
        rows = nn.summary(model, (1, 1, 16, 16), quiet=True).rows
        assert rows[-1]["receptive_field"] == (expected, expected)
        assert rows[-1]["jump"] == (1, 1)
    for r in (1, 2, 3, 5):  # a 3x3 with dilation r sees k + (k - 1)(r - 1)
        rows = nn.summary(nn.Conv2d(1, 1, 3, dilation=r), (1, 1, 16, 16), quiet=True).rows
        assert rows[0]["receptive_field"] == (3 + 2 * (r - 1),) * 2
    # stride multiplies the jump, which scales every later kernel: 3 + (2-1)*2 ... by hand
    model = nn.Sequential(nn.Conv2d(1, 1, (3, 5), stride=2), nn.MaxPool2d(2),
                          nn.Conv2d(1, 1, 3))
    rows = nn.summary(model, (1, 1, 40, 40), quiet=True).rows
    assert [r["receptive_field"] for r in rows] == [(3, 5), (5, 7), (13, 15)]
    assert [r["jump"] for r in rows] == [(2, 2), (4, 4), (4, 4)]


def test_parameters_macs_and_shapes_by_hand(capsys):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, groups=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=False),
                          nn.ConvTranspose2d(8, 4, 2, stride=2),
                          nn.Add(nn.Conv2d(4, 4, 1), nn.Identity()),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    s = nn.summary(model, (2, 3, 10, 10))
    printed = capsys.readouterr().out
    assert "total parameters: 586" in printed and str(s) in printed
    by_name = {r["name"]: r for r in s.rows}
    assert by_name["0"]["params"] == 8 * 3 * 9 + 8
    assert by_name["0"]["macs"] == 2 * 8 * 10 * 10 * (3 * 9)
    assert by_name["3"]["params"] == 8 * 2 * 9 and by_name["3"]["output_shape"] == (2, 8, 5, 5)
    assert by_name["3"]["macs"] == 2 * 8 * 5 * 5 * (2 * 9)
    assert by_name["4"]["macs"] == 2 * 8 * 5 * 5 * (4 * 4)  # input elements x C_out x taps
    assert by_name["4"]["output_shape"] == (2, 4, 10, 10)
    assert by_name["5.0"]["macs"] == 2 * 4 * 10 * 10 * 4
    assert by_name["8"]["macs"] == 2 * 4 * 10 and by_name["8"]["output_shape"] == (2, 10)
    assert s.total_params == sum(p.size for p in model.parameters()) == 586
    assert s.total_macs == sum(r["macs"] for r in s.rows)
    assert by_name["4"]["jump"] == (1, 1)  # stride 2 then transposed stride 2


def test_summary_leaves_the_model_unchanged():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    before = model.state_dict()
    nn.summary(model, (4, 1, 6, 6), quiet=True)
    assert model.training and all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    with pytest.raises(ValueError, match=r"input_shape must be \(N, C, \*spatial\)"):
        nn.summary(model, (0, 1, 6, 6))


def conv_bn(c_in, c_out, k, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    return layers + ([act()] if act else [])


def resnet50():
    """torchvision's ResNet-50 (v1.5: the stride on the 3x3) out of Sequential and Add."""
    layers = conv_bn(3, 64, 7, 2) + [nn.MaxPool2d(3, 2, 1)]
    c_in = 64
    for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            s = stride if b == 0 else 1
            body = nn.Sequential(*conv_bn(c_in, planes, 1), *conv_bn(planes, planes, 3, s),
                                 *conv_bn(planes, planes * 4, 1, act=None))
            shortcut = nn.Identity() if s == 1 and c_in == planes * 4 else nn.Sequential(
                *conv_bn(c_in, planes * 4, 1, s, act=None))
            layers += [nn.Add(body, shortcut), nn.ReLU()]
            c_in = planes * 4
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))


def mobilenet_v2():
    """torchvision's MobileNetV2 (width 1.0) out of Sequential and Add."""
    layers = conv_bn(3, 32, 3, 2, act=nn.ReLU6)
    c_in = 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            stride, hidden = s if i == 0 else 1, c_in * t
            body = (conv_bn(c_in, hidden, 1, act=nn.ReLU6) if t != 1 else []) + \
                conv_bn(hidden, hidden, 3, stride, hidden, nn.ReLU6) + \
                conv_bn(hidden, c, 1, act=None)
            block = nn.Sequential(*body)
            layers.append(nn.Add(block, nn.Identity()) if stride == 1 and c_in == c else block)
            c_in = c
    layers += conv_bn(320, 1280, 1, act=nn.ReLU6)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(1280, 1000))


@pytest.mark.parametrize("build, params, macs", [(resnet50, 25.6e6, 4.1e9),
                                                 (mobilenet_v2, 3.5e6, 0.30e9)])
def test_published_totals(build, params, macs):
    s = nn.summary(build(), (1, 3, 224, 224), quiet=True)
    assert s.rows[-1]["output_shape"] == (1, 1000)
    assert round(s.total_params / 1e5) == round(params / 1e5)  # 25.6 M, 3.5 M
    assert round(s.total_macs / 1e9, 1 if macs > 1e9 else 2) == macs / 1e9  # 4.1 G, 0.30 G
