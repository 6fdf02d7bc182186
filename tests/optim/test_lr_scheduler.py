"""fcnn.optim.lr_scheduler against torch.optim.lr_scheduler: whole LR sequences, stepped for real."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import optim
from fcnn.optim import lr_scheduler as S

TS = torch.optim.lr_scheduler

base_lrs = st.floats(1e-3, 2.0)
gammas = st.floats(0.05, 1.0)
factors = st.floats(0.01, 1.0)


def torch_sequence(make, base, n, key="lr", optimizer=torch.optim.SGD, **opt_kwargs):
    """``param_groups[0][key]`` after 0..n calls to ``scheduler.step()`` on a dummy parameter."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = optimizer([p], lr=base, **opt_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = make(opt)
        out = [opt.param_groups[0][key]]
        for _ in range(n):
            opt.step()
            sched.step()
            out.append(opt.param_groups[0][key])
    return np.array([v[0] if isinstance(v, tuple) else v for v in out], dtype=np.float64)


def ours_sequence(sched, n):
    # Eager evaluation: the ops are compiled once per shape and reused across hypothesis examples
    # (a jit per example would recompile each schedule's constants); jit is checked in test_jit_*.
    return np.asarray(sched(jnp.arange(n + 1)))


def assert_sequence(ours, expected, scale=None):
    """float32 accuracy relative to the LR scale (the base LR or the sequence's largest value)."""
    scale = max(np.max(np.abs(expected)), scale or 0.0)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * scale + 1e-30)


def check(ours, make_torch, base, n):
    """``ours`` over counts 0..n equals torch's scheduler on an SGD with ``lr=base``, stepped n times."""
    assert_sequence(ours_sequence(ours, n), torch_sequence(make_torch, base, n), base)


# ----------------------------------------------------------------------------- schedules vs torch

@settings(max_examples=10)
@given(base=base_lrs, step_size=st.integers(1, 6), gamma=gammas)
def test_step_lr(base, step_size, gamma):
    check(S.StepLR(base, step_size, gamma), lambda o: TS.StepLR(o, step_size, gamma), base, 30)


@settings(max_examples=10)
@given(base=base_lrs, milestones=st.lists(st.integers(0, 15), max_size=5).map(sorted), gamma=gammas)
def test_multistep_lr(base, milestones, gamma):
    # Duplicated milestones decay by gamma ** multiplicity, as torch's Counter.
    check(S.MultiStepLR(base, milestones, gamma), lambda o: TS.MultiStepLR(o, milestones, gamma), base, 48)


@settings(max_examples=10)
@given(base=base_lrs, gamma=st.floats(0.5, 1.1))
def test_exponential_lr(base, gamma):
    check(S.ExponentialLR(base, gamma), lambda o: TS.ExponentialLR(o, gamma), base, 40)


def test_exponential_lr_long_horizon_float32():
    # gamma close to 1 over thousands of steps: a float32 gamma ** k would drift by k ulps.
    check(S.ExponentialLR(0.1, 0.999), lambda o: TS.ExponentialLR(o, 0.999), 0.1, 3000)


@settings(max_examples=12)
@given(base=base_lrs, T_max=st.integers(1, 12), eta_min=st.sampled_from([0.0, 1e-3, 0.05, 3.0]))
def test_cosine_annealing_lr_past_t_max(base, T_max, eta_min):
    # Five half periods: torch's recursion climbs back up after T_max (eta_min > lr included).
    check(S.CosineAnnealingLR(base, T_max, eta_min), lambda o: TS.CosineAnnealingLR(o, T_max, eta_min),
          base, 64)


def test_cosine_annealing_lr_large_t_max():
    check(S.CosineAnnealingLR(0.5, 700, 1e-4), lambda o: TS.CosineAnnealingLR(o, 700, 1e-4), 0.5, 2100)


@settings(max_examples=10)
@given(base=base_lrs, T_0=st.integers(1, 5), T_mult=st.integers(1, 3), eta_min=st.sampled_from([0.0, 1e-3, 0.1]))
def test_cosine_annealing_warm_restarts(base, T_0, T_mult, eta_min):
    # 200 epochs: at least four cycles for every T_0 <= 5, T_mult <= 3.
    check(S.CosineAnnealingWarmRestarts(base, T_0, T_mult, eta_min),
          lambda o: TS.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min), base, 200)


