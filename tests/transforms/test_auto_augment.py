"""RandAugment and TrivialAugmentWide: each operation at each magnitude equals torchvision's (uint8 and float,
nearest and bilinear, with and without fill); the magnitude tables are torchvision's; the op, bin and sign
draws follow torchvision's distributions (two-sample tests, fixed seeds); a batch under jit gives every image
its own operations, equal to torchvision's applied with the drawn ones."""

import numpy as np
import pytest
from scipy import stats
from torchvision_cpu import import_torchvision

import_torchvision()
import jax  # noqa: E402
import torch  # noqa: E402
import torchvision.transforms.v2 as TV  # noqa: E402

from fcnn import transforms as T  # noqa: E402
from fcnn.transforms._auto_augment import OPS  # noqa: E402

PAIRS = [(lambda **kw: T.RandAugment(num_ops=1, magnitude=7, **kw), lambda **kw: TV.RandAugment(1, 7, **kw)),
         (lambda **kw: T.TrivialAugmentWide(**kw), lambda **kw: TV.TrivialAugmentWide(**kw))]


def _image(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        return rng.integers(0, 256, shape).astype(np.uint8)
    return rng.random(shape, dtype=np.float32)


def _torch_magnitude(tv, op, b, negate, h, w):
    table = tv._AUGMENTATION_SPACE[OPS[op]][0](tv.num_magnitude_bins, h, w)
    if table is None:
        return 0.0
    m = float(table[b])
    return -m if negate and tv._AUGMENTATION_SPACE[OPS[op]][1] else m


def _torch_apply(tv, x, op, b, negate):
    h, w = x.shape[-2:]
    return tv._apply_image_or_video_transform(x, OPS[op], _torch_magnitude(tv, op, b, negate, h, w),
                                              interpolation=tv.interpolation, fill=tv._fill)


def _check(got, want, dtype, what, bilinear=False):
    if dtype == "uint8" and bilinear:
        # bilinear weights summed in another order than torch's kernel: a sum at .5 may round the other way
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, what
    elif dtype == "uint8":
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6, err_msg=what)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_every_op_and_magnitude_equals_torchvision(dtype, pair):
    ours_for, theirs_for = PAIRS[pair]
    options = [{}, {"interpolation": "bilinear", "fill": [9, 50, 200] if dtype == "uint8" else [0.1, 0.5, 0.9]}]
    for shape in ((3, 19, 23), (1, 16, 16)):
        x = _image(dtype, shape)
        for kw in options:
            if shape[0] == 1 and "fill" in kw:
                kw = dict(kw, fill=kw["fill"][1])
            ours, theirs = ours_for(**kw), theirs_for(**kw)
            tables = ours._tables(shape, x.dtype)
            bins = [ours.magnitude] if isinstance(ours, T.RandAugment) else [0, 1, 10, 20, 30]
            cases = [(op, b, negate) for op in range(len(OPS)) for b in bins for negate in (False, True)]
            ops, bs, negs = (np.asarray(c) for c in zip(*cases))
            every = jax.jit(jax.vmap(lambda op, b, neg: ours.apply_op(x, op, b, neg, tables)))(ops, bs, negs)
            for (op, b, negate), got in zip(cases, np.asarray(every)):
                want = _torch_apply(theirs, torch.from_numpy(x.copy()), op, b, negate).numpy()
                _check(got, want, dtype, f"{OPS[op]} bin {b} negate {negate} {shape} {kw}",
                       bilinear="interpolation" in kw)


@pytest.mark.parametrize("bins", [31, 10, 2])
def test_magnitude_tables_are_torchvisions(bins):
    for ours, theirs in ((T.RandAugment(num_magnitude_bins=bins, magnitude=1), TV.RandAugment(num_magnitude_bins=bins)),
                         (T.TrivialAugmentWide(bins), TV.TrivialAugmentWide(bins))):
        for h, w in ((19, 23), (224, 160)):
            mine = ours._magnitudes(bins, h, w)
            for name, (fn, _) in theirs._AUGMENTATION_SPACE.items():
                table = fn(bins, h, w)
                if table is None:
                    assert name not in mine
                else:
                    np.testing.assert_array_equal(mine[name], table.numpy(), err_msg=f"{name} {bins} {h}x{w}")


