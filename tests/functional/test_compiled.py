"""Functional ops run as one compiled program per configuration and shapes, with unchanged results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnn import functional as F
from fcnn.functional import _compiled, loss, pool
from oracle import randn


def _fresh_misses(call):
    """How many new programs ``call()`` builds (``_compiled``'s cache misses)."""
    before = _compiled._program.cache_info().misses
    call()
    return _compiled._program.cache_info().misses - before


def test_one_program_per_configuration_reused_across_calls():
    # configurations no other test uses: the programs are cached per process, whatever test ran first
    x = jnp.asarray(randn((2, 3, 11, 13)))
    first = _fresh_misses(lambda: F.max_pool2d(x, (3, 2), (2, 1), (1, 0), return_indices=True))
    again = _fresh_misses(lambda: F.max_pool2d(x + 1, (3, 2), (2, 1), (1, 0), return_indices=True))
    other = _fresh_misses(lambda: F.max_pool2d(x, (2, 3), return_indices=True))
    assert (first, again, other) == (1, 0, 1)


@pytest.mark.parametrize("op, args", [
    (pool._max_pool, lambda x: (x, 3, 2, 1, 1, True, True, 2, "max_pool2d")),
    (pool._avg_pool, lambda x: (x, 3, 2, 1, True, False, None, 2, "avg_pool2d")),
    (F.interpolate, lambda x: (x, None, 1.7, "bilinear", False)),
    (F.batch_norm, lambda x: (x, jnp.zeros(3), jnp.ones(3), None, None, True, 0.2)),
    (loss._cross_entropy, lambda x: (x, jnp.arange(2 * 11 * 13).reshape(2, 11, 13) % 3,
                                     None, None, -100, None, "mean", 0.1)),
])
def test_compiled_equals_op_by_op_and_composes(op, args):
    """The wrapped op gives the same values and gradients as its undecorated body, eagerly and under jit/grad/vmap."""
    x = jnp.asarray(randn((2, 3, 11, 13)))
    plain = op.__wrapped__

    def first(f):
        return lambda x: jax.tree.leaves(f(*args(x)))[0]

    np.testing.assert_allclose(first(op)(x), first(plain)(x), rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda f, x: jnp.sum(jnp.sin(first(f)(x))), argnums=1)
    np.testing.assert_allclose(grad(op, x), grad(plain, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(first(op))(x), first(plain)(x), rtol=1e-6, atol=1e-6)
    if op is not loss._cross_entropy:  # per-example outputs: vmap over the batch
        per_example = jax.vmap(lambda xi: first(op)(xi[None])[0])(x)
        reference = np.concatenate([first(plain)(x[i:i + 1]) for i in range(2)])
        np.testing.assert_allclose(per_example, reference, rtol=1e-5, atol=1e-6)


def test_a_python_step_counter_does_not_recompile_batch_norm():
    x = jnp.asarray(randn((4, 3, 5, 5)))
    F.batch_norm(x, jnp.zeros(3), jnp.ones(3), training=True, momentum=None, num_batches_tracked=1)
    for n in (2, 3):
        new = _fresh_misses(lambda: F.batch_norm(x, jnp.zeros(3), jnp.ones(3), training=True, momentum=None,
                                                 num_batches_tracked=n))
        assert new == 0
    _, rm, _ = F.batch_norm(x, jnp.zeros(3), jnp.ones(3), training=True, momentum=None, num_batches_tracked=4)
    np.testing.assert_allclose(rm, np.asarray(x).mean(axis=(0, 2, 3)) / 4, rtol=1e-5, atol=1e-7)


def test_unhashable_configuration_runs_uncompiled():
    calls = []

    @_compiled.compiled
    def scale(x, factors):
        calls.append(type(x))
        return x * factors["a"]

    out = scale(jnp.ones(3), {"a": 2.0})  # a dict can't key a compilation: the function runs as written
    np.testing.assert_array_equal(out, 2 * np.ones(3))
    assert calls == [type(jnp.ones(3))]


def test_value_checks_still_run_before_compiling():
    with pytest.raises(ValueError, match="target 5 is out of bounds"):
        F.cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 5]))
    with pytest.raises(ValueError, match="target -1 is out of bounds"):
        F.nll_loss(jnp.zeros((2, 3)), np.array([-1, 0]))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(jnp.array([0.5, 1.5]), jnp.array([0.0, 1.0]))
    # under the caller's jit the labels are not known: out-of-range ones are ignored, as documented
    out = jax.jit(F.cross_entropy)(jnp.zeros((2, 3)), jnp.array([0, 5]))
    np.testing.assert_allclose(out, np.log(3), rtol=1e-6)


def test_arrays_given_as_sizes_run_uncompiled():
    x = jnp.asarray(randn((1, 2, 4, 4)))
    np.testing.assert_array_equal(F.pad(x, np.array([1, 1, 0, 2])), F.pad(x, (1, 1, 0, 2)))
