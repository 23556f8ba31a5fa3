"""Network builders with no loss attached."""

from keras_genzoo.networks.conv import conv_decoder, conv_encoder
from keras_genzoo.networks.dcgan import dcgan_discriminator, dcgan_generator
from keras_genzoo.networks.unet import unet

__all__ = [
    "conv_decoder",
    "conv_encoder",
    "dcgan_discriminator",
    "dcgan_generator",
    "unet",
]