@settings(max_examples=10)
@given(base=base_lrs, start=st.floats(0.01, 1.0), end=st.floats(0.0, 1.0), total_iters=st.integers(0, 8))
def test_linear_lr(base, start, end, total_iters):
    check(S.LinearLR(base, start, end, total_iters), lambda o: TS.LinearLR(o, start, end, total_iters), base, 30)


@settings(max_examples=10)
@given(base=base_lrs, factor=factors, total_iters=st.integers(0, 8))
def test_constant_lr(base, factor, total_iters):
    # total_iters=0: torch's stepping never undoes the factor.
    check(S.ConstantLR(base, factor, total_iters), lambda o: TS.ConstantLR(o, factor, total_iters), base, 30)


@settings(max_examples=10)
@given(base=base_lrs, total_iters=st.integers(0, 8), power=st.floats(0.0, 3.0))
def test_polynomial_lr(base, total_iters, power):
    check(S.PolynomialLR(base, total_iters, power), lambda o: TS.PolynomialLR(o, total_iters, power), base, 30)


LAMBDAS = {
    "jnp-traceable": lambda e: 0.93**e,
    "traceable-where": lambda e: jnp.where(e < 4, 0.1 * (e + 1), 0.5),
    "host-min": lambda e: min(1.0, (e + 1) / 6),
    "host-branch": lambda e: 1.0 if e < 5 else 0.5 ** (e // 5),
}
TORCH_LAMBDAS = {**LAMBDAS, "traceable-where": lambda e: 0.1 * (e + 1) if e < 4 else 0.5}


@pytest.mark.parametrize("name", sorted(LAMBDAS))
def test_lambda_lr(name):
    check(S.LambdaLR(0.3, LAMBDAS[name]), lambda o: TS.LambdaLR(o, TORCH_LAMBDAS[name]), 0.3, 20)


MULT_LAMBDAS = {"traceable": lambda e: 0.9 + 0.0 * e, "host": lambda e: 0.8 if e % 3 == 0 else 1.05}


@pytest.mark.parametrize("name", sorted(MULT_LAMBDAS))
def test_multiplicative_lr(name):
    check(S.MultiplicativeLR(0.3, MULT_LAMBDAS[name]), lambda o: TS.MultiplicativeLR(o, MULT_LAMBDAS[name]), 0.3, 20)


def test_lambda_host_fallback_is_reported_by_tracing_once():
    assert S.LambdaLR(0.1, lambda e: 0.9**e)._traceable
    assert not S.LambdaLR(0.1, lambda e: min(1.0, e / 5))._traceable


# ----------------------------------------------------------------------------- OneCycleLR

def _torch_one_cycle_or_error(make, base, n, **kw):
    try:
        return torch_sequence(make, base, n, **kw)
    except ZeroDivisionError:
        return None


@settings(max_examples=12)
@given(max_lr=base_lrs, total_steps=st.integers(2, 60), pct_start=st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.9, 1.0]),
       anneal=st.sampled_from(["cos", "linear"]), three_phase=st.booleans(),
       div_factor=st.sampled_from([25.0, 4.0]), final_div_factor=st.sampled_from([1e4, 10.0]))
def test_one_cycle_lr_and_momentum(max_lr, total_steps, pct_start, anneal, three_phase, div_factor, final_div_factor):
    kw = dict(total_steps=total_steps, pct_start=pct_start, anneal_strategy=anneal, three_phase=three_phase,
              div_factor=div_factor, final_div_factor=final_div_factor, base_momentum=0.8, max_momentum=0.9)
    make = lambda o: TS.OneCycleLR(o, max_lr, **kw)  # noqa: E731
    lrs = _torch_one_cycle_or_error(make, max_lr, total_steps)
    if lrs is None:  # torch divides by a zero-length phase; we refuse these settings up front
        with pytest.raises(ValueError, match="pct_start"):
            S.OneCycleLR(max_lr, **kw)
        return
    sched = S.OneCycleLR(max_lr, **kw)
    # torch refuses to step past total_steps; the schedule holds that value.
    ours = ours_sequence(sched, 63)
    assert_sequence(ours[:total_steps + 1], lrs, max_lr)
    np.testing.assert_array_equal(ours[total_steps:], ours[total_steps])
    moms = torch_sequence(make, max_lr, total_steps, key="momentum", momentum=0.9)
    assert_sequence(ours_sequence(sched.momentum, 63)[:total_steps + 1], moms, 1.0)


