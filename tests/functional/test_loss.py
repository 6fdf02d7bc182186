import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F, nn
from oracle import assert_close, randn, to_torch

TF = torch.nn.functional
REDUCTIONS = st.sampled_from(["none", "mean", "sum"])


def check_loss(name, x, t, rtol=1e-5, atol=1e-6, grad_target=True, **kw):
    """Value and gradients (w.r.t. input and, when floating, target) equal torch's.

    fcnn's side runs as one jitted forward+backward: a single compilation per
    example instead of one per primitive.
    """
    f, tf = getattr(F, name), getattr(TF, name)
    x, t = np.asarray(x), np.asarray(t)
    arrays = {k: np.asarray(v) for k, v in kw.items() if isinstance(v, (np.ndarray, np.generic))}
    static = {k: v for k, v in kw.items() if k not in arrays}
    diff_t = grad_target and t.dtype.kind == "f"

    def loss(a, b, arrs):
        return f(a, b, **static, **arrs)

    out_shape = jax.eval_shape(loss, x, t, arrays).shape
    cot = randn(out_shape, seed=7)

    @jax.jit
    def value_and_grads(a, b, arrs, c):
        out, vjp = jax.vjp(lambda a_, b_: loss(a_, b_, arrs), a, b) if diff_t else \
            jax.vjp(lambda a_: loss(a_, b, arrs), a)
        return out, vjp(c)

    out, grads = value_and_grads(x, t, arrays, cot)
    tx, tt = to_torch(x, True), to_torch(t, diff_t)
    ref = tf(tx, tt, **static, **{k: to_torch(v) for k, v in arrays.items()})
    assert_close(out, ref, rtol, atol, f"{name} value")
    ref.backward(torch.from_numpy(cot))
    assert_close(grads[0], tx.grad, rtol, atol, f"{name} grad input")
    if diff_t:
        assert_close(grads[1], tt.grad, rtol, atol, f"{name} grad target")
    return out


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


@settings(max_examples=15)
@given(shapes, REDUCTIONS, st.sampled_from(["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"]),
       st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.booleans(), st.integers(0, 100))
def test_regression_losses_match_torch(shape, reduction, name, param, weighted, seed):
    x, t = randn(shape, seed), randn(shape, seed + 1)
    kw = {"reduction": reduction}
    if name == "smooth_l1_loss":
        kw["beta"] = param
    if name == "huber_loss":
        kw["delta"] = param or 1.0
    if weighted and name != "smooth_l1_loss":
        kw["weight"] = np.abs(randn(shape, seed + 2)) + 0.1
    check_loss(name, x, t, **kw)


# Every regression loss with every reduction, weighted and not where torch takes a weight (the same
# shape as the input; smooth_l1_loss takes none): explicit parameters, the shapes and beta/delta
# (torch's default included) rotating over the combinations.
REGRESSION_SHAPES = [(), (3,), (2, 3), (1, 4, 2), (3, 1)]
REGRESSION_FLAGS = [(n, r, w) for n in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss")
                    for r in ("none", "mean", "sum") for w in (False, True) if not (w and n == "smooth_l1_loss")]


@pytest.mark.parametrize("i, flags", list(enumerate(REGRESSION_FLAGS)),
                         ids=[f"{n}-{r}-w{int(w)}" for n, r, w in REGRESSION_FLAGS])
