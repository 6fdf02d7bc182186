"""torch.optim for JAX: torch-named optimizers and LR schedulers built on optax.

Optimizers (``SGD``, ``Adam``, ``AdamW``, ``Adagrad``, ``RMSprop``,
``Adadelta``) return ``optax.GradientTransformation`` objects whose updates
equal ``torch.optim`` step for step. Schedules live in
:mod:`fcnn.optim.lr_scheduler` and are plain optax schedules ``count -> lr``.
Param groups are replaced by masks (:func:`weight_decay_mask`); explicit
penalties are :func:`l1_penalty` / :func:`l2_penalty`.
"""

from fcnn.optim.optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, RMSprop
from fcnn.optim.regularization import l1_penalty, l2_penalty, no_decay_mask, weight_decay_mask
from fcnn.optim import lr_scheduler, transforms

__all__ = [
    "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta",
    "l1_penalty", "l2_penalty", "weight_decay_mask", "no_decay_mask", "lr_scheduler", "transforms",
]
