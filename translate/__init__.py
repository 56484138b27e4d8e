"""translate: image-to-image translation with GANs.

Baselines from the course (MLP GAN and VAE on MNIST), CycleGAN domain mapping, super-resolution
and inpainting heads, all trained by one adversarial core (`translate.train.adversarial`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from translate.version import __version__

if TYPE_CHECKING:
    from translate.api import Pipe

__all__ = ["__version__", "load"]


def load(model: Any, **options: Any) -> Pipe:
    """A trained model (bundled name, run folder or ``.onnx`` file) as a callable on images in
    memory, and ``.folder(IN, OUT)`` for folders: see :func:`translate.api.load`. (Imported on
    first use, so that ``import translate`` stays light.)"""
    from translate.api import load as _load

    return _load(model, **options)
