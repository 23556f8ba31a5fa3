"""Network builders with no loss attached."""

from keras_genzoo.networks.conv import conv_decoder, conv_encoder

__all__ = ["conv_decoder", "conv_encoder"]
