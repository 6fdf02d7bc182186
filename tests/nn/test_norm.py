import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F, nn
from oracle import assert_close, check_layer, randn, to_torch

BN = {1: (nn.BatchNorm1d, torch.nn.BatchNorm1d), 2: (nn.BatchNorm2d, torch.nn.BatchNorm2d),
      3: (nn.BatchNorm3d, torch.nn.BatchNorm3d)}
IN = {1: (nn.InstanceNorm1d, torch.nn.InstanceNorm1d), 2: (nn.InstanceNorm2d, torch.nn.InstanceNorm2d),
      3: (nn.InstanceNorm3d, torch.nn.InstanceNorm3d)}


def shifted(shape, seed, mean=5.0, std=2.0):
    """Inputs with a nonzero mean: where a naive one-pass variance loses digits."""
    return (mean + std * randn(shape, seed=seed)).astype(np.float32)


def perturb(params, seed):
    """Non-trivial affine params so their gradients and effect are checked too."""
    rs = np.random.RandomState(seed)
    return {k: jnp.asarray(np.asarray(v) + rs.uniform(-0.5, 0.5, np.shape(v)).astype(np.float32))
            for k, v in params.items()}


def run_steps(layer, module, xs, trains, **kw):
    """Apply several consecutive steps; torch keeps its own buffers, fcnn threads `state`."""
    params, state = layer.init(jax.random.key(0))
    params = perturb(params, 1)
    for x, train in zip(xs, trains):
        module.zero_grad()  # torch accumulates .grad across backward calls
        _, state = check_layer(layer, module, x, train=train, params=params, state=state, **kw)
    return state


@st.composite
def bn_configs(draw):
    n = draw(st.sampled_from([1, 1, 2, 3]))
    # a few fixed shapes, so the eagerly run ops compile once and are reused across examples
    c = draw(st.sampled_from([1, 3]))
    batch = 4  # >= 4 values per channel: with 2 or 3, x − mean of offset float32 data is ill-conditioned
    spatial = draw(st.sampled_from([(), (3,)])) if n == 1 else {2: (2, 3), 3: (2, 1, 2)}[n]
    momentum = draw(st.sampled_from([0.1, 0.5, None]))
    affine = draw(st.booleans())
    track = draw(st.booleans())
    single_pass = draw(st.booleans())
    return n, c, batch, spatial, momentum, affine, track, single_pass


@settings(max_examples=6)
@given(bn_configs())
def test_batch_norm_steps_match_torch(cfg):
    n, c, batch, spatial, momentum, affine, track, single_pass = cfg
    ours, theirs = BN[n]
    kw = dict(momentum=momentum, affine=affine, track_running_stats=track)
    layer, module = ours(c, single_pass=single_pass, **kw), theirs(c, **kw)
    xs = [shifted((batch, c) + spatial, seed=i) for i in range(3)]
    # two training steps (state updates accumulate, incl. momentum=None's 1/k factor), then eval
    state = run_steps(layer, module, xs, [True, True, False], rtol=1e-4, atol=2e-5)
    if track:
        assert int(state["num_batches_tracked"]) == 2
    else:
        assert state == {}


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_flags_over_train_and_eval_steps(momentum, track, affine):
    """Every combination of the flags that change BatchNorm's semantics, over three training steps
    with an eval step between: momentum=None's factor 1/num_batches_tracked is 1, 1/2, 1/3 there
    (a count off by one changes the running statistics at once), eval uses the running statistics
    when tracking and the batch's otherwise, and never advances the count."""
    kw = dict(momentum=momentum, affine=affine, track_running_stats=track)
    # both variance formulas, spread over the combinations
    layer = nn.BatchNorm1d(3, single_pass=(momentum is None) == affine, **kw)
    module = torch.nn.BatchNorm1d(3, **kw)
    xs = [shifted((4, 3, 2), seed=i, mean=float(i)) for i in range(4)]
    state = run_steps(layer, module, xs, [True, True, False, True], rtol=1e-4, atol=2e-5)
    if track:
        assert int(state["num_batches_tracked"]) == 3
    else:
        assert state == {}


