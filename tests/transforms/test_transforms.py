"""fcnn.transforms classes: given the same parameters they equal torchvision's ops; their parameter
distributions equal torchvision's make_params draws (two-sample tests, fixed seeds); batches get
per-image randomness; everything runs under jit."""

import numpy as np
import pytest
from scipy import stats
from torchvision_cpu import import_torchvision

import_torchvision()
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
import torchvision.transforms.v2 as TV  # noqa: E402
import torchvision.transforms.v2.functional as TF  # noqa: E402

from fcnn import transforms as T  # noqa: E402

SHAPE = (3, 19, 23)
N_DRAWS = 1000


def _images(dtype="uint8", n=4, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        return rng.integers(0, 256, (n,) + SHAPE).astype(np.uint8)
    return rng.random((n,) + SHAPE, dtype=np.float32)


def _draws(t, n=N_DRAWS, seed=0, shape=SHAPE):
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.device_get(jax.jit(jax.vmap(lambda k: t.make_params(k, shape)))(keys))


def _torch_draws(t, n=N_DRAWS, seed=0, shape=SHAPE):
    torch.manual_seed(seed)
    img = torch.zeros(shape, dtype=torch.uint8)
    return [t.make_params([img]) for _ in range(n)]


def _same_distribution(a, b, name):
    # rounded: float32 and float64 forms of one discrete value (a CutMix area) must tie
    a, b = (np.round(np.asarray(v, np.float64), 5) for v in (a, b))
    p = stats.ks_2samp(a, b).pvalue
    assert p > 1e-3, f"{name}: KS p-value {p:.2g}"


def _same_counts(a, b, name):
    a, b = np.asarray(a), np.asarray(b)
    values = np.union1d(a, b)
    table = np.array([[np.sum(a == v) for v in values], [np.sum(b == v) for v in values]])
    p = stats.chi2_contingency(table)[1] if len(values) > 1 else 1.0
    assert p > 1e-3, f"{name}: chi-square p-value {p:.2g}"


# ------------------------------------------------------------------ given parameters: equal outputs

def _run_with_params(t, x, key):
    """``t(key, x)`` and the parameters that batch call drew for each image (same key split), in one program."""

    def run(key, x):
        params = jax.vmap(lambda k: t.make_params(k, x.shape[1:]))(jax.random.split(key, x.shape[0]))
        return t(key, x), params

    out, params = jax.device_get(jax.jit(run)(key, x))
    return out, [jax.tree.map(lambda a: a[i], params) for i in range(x.shape[0])]


@pytest.mark.parametrize("dtype,which", [("uint8", slice(None)), ("float32", slice(4, 7))])
def test_random_transforms_equal_torchvision_given_their_params(dtype, which):
    x = _images(dtype, n=3)
    key = jax.random.key(3)
    cases = [
        (T.RandomCrop(15, padding=[2, 3], padding_mode="reflect"),
         lambda t, p, m: TF.crop(TF.pad(t, [2, 3], None, "reflect"), int(p["top"]), int(p["left"]), 15, 15)),
        (T.RandomCrop([22, 26], pad_if_needed=True, fill=9),
         lambda t, p, m: TF.crop(TF.pad(t, list(m.padding_for(SHAPE)), 9), int(p["top"]), int(p["left"]), 22, 26)),
        (T.RandomHorizontalFlip(), lambda t, p, m: TF.hflip(t) if p["flip"] else t),
        (T.RandomVerticalFlip(0.7), lambda t, p, m: TF.vflip(t) if p["flip"] else t),
        (T.RandomResizedCrop([9, 12]),
         lambda t, p, m: TF.resized_crop(t, *(int(p[k]) for k in ("top", "left", "height", "width")), [9, 12])),
        (T.RandomResizedCrop(8, interpolation="nearest", scale=(0.5, 1.0)),
         lambda t, p, m: TF.resized_crop(t, *(int(p[k]) for k in ("top", "left", "height", "width")), [8, 8],
                                         "nearest")),
        (T.ColorJitter(0.5, 0.5, 0.5, 0.2), _torch_jitter),
        (T.ColorJitter(hue=(-0.3, 0.1), saturation=[0.2, 2.0]), _torch_jitter),
        (T.RandomErasing(p=0.8, value=[10.0, 20.0, 30.0]),
         lambda t, p, m: TF.erase(t, int(p["i"]), int(p["j"]), int(p["h"]), int(p["w"]),
                                  torch.tensor([10.0, 20.0, 30.0]).reshape(3, 1, 1)) if p["apply"] else t),
    ]
    for t, reference in cases[which]:
        got, per_image = _run_with_params(t, x, key)
        for i, params in enumerate(per_image):
            want = reference(torch.from_numpy(x[i].copy()), params, t).numpy()
            smooth = isinstance(t, T.RandomResizedCrop) and t.interpolation == "bilinear"
            if smooth and dtype == "uint8":
                assert np.abs(got[i].astype(int) - want.astype(int)).max() <= 2, t
            elif dtype == "uint8" or not (smooth or isinstance(t, T.ColorJitter)):
                np.testing.assert_array_equal(got[i], want, err_msg=repr(t))
            else:
                np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=3e-6, err_msg=repr(t))


