"""The transform protocol: parameters sampled from an explicit key, then applied; ``Compose``."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from fcnn import _checks
from fcnn.transforms.functional._utils import image


def as_key(key, where: str):
    """A typed PRNG key from a typed key or raw ``uint32`` key data (``jax.random.PRNGKey``)."""
    if _checks.is_typed_key(key):
        if key.ndim:
            raise ValueError(f"{where}: key must be a single PRNG key, got a key array of shape {key.shape}")
        return key
    if isinstance(key, (jax.Array,)) or hasattr(key, "dtype"):
        a = jnp.asarray(key)
        if a.dtype == jnp.uint32 and a.shape == (2,):
            return jax.random.wrap_key_data(a)
    raise TypeError(f"{where}: key must be a PRNG key (jax.random.key(seed)), got {key!r}")


class Transform:
    """Base of the transforms: ``t(key, images, *rest) -> images`` (or ``(images, *rest)``).

    A transform is a plain object holding hyper-parameters. Random ones split
    their work in two pure functions, as torchvision's ``make_params`` /
    ``transform``: ``make_params(key, shape)`` draws the parameters of one
    image of ``shape = (C, H, W)`` (a pytree of arrays: a crop box, a flip
    bit, jitter factors), and ``transform(image, params)`` applies them, so
    given parameters can be fed to torchvision's functional ops and compared.

    Calling the transform on ``(C, H, W)`` uses ``key`` for that image; on a
    batch ``(..., C, H, W)`` every image gets its own parameters, from
    ``jax.random.split(key, n)[i]`` for the ``i``-th image in row-major order
    (torchvision would draw one set for the whole batch). Both work under
    ``jit`` and on the device. Extra arguments (labels) pass through unchanged,
    so a :class:`Compose` can end with :class:`MixUp`. Deterministic
    transforms ignore ``key`` (``None`` is fine).
    """

    random = False

    def make_params(self, key, shape: tuple[int, int, int]) -> Any:
        return None

    def transform(self, inpt, params):
        raise NotImplementedError

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise a clear error for images this transform cannot take (called before tracing)."""

    def __call__(self, key, inpt, *rest):
        where = type(self).__name__
        x = image(inpt, where)
        self.check_shape(x.shape)
        if not self.random:
            out = self.transform(x, None)
        else:
            if key is None:
                raise ValueError(f"{where}: a random transform needs a PRNG key, got None")
            key = as_key(key, where)
            shape = x.shape[-3:]
            if x.ndim == 3:
                out = self.transform(x, self.make_params(key, shape))
            else:
                flat = x.reshape((-1,) + shape)
                keys = jax.random.split(key, flat.shape[0])
                params = jax.vmap(self.make_params, in_axes=(0, None))(keys, shape)
                out = jax.vmap(self.transform)(flat, params)
                out = out.reshape(x.shape[:-3] + out.shape[1:])
        return (out, *rest) if rest else out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply ``transforms`` one after another, transform ``i`` with ``jax.random.split(key, n)[i]``.

    Labels and other extra arguments are threaded through (so the list may end
    with :class:`MixUp` / :class:`CutMix`).
    """

    def __init__(self, transforms: Sequence) -> None:
        if not isinstance(transforms, (list, tuple)) or not transforms:
            raise ValueError(f"Compose: transforms must be a non-empty list, got {transforms!r}")
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")
        self.transforms = list(transforms)

    def __call__(self, key, inpt, *rest):
        random = any(getattr(t, "random", True) for t in self.transforms)
        keys = [None] * len(self.transforms)
        if random:
            if key is None:
                raise ValueError("Compose: the transforms include random ones; pass a PRNG key, got None")
            keys = list(jax.random.split(as_key(key, "Compose"), len(self.transforms)))
        out = (inpt, *rest)
        for t, k in zip(self.transforms, keys):
            res = t(k, *out)
            out = res if rest else (res,)
        return out if rest else out[0]

    def __repr__(self) -> str:
        return "Compose([\n" + "".join(f"    {t!r},\n" for t in self.transforms) + "])"