@pytest.mark.parametrize("single_pass", [True, False])
@pytest.mark.parametrize("mean,std", [(5.0, 2.0), (0.0, 1e-3)])
def test_batch_norm_statistics_are_accurate_for_offset_data(single_pass, mean, std):
    layer = nn.BatchNorm2d(3, single_pass=single_pass)
    # with std 1e-3 the input gradients are ~1/std = 1000 times the cotangent: compare those relatively
    check_layer(layer, torch.nn.BatchNorm2d(3), shifted((8, 3, 5, 5), seed=0, mean=mean, std=std), train=True,
                rtol=1e-5 if std > 0.1 else 1e-4, eager=True)


@pytest.mark.parametrize("single_pass", [True, False])
def test_batch_norm_with_large_mean_matches_a_float64_reference(single_pass):
    # At mean 1000, torch's float32 kernel (y = x·a + b with b ≈ −1000·a) is itself off by ~ulp(1000)·a ≈ 6e-5;
    # fcnn normalises (x − k) − E[x − k] and matches torch run in float64 to 1e-5.
    x = shifted((8, 3, 5, 5), seed=0, mean=1000.0, std=1.0)
    layer = nn.BatchNorm2d(3, single_pass=single_pass)
    params, state = layer.init(jax.random.key(0))
    y, new_state = layer.apply(params, state, jnp.asarray(x), train=True)
    ref = torch.nn.BatchNorm2d(3).double()
    assert_close(y, ref(to_torch(x).double()).float())
    assert_close(new_state["running_mean"], ref.running_mean.float())
    assert_close(new_state["running_var"], ref.running_var.float())
    assert_close(y, torch.nn.BatchNorm2d(3)(to_torch(x)), atol=1e-4)


def test_batch_norm_functional_matches_torch_in_place_update():
    x = shifted((4, 3, 5), seed=2)
    rm, rv = randn((3,), seed=3), np.abs(randn((3,), seed=4)) + 0.5
    w, b = randn((3,), seed=5), randn((3,), seed=6)
    t_rm, t_rv = to_torch(rm), to_torch(rv)
    ref = torch.nn.functional.batch_norm(to_torch(x), t_rm, t_rv, to_torch(w), to_torch(b), True, 0.3, 1e-3)
    out, new_rm, new_rv = F.batch_norm(x, rm, rv, w, b, True, 0.3, 1e-3)
    assert_close(out, ref)
    assert_close(new_rm, t_rm)
    assert_close(new_rv, t_rv)
    ref = torch.nn.functional.batch_norm(to_torch(x), to_torch(rm), to_torch(rv), None, None, False)
    out, same_rm, same_rv = F.batch_norm(x, rm, rv)
    assert_close(out, ref)
    assert same_rm is not None and np.array_equal(same_rm, rm) and np.array_equal(same_rv, rv)
    out, none_rm, none_rv = F.batch_norm(x, None, None, training=True)
    assert_close(out, torch.nn.functional.batch_norm(to_torch(x), None, None, training=True))
    assert none_rm is None and none_rv is None


def test_batch_norm_state_layout_matches_torch():
    params, state = nn.BatchNorm2d(5).init(jax.random.key(0))
    ref = torch.nn.BatchNorm2d(5).state_dict()
    assert set(params) | set(state) == set(ref)
    for k, v in {**params, **state}.items():
        np.testing.assert_array_equal(v, ref[k].numpy())
    assert state["num_batches_tracked"].dtype == jnp.int32  # int64 in torch; x64 is off
    p, s = nn.BatchNorm1d(3, affine=False, track_running_stats=False).init(jax.random.key(0))
    assert p == {} and s == {}
    p, _ = nn.BatchNorm1d(3, bias=False).init(jax.random.key(0))
    assert set(p) == set(torch.nn.BatchNorm1d(3, bias=False).state_dict()) - {"running_mean", "running_var",
                                                                              "num_batches_tracked"}