def test_regression_losses_every_flag_match_torch(i, flags):
    name, reduction, weighted = flags
    shape = REGRESSION_SHAPES[i % len(REGRESSION_SHAPES)]
    x, t = randn(shape, i), randn(shape, i + 50)
    kw = {"reduction": reduction}
    param = (None, 0.5, 2.0)[i % 3]  # None: torch's default beta/delta
    if name in ("smooth_l1_loss", "huber_loss") and param is not None:
        kw["beta" if name == "smooth_l1_loss" else "delta"] = param
    if weighted:
        kw["weight"] = np.abs(randn(shape, i + 100)) + 0.1
    check_loss(name, x, t, **kw)


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "huber_loss"])
@pytest.mark.parametrize("jit", [False, True])
def test_weight_in_another_dtype_matches_torch(name, jit):
    # a bfloat16 weight of the input's shape on a float32 loss: torch promotes the product to float32
    x, t = randn((4, 3), 1), randn((4, 3), 2)
    w = torch.from_numpy(np.abs(randn((4, 3), 3)) + 0.1).to(torch.bfloat16)
    ref = getattr(TF, name)(to_torch(x), to_torch(t), weight=w)
    f = getattr(F, name)
    f = jax.jit(f) if jit else f
    out = f(x, t, weight=jnp.asarray(w.float().numpy(), jnp.bfloat16))
    assert out.dtype == jnp.float32
    assert_close(out, ref)


@pytest.mark.parametrize("name, kw", [("l1_loss", {}), ("mse_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
                                      ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {"delta": 0.5})])
def test_regression_gradients_at_the_kinks(name, kw):
    # d = 0 and |d| exactly at beta/delta: torch's one-sided choices, finite.
    x = np.array([0.0, 0.5, -0.5, 1.0, 2.0], np.float32)
    t = np.array([0.0, 0.0, 0.0, 0.5, 1.5], np.float32)
    out = check_loss(name, x, t, reduction="sum", **kw)
    assert np.isfinite(np.asarray(out))


@settings(max_examples=15)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), REDUCTIONS,
       st.sampled_from(["none", "full", "last"]), st.booleans(), st.integers(0, 100))
def test_binary_cross_entropy_matches_torch(shape, reduction, weight, hard, seed):
    rs = np.random.RandomState(seed)
    p = rs.uniform(0.01, 0.99, shape).astype(np.float32)
    t = (rs.uniform(size=shape) < 0.5).astype(np.float32) if hard else rs.uniform(size=shape).astype(np.float32)
    kw = {"reduction": reduction}
    if weight != "none":
        kw["weight"] = rs.uniform(0.1, 2.0, shape if weight == "full" else shape[-1:]).astype(np.float32)
    check_loss("binary_cross_entropy", p, t, rtol=1e-4, atol=1e-5, **kw)


def test_binary_cross_entropy_is_finite_at_0_and_1_like_torch():
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.5], np.float32)
    t = np.array([0.0, 1.0, 0.0, 1.0, 1.0], np.float32)
    # log clamp at -100 gives 100 for the two wrong certain predictions
    out = check_loss("binary_cross_entropy", p, t, reduction="none", grad_target=False)
    assert np.isfinite(np.asarray(out)).all()
    g = jax.grad(lambda a: F.binary_cross_entropy(a, jnp.asarray(t), reduction="sum"))(jnp.asarray(p))
    assert np.isfinite(np.asarray(g)).all()


def test_binary_cross_entropy_checks_concrete_arrays_where_torch_does():
    # outside jit the values are checked: probabilities and targets in [0, 1] (ends included) are
    # computed like torch; a value outside raises where torch raises
    rs = np.random.RandomState(0)
    p = rs.uniform(size=(3, 4)).astype(np.float32)
    p[0, :2] = (0.0, 1.0)
    for t in (rs.uniform(size=(3, 4)).astype(np.float32), (rs.uniform(size=(3, 4)) < 0.5).astype(np.float32)):
        assert_close(F.binary_cross_entropy(p, t), TF.binary_cross_entropy(to_torch(p), to_torch(t)))
    for shift in (1.5, -0.5):
        bad = t.copy()
        bad[1, 1] = shift
        with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
            TF.binary_cross_entropy(to_torch(p), to_torch(bad))
        with pytest.raises(ValueError, match="target should be between 0 and 1"):
            F.binary_cross_entropy(p, bad)


@settings(max_examples=15)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), REDUCTIONS,
       st.booleans(), st.booleans(), st.integers(0, 100))
