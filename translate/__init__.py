"""translate: image-to-image translation with GANs.

Baselines from the course (MLP GAN and VAE on MNIST), CycleGAN domain mapping, super-resolution
and inpainting heads, all trained by one adversarial core (`translate.train.adversarial`).
"""

__version__ = "0.1.0"
