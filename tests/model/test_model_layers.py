import torch

from multibox.model.layers import ConvReLU


def test_strided_conv_of_a_1x1_map_equals_the_plain_convolution():
    torch.manual_seed(0)
    layer = ConvReLU(8, 16, 3, stride=2, padding=1)
    x = torch.randn(4, 8, 1, 1)
    expected = torch.relu(torch.nn.functional.conv2d(x, layer.weight, layer.bias, 2, 1))
    torch.testing.assert_close(layer(x), expected)
    # and its bfloat16 weight gradient is deterministic (the strided CPU kernel's is not, torch 2.14)
    grads = []
    for _ in range(3):
        layer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        out.float().sum().backward()
        grads.append(layer.weight.grad.clone())
    assert all(torch.equal(grads[0], g) for g in grads[1:])
