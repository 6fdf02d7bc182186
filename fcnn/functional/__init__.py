"""Pure array ops mirroring ``torch.nn.functional`` (same names, argument order and defaults).

Deliberate differences, because JAX arrays are immutable and randomness is
explicit: ``batch_norm`` (and ``instance_norm`` with running stats) return
``(output, new_running_mean, new_running_var)``; dropout functions take a
keyword ``key``; ``inplace`` is accepted and ignored.

Called outside ``jax.jit``, each op (the losses after their value checks) runs as one compiled XLA program per
configuration and input shapes (``fcnn/functional/_compiled.py``) rather than
primitive by primitive; inside a ``jit`` it is inlined into the caller's program.
"""

from fcnn.functional.conv import conv1d, conv2d, conv3d
from fcnn.functional.padding import pad
from fcnn.functional.linear import linear
from fcnn.functional.elementwise import add, cat, mul
from fcnn.functional.activation import (
    celu, elu, gelu, glu, hardshrink, hardsigmoid, hardswish, hardtanh, leaky_relu, log_softmax, logsigmoid, mish, prelu,
    relu, relu6, selu, sigmoid, silu, softmax, softplus, softshrink, softsign, tanh, tanhshrink, threshold,
)
from fcnn.functional.norm import batch_norm, group_norm, instance_norm, layer_norm, local_response_norm
from fcnn.functional.dropout import (
    alpha_dropout, drop_path, dropout, dropout1d, dropout2d, dropout3d, stochastic_depth,
)
from fcnn.functional.loss import (
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, l1_loss, mse_loss, nll_loss,
    smooth_l1_loss,
)
from fcnn.functional.pool import (
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d, adaptive_max_pool2d,
    adaptive_max_pool3d, avg_pool1d, avg_pool2d, avg_pool3d, lp_pool1d, lp_pool2d, lp_pool3d, max_pool1d, max_pool2d,
    max_pool3d, max_unpool1d, max_unpool2d, max_unpool3d,
)
from fcnn.functional.upsample import (
    interpolate, pixel_shuffle, pixel_unshuffle, upsample, upsample_bilinear, upsample_nearest,
)
from fcnn.functional.conv_transpose import conv_transpose1d, conv_transpose2d, conv_transpose3d
from fcnn.functional.shuffle import channel_shuffle
from fcnn.functional.im2col import fold, unfold