def test_batch_norm_in_a_jitted_model_with_grad():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU())
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
    params, state = model.init(jax.random.key(0))
    x = jnp.asarray(shifted((4, 2, 5, 5), seed=1))
    check_layer(model, tmodel, x, train=True, params=params, state=state, rtol=1e-4, atol=1e-5)
    _, state = jax.jit(functools.partial(model.apply, train=True))(params, state, x)
    y_eval, _ = jax.jit(model.apply)(params, state, x)
    tmodel.eval()
    assert_close(y_eval, tmodel(to_torch(x)), 1e-4, 1e-5)


@pytest.mark.parametrize("single_pass", [True, False])
def test_vmap_with_axis_name_equals_batched_batch_norm(single_pass):
    x = jnp.asarray(shifted((6, 3, 4, 4), seed=3))
    synced = nn.BatchNorm2d(3, axis_name="batch", single_pass=single_pass)
    plain = nn.BatchNorm2d(3, single_pass=single_pass)
    params, state = plain.init(jax.random.key(0))
    params = perturb(params, 2)

    def loss(apply, p, xs):
        y, s = apply(p, state, xs)
        return (y * jnp.arange(y.size, dtype=y.dtype).reshape(y.shape)).sum(), (y, s)

    # out_axes None for the state: every participant holds the same, globally reduced statistics
    per_example = jax.vmap(functools.partial(synced.apply, train=True), in_axes=(None, None, 0),
                           out_axes=(0, None), axis_name="batch")
    batched = functools.partial(plain.apply, train=True)
    (_, (y1, s1)), g1 = jax.value_and_grad(lambda p, xs: loss(per_example, p, xs), (0, 1), has_aux=True)(params, x)
    (_, (y2, s2)), g2 = jax.value_and_grad(lambda p, xs: loss(batched, p, xs), (0, 1), has_aux=True)(params, x)
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    for k in s2:
        np.testing.assert_allclose(s1[k], s2[k], rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # eval mode under vmap uses the running statistics
    y_eval, _ = jax.vmap(synced.apply, in_axes=(None, None, 0), out_axes=(0, None), axis_name="batch")(
        params, s1, x)
    np.testing.assert_allclose(y_eval, plain.apply(params, s2, x)[0], rtol=1e-5, atol=1e-5)


def test_vmap_over_examples_of_batch_norm_1d_features():
    x = jnp.asarray(shifted((5, 4), seed=4))
    synced, plain = nn.BatchNorm1d(4, axis_name="i"), nn.BatchNorm1d(4)
    params, state = plain.init(jax.random.key(0))
    y1, s1 = jax.vmap(lambda v: synced.apply(params, state, v, train=True), axis_name="i")(x)
    y2, s2 = plain.apply(params, state, x, train=True)
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s1["running_var"][0], s2["running_var"], rtol=1e-6)
    # the unbiased correction uses the global count: a single example per participant is fine
    assert np.all(np.asarray(s1["running_var"]) != 1.0)


@st.composite
def instance_configs(draw):
    n = draw(st.sampled_from([1, 2, 3]))
    c = draw(st.integers(1, 3))
    spatial = (3, 2, 2)[:n]
    batched = draw(st.booleans())
    return n, c, spatial, batched, draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from([0.1, 0.7, None]))


@settings(max_examples=4)
@given(instance_configs())
def test_instance_norm_steps_match_torch(cfg):
    n, c, spatial, batched, affine, track, momentum = cfg
    ours, theirs = IN[n]
    kw = dict(affine=affine, track_running_stats=track, momentum=momentum)
    shape = ((2,) if batched else ()) + (c,) + spatial
    xs = [shifted(shape, seed=i) for i in range(3)]
    state = run_steps(ours(c, **kw), theirs(c, **kw), xs, [True, True, False], rtol=1e-4, atol=2e-5)
    assert set(state) == set(torch.nn.InstanceNorm1d(c, **kw).state_dict()) - {"weight", "bias"}


@settings(max_examples=4)
@given(st.sampled_from([(1, 4), (2, 4), (4, 4), (3, 6), (1, 1)]), st.integers(1, 2),
       st.sampled_from([(), (3,), (2, 3)]), st.booleans(), st.booleans())
