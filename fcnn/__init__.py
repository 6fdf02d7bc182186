"""fcnn: convolutional neural networks as pure JAX functions, with PyTorch's exact semantics."""

__version__ = "0.1.0"

from fcnn import functional, nn  # noqa: E402
from fcnn import checkpoint, data, metrics, models, optim, train  # noqa: E402
from fcnn.xla import compiler_options, jit  # noqa: E402
from fcnn.inference import freeze  # noqa: E402
from fcnn.model_summary import Summary, summary  # noqa: E402