def test_bce_with_logits_matches_torch(shape, reduction, weighted, pos_weighted, seed):
    rs = np.random.RandomState(seed)
    x = (rs.standard_normal(shape) * 4).astype(np.float32)
    x.flat[0] = 60.0  # far in the tails: the stable form stays exact
    if x.size > 1:
        x.flat[1] = -60.0
    t = rs.uniform(size=shape).astype(np.float32)
    kw = {"reduction": reduction}
    if weighted:
        kw["weight"] = rs.uniform(0.1, 2.0, shape).astype(np.float32)
    if pos_weighted:
        kw["pos_weight"] = rs.uniform(0.1, 3.0, shape[-1:]).astype(np.float32)
    check_loss("binary_cross_entropy_with_logits", x, t, rtol=1e-5, atol=1e-5, **kw)


@st.composite
def class_configs(draw):
    batched = draw(st.booleans())
    n = draw(st.integers(1, 4))
    c = draw(st.integers(2, 5))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2))) if batched else ()
    shape = ((n, c) + extra) if batched else (c,)
    return shape, draw(REDUCTIONS), draw(st.booleans()), draw(st.sampled_from([-100, 0, 1])), draw(st.integers(0, 99))


def _index_targets(shape, ignore_index, seed):
    rs = np.random.RandomState(seed)
    c = shape[1] if len(shape) > 1 else shape[0]
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    t = rs.randint(0, c, tshape).astype(np.int64)
    if ignore_index == -100 and t.size > 1:
        t.flat[-1] = -100  # an explicitly ignored entry
    if t.size > 1:
        t.flat[0] = 0 if ignore_index != 0 else 1  # at least one target counted
    return t


# Every combination of the flags that change cross-entropy's semantics runs (hypothesis with a
# fixed seed would draw the same few combinations forever); the shapes rotate over the combinations.
CE_SHAPES = [(5,), (3, 4), (4, 3, 2), (2, 5, 3, 2), (1, 2), (4, 2, 1)]
CE_FLAGS = [(r, s, w, i) for r in ("none", "mean", "sum") for s in (0.0, 0.1, 0.35)
            for w in (False, True) for i in (-100, 1)]


def _class_weight(shape, seed):
    c = shape[1] if len(shape) > 1 else shape[0]
    return np.random.RandomState(seed).uniform(0.2, 2.0, c).astype(np.float32)


@pytest.mark.parametrize("i, flags", list(enumerate(CE_FLAGS)), ids=[f"{r}-ls{s}-w{int(w)}-ii{i}" for r, s, w, i in CE_FLAGS])
def test_cross_entropy_index_targets_every_flag_matches_torch(i, flags):
    reduction, smoothing, weighted, ignore_index = flags
    shape = CE_SHAPES[i % len(CE_SHAPES)]
    x = randn(shape, i) * 2
    t = _index_targets(shape, ignore_index, i)
    kw = {"reduction": reduction, "ignore_index": ignore_index, "label_smoothing": smoothing}
    if weighted:
        kw["weight"] = _class_weight(shape, i)
    check_loss("cross_entropy", x, t, rtol=1e-5, atol=1e-5, **kw)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_with_masked_logits_matches_torch(reduction):
    # -inf logits (masked classes) other than the targets: without label smoothing the loss and its
    # gradients are finite, as torch's; with it, infinite as torch's
    x = randn((3, 4), 0) * 2
    x[0, 2] = x[2, 0] = -np.inf
    t = np.array([1, 3, 2])
    w = _class_weight((3, 4), 1) if reduction != "sum" else None
    out = check_loss("cross_entropy", x, t, reduction=reduction, weight=w)
    assert np.isfinite(np.asarray(out)).all()
    check_loss("cross_entropy", x, t, reduction=reduction, weight=w, label_smoothing=0.2)