def test_one_cycle_epochs_and_beta1():
    make = lambda o: TS.OneCycleLR(o, 0.01, epochs=4, steps_per_epoch=5)  # noqa: E731
    sched = S.OneCycleLR(0.01, epochs=4, steps_per_epoch=5)
    assert sched.total_steps == 20
    assert_sequence(ours_sequence(sched, 20), torch_sequence(make, 0.01, 20), 0.01)
    betas = torch_sequence(make, 0.01, 20, key="betas", optimizer=torch.optim.Adam)
    assert_sequence(ours_sequence(sched.momentum, 20), betas, 1.0)
    assert S.OneCycleLR(0.01, total_steps=10, cycle_momentum=False).momentum is None


def test_one_cycle_drives_sgd_momentum_like_torch():
    """fcnn.optim.SGD(lr=sched, momentum=sched.momentum) follows torch's SGD + OneCycleLR step for step."""
    steps = 30
    sched = S.OneCycleLR(0.2, total_steps=steps, pct_start=0.3)
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    grads = np.random.RandomState(0).standard_normal((steps, 3)).astype(np.float32)

    opt = optim.SGD(sched, momentum=sched.momentum)

    @jax.jit
    def run(w, gs):
        def body(carry, g):
            w, s = carry
            u, s = opt.update(g + w, s, w)
            return (optax.apply_updates(w, u), s), None
        return jax.lax.scan(body, (w, opt.init(w)), gs)[0][0]

    p = torch.nn.Parameter(torch.tensor(w0))
    topt = torch.optim.SGD([p], lr=0.2, momentum=0.9)
    tsched = TS.OneCycleLR(topt, 0.2, total_steps=steps, pct_start=0.3)
    for g in grads:
        p.grad = torch.tensor(g) + p.detach()
        topt.step()
        tsched.step()
    np.testing.assert_allclose(np.asarray(run(w0, grads)), p.detach().numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- SequentialLR

def _child(kind, arg):
    """(ours(base), torch(optimizer)) for one child schedule."""
    if kind == "linear":
        return (lambda b: S.LinearLR(b, 0.1 * arg, total_iters=arg + 1),
                lambda o: TS.LinearLR(o, 0.1 * arg, total_iters=arg + 1))
    if kind == "constant":  # total_iters 0 included: torch's restart gives the full lr
        return lambda b: S.ConstantLR(b, 0.25, arg - 1), lambda o: TS.ConstantLR(o, 0.25, arg - 1)
    if kind == "exponential":
        return lambda b: S.ExponentialLR(b, 0.8), lambda o: TS.ExponentialLR(o, 0.8)
    if kind == "step":
        return lambda b: S.StepLR(b, arg, 0.5), lambda o: TS.StepLR(o, arg, 0.5)
    if kind == "multistep":
        return lambda b: S.MultiStepLR(b, [1, arg + 1], 0.5), lambda o: TS.MultiStepLR(o, [1, arg + 1], 0.5)
    if kind == "cosine":
        return lambda b: S.CosineAnnealingLR(b, arg, 1e-3), lambda o: TS.CosineAnnealingLR(o, arg, 1e-3)
    if kind == "restarts":
        return (lambda b: S.CosineAnnealingWarmRestarts(b, arg, 2),
                lambda o: TS.CosineAnnealingWarmRestarts(o, arg, 2))
    if kind == "polynomial":
        return lambda b: S.PolynomialLR(b, arg + 2, 2.0), lambda o: TS.PolynomialLR(o, arg + 2, 2.0)
    if kind == "lambda":
        f = lambda e: min(1.0, (e + 1) / (arg + 1))  # noqa: E731
        return lambda b: S.LambdaLR(b, f), lambda o: TS.LambdaLR(o, f)
    if kind == "multiplicative":  # continues from the previous schedule's last LR
        f = lambda e: 0.9 + 0.0 * e  # noqa: E731
        return lambda b: S.MultiplicativeLR(b, f), lambda o: TS.MultiplicativeLR(o, f)
    raise AssertionError(kind)


KINDS = ["linear", "constant", "exponential", "step", "multistep", "cosine", "restarts", "polynomial", "lambda",
         "multiplicative"]


@settings(max_examples=12)
@given(base=base_lrs,
       children=st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 4)), min_size=1, max_size=4),
       data=st.data())
