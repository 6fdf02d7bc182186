"""Non-finite inputs reach exactly the outputs they reach in torch.

``inf``, ``-inf`` and ``NaN`` are planted at random positions of an otherwise
finite input; fcnn's output must have NaN, +inf and -inf where torch's has them
and equal finite values elsewhere, for every resampling mode and the pooling ops.
"""

import numpy as np
import pytest
import torch

from fcnn import functional as F

SEEDS = range(4)


def planted(shape, seed, count=2):
    rs = np.random.RandomState(seed)
    x = rs.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    for pos, value in zip(rs.choice(flat.size, count, replace=False), rs.choice([np.inf, -np.inf, np.nan], count)):
        flat[pos] = value
    return x


def assert_same_nonfinite(ours, theirs, what):
    ours = np.asarray(ours)
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, what
    for name, mask in (("nan", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(mask(ours), mask(theirs), err_msg=f"{what}: {name} positions")
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-4, atol=1e-5, err_msg=what)


INTERPOLATE = [
    # (mode, input shape, sizes, extra kwargs)
    ("nearest", (1, 2, 5, 6), [(3, 4), (9, 13), (5, 6)], {}),
    ("nearest-exact", (1, 2, 5, 6), [(3, 4), (9, 13)], {}),
    ("linear", (2, 2, 7), [3, 7, 12, 16], {"align_corners": False}),
    ("linear", (2, 2, 7), [3, 12], {"align_corners": True}),
    ("bilinear", (1, 2, 5, 6), [(3, 4), (5, 11), (9, 13), (5, 6)], {"align_corners": False}),
    ("bilinear", (1, 2, 5, 6), [(3, 4), (9, 13)], {"align_corners": True}),
    ("bicubic", (1, 2, 5, 6), [(3, 4), (5, 11), (9, 13), (5, 6)], {"align_corners": False}),
    ("bicubic", (1, 2, 5, 6), [(3, 4), (9, 13)], {"align_corners": True}),
    ("bilinear", (1, 2, 9, 10), [(3, 4), (9, 4), (4, 13), (12, 14)], {"antialias": True}),
    ("bicubic", (1, 2, 9, 10), [(3, 4), (9, 4), (4, 13), (12, 14)], {"antialias": True}),
    ("trilinear", (1, 1, 4, 5, 3), [(2, 3, 3), (7, 5, 6)], {"align_corners": False}),
    ("area", (1, 2, 7, 6), [(3, 4), (7, 4), (5, 5), (10, 12)], {}),
    ("area", (1, 2, 9), [4, 5], {}),
]


@pytest.mark.parametrize("mode,shape,sizes,kwargs", INTERPOLATE,
                         ids=[f"{m}-{'-'.join(k)}-{len(s) - 2}d" for m, s, _, k in INTERPOLATE])
def test_interpolate_nonfinite_matches_torch(mode, shape, sizes, kwargs):
    for size in sizes:
        for seed in SEEDS:
            x = planted(shape, seed)
            ours = F.interpolate(x, size=size, mode=mode, **kwargs)
            theirs = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode=mode, **kwargs)
            assert_same_nonfinite(ours, theirs, f"{mode} {shape}->{size} {kwargs} seed {seed}")


def test_one_inf_pixel_stays_in_its_bins():
    x = np.zeros((1, 1, 6, 6), np.float32)
    x[0, 0, 2, 3] = np.inf
    y = np.asarray(F.adaptive_avg_pool2d(x, 4))
    assert np.isinf(y).sum() == 1 and not np.isnan(y).any()


POOLS = [
    ("adaptive_avg_pool1d", (2, 3, 11), [(4,), (5,), (11,), (3,)]),
    ("adaptive_avg_pool2d", (2, 3, 7, 6), [((4, 4),), ((3, 6),), ((7, 5),), ((2, 3),)]),
    ("adaptive_avg_pool3d", (1, 2, 5, 4, 6), [((3, 3, 4),), ((5, 2, 6),)]),
    ("adaptive_max_pool2d", (2, 3, 7, 6), [((4, 4),), ((3, 3),)]),
    ("avg_pool2d", (2, 3, 7, 6), [(3, 2, 1), (2,)]),
    ("max_pool2d", (2, 3, 7, 6), [(3, 2, 1), (2,)]),
    ("lp_pool2d", (2, 3, 7, 6), [(2.0, 3, 2), (1.0, 2)]),
]


@pytest.mark.parametrize("name,shape,argsets", POOLS, ids=[p[0] for p in POOLS])
def test_pooling_nonfinite_matches_torch(name, shape, argsets):
    for args in argsets:
        for seed in SEEDS:
            x = planted(shape, seed, count=3)
            if name == "lp_pool2d":
                x = np.where(np.isfinite(x), np.abs(x), x)  # fractional powers of negatives are NaN anyway
            ours = getattr(F, name)(x, *args)
            theirs = getattr(torch.nn.functional, name)(torch.from_numpy(x), *args)
            assert_same_nonfinite(ours, theirs, f"{name}{args} seed {seed}")