def test_group_norm_matches_torch(groups_channels, batch, spatial, affine, bias):
    g, c = groups_channels
    if c // g * int(np.prod(spatial)) == 1:
        # one value per group normalises to exactly 0 with a zero input gradient; torch's gradient there is
        # float noise of size eps^-1/2·1e-7, not a value to compare
        spatial = (3,)
    layer = nn.GroupNorm(g, c, eps=1e-4, affine=affine, bias=bias)
    module = torch.nn.GroupNorm(g, c, eps=1e-4, affine=affine, bias=bias)
    params, state = layer.init(jax.random.key(0))
    check_layer(layer, module, shifted((batch, c) + tuple(spatial), seed=g), params=perturb(params, 3),
                state=state, rtol=1e-4, atol=2e-5)


@settings(max_examples=4)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(1, 3), st.booleans(), st.booleans())
def test_layer_norm_matches_torch(shape, k, affine, bias):
    k = min(k, len(shape))
    norm_shape = tuple(shape[len(shape) - k:])
    if int(np.prod(norm_shape)) == 1:
        shape[-1] = norm_shape = 2 if k == 1 else norm_shape
        norm_shape = tuple(shape[len(shape) - k:])
    layer = nn.LayerNorm(norm_shape, elementwise_affine=affine, bias=bias)
    module = torch.nn.LayerNorm(norm_shape, elementwise_affine=affine, bias=bias)
    params, state = layer.init(jax.random.key(0))
    check_layer(layer, module, shifted(tuple(shape), seed=k), params=perturb(params, 4), state=state,
                rtol=1e-4, atol=2e-5)


def test_functional_group_layer_instance_norm_match_torch():
    x = shifted((2, 4, 3, 3), seed=7)
    w, b = randn((4,), seed=8), randn((4,), seed=9)
    tf = torch.nn.functional
    assert_close(F.group_norm(x, 2, w, b, 1e-3), tf.group_norm(to_torch(x), 2, to_torch(w), to_torch(b), 1e-3))
    assert_close(F.layer_norm(x, (3, 3)), tf.layer_norm(to_torch(x), (3, 3)))
    assert_close(F.layer_norm(x, 3, w[:3], b[:3]), tf.layer_norm(to_torch(x), (3,), to_torch(w[:3]), to_torch(b[:3])))
    assert_close(F.instance_norm(x, weight=w, bias=b), tf.instance_norm(to_torch(x), weight=to_torch(w),
                                                                         bias=to_torch(b)), 1e-4, 1e-5)
    rm, rv = randn((4,), seed=10), np.abs(randn((4,), seed=11)) + 0.5
    t_rm, t_rv = to_torch(rm), to_torch(rv)
    ref = tf.instance_norm(to_torch(x), t_rm, t_rv, momentum=0.2)
    out, new_rm, new_rv = F.instance_norm(x, rm, rv, momentum=0.2)
    assert_close(out, ref, 1e-4, 1e-5)
    assert_close(new_rm, t_rm)
    assert_close(new_rv, t_rv)


def test_norm_layers_jit_and_vmap_per_example():
    x = jnp.asarray(shifted((3, 4, 5, 5), seed=12))
    for layer in (nn.GroupNorm(2, 4), nn.LayerNorm((4, 5, 5)), nn.InstanceNorm2d(4)):
        params, state = layer.init(jax.random.key(0))
        batched, _ = jax.jit(layer.apply)(params, state, x)
        if isinstance(layer, nn.GroupNorm):  # GroupNorm, like torch's, needs the batch dim
            per_ex = jax.vmap(lambda v: layer.apply(params, state, v[None])[0][0])(x)
        else:
            per_ex = jax.vmap(lambda v: layer.apply(params, state, v)[0])(x)
        np.testing.assert_allclose(per_ex, batched, rtol=1e-5, atol=1e-5)