def _same_counts(a, b, name):
    values = np.union1d(a, b)
    table = np.array([[np.sum(a == v) for v in values], [np.sum(b == v) for v in values]])
    p = stats.chi2_contingency(table)[1]
    assert p > 1e-3, f"{name}: chi-square p-value {p:.2g}"


def test_op_bin_and_sign_draws_follow_torchvision():
    n = 3000
    for ours, theirs in ((T.RandAugment(num_ops=2), TV.RandAugment(num_ops=2)),
                         (T.TrivialAugmentWide(num_magnitude_bins=7), TV.TrivialAugmentWide(num_magnitude_bins=7))):
        keys = jax.random.split(jax.random.key(0), n)
        draws = jax.device_get(jax.jit(jax.vmap(lambda k: ours.make_params(k, (3, 8, 8))))(keys))
        torch.manual_seed(0)
        ops, bins, signs = [], [], []
        for _ in range(n):    # torchvision's draws in forward: op, then bin (TrivialAugmentWide), then sign
            name, _ = theirs._get_random_item(theirs._AUGMENTATION_SPACE)
            ops.append(OPS.index(name))
            if isinstance(theirs, TV.TrivialAugmentWide):
                bins.append(int(torch.randint(theirs.num_magnitude_bins, ())))
            signs.append(bool(torch.rand(()) <= 0.5))
        _same_counts(draws["op"].reshape(-1), np.asarray(ops), f"{type(ours).__name__} op")
        _same_counts(draws["negate"].reshape(-1), np.asarray(signs), f"{type(ours).__name__} sign")
        if bins:
            _same_counts(draws["bin"].reshape(-1), np.asarray(bins), "TrivialAugmentWide bin")
        else:
            assert (draws["bin"] == ours.magnitude).all()
        assert draws["op"].shape == (n, getattr(ours, "num_ops", 1))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_batch_under_jit_gives_each_image_its_own_ops(dtype):
    x = _image(dtype, (16, 3, 12, 14), seed=2)
    for ours, theirs in ((T.RandAugment(num_ops=2, magnitude=12), TV.RandAugment(2, 12)),
                         (T.TrivialAugmentWide(), TV.TrivialAugmentWide())):
        key = jax.random.key(4)

        def run(key, x):
            params = jax.vmap(lambda k: ours.make_params(k, x.shape[1:]))(jax.random.split(key, x.shape[0]))
            return ours(key, x), params

        got, params = jax.device_get(jax.jit(run)(key, x))
        assert len(set(map(tuple, params["op"]))) > 5
        for i in range(x.shape[0]):
            want = torch.from_numpy(x[i].copy())
            for op, b, negate in zip(params["op"][i], params["bin"][i], params["negate"][i]):
                want = _torch_apply(theirs, want, int(op), int(b), bool(negate))
            _check(got[i], want.numpy(), dtype, f"{type(ours).__name__} image {i}")


@pytest.mark.parametrize("make,err,words", [
    (lambda: T.RandAugment(num_ops=-1), ValueError, ["RandAugment", "num_ops", "-1"]),
    (lambda: T.RandAugment(magnitude=31), ValueError, ["RandAugment", "magnitude", "31"]),
    (lambda: T.TrivialAugmentWide(num_magnitude_bins=1), ValueError, ["TrivialAugmentWide", "num_magnitude_bins"]),
    (lambda: T.TrivialAugmentWide(interpolation="bicubic"), ValueError, ["TrivialAugmentWide", "bicubic"]),
    (lambda: T.RandAugment(fill=[1, 2])(jax.random.key(0), np.zeros((3, 8, 8), np.uint8)), ValueError,
     ["RandAugment", "fill"]),
    (lambda: T.RandAugment()(jax.random.key(0), np.zeros((4, 8, 8), np.uint8)), TypeError,
     ["RandAugment", "channels"]),
])
def test_bad_arguments(make, err, words):
    with pytest.raises(err) as e:
        make()
    for w in words:
        assert w in str(e.value)