@settings(max_examples=8)
@given(class_configs(), st.sampled_from([0.0, 0.1, 0.35]))
def test_cross_entropy_index_targets_match_torch(cfg, smoothing):
    shape, reduction, weighted, ignore_index, seed = cfg
    x = randn(shape, seed) * 2
    t = _index_targets(shape, ignore_index, seed)
    kw = {"reduction": reduction, "ignore_index": ignore_index, "label_smoothing": smoothing}
    if weighted:
        kw["weight"] = _class_weight(shape, seed)
    check_loss("cross_entropy", x, t, rtol=1e-5, atol=1e-5, **kw)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probability_targets_match_torch(reduction, smoothing, weighted):
    i = ["none", "mean", "sum"].index(reduction) + 3 * weighted + 6 * (smoothing > 0)
    shape = CE_SHAPES[i % len(CE_SHAPES)]
    x = randn(shape, i) * 2
    c = shape[1] if len(shape) > 1 else shape[0]
    p = np.random.RandomState(i).dirichlet(np.ones(c), size=(shape[0],) + shape[2:] if len(shape) > 1 else None)
    p = np.moveaxis(p, -1, 1).astype(np.float32) if len(shape) > 1 else p.astype(np.float32)
    kw = {"reduction": reduction, "label_smoothing": smoothing}
    if weighted:
        kw["weight"] = _class_weight(shape, i)
    check_loss("cross_entropy", x, p, rtol=1e-5, atol=1e-5, **kw)


@settings(max_examples=15)
@given(class_configs())
def test_nll_loss_matches_torch(cfg):
    shape, reduction, weighted, ignore_index, seed = cfg
    x = np.asarray(jax.nn.log_softmax(randn(shape, seed), axis=1 if len(shape) > 1 else 0))
    t = _index_targets(shape, ignore_index, seed)
    kw = {"reduction": reduction, "ignore_index": ignore_index}
    if weighted:
        kw["weight"] = np.random.RandomState(seed).uniform(0.2, 2.0, shape[1] if len(shape) > 1 else shape[0]).astype(np.float32)
    check_loss("nll_loss", x, t, **kw)


@pytest.mark.filterwarnings("ignore:size_average and reduce")
def test_legacy_size_average_and_reduce_map_like_torch():
    x, t = randn((3, 4)), np.array([0, 3, 1])
    for size_average, reduce in [(a, b) for a in (None, True, False) for b in (None, True, False)]:  # all nine
        out = F.cross_entropy(x, t, None, size_average, -100, reduce)
        ref = TF.cross_entropy(to_torch(x), to_torch(t), None, size_average, -100, reduce)
        assert_close(out, ref)


LOSS_CLASSES = [
    (nn.BCELoss, torch.nn.BCELoss, {"reduction": "sum"}, "prob"),
    (nn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, {"pos_weight": np.array([2.0, 0.5, 1.0], np.float32)}, "real"),
    (nn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, {"weight": np.array([1.0, 2.0, 0.5], np.float32),
                                                      "label_smoothing": 0.1, "ignore_index": 2}, "index"),
    (nn.NLLLoss, torch.nn.NLLLoss, {"reduction": "none"}, "index"),
    (nn.L1Loss, torch.nn.L1Loss, {}, "real"),
    (nn.MSELoss, torch.nn.MSELoss, {"reduction": "sum"}, "real"),
    (nn.SmoothL1Loss, torch.nn.SmoothL1Loss, {"beta": 0.3}, "real"),
    (nn.HuberLoss, torch.nn.HuberLoss, {"delta": 0.7}, "real"),
]