def test_sequential_lr(base, children, data):
    milestones = sorted(data.draw(st.lists(st.integers(0, 12), min_size=len(children) - 1,
                                           max_size=len(children) - 1)))
    pairs = [_child(k, a) for k, a in children]
    ours = S.SequentialLR([make(base) for make, _ in pairs], milestones)

    def make_torch(o):
        return TS.SequentialLR(o, [make(o) for _, make in pairs], milestones)

    check(ours, make_torch, base, 40)


@pytest.mark.parametrize("milestones", [[0, 4, 4], [3, 6, 9], [0, 0, 5]])
def test_sequential_lr_quirks(milestones):
    """Milestone 0 and repeated milestones skip schedules; a later MultiplicativeLR continues from the previous
    LR times lr_lambda(0); a later ConstantLR(total_iters=0) restarts at the full lr."""
    f = lambda e: 0.5 if e == 0 else 0.9  # noqa: E731
    ours = S.SequentialLR([S.ExponentialLR(0.2, 0.7), S.ConstantLR(0.2, 0.25, 0), S.MultiplicativeLR(0.2, f),
                           S.ConstantLR(0.2, 0.5, 0)], milestones)

    def make(o):
        return TS.SequentialLR(o, [TS.ExponentialLR(o, 0.7), TS.ConstantLR(o, 0.25, 0), TS.MultiplicativeLR(o, f),
                                   TS.ConstantLR(o, 0.5, 0)], milestones)

    check(ours, make, 0.2, 20)


def test_sequential_lr_fifth_schedule_continues_from_the_fourth():
    """A MultiplicativeLR after four schedules continues from the lr the fourth one reached."""
    f = lambda e: 0.8  # noqa: E731
    ours = S.SequentialLR([S.ExponentialLR(0.2, 0.9), S.ExponentialLR(0.2, 0.7), S.StepLR(0.2, 2, 0.5),
                           S.ExponentialLR(0.2, 0.6), S.MultiplicativeLR(0.2, f)], [2, 4, 7, 11])

    def make(o):
        return TS.SequentialLR(o, [TS.ExponentialLR(o, 0.9), TS.ExponentialLR(o, 0.7), TS.StepLR(o, 2, 0.5),
                                   TS.ExponentialLR(o, 0.6), TS.MultiplicativeLR(o, f)], [2, 4, 7, 11])

    check(ours, make, 0.2, 20)


def test_sequential_lr_warmup_then_cosine_per_step():
    """The usual recipe, with steps_per_epoch: torch steps once per epoch, optax counts updates."""
    spe, base = 4, 0.1
    ours = S.SequentialLR([S.LinearLR(base, 0.01, total_iters=3), S.CosineAnnealingLR(base, 10)], [3],
                          steps_per_epoch=spe)
    expected = torch_sequence(lambda o: TS.SequentialLR(o, [TS.LinearLR(o, 0.01, total_iters=3),
                                                            TS.CosineAnnealingLR(o, 10)], [3]), base, 30)
    assert_sequence(ours_sequence(ours, 31 * spe - 1), np.repeat(expected, spe), base)


