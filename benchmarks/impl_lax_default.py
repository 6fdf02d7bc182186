"""The hand-written lax reference compiled with XLA's default options (what the peers get).

``impl_lax`` compiles with ``fcnn.compiler_options()``; this one shows what
those options are worth on the reference itself.
"""

from benchmarks import impl_lax


def setup(model: str, batch: int, seed: int = 0, **kwargs):
    return impl_lax.setup(model, batch, seed, compiler_options={}, **kwargs)