def _torch_jitter(t, p, m):
    ops = {0: ("brightness", TF.adjust_brightness), 1: ("contrast", TF.adjust_contrast),
           2: ("saturation", TF.adjust_saturation), 3: ("hue", TF.adjust_hue)}
    for i in p["fn_idx"]:
        name, op = ops[int(i)]
        if getattr(m, name) is not None:
            t = op(t, float(p[f"{name}_factor"]))
    return t


def test_mixup_cutmix_equal_torchvision_given_their_params():
    x = _images("float32", n=5)
    labels = np.array([0, 3, 1, 3, 2])
    key = jax.random.key(1)
    for t, tv in ((T.MixUp(alpha=0.4, num_classes=4), TV.MixUp(alpha=0.4, num_classes=4)),
                  (T.CutMix(num_classes=4), TV.CutMix(num_classes=4))):
        (got_x, got_y), params = jax.jit(lambda k, x, y: (t(k, x, y), t.make_params(k, SHAPE)))(key, x, labels)
        params = jax.device_get(params)
        tlabels = torch.from_numpy(labels)
        tparams = {"labels": tlabels, "batch_size": 5}
        if isinstance(t, T.MixUp):
            tparams["lam"] = float(params["lam"])
        else:
            tparams["box"] = tuple(int(v) for v in params["box"])
            tparams["lam_adjusted"] = float(params["lam_adjusted"])
        np.testing.assert_allclose(got_x, tv.transform(torch.from_numpy(x), tparams).numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got_y, tv.transform(tlabels, tparams).numpy(), rtol=1e-6, atol=1e-7)



@pytest.mark.parametrize("channels", [3, 1])
def test_color_jitter_every_order_equals_torchvision(channels):
    # 24 images: hue at each of the four positions of the order, and every operation before and after it
    x = np.random.default_rng(1).integers(0, 256, (24, channels, 9, 11)).astype(np.uint8)
    for t in (T.ColorJitter(0.5, 0.5, 0.5, 0.2), T.ColorJitter(brightness=0.6, saturation=[0.2, 2.0])):
        got, per_image = _run_with_params(t, x, jax.random.key(5))
        for i, params in enumerate(per_image):
            want = _torch_jitter(torch.from_numpy(x[i].copy()), params, t).numpy()
            np.testing.assert_array_equal(got[i], want, err_msg=f"{t!r}, order {params['fn_idx']}")

# ------------------------------------------------------------------ parameter distributions

def test_random_resized_crop_box_distribution():
    ours = _draws(T.RandomResizedCrop(8))
    theirs = _torch_draws(TV.RandomResizedCrop(8))
    for k in ("height", "width", "top", "left"):
        _same_distribution(ours[k], [d[k] for d in theirs], f"RandomResizedCrop {k}")
    # a wide ratio range on a large image: the log-uniform ratio shows in width / height
    wide = dict(scale=(0.1, 0.5), ratio=(0.2, 5.0))
    ours = _draws(T.RandomResizedCrop(8, **wide), shape=(1, 96, 96))
    theirs = _torch_draws(TV.RandomResizedCrop(8, **wide), shape=(1, 96, 96))
    _same_distribution(ours["width"] / ours["height"], [d["width"] / d["height"] for d in theirs],
                       "RandomResizedCrop aspect ratio")
    # a narrow image: most tries fail, so the fallback's share must match too
    ours = _draws(T.RandomResizedCrop(8, scale=(0.9, 1.0), ratio=(2.0, 3.0)), shape=(3, 40, 12))
    theirs = _torch_draws(TV.RandomResizedCrop(8, scale=(0.9, 1.0), ratio=(2.0, 3.0)), shape=(3, 40, 12))
    for k in ("height", "width", "top"):
        _same_counts(ours[k], [d[k] for d in theirs], f"RandomResizedCrop fallback {k}")


def test_random_crop_flip_erasing_distributions():
    ours = _draws(T.RandomCrop(15, padding=2))
    theirs = _torch_draws(TV.RandomCrop(15, padding=2))
    for k in ("top", "left"):
        _same_counts(ours[k], [d[k] for d in theirs], f"RandomCrop {k}")
    flips = _draws(T.RandomHorizontalFlip(0.3))["flip"]
    assert stats.binomtest(int(flips.sum()), flips.size, 0.3).pvalue > 1e-3
    ours = _draws(T.RandomErasing(p=1.0))
    theirs = _torch_draws(TV.RandomErasing(p=1.0))
    for ko, kt in (("h", "h"), ("w", "w"), ("i", "i"), ("j", "j")):
        _same_distribution(ours[ko], [d[kt] for d in theirs], f"RandomErasing {ko}")
    _same_counts(ours["apply"], [d["v"] is not None for d in theirs], "RandomErasing found a box")


