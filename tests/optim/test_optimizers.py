"""Parameter trajectories of fcnn.optim equal torch.optim's, step for step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from fcnn import optim
from fcnn.optim import lr_scheduler as S

STEPS = 60
SHAPES = {"conv.weight": (3, 2, 2), "conv.bias": (3,), "fc.weight": (2, 3)}


def _problem(seed=0):
    rs = np.random.RandomState(seed)
    p0 = {k: rs.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    target = {k: rs.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    curv = {k: rs.uniform(0.5, 2.0, s).astype(np.float32) for k, s in SHAPES.items()}
    noise = {k: (0.3 * rs.standard_normal((STEPS,) + s)).astype(np.float32) for k, s in SHAPES.items()}
    return p0, target, curv, noise


def grad_fn(p, target, curv, noise_k):
    # gradient of a noisy quadratic; the same float32 formula on both sides
    return curv * (p - target) + noise_k


def fcnn_trajectory(opt, seed=0):
    p0, target, curv, noise = _problem(seed)

    @jax.jit
    def run(p0, noise):
        def body(carry, n_k):
            p, s = carry
            g = jax.tree.map(grad_fn, p, target, curv, n_k)
            u, s = opt.update(g, s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p
        return jax.lax.scan(body, (p0, opt.init(p0)), noise)[1]

    return jax.tree.map(np.asarray, run(p0, noise))


def torch_trajectory(make_opt, make_sched=None, seed=0, groups=None):
    p0, target, curv, noise = _problem(seed)
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
    param_arg = list(ps.values()) if groups is None else groups(ps)
    opt = make_opt(param_arg)
    sched = make_sched(opt) if make_sched else None
    out = {k: [] for k in ps}
    for i in range(STEPS):
        with torch.no_grad():
            for k, p in ps.items():
                p.grad = grad_fn(p, torch.from_numpy(target[k]), torch.from_numpy(curv[k]),
                                 torch.from_numpy(noise[k][i])).clone()
        opt.step()
        if sched:
            sched.step()
        for k, p in ps.items():
            out[k].append(p.detach().numpy().copy())
    return {k: np.stack(v) for k, v in out.items()}


def assert_same_trajectory(ours, theirs, rtol=2e-5, atol=2e-5):
    for k in SHAPES:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol, atol=atol, err_msg=k)


TO = torch.optim
CASES = [
    ("SGD", dict()),
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=1.0)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, weight_decay=0.2, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.5, weight_decay=0.05, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.02, amsgrad=True)),
    ("Adam", dict(lr=0.02, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.02)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.005, alpha=0.9, eps=1e-4, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.005, momentum=0.9)),
    ("RMSprop", dict(lr=0.005, centered=True)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.5, weight_decay=0.05, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    ("Adadelta", dict(maximize=True)),
]


@pytest.mark.parametrize("name, kw", CASES, ids=[f"{n}-{'-'.join(k) or 'defaults'}" for n, k in CASES])
def test_trajectory_matches_torch(name, kw):
    ours = fcnn_trajectory(getattr(optim, name)(**kw))
    theirs = torch_trajectory(lambda ps: getattr(TO, name)(ps, **kw))
    assert_same_trajectory(ours, theirs)


@pytest.mark.parametrize("name, kw, sched", [
    ("SGD", dict(momentum=0.9), lambda lr: S.StepLR(lr, 7, gamma=0.5)),
    ("Adam", dict(), lambda lr: S.CosineAnnealingLR(lr, 20, eta_min=1e-3)),
    ("Adagrad", dict(lr_decay=0.01), lambda lr: S.ExponentialLR(lr, 0.97)),
    ("RMSprop", dict(momentum=0.3), lambda lr: S.SequentialLR([S.LinearLR(lr, 0.1, total_iters=5),
                                                              S.MultiStepLR(lr, [10, 30])], [5])),
])
def test_schedule_as_lr_matches_torch_scheduler(name, kw, sched):
    lr = 0.05
    ours = fcnn_trajectory(getattr(optim, name)(sched(lr), **kw))
    torch_scheds = {
        "SGD": lambda o: TO.lr_scheduler.StepLR(o, 7, gamma=0.5),
        "Adam": lambda o: TO.lr_scheduler.CosineAnnealingLR(o, 20, eta_min=1e-3),
        "Adagrad": lambda o: TO.lr_scheduler.ExponentialLR(o, 0.97),
        "RMSprop": lambda o: TO.lr_scheduler.SequentialLR(
            o, [TO.lr_scheduler.LinearLR(o, 0.1, total_iters=5), TO.lr_scheduler.MultiStepLR(o, [10, 30])], [5]),
    }
    theirs = torch_trajectory(lambda ps: getattr(TO, name)(ps, lr=lr, **kw), torch_scheds[name])
    assert_same_trajectory(ours, theirs)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_one_cycle_momentum_cycle_matches_torch(name):
    sched = S.OneCycleLR(0.1, total_steps=STEPS, pct_start=0.25)
    if name == "SGD":
        ours = fcnn_trajectory(optim.SGD(sched, momentum=sched.momentum, nesterov=True))
        make = lambda ps: TO.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)
    else:
        ours = fcnn_trajectory(optim.Adam(sched, betas=(sched.momentum, 0.999)))
        make = lambda ps: TO.Adam(ps, lr=0.1)
    theirs = torch_trajectory(make, lambda o: TO.lr_scheduler.OneCycleLR(o, 0.1, total_steps=STEPS, pct_start=0.25))
    # lr up to 0.1 on O(1) params: float32 noise in the bias corrections reaches ~1e-5 absolute
    assert_same_trajectory(ours, theirs, rtol=1e-4, atol=5e-5)


def test_weight_decay_mask_replaces_param_groups():
    ours = fcnn_trajectory(optim.SGD(0.05, momentum=0.9, weight_decay=0.3, mask=optim.weight_decay_mask))

    def groups(ps):
        return [{"params": [ps["conv.weight"], ps["fc.weight"]]},
                {"params": [ps["conv.bias"]], "weight_decay": 0.0}]

    theirs = torch_trajectory(lambda g: TO.SGD(g, lr=0.05, momentum=0.9, weight_decay=0.3), groups=groups)
    assert_same_trajectory(ours, theirs)
    ours_w = fcnn_trajectory(optim.AdamW(0.02, weight_decay=0.3, mask=optim.weight_decay_mask))
    theirs_w = torch_trajectory(lambda g: TO.AdamW(g, lr=0.02, weight_decay=0.3), groups=groups)
    assert_same_trajectory(ours_w, theirs_w)


def test_masks_follow_the_documented_rule():
    params = {"conv1": {"weight": jnp.ones((4, 3, 3, 3)), "bias": jnp.ones(4)},
              "bn1": {"weight": jnp.ones(4), "bias": jnp.ones(4)},
              "fc": {"weight": jnp.ones((10, 4)), "bias": jnp.ones(10)}}
    mask = optim.weight_decay_mask(params)
    assert mask == {"conv1": {"weight": True, "bias": False}, "bn1": {"weight": False, "bias": False},
                    "fc": {"weight": True, "bias": False}}
    assert optim.no_decay_mask(params) == jax.tree.map(lambda m: not m, mask)


@pytest.mark.parametrize("make, match", [
    (lambda: optim.SGD(-1.0), "Invalid learning rate: -1"),
    (lambda: optim.SGD(0.1, momentum=-0.5), "momentum"),
    (lambda: optim.SGD(0.1, nesterov=True), "Nesterov"),
    (lambda: optim.SGD(0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda: optim.SGD(0.1, weight_decay=-1), "weight_decay"),
    (lambda: optim.Adam(betas=(1.0, 0.999)), "beta parameter at index 0"),
    (lambda: optim.Adam(betas=(-0.1, 0.999)), "beta parameter at index 0"),
    (lambda: optim.Adam(betas=(0.9, -0.1)), "beta parameter at index 1"),
    (lambda: optim.Adam(eps=-1.0), "epsilon"),
    (lambda: optim.AdamW(weight_decay=-0.1), "weight_decay"),
    (lambda: optim.Adagrad(lr_decay=-1.0), "lr_decay"),
    (lambda: optim.Adagrad(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda: optim.RMSprop(alpha=-0.1), "alpha"),
    (lambda: optim.RMSprop(momentum=-0.1), "momentum"),
    (lambda: optim.Adadelta(rho=1.5), "rho"),
])
def test_bad_hyperparameters_raise_like_torch(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="lr"):
        optim.SGD("0.1")
    with pytest.raises(TypeError, match="betas"):
        optim.Adam(betas=0.9)
    with pytest.raises(TypeError, match="betas must be a tuple of two floats"):
        optim.Adam(betas=(0.9,))


@pytest.mark.parametrize("name, kw", [("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9)),
                                      ("Adam", dict(lr=0.1)), ("RMSprop", dict(lr=0.1))])
def test_non_finite_parameters_without_weight_decay_step_as_torchs(name, kw):
    """weight_decay=0 adds nothing (not 0 · p, which is NaN for an infinite parameter), as torch."""
    p0 = np.array([np.inf, -np.inf, 1.0], np.float32)
    g = np.array([0.5, -0.25, 1.0], np.float32)
    opt = getattr(optim, name)(**kw, weight_decay=0.0)
    u, _ = opt.update(jnp.asarray(g), opt.init(jnp.asarray(p0)), jnp.asarray(p0))
    ours = np.asarray(optax.apply_updates(jnp.asarray(p0), u))
    tp = torch.tensor(p0, requires_grad=True)
    topt = getattr(TO, name)([tp], **kw, weight_decay=0.0)
    tp.grad = torch.tensor(g)
    topt.step()
    np.testing.assert_allclose(ours, tp.detach().numpy(), rtol=1e-5)  # infinities equal, NaN fails


def test_coupled_weight_decay_is_l2_penalty_with_half_factor():
    lam = 0.1
    p0, target, curv, noise = _problem(3)

    def loss(p, n):
        return sum(jnp.sum(0.5 * curv[k] * (p[k] - target[k]) ** 2 + n[k] * p[k]) for k in p)

    def run(opt, penalty):
        def body(carry, n):
            p, s = carry
            g = jax.grad(lambda q: loss(q, n) + penalty * optim.l2_penalty(q))(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), noise)[0][0])(p0)

    coupled = run(optim.SGD(0.05, momentum=0.9, weight_decay=lam), 0.0)
    penalized = run(optim.SGD(0.05, momentum=0.9), lam / 2)
    for k in SHAPES:
        np.testing.assert_allclose(coupled[k], penalized[k], rtol=1e-5, atol=1e-6)


def test_penalties_values_and_gradients_match_torch():
    p0, *_ = _problem(4)
    p0["conv.bias"][0] = 0.0  # |w| at 0: gradient 0 as torch's abs
    mask = optim.weight_decay_mask(p0)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
    for fn, tfn in [(optim.l1_penalty, lambda t: t.abs().sum()), (optim.l2_penalty, lambda t: (t * t).sum())]:
        for m in (None, mask):
            val, g = jax.value_and_grad(lambda p: fn(p, m))(p0)
            for t in tp.values():
                t.grad = None
            ref = sum(tfn(tp[k]) for k in tp if m is None or m[k])
            ref.backward()
            np.testing.assert_allclose(val, ref.item(), rtol=1e-5)
            for k in tp:
                expected = tp[k].grad.numpy() if tp[k].grad is not None else np.zeros_like(p0[k])
                np.testing.assert_allclose(g[k], expected, rtol=1e-5, atol=1e-7)


def test_reduce_on_plateau_chained_after_an_optimizer_matches_torch():
    # the metric is fed every 5th update (an "epoch"), torch's scheduler.step(metric)
    metrics = np.array([5, 4, 4, 4, 4, 3.5, 3.5, 3.5, 3.5, 3.5, 3.5, 3], np.float32)
    plateau = S.ReduceLROnPlateau(0.05, patience=1, factor=0.5, cooldown=1)
    opt = optax.chain(optim.AdamW(0.05, weight_decay=0.1), plateau)
    p0, target, curv, noise = _problem(5)

    @jax.jit
    def run(p0, noise):
        def body(carry, xs):
            p, s = carry
            i, n_k = xs
            g = jax.tree.map(grad_fn, p, target, curv, n_k)
            u, s = opt.update(g, s, p)
            p = optax.apply_updates(p, u)
            stepped = plateau.step(s, jnp.asarray(metrics)[i // 5])
            s = jax.tree.map(lambda a, b: jnp.where(i % 5 == 4, a, b), stepped, s)
            return (p, s), (p, plateau.lr(s))
        return jax.lax.scan(body, (p0, opt.init(p0)), (jnp.arange(STEPS), noise))[1]

    ours, lrs = run(p0, noise)

    ps = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
    topt = TO.AdamW(list(ps.values()), lr=0.05, weight_decay=0.1)
    sched = TO.lr_scheduler.ReduceLROnPlateau(topt, patience=1, factor=0.5, cooldown=1)
    theirs, their_lrs = {k: [] for k in ps}, []
    for i in range(STEPS):
        for k, p in ps.items():
            p.grad = grad_fn(p.detach(), torch.from_numpy(target[k]), torch.from_numpy(curv[k]),
                             torch.from_numpy(noise[k][i])).clone()
        topt.step()
        if i % 5 == 4:
            sched.step(float(metrics[i // 5]))
        for k, p in ps.items():
            theirs[k].append(p.detach().numpy().copy())
        their_lrs.append(topt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, their_lrs, rtol=1e-6)
    assert their_lrs[-1] < 0.05 / 4  # several reductions happened
    assert_same_trajectory(jax.tree.map(np.asarray, ours), {k: np.stack(v) for k, v in theirs.items()})
