import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from fcnn import nn
from fcnn.data import DataLoader
from fcnn.train import (EarlyStopping, TrainState, accuracy, create_train_state, evaluate, fit,
                        make_eval_step, make_train_step)
from oracle import assert_close, backend_compiles, load_into_torch, to_torch


# The loop is generic over layers/losses/optimizers; these tests use only the
# foundation's Conv2d and a loss written here, so they don't depend on other modules.

class Squeeze(nn.Layer):
    def apply(self, params, state, x, *, train=False, rng=None):
        return x.reshape(x.shape[0], -1), state


class Noise(nn.Layer):
    """Adds N(0, 0.1) noise in training mode: exercises the per-step PRNG key."""

    def apply(self, params, state, x, *, train=False, rng=None):
        if not train:
            return x, state
        return x + 0.1 * jax.random.normal(rng, x.shape, x.dtype), state


def cross_entropy(logits, target):
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, target[:, None], axis=1))


def small_model(noise=False):
    layers = [nn.Conv2d(1, 6, 3, padding=1), Noise()] if noise else [nn.Conv2d(1, 6, 3, padding=1)]
    return nn.Sequential(*layers, nn.Conv2d(6, 3, 6), Squeeze())


def data(n=40, seed=0):
    rs = np.random.RandomState(seed)
    x = rs.standard_normal((n, 1, 6, 6)).astype(np.float32)
    y = (x[:, 0, :3].sum((1, 2)) > 0).astype(np.int32) + (x[:, 0, 3:].sum((1, 2)) > 1).astype(np.int32)
    return x, y


def torch_twin():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.Conv2d(6, 3, 6), torch.nn.Flatten())


def test_train_steps_match_torch_sgd_momentum():
    model = small_model()
    opt = optax.sgd(0.1, momentum=0.9)  # torch's SGD(momentum) == optax's trace + scale
    ts = create_train_state(model, opt, 0)
    tmodel = torch_twin()
    load_into_torch(tmodel, ts.params, ts.state)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    step = make_train_step(model, cross_entropy, opt)
    x, y = data()
    for i in range(5):
        xb, yb = x[8 * i:8 * i + 8], y[8 * i:8 * i + 8]
        ts, m = step(ts, (xb, yb))
        topt.zero_grad()
        out = tmodel(to_torch(xb))
        loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(yb).long())
        loss.backward()
        topt.step()
        assert_close(m["loss"], loss, 1e-5, 1e-6, f"loss at step {i}")
        acc = (out.argmax(1).numpy() == yb).mean()
        np.testing.assert_allclose(m["accuracy"], acc, rtol=1e-6)
    assert int(ts.step) == 5
    sd = tmodel.state_dict()
    for k, v in {"0.weight": ts.params["0"]["weight"], "1.bias": ts.params["1"]["bias"]}.items():
        assert_close(v, sd[k], 1e-4, 1e-5, k)


def test_steps_are_reused():
    model, opt = small_model(), optax.sgd(0.1)
    assert make_train_step(model, cross_entropy, opt) is make_train_step(model, cross_entropy, opt)
    assert make_eval_step(model, cross_entropy) is make_eval_step(model, cross_entropy)


def test_steps_are_reused_by_an_explicit_cache_key():
    # objects rebuilt from one configuration (as fcnn train rebuilds them per run) share the step by the key
    first = make_train_step(small_model(), cross_entropy, optax.sgd(0.1), cache_key=("sgd", 0.1))
    assert make_train_step(small_model(), cross_entropy, optax.sgd(0.1), cache_key=("sgd", 0.1)) is first
    assert make_train_step(small_model(), cross_entropy, optax.sgd(0.2), cache_key=("sgd", 0.2)) is not first
    assert make_train_step(small_model(), cross_entropy, optax.sgd(0.1), cache_key=("sgd", 0.1), remat=True) \
        is not first
    assert make_eval_step(small_model(), cross_entropy, cache_key="k") is make_eval_step(small_model(), None,
                                                                                          cache_key="k")
    # without a key the objects are the key: a new optimizer is another step
    model = small_model()
    assert make_train_step(model, cross_entropy, optax.sgd(0.1)) is not make_train_step(model, cross_entropy,
                                                                                         optax.sgd(0.1))


def test_train_step_donates_and_eval_step_does_not():
    model = small_model()
    opt = optax.sgd(0.1)
    ts = create_train_state(model, opt, 1)
    x, y = data(8)
    ev = make_eval_step(model, cross_entropy)
    m1 = ev(ts, (x, y))
    assert not ts.params["0"]["weight"].is_deleted()
    # eval: the mean loss and the accuracy of the eval-mode forward, as torch computes them
    tmodel = torch_twin()
    load_into_torch(tmodel, ts.params, ts.state)
    out = tmodel.eval()(to_torch(x))
    assert set(m1) == {"loss", "accuracy"}
    assert_close(m1["loss"], torch.nn.functional.cross_entropy(out, torch.from_numpy(y).long()), 1e-5, 1e-6, "loss")
    np.testing.assert_allclose(m1["accuracy"], (out.argmax(1).numpy() == y).mean(), rtol=1e-6)
    new, _ = make_train_step(model, cross_entropy, opt)(ts, (x, y))
    assert ts.params["0"]["weight"].is_deleted()
    assert not new.params["0"]["weight"].is_deleted()
    model.apply(new.params, new.state, x)  # the new state is usable