def test_color_jitter_and_mix_distributions():
    t, tv = T.ColorJitter(0.4, (0.5, 1.2), 0.3, 0.25), TV.ColorJitter(0.4, (0.5, 1.2), 0.3, 0.25)
    ours, theirs = _draws(t), _torch_draws(tv)
    for k in ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor"):
        _same_distribution(ours[k], [d[k] for d in theirs], f"ColorJitter {k}")
    _same_counts(ours["fn_idx"][:, 0], [int(d["fn_idx"][0]) for d in theirs], "ColorJitter first op")
    _same_counts(ours["fn_idx"][:, 2], [int(d["fn_idx"][2]) for d in theirs], "ColorJitter third op")
    _same_distribution(_draws(T.MixUp(alpha=0.3))["lam"], [d["lam"] for d in _torch_draws(TV.MixUp(alpha=0.3))],
                       "MixUp lam")
    ours = _draws(T.CutMix(alpha=1.0))
    theirs = _torch_draws(TV.CutMix(alpha=1.0))
    _same_distribution(ours["lam_adjusted"], [d["lam_adjusted"] for d in theirs], "CutMix lam_adjusted")
    _same_distribution(ours["box"][:, 0], [d["box"][0] for d in theirs], "CutMix x1")


# ------------------------------------------------------------------ batches, keys, composition

def test_batch_gives_each_image_its_own_parameters():
    x = _images("uint8", n=6)
    t = T.Compose([T.RandomResizedCrop(10), T.RandomHorizontalFlip(), T.ColorJitter(0.3, 0.3)])
    key = jax.random.key(0)
    batch = np.asarray(jax.jit(t)(key, x))
    keys = jax.random.split(key, 3)
    one = [T.RandomResizedCrop(10), T.RandomHorizontalFlip(), T.ColorJitter(0.3, 0.3)]
    per_image = []
    for i in range(6):
        y = x[i]
        for tr, k in zip(one, keys):
            y = tr(jax.random.split(k, 6)[i], y)
        per_image.append(np.asarray(y))
    np.testing.assert_array_equal(batch, np.stack(per_image))
    assert len({b.tobytes() for b in batch}) == 6
    # leading dimensions beyond one batch axis, raw uint32 keys
    raw = jax.random.key_data(key)
    y = T.RandomCrop(8)(raw, x.reshape(2, 3, *SHAPE))
    assert y.shape == (2, 3, 3, 8, 8)


def test_deterministic_classes_equal_torchvision():
    x = _images("uint8")
    t = torch.from_numpy(x.copy())
    pairs = [(T.Resize(7, "nearest"), TV.Resize(7, "nearest")), (T.CenterCrop([9, 30]), TV.CenterCrop([9, 30])),
             (T.Pad([1, 2], fill=3, padding_mode="constant"), TV.Pad([1, 2], fill=3)),
             (T.Pad(2, padding_mode="symmetric"), TV.Pad(2, padding_mode="symmetric")),
             (T.Grayscale(3), TV.Grayscale(3)), (T.ToDtype(jnp.float32, scale=True), TV.ToDtype(torch.float32, True)),
             (T.Compose([T.ToDtype(jnp.float32, scale=True), T.Normalize([0.5, 0.4, 0.3], [0.2, 0.2, 0.3])]),
              TV.Compose([TV.ToDtype(torch.float32, True), TV.Normalize([0.5, 0.4, 0.3], [0.2, 0.2, 0.3])]))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(np.asarray(ours(None, x)), theirs(t).numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg=repr(ours))


@pytest.mark.parametrize("make,err,words", [
    (lambda: T.RandomCrop(30)(jax.random.key(0), _images()), ValueError, "larger than the input image size"),
    (lambda: T.RandomResizedCrop(8, scale=(0.9, 0.1)), ValueError, "scale"),
    (lambda: T.ColorJitter(hue=0.7), ValueError, "hue"),
    (lambda: T.RandomErasing(value="noise"), ValueError, "'random'"),
    (lambda: T.RandomHorizontalFlip(1.5), ValueError, "p"),
    (lambda: T.RandomHorizontalFlip()(None, _images()), ValueError, "PRNG key"),
    (lambda: T.MixUp()(jax.random.key(0), _images("float32"), np.arange(4)), ValueError, "num_classes"),
    (lambda: T.MixUp(num_classes=4)(jax.random.key(0), _images(), np.arange(4)), TypeError, "floating"),
    (lambda: T.CutMix(num_classes=4)(jax.random.key(0), _images("float32"), np.arange(3)), ValueError, "batch size"),
    (lambda: T.RandomErasing(value=[1.0, 2.0])(jax.random.key(0), _images()), ValueError, "channels"),
])
def test_bad_arguments(make, err, words):
    with pytest.raises(err) as info:
        make()
    assert words in str(info.value)
