"""Pure array ops mirroring ``torch.nn.functional`` (same names, argument order and defaults).

Deliberate differences, because JAX arrays are immutable and randomness is
explicit: ``batch_norm`` (and ``instance_norm`` with running stats) return
``(output, new_running_mean, new_running_var)``; dropout functions take a
keyword ``key``; ``inplace`` is accepted and ignored.
"""

from fcnn.functional.conv import conv1d, conv2d, conv3d
from fcnn.functional.padding import pad