class SharedConstant(nn.Layer):
    """A layer whose init hands out one array for every entry, as an initialiser of cached constants may."""

    def __init__(self):
        self.value = jnp.ones((6,))

    def init(self, key):
        return {"a": self.value, "b": self.value}, {"c": self.value}

    def apply(self, params, state, x, *, train=False, rng=None):
        return x * params["a"] * params["b"] + state["c"], state


def test_train_state_has_a_buffer_of_its_own_for_every_leaf():
    model = SharedConstant()
    ts = create_train_state(model, optax.sgd(0.1, momentum=0.9), 0)
    leaves = jax.tree.leaves((ts.params, ts.state, ts.opt_state))
    pointers = {leaf.unsafe_buffer_pointer() for leaf in leaves}
    assert len(pointers) == len(leaves) and model.value.unsafe_buffer_pointer() not in pointers
    step = make_train_step(model, lambda out, y: jnp.mean((out - y) ** 2), optax.sgd(0.1, momentum=0.9))
    new, _ = step(ts, (jnp.ones((2, 6)), jnp.zeros((2, 6))))  # donates every leaf once
    assert ts.params["a"].is_deleted() and not model.value.is_deleted()
    grad = jax.grad(lambda a: jnp.mean((jnp.ones((2, 6)) * a * jnp.ones(6) + 1.0) ** 2))(jnp.ones(6))
    np.testing.assert_allclose(new.opt_state[0].trace["a"], grad, rtol=1e-6)  # the first step's momentum


def test_a_train_state_compiles_one_program_whatever_the_parameter_shapes():
    def model(widths):
        return nn.Sequential(*[nn.Conv2d(a, b, 3) for a, b in zip(widths, widths[1:])])

    create_train_state(model((1, 2, 3)), optax.sgd(0.1, momentum=0.9), 0)  # the shared draws compile here
    with backend_compiles() as compiles:
        ts = create_train_state(model((1, 4, 5, 7, 9)), optax.sgd(0.1, momentum=0.9), 0)
    assert len(compiles) == 1  # the copies and the optimizer's state, whatever the shapes
    assert ts.opt_state[0].trace["3"]["weight"].shape == (9, 7, 3, 3)


def test_step_rng_changes_each_step_and_eval_is_deterministic():
    model = small_model(noise=True)
    opt = optax.sgd(0.0)
    ts = create_train_state(model, opt, 0)
    step = make_train_step(model, cross_entropy, opt)
    x, y = data(8)
    losses = []
    for _ in range(3):
        ts, m = step(ts, (x, y))
        losses.append(float(m["loss"]))
    assert len(set(losses)) == 3  # a fresh key per step
    ev = make_eval_step(model, cross_entropy)
    assert float(ev(ts, (x, y))["loss"]) == float(ev(ts, (x, y))["loss"])


def test_train_state_keeps_threefry_keys_raw_and_steps_use_the_same_bits():
    """A seed, a typed threefry key and a legacy uint32 key all give raw key data
    and the step keys fold_in(key, k) would give; other implementations stay typed."""
    model = small_model(noise=True)
    opt = optax.sgd(0.1)
    x, y = data(8)
    typed = jax.random.key(3)
    _, expected_rng = jax.random.split(typed)
    seen = []

    class Probe(nn.Layer):  # the model, recording the key each step hands it
        def init(self, key):
            return model.init(key)

        def apply(self, params, state, v, *, train=False, rng=None):
            seen.append(rng)
            return model.apply(params, state, v, train=train, rng=rng)

    probed = Probe()
    step = make_train_step(probed, cross_entropy, opt, jit=False)
    results = []
    for key in (typed, jax.random.PRNGKey(3)):
        seen.clear()
        ts = create_train_state(probed, opt, key)
        assert ts.rng.dtype == jnp.uint32 and ts.rng.shape == (2,)
        np.testing.assert_array_equal(ts.rng, jax.random.key_data(expected_rng))
        ts, m1 = step(ts, (x, y))
        ts, m2 = step(ts, (x, y))
        want = [jax.random.key_data(jax.random.fold_in(expected_rng, k)) for k in (0, 1)]
        assert len(seen) == 2
        for got, w in zip(seen, want):
            np.testing.assert_array_equal(jax.random.key_data(got), w)
        results.append((float(m1["loss"]), float(m2["loss"])))
    assert results[0] == results[1]
    assert ts.rng.dtype == jnp.uint32  # still raw after steps (and through jit below)
    jitted = make_train_step(model, cross_entropy, opt)
    assert jitted(create_train_state(model, opt, 3), (x, y))[0].rng.dtype == jnp.uint32
    # another implementation: kept typed, and the step still runs
    rbg = create_train_state(model, opt, jax.random.key(3, impl="rbg"))
    assert jnp.issubdtype(rbg.rng.dtype, jax.dtypes.prng_key)
    out, m = jitted(rbg, (x, y))
    assert jnp.issubdtype(out.rng.dtype, jax.dtypes.prng_key) and np.isfinite(float(m["loss"]))


