"""Schedules that anneal toward tiny values against torch, to float32 rounding: OneCycleLR over generated
configurations of all its options (every LR and momentum of the whole sequence), the cosine schedules over
generated periods and minimum LRs (down to 0, and above the base LR)."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn.optim import lr_scheduler as S

EPS32 = float(np.finfo(np.float32).eps)
# relative error allowed per value, in float32 roundings (the offset, the weight, the product and the sum)
ULPS = 4


def torch_values(make, lr, n, optimizer=torch.optim.SGD):
    """LRs and momenta (SGD's ``momentum`` or Adam's ``beta1``) after 0..n calls to ``step()`` of the
    scheduler ``make(optimizer)``; ``None`` where torch divides by a zero-length phase."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = optimizer([p], lr=lr, **({"momentum": 0.5} if optimizer is torch.optim.SGD else {}))
    key = "momentum" if optimizer is torch.optim.SGD else "betas"
    lrs, moms = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sched = make(opt)
            for step in range(n + 1):
                if step:
                    opt.step()
                    sched.step()
                group = opt.param_groups[0]
                lrs.append(group["lr"])
                moms.append(group[key][0] if key == "betas" else group[key])
        except ZeroDivisionError:
            return None
    return np.array(lrs), np.array(moms)


def assert_float32_close(ours, expected, what):
    ours = np.asarray(ours, np.float64)
    # XLA flushes float32 subnormals to zero
    tol = ULPS * EPS32 * np.abs(expected) + float(np.finfo(np.float32).tiny)
    bad = np.abs(ours - expected) > tol
    assert not bad.any(), (f"{what}: first at step {np.argmax(bad)}: {ours[bad][:3]} vs {expected[bad][:3]} "
                           f"(relative {np.max(np.abs(ours - expected)[bad] / np.abs(expected[bad])):.2e})")


MAX_STEPS = 400
# one shape for every example: the schedule's eager ops compile once
COUNTS = jnp.arange(MAX_STEPS + 3)

configs = st.fixed_dictionaries({
    "max_lr": st.floats(1e-5, 10.0),
    "pct_start": st.one_of(st.sampled_from([0.0, 0.25, 0.3, 0.5, 1.0]), st.floats(0.0, 1.0)),
    "anneal_strategy": st.sampled_from(["cos", "linear"]),
    "cycle_momentum": st.booleans(),
    "base_momentum": st.floats(0.0, 0.99),
    "max_momentum": st.floats(0.0, 0.99),
    "div_factor": st.floats(1.0, 1e3),
    "final_div_factor": st.floats(1.0, 1e5),
    "three_phase": st.booleans(),
}).flatmap(lambda kw: st.one_of(
    st.integers(2, MAX_STEPS).map(lambda n: {**kw, "total_steps": n}),
    st.tuples(st.integers(1, 20), st.integers(1, 20)).map(lambda e: {**kw, "epochs": e[0], "steps_per_epoch": e[1]}),
))


@settings(max_examples=30)
@given(kw=configs, adam=st.booleans())
def test_one_cycle_matches_torch_to_float32_rounding(kw, adam):
    max_lr = kw.pop("max_lr")
    total = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    expected = torch_values(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr, **kw), max_lr, total,
                            torch.optim.Adam if adam else torch.optim.SGD)
    if expected is None:  # torch divides by zero at a step; refused up front
        with pytest.raises(ValueError, match="zero length"):
            S.OneCycleLR(max_lr, **kw)
        return
    sched = S.OneCycleLR(max_lr, **kw)
    lrs = np.asarray(sched(COUNTS))
    assert_float32_close(lrs[:total + 1], expected[0], f"lr {kw}")
    np.testing.assert_array_equal(lrs[total:], lrs[total])  # held past total_steps, where torch raises
    if kw["cycle_momentum"]:
        assert_float32_close(np.asarray(sched.momentum(COUNTS))[:total + 1], expected[1], f"momentum {kw}")
    else:
        assert sched.momentum is None


@pytest.mark.parametrize("three_phase", [True, False])
@pytest.mark.parametrize("anneal_strategy", ["linear", "cos"])
def test_the_tiny_final_lr_keeps_its_digits(three_phase, anneal_strategy):
    kw = dict(total_steps=1000, anneal_strategy=anneal_strategy, three_phase=three_phase)
    lrs, _ = torch_values(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, **kw), 0.1, 1000)
    ours = np.asarray(S.OneCycleLR(0.1, **kw)(jnp.arange(1001)))
    assert_float32_close(ours, lrs, f"lr {kw}")
    assert_float32_close(ours[-50:], lrs[-50:], "the last steps")


eta_mins = st.one_of(st.just(0.0), st.floats(1e-6, 1e-2), st.floats(1.0, 5.0))


@settings(max_examples=20)
@given(lr=st.floats(1e-4, 1.0), t_max=st.integers(1, 200), eta_min=eta_mins)
def test_cosine_annealing_matches_torch_to_float32_rounding(lr, t_max, eta_min):
    n = min(3 * t_max, MAX_STEPS)  # past T_max torch's recursion climbs back up
    expected, _ = torch_values(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, t_max, eta_min), lr, n)
    ours = np.asarray(S.CosineAnnealingLR(lr, t_max, eta_min)(COUNTS))[:n + 1]
    # torch's recursion adds its own float64 rounding per step, far below float32's
    assert_float32_close(ours, expected, f"CosineAnnealingLR({lr}, {t_max}, {eta_min})")


@settings(max_examples=20)
@given(lr=st.floats(1e-4, 1.0), t_0=st.integers(1, 60), t_mult=st.integers(1, 3), eta_min=eta_mins)
def test_warm_restarts_match_torch_to_float32_rounding(lr, t_0, t_mult, eta_min):
    expected, _ = torch_values(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, t_0, t_mult, eta_min), lr, MAX_STEPS)
    ours = np.asarray(S.CosineAnnealingWarmRestarts(lr, t_0, t_mult, eta_min)(COUNTS))[:MAX_STEPS + 1]
    assert_float32_close(ours, expected, f"CosineAnnealingWarmRestarts({lr}, {t_0}, {t_mult}, {eta_min})")
