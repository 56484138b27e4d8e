"""translate: image-to-image translation with GANs.

Baselines from the course (MLP GAN and VAE on MNIST), CycleGAN domain mapping, super-resolution
and inpainting heads, all trained by one adversarial core (`translate.train.adversarial`).
"""

from translate.version import __version__

__all__ = ["__version__"]