def test_accuracy_rules():
    logits = jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(accuracy(logits, jnp.array([0, 1, 1, 1])), 0.75)
    # ignored targets (e.g. ignore_index=-100) are not counted
    np.testing.assert_allclose(accuracy(logits, jnp.array([0, -100, 1, -100])), 0.5)
    # K-dimensional: (N, C, H) vs (N, H)
    seg = jnp.stack([logits.T, -logits.T])  # (2, 2, 4)
    np.testing.assert_allclose(accuracy(seg, jnp.array([[0, 1, 0, 1], [1, 0, 0, 1]])), 0.75)
    assert accuracy(logits, jnp.ones((4, 2))) is None  # regression target: no accuracy


# one model and optimizer object for every fit below: the compiled steps are reused
FIT_MODEL, FIT_OPT = small_model(noise=True), optax.adam(1e-2)


def _fit(seed, epochs=3, **kw):
    kw.setdefault("progress", False)
    x, y = data(40)
    train = DataLoader((x[:32], y[:32]), 8, shuffle=True, seed=seed)
    test = DataLoader((x[32:], y[32:]), 8)
    return fit(FIT_MODEL, train, test, cross_entropy, FIT_OPT, epochs, seed=seed, **kw)


def test_fit_is_deterministic_and_history_complete():
    ts1, h1 = _fit(0)
    ts2, h2 = _fit(0)
    ts3, _ = _fit(1)
    for a, b in zip(jax.tree.leaves(ts1.params), jax.tree.leaves(ts2.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bit-identical
    assert not np.array_equal(ts1.params["0"]["weight"], ts3.params["0"]["weight"])
    assert [r["epoch"] for r in h1] == [1, 2, 3] and int(ts1.step) == 12
    for r1, r2 in zip(h1, h2):
        assert set(r1) == {"epoch", "train_loss", "train_accuracy", "eval_loss", "eval_accuracy",
                           "seconds", "samples_per_second"}
        assert all(r1[k] == r2[k] for k in r1 if k not in ("seconds", "samples_per_second"))
    assert h1[-1]["train_loss"] < h1[0]["train_loss"]
    # eval metrics are the sample-weighted means over the eval set
    x, y = data(40)
    ev = evaluate(make_eval_step(FIT_MODEL, cross_entropy), ts1, [(x[32:], y[32:])])
    np.testing.assert_allclose(h1[-1]["eval_loss"], ev["loss"], rtol=1e-5)
    np.testing.assert_allclose(h1[-1]["eval_accuracy"], ev["accuracy"])


def test_fit_resume_equals_one_run():
    ts_full, _ = _fit(0, epochs=3)
    ts_a, _ = _fit(0, epochs=2)
    x, y = data(40)
    train = DataLoader((x[:32], y[:32]), 8, shuffle=True, seed=0)
    ts_b, h = fit(FIT_MODEL, train, None, cross_entropy, FIT_OPT, 1,
                  train_state=ts_a, start_epoch=2, progress=False)
    assert h[0]["epoch"] == 3 and "eval_loss" not in h[0]
    for a, b in zip(jax.tree.leaves(ts_full.params), jax.tree.leaves(ts_b.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_early_stopping_callback_and_restore_best():
    seen = []

    def cb(epoch, ts, metrics):
        assert isinstance(ts, TrainState)
        seen.append((epoch, metrics["eval_loss"]))

    es = EarlyStopping("train_loss", patience=0, mode="max")  # loss falls: 'max' stops at once
    ts, h = _fit(0, epochs=5, early_stopping=es, on_epoch_end=cb, restore_best=True)
    assert len(h) == 2 and [e for e, _ in seen] == [1, 2]
    assert es.best_epoch == 1
    ts1, _ = _fit(0, epochs=1)
    for a, b in zip(jax.tree.leaves(ts.params), jax.tree.leaves(ts1.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # epoch-1 params restored
    # a callback returning True stops training
    _, h = _fit(0, epochs=5, on_epoch_end=lambda e, ts, m: e == 2)
    assert len(h) == 2


def test_early_stopping_rules():
    es = EarlyStopping("eval_accuracy", patience=1)
    assert es.mode == "max"
    assert [es.update(e, {"eval_accuracy": a}) for e, a in enumerate([0.5, 0.6, 0.6, 0.7, 0.7, 0.6])] == \
        [False, False, False, False, False, True]
    assert es.best == 0.7 and es.best_epoch == 3
    with pytest.raises(KeyError, match="eval_loss"):
        EarlyStopping().update(0, {"train_loss": 1.0})
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_fit_bad_args():
    with pytest.raises(ValueError, match="epochs"):
        _fit(0, epochs=-1)
    with pytest.raises(ValueError, match="restore_best"):
        _fit(0, restore_best=True)


def test_progress_bar_shows_metrics(capsys):
    _fit(0, epochs=1, progress=True, log_every=1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "samples/s=" in err