@pytest.mark.parametrize("ours, theirs, kw, kind", LOSS_CLASSES)
def test_loss_classes_match_torch_modules(ours, theirs, kw, kind):
    x = randn((4, 3), 0)
    if kind == "prob":
        x = 1 / (1 + np.exp(-x))
    t = np.array([0, 2, 1, 2]) if kind == "index" else np.random.RandomState(1).uniform(size=(4, 3)).astype(np.float32)
    loss = ours(**kw)
    out = jax.jit(loss)(jnp.asarray(x), jnp.asarray(t))
    ref = theirs(**{k: to_torch(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})(to_torch(x), to_torch(t))
    assert_close(out, ref)


def test_jit_grad_and_vmap():
    t_np = np.random.RandomState(0).randint(0, 4, (5, 3))
    x, t = jnp.asarray(randn((5, 4, 3))), jnp.asarray(t_np)
    loss = jax.jit(lambda a, b: F.cross_entropy(a, b, label_smoothing=0.1))
    assert_close(loss(x, t), TF.cross_entropy(to_torch(x), torch.from_numpy(t_np), label_smoothing=0.1))
    # unbatched (C,) logits with a () label, vmapped over the batch == reduction='none'
    per_example = jax.vmap(F.cross_entropy)(x[:, :, 0], t[:, 0])
    ref = TF.cross_entropy(to_torch(x[:, :, 0]), torch.from_numpy(t_np[:, 0]), reduction="none")
    assert_close(per_example, ref)
    g = jax.jit(jax.grad(lambda a: F.cross_entropy(a, t)))(x)
    tx = to_torch(x, True)
    TF.cross_entropy(tx, torch.from_numpy(t_np)).backward()
    assert_close(g, tx.grad)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: F.mse_loss(randn((3, 1)), randn((3,))), ValueError, "target size"),
    (lambda: F.l1_loss(randn((3,)), randn((3,)), reduction="avg"), ValueError, "reduction"),
    (lambda: F.binary_cross_entropy(np.array([0.5, 1.5], np.float32), np.ones(2, np.float32)),
     ValueError, "between 0 and 1"),
    (lambda: F.binary_cross_entropy(np.array([0.5, np.nan], np.float32), np.ones(2, np.float32)),
     ValueError, "between 0 and 1"),
    (lambda: F.binary_cross_entropy_with_logits(randn((2, 3)), randn((2, 4))), ValueError, "target size"),
    (lambda: F.binary_cross_entropy_with_logits(randn((2, 3)), randn((2, 3)), pos_weight=np.ones(4, np.float32)),
     ValueError, "pos_weight"),
    (lambda: F.cross_entropy(randn((2, 3)), np.array([0, 3])), ValueError, "target 3 is out of bounds"),
    (lambda: F.cross_entropy(randn((2, 3)), np.array([0, -1])), ValueError, "target -1"),
    (lambda: F.nll_loss(randn((2, 3)), np.array([0, 1, 2])), ValueError, "target of shape"),
    (lambda: F.cross_entropy(randn((2, 3)), np.array([0, 1]), weight=np.ones(4, np.float32)), ValueError, "weight"),
    (lambda: F.cross_entropy(randn((2, 3)), randn((2, 4))), ValueError, "target"),
    (lambda: F.cross_entropy(randn((2, 3)), np.array([0, 1]), label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda: F.smooth_l1_loss(randn((2,)), randn((2,)), beta=-1.0), ValueError, "beta"),
    (lambda: F.huber_loss(randn((2,)), randn((2,)), delta=0.0), ValueError, "delta"),
    (lambda: F.mse_loss(randn((2,)), randn((2,)), weight=np.ones(3, np.float32)), ValueError, "weight"),
    (lambda: nn.CrossEntropyLoss(reduction="avg"), ValueError, "reduction"),
])
def test_bad_inputs_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_labels_equal_to_ignore_index_are_allowed_and_jit_skips_value_checks():
    x, t = randn((3, 4)), np.array([1, -100, 3])
    assert_close(F.cross_entropy(x, t), TF.cross_entropy(to_torch(x), to_torch(t)))
    # under jit the values are unknown: no error, the bad label is simply not counted
    out = jax.jit(F.cross_entropy)(jnp.asarray(x), jnp.asarray([1, 7, 3]))
    assert np.isfinite(np.asarray(out))