def test_sequential_lr_refusals():
    with pytest.raises(ValueError, match="total_iters"):
        S.SequentialLR([S.ExponentialLR(0.1, 0.9), S.LinearLR(0.1, 0.5, total_iters=0)], [3])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        S.SequentialLR([S.ExponentialLR(0.1, 0.9), S.ReduceLROnPlateau(0.1)], [3])
    with pytest.raises(ValueError, match="milestones"):
        S.SequentialLR([S.ExponentialLR(0.1, 0.9), S.StepLR(0.1, 2)], [3, 5])
    with pytest.raises(ValueError, match="at least one"):
        S.SequentialLR([], [])
    with pytest.raises(TypeError, match=r"schedules\[1\]"):
        S.SequentialLR([S.ExponentialLR(0.1, 0.9), 0.1], [3])


# ----------------------------------------------------------------------------- steps_per_epoch, jit, vmap

STEPS_PER_EPOCH_CASES = {
    "step": (lambda spe: S.StepLR(0.2, 2, 0.5, steps_per_epoch=spe), lambda o: TS.StepLR(o, 2, 0.5)),
    "cosine": (lambda spe: S.CosineAnnealingLR(0.2, 3, steps_per_epoch=spe), lambda o: TS.CosineAnnealingLR(o, 3)),
    "restarts": (lambda spe: S.CosineAnnealingWarmRestarts(0.2, 2, 2, steps_per_epoch=spe),
                 lambda o: TS.CosineAnnealingWarmRestarts(o, 2, 2)),
    "lambda-host": (lambda spe: S.LambdaLR(0.2, lambda e: 1 / (e + 1), steps_per_epoch=spe),
                    lambda o: TS.LambdaLR(o, lambda e: 1 / (e + 1))),
    "linear": (lambda spe: S.LinearLR(0.2, 0.5, 0.1, 4, steps_per_epoch=spe), lambda o: TS.LinearLR(o, 0.5, 0.1, 4)),
}


@settings(max_examples=10)
@given(name=st.sampled_from(sorted(STEPS_PER_EPOCH_CASES)), spe=st.integers(1, 7))
def test_steps_per_epoch(name, spe):
    ours, make = STEPS_PER_EPOCH_CASES[name]
    epochs = 14
    per_epoch = torch_sequence(make, 0.2, epochs)
    steps = (epochs + 1) * spe
    assert_sequence(ours_sequence(ours(spe), (epochs + 1) * 7)[:steps], np.repeat(per_epoch, spe), 0.2)


def _jit_cases():
    host = lambda e: min(1.0, 3 / (e + 1))  # noqa: E731
    return {
        "step": (S.StepLR(0.1, 3, 0.5), lambda o: TS.StepLR(o, 3, 0.5)),
        "multistep": (S.MultiStepLR(0.1, [2, 5, 5]), lambda o: TS.MultiStepLR(o, [2, 5, 5])),
        "exponential": (S.ExponentialLR(0.1, 0.9), lambda o: TS.ExponentialLR(o, 0.9)),
        "constant": (S.ConstantLR(0.1, 0.5, 3), lambda o: TS.ConstantLR(o, 0.5, 3)),
        "linear": (S.LinearLR(0.1, 0.2, 0.8, 6), lambda o: TS.LinearLR(o, 0.2, 0.8, 6)),
        "polynomial": (S.PolynomialLR(0.1, 6, 1.5), lambda o: TS.PolynomialLR(o, 6, 1.5)),
        "cosine": (S.CosineAnnealingLR(0.1, 5, 1e-3), lambda o: TS.CosineAnnealingLR(o, 5, 1e-3)),
        "restarts": (S.CosineAnnealingWarmRestarts(0.1, 2, 2, 1e-3),
                     lambda o: TS.CosineAnnealingWarmRestarts(o, 2, 2, 1e-3)),
        "one_cycle": (S.OneCycleLR(0.1, total_steps=24), lambda o: TS.OneCycleLR(o, 0.1, total_steps=24)),
        "lambda_host": (S.LambdaLR(0.1, host), lambda o: TS.LambdaLR(o, host)),
        "multiplicative": (S.MultiplicativeLR(0.1, lambda e: 0.9 + 0.0 * e),
                           lambda o: TS.MultiplicativeLR(o, lambda e: 0.9)),
        "sequential": (S.SequentialLR([S.LinearLR(0.1, 0.2, total_iters=4), S.LambdaLR(0.1, host)], [4]),
                       lambda o: TS.SequentialLR(o, [TS.LinearLR(o, 0.2, total_iters=4), TS.LambdaLR(o, host)], [4])),
    }