def test_bad_arguments_and_inputs_name_the_problem():
    bn = nn.BatchNorm2d(3)
    params, state = bn.init(jax.random.key(0))
    with pytest.raises(ValueError, match="num_features"):
        bn.apply(params, state, jnp.ones((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="4D"):
        bn.apply(params, state, jnp.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="2D or 3D"):
        nn.BatchNorm1d(3).apply(*nn.BatchNorm1d(3).init(None), jnp.ones((3,)))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        nn.BatchNorm1d(3).apply(*nn.BatchNorm1d(3).init(None), jnp.ones((1, 3)), train=True)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        F.batch_norm(jnp.ones((1, 3, 1, 1)), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(jnp.ones((2, 3)), None, None, training=False)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(jnp.ones((2, 3)), jnp.zeros(4), jnp.ones(3))
    with pytest.raises(ValueError, match="num_batches_tracked"):
        F.batch_norm(jnp.ones((2, 3)), jnp.zeros(3), jnp.ones(3), training=True, momentum=None)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm2d(3, eps=-1.0)
    with pytest.raises(TypeError, match="momentum"):
        nn.BatchNorm2d(3, momentum="0.1")
    with pytest.raises(TypeError, match="affine"):
        nn.BatchNorm2d(3, affine=1)
    with pytest.raises(ValueError, match="num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="num_groups"):
        F.group_norm(jnp.ones((2, 4, 3)), 3)
    with pytest.raises(ValueError, match="num_channels"):
        nn.GroupNorm(2, 4).apply(*nn.GroupNorm(2, 4).init(None), jnp.ones((2, 6, 3)))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm((4, 5)).apply(*nn.LayerNorm((4, 5)).init(None), jnp.ones((2, 5, 4)))
    with pytest.raises(TypeError, match="normalized_shape"):
        nn.LayerNorm("4")
    inorm = nn.InstanceNorm2d(3, affine=True)
    with pytest.raises(ValueError, match="num_features"):
        inorm.apply(*inorm.init(None), jnp.ones((2, 4, 3, 3)))
    with pytest.warns(UserWarning, match="num_features"):
        nn.InstanceNorm2d(3).apply({}, {}, jnp.ones((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="3D .*4D"):
        inorm.apply(*inorm.init(None), jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        F.instance_norm(jnp.ones((2, 3, 1)))


@pytest.mark.parametrize("shape, groups", [((1, 2, 1), 2), ((1, 1, 1), 1), ((1, 3), 3), ((1, 4, 1), 2),
                                           ((2, 2, 1), 2), ((1, 6), 3), ((1, 2, 2), 2)])
def test_group_norm_refuses_one_value_per_group_exactly_where_torch_does(shape, groups):
    x = randn(shape, seed=1)
    try:
        want = torch.nn.functional.group_norm(to_torch(x), groups)
    except ValueError as e:  # torch's message, the input size it reports included
        with pytest.raises(ValueError, match=re.escape(str(e))):
            F.group_norm(x, groups)
    else:
        assert_close(F.group_norm(x, groups), want)


@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 3, 0), (0, 3, 0, 2)])
def test_instance_norm_running_statistics_of_empty_inputs_match_torch(shape):
    # the running statistics after an empty input: NaN when the batch is empty, unchanged otherwise
    x, rm, rv = np.ones(shape, np.float32), randn((3,), 1), np.abs(randn((3,), 2)) + 0.5
    rm_t, rv_t = to_torch(rm), to_torch(rv)
    want = torch.nn.functional.instance_norm(to_torch(x), rm_t, rv_t, use_input_stats=True, momentum=0.1)
    y, new_rm, new_rv = F.instance_norm(x, rm, rv, use_input_stats=True, momentum=0.1)
    assert_close(y, want)
    assert_close(new_rm, rm_t)
    assert_close(new_rv, rv_t)


@pytest.mark.parametrize("shape", [(2, 3, 0), (2, 3, 0, 4), (1, 2, 2), (0, 3, 4)])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_of_empty_inputs_is_empty_like_torch(shape, affine):
    # torch refuses exactly one spatial element, and weight or bias on an empty batch; an empty
    # input otherwise normalises to an empty output
    x = np.ones(shape, np.float32)
    kw = {"weight": randn(shape[1:2], 1), "bias": randn(shape[1:2], 2)} if affine else {}
    try:
        want = torch.nn.functional.instance_norm(to_torch(x), **{k: to_torch(v) for k, v in kw.items()})
    except (RuntimeError, ValueError, IndexError):  # torch's IndexError: the empty batch's missing weight
        with pytest.raises(ValueError):
            F.instance_norm(x, **kw)
    else:
        assert_close(F.instance_norm(x, **kw), want)
