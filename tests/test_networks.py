"""Every network in the model-file registry (``translate.modelfile.NETWORKS``) at tiny widths, in
train mode: the forward pass is finite, output shapes are right at two input sizes, and every
parameter gets a finite, non-zero gradient from the sum of the outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from helpers import params_without_grad

from translate.modelfile import NETWORKS

Size = Any  # a batch size for the MLP/VAE nets (their image shape is fixed), else (H, W)


def _images(c: int, size: tuple[int, int], b: int = 2) -> torch.Tensor:
    return torch.rand(b, c, *size) * 2 - 1  # (B, C, H, W) in [-1, 1]


def _spandrel_compact() -> Any:
    """spandrel's descriptor of a tiny SRVGGNetCompact (×2) with random weights."""
    from spandrel import MAIN_REGISTRY
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    return MAIN_REGISTRY.load(Compact(num_feat=4, num_conv=2, upscale=2).state_dict())


@dataclass(frozen=True)
class Tiny:
    """A registered network at tiny widths: its constructor arguments, two input sizes, the
    inputs forward takes at a size, and the shapes it must return there."""

    kwargs: dict[str, Any]
    sizes: tuple[Size, Size]
    inputs: Callable[[Size], tuple[torch.Tensor, ...]]
    outputs: Callable[[Size], list[tuple[int, ...]]]


# One entry per class in NETWORKS; a class added there without an entry here fails below.
TINY: dict[str, Tiny] = {
    "MLPGenerator": Tiny(
        dict(latent_dim=8, img_shape=(1, 6, 5), hidden=(16, 32)), sizes=(2, 5),
        inputs=lambda b: (torch.randn(b, 8),),  # z (B, latent_dim)
        outputs=lambda b: [(b, 1, 6, 5)],
    ),
    "MLPDiscriminator": Tiny(
        dict(img_shape=(1, 6, 5), hidden=(16, 8)), sizes=(2, 5),
        inputs=lambda b: (_images(1, (6, 5), b),),
        outputs=lambda b: [(b, 1)],  # one logit per image
    ),
    "VAE": Tiny(
        dict(latent_dim=3, hidden=16, img_shape=(1, 6, 5)), sizes=(2, 5),
        inputs=lambda b: (torch.rand(b, 1, 6, 5),),  # digits in [0, 1]
        outputs=lambda b: [(b, 1, 6, 5), (b, 3), (b, 3)],  # logits, μ, log σ²
    ),
    "ResnetGenerator": Tiny(
        dict(ngf=4, n_blocks=1), sizes=((8, 12), (20, 16)),  # multiples of 4
        inputs=lambda s: (_images(3, s),),
        outputs=lambda s: [(2, 3, *s)],
    ),
    "PatchDiscriminator": Tiny(
        dict(ndf=4, n_layers=2), sizes=((16, 16), (24, 32)),
        inputs=lambda s: (_images(3, s),),
        outputs=lambda s: [(2, 1, s[0] // 4 - 2, s[1] // 4 - 2)],  # H / 2**n_layers - 2
    ),
    "SRGenerator": Tiny(
        dict(scale=3, nf=4, n_blocks=1), sizes=((7, 9), (10, 6)),  # any h, w
        inputs=lambda s: (torch.rand(2, 3, *s),),  # LR images in [0, 1]
        outputs=lambda s: [(2, 3, 3 * s[0], 3 * s[1])],
    ),
    "InpaintGenerator": Tiny(
        dict(ngf=4, n_blocks=1), sizes=((8, 12), (16, 20)),  # multiples of 4
        inputs=lambda s: (_images(3, s), (torch.rand(2, 1, *s) > 0.5).float()),  # image, mask
        outputs=lambda s: [(2, 3, *s)],
    ),
    "UnetGenerator": Tiny(
        dict(num_downs=5, ngf=4), sizes=((32, 64), (96, 32)),  # multiples of 2**5
        inputs=lambda s: (_images(3, s),),
        outputs=lambda s: [(2, 3, *s)],
    ),
    # An imported network (spandrel rebuilds it from its weights): Real-ESRGAN's compact net.
    "ExternalNet": Tiny(
        dict(descriptor=_spandrel_compact()), sizes=((7, 9), (10, 6)),  # any h, w
        inputs=lambda s: (torch.rand(2, 3, *s),),  # LR images in [0, 1]
        outputs=lambda s: [(2, 3, 2 * s[0], 2 * s[1])],
    ),
}


def test_every_registered_network_has_a_tiny_entry() -> None:
    assert sorted(TINY) == sorted(NETWORKS), "TINY must list exactly the classes in NETWORKS"
    for name, cls in NETWORKS.items():  # model.json names the class; load_model looks it up
        assert cls.__name__ == name


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_forward_is_finite_shapes_are_right_and_every_parameter_learns(name: str) -> None:
    assert name in TINY, f"{name} is in NETWORKS but has no entry in TINY (tests/test_networks.py)"
    tiny = TINY[name]
    torch.manual_seed(0)
    net = NETWORKS[name](**tiny.kwargs).train()
    for size in tiny.sizes:
        net.zero_grad(set_to_none=True)
        out = net(*tiny.inputs(size))
        outs = list(out) if isinstance(out, tuple) else [out]
        assert [tuple(o.shape) for o in outs] == tiny.outputs(size), (name, size)
        assert all(torch.isfinite(o).all() for o in outs), (name, size)
        sum(o.sum() for o in outs).backward()
        missing = params_without_grad(net)
        assert not missing, f"{name} at {size}: no finite, non-zero gradient for {missing}"