def test_jit_traced_counts_and_vmap():
    """Every schedule under jit (array counts, traced scalar counts as optax passes them, vmap) equals torch."""
    n = 24
    cases = _jit_cases()
    everything = jax.jit(lambda k: {name: sched(k) for name, (sched, _) in cases.items()})
    at_array = everything(jnp.arange(n + 1))
    at_scalar = [everything(jnp.int32(k)) for k in range(n + 1)]
    vmapped = jax.vmap(everything)(jnp.arange(n + 1))
    for name, (sched, make) in cases.items():
        expected = torch_sequence(make, 0.1, n)
        assert_sequence(np.asarray(at_array[name]), expected, 0.1)
        np.testing.assert_allclose([float(d[name]) for d in at_scalar], at_array[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(vmapped[name], at_array[name], rtol=1e-6, err_msg=name)
    assert float(cases["step"][0](4)) == pytest.approx(0.05)  # plain Python int counts
    momentum = cases["one_cycle"][0].momentum
    assert_sequence(np.asarray(jax.jit(momentum)(jnp.arange(n + 1))),
                    torch_sequence(cases["one_cycle"][1], 0.1, n, key="momentum", momentum=0.9), 1.0)


# ----------------------------------------------------------------------------- ReduceLROnPlateau

def torch_plateau_lrs(base, metrics, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = TS.ReduceLROnPlateau(opt, **kw)
    out = []
    for m in metrics:
        opt.step()
        sched.step(m)
        out.append(opt.param_groups[0]["lr"])
    return np.array(out)


def ours_plateau_lrs(plateau, metrics):
    # Eager steps (compiled once, shared by all examples); the jitted path is tested with the chain below.
    state, out = plateau.init(), []
    for m in metrics:
        state = plateau.step(state, jnp.float32(m))
        out.append(float(state.lr))
    return np.array(out)


# Values chosen so float32 and float64 agree on every comparison: plateaus are exact repeats,
# improvements and regressions are far from the thresholds.
METRIC_VALUES = [4.0, 2.0, 1.0, 1.0, 0.5, 0.25, 3.0, 0.99, 1.5, 0.1]


@settings(max_examples=25)
@given(metrics=st.lists(st.sampled_from(METRIC_VALUES), min_size=10, max_size=40),
       mode=st.sampled_from(["min", "max"]), factor=st.sampled_from([0.1, 0.5, 0.0]),
       patience=st.integers(0, 3), threshold=st.sampled_from([0.0, 1e-4, 0.05, 0.3]),
       threshold_mode=st.sampled_from(["rel", "abs"]), cooldown=st.integers(0, 3),
       min_lr=st.sampled_from([0.0, 2e-3, 0.05]), eps=st.sampled_from([1e-8, 1e-3]))
def test_reduce_lr_on_plateau_matches_torch(metrics, mode, factor, patience, threshold, threshold_mode, cooldown,
                                            min_lr, eps):
    kw = dict(mode=mode, factor=factor, patience=patience, threshold=threshold, threshold_mode=threshold_mode,
              cooldown=cooldown, min_lr=min_lr, eps=eps)
    base = 0.2
    expected = torch_plateau_lrs(base, metrics, **kw)
    assert_sequence(ours_plateau_lrs(S.ReduceLROnPlateau(base, **kw), metrics), expected, base)


def test_reduce_lr_on_plateau_eps_guard_and_min_lr():
    # Ten reductions by 0.1 from 0.1: the last ones would change the LR by <= eps and are skipped.
    metrics = [1.0] * 15
    expected = torch_plateau_lrs(0.1, metrics, patience=0, eps=1e-8)
    assert expected[-1] > 0
    assert_sequence(ours_plateau_lrs(S.ReduceLROnPlateau(0.1, patience=0), metrics), expected, 0.1)
    expected = torch_plateau_lrs(0.1, metrics, patience=1, min_lr=3e-3, factor=0.5)
    assert_sequence(ours_plateau_lrs(S.ReduceLROnPlateau(0.1, patience=1, min_lr=3e-3, factor=0.5), metrics),
                    expected, 0.1)


def test_reduce_lr_on_plateau_in_a_chain_like_torch():
    """optax.chain(SGD(lr, momentum), plateau) with plateau.step once per epoch == torch SGD + scheduler."""
    base, epochs, steps = 0.05, 8, 3
    rs = np.random.RandomState(1)
    grads = rs.standard_normal((epochs, steps, 2)).astype(np.float32)
    metrics = [3.0, 2.0, 2.0, 2.0, 2.5, 1.0, 1.0, 1.0]
    plateau = S.ReduceLROnPlateau(base, patience=1, factor=0.5, cooldown=1)
    tx = optax.chain(optim.SGD(base, momentum=0.9), plateau)

    @jax.jit
    def epoch(w, s, gs, metric):
        def body(carry, g):
            w, s = carry
            u, s = tx.update(g, s, w)
            return (optax.apply_updates(w, u), s), None
        (w, s), _ = jax.lax.scan(body, (w, s), gs)
        return w, plateau.step(s, metric)

    w = jnp.array([1.0, -1.0])
    s = tx.init(w)
    p = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    topt = torch.optim.SGD([p], lr=base, momentum=0.9)
    tsched = TS.ReduceLROnPlateau(topt, patience=1, factor=0.5, cooldown=1)
    lrs = []
    for e in range(epochs):
        w, s = epoch(w, s, grads[e], metrics[e])
        for g in grads[e]:
            p.grad = torch.tensor(g)
            topt.step()
        tsched.step(metrics[e])
        lrs.append(float(plateau.lr(s)))
        assert lrs[-1] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-6)
    assert min(lrs) < base  # the plateau did reduce
    np.testing.assert_allclose(np.asarray(w), p.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_reduce_lr_on_plateau_value_extra_arg():
    """update(..., value=metric): update at the current LR, then torch's scheduler.step(metric)."""
    plateau = S.ReduceLROnPlateau(0.1, patience=0, factor=0.5)
    tx = optax.chain(optax.sgd(0.1), plateau)
    w = jnp.ones(2)
    s = tx.init(w)
    metrics = [1.0, 1.0, 1.0, 0.5]
    expected = torch_plateau_lrs(0.1, metrics, patience=0, factor=0.5)
    update = jax.jit(tx.update)
    seen = []
    for m, lr in zip(metrics, expected):
        u, s = update(jnp.ones(2), s, w, value=m)
        seen.append(-float(u[0]))
        assert float(plateau.lr(s)) == pytest.approx(lr, rel=1e-6)
    np.testing.assert_allclose(seen, [0.1] + list(expected[:-1]), rtol=1e-6)


def test_reduce_lr_on_plateau_errors():
    with pytest.raises(ValueError, match="[Ff]actor"):
        S.ReduceLROnPlateau(0.1, factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        S.ReduceLROnPlateau(0.1, mode="up")
    with pytest.raises(ValueError, match="threshold mode"):
        S.ReduceLROnPlateau(0.1, threshold_mode="pct")
    with pytest.raises(ValueError, match="patience"):
        S.ReduceLROnPlateau(0.1, patience=-1)
    with pytest.raises(TypeError, match="cooldown"):
        S.ReduceLROnPlateau(0.1, cooldown=1.5)
    with pytest.raises(ValueError, match="min_lr"):
        S.ReduceLROnPlateau(0.1, min_lr=-1.0)
    plateau = S.ReduceLROnPlateau(0.1)
    with pytest.raises(ValueError, match="ReduceLROnPlateauState"):
        plateau.step(optax.sgd(0.1).init(jnp.ones(2)), 1.0)


# ----------------------------------------------------------------------------- bad arguments

BAD = [
    (lambda: S.StepLR(0.1, 0), ValueError, "step_size"),
    (lambda: S.StepLR(0.1, 2.0), TypeError, "step_size"),
    (lambda: S.StepLR(-0.1, 2), ValueError, "learning rate"),
    (lambda: S.StepLR("0.1", 2), TypeError, "lr"),
    (lambda: S.StepLR(0.1, 2, steps_per_epoch=0), ValueError, "steps_per_epoch"),
    (lambda: S.MultiStepLR(0.1, [5, 3]), ValueError, "milestones"),
    (lambda: S.MultiStepLR(0.1, [-1, 3]), ValueError, "milestones"),
    (lambda: S.MultiStepLR(0.1, 5), TypeError, "milestones"),
    (lambda: S.ExponentialLR(0.1, None), TypeError, "gamma"),
    (lambda: S.CosineAnnealingLR(0.1, 0), ValueError, "T_max"),
    (lambda: S.CosineAnnealingWarmRestarts(0.1, 0), ValueError, "T_0"),
    (lambda: S.CosineAnnealingWarmRestarts(0.1, 2.5), ValueError, "T_0"),
    (lambda: S.CosineAnnealingWarmRestarts(0.1, 2, 0), ValueError, "T_mult"),
    (lambda: S.LinearLR(0.1, start_factor=0.0), ValueError, "start_factor"),
    (lambda: S.LinearLR(0.1, end_factor=1.5), ValueError, "end_factor"),
    (lambda: S.LinearLR(0.1, total_iters=-1), ValueError, "total_iters"),
    (lambda: S.ConstantLR(0.1, factor=1.5), ValueError, "factor"),
    (lambda: S.ConstantLR(0.1, factor=0.0, total_iters=3), ValueError, "factor"),
    (lambda: S.PolynomialLR(0.1, power=-1.0), ValueError, "power"),
    (lambda: S.LambdaLR(0.1, 0.5), TypeError, "lr_lambda"),
    (lambda: S.MultiplicativeLR(0.1, 0.5), TypeError, "lr_lambda"),
    (lambda: S.OneCycleLR(0.1), ValueError, "total_steps"),
    (lambda: S.OneCycleLR(0.1, total_steps=0), ValueError, "total_steps"),
    (lambda: S.OneCycleLR(0.1, epochs=0, steps_per_epoch=3), ValueError, "epochs"),
    (lambda: S.OneCycleLR(0.1, epochs=2, steps_per_epoch=-3), ValueError, "steps_per_epoch"),
    (lambda: S.OneCycleLR(0.1, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    (lambda: S.OneCycleLR(0.1, total_steps=10, pct_start=1), ValueError, "pct_start"),
    (lambda: S.OneCycleLR(0.1, total_steps=10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda: S.OneCycleLR(0.1, total_steps=10, pct_start=0.1), ValueError, "pct_start"),
]


@pytest.mark.parametrize("make, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_arguments(make, exc, name):
    with pytest.raises(exc, match=name):
        make()


def test_float_counts_are_refused():
    with pytest.raises(TypeError, match="count"):
        S.StepLR(0.1, 2)(jnp.float32(3.0))


@pytest.mark.parametrize("name, required", [
    ("ConstantLR", ()), ("LinearLR", ()), ("PolynomialLR", ()), ("StepLR", (3,)), ("MultiStepLR", ([2, 5],)),
    ("CosineAnnealingLR", (7,)), ("CosineAnnealingWarmRestarts", (4,)),
])
def test_default_arguments_are_torchs(name, required):
    # only the required arguments: every default (factors, total_iters, gamma, eta_min, T_mult) is torch's
    base = 0.3
    assert_sequence(ours_sequence(getattr(S, name)(base, *required), 20),
                    torch_sequence(lambda o: getattr(TS, name)(o, *required), base, 20), base)


def test_sequential_lr_third_schedule_continues_from_the_second():
    # MultiplicativeLR restarts from the current LR: the third part starts from the second's value at
    # its last epoch, which itself started from the first's
    base = 0.5
    ours = S.SequentialLR([S.ExponentialLR(base, 0.9), S.MultiplicativeLR(base, lambda e: 0.8),
                           S.MultiplicativeLR(base, lambda e: 0.7)], [3, 6])
    expected = torch_sequence(lambda o: TS.SequentialLR(o, [TS.ExponentialLR(o, 0.9), TS.MultiplicativeLR(o, lambda e: 0.8),
                                                            TS.MultiplicativeLR(o, lambda e: 0.7)], [3, 6]), base, 12)
    assert_sequence(ours_sequence(ours, 12), expected, base)
