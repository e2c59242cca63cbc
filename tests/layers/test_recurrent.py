"""LSTM, GRU, Bidirectional: shapes, log_prob, modes, gradients, one time
loop for all samples, masks, priors, io round trips and early errors."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings

import jdlayers as jdl
import jdlayers.testing as jdt
from jdlayers import io

from _layers_testlib import assert_close

tfd = tfp.distributions


def _bias_loc(case, dist, bias):
  """The default prior's bias mean: 1 on LSTM forget gates with
  `unit_forget_bias`, else 0."""
  if case.kwargs["cell"] != "lstm" or not case.kwargs["unit_forget_bias"]:
    return np.zeros(bias.shape[-1:])
  u = case.kwargs["units"]
  return np.r_[np.zeros(u), np.ones(u), np.zeros(2 * u)]


@settings(deadline=None, max_examples=10)
@given(jdt.recurrent_configs())
def test_shapes_and_log_prob_is_sum_of_default_normal_parts(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  y = f(case.x, **case.call_kwargs)
  assert tuple(y.shape) == case.output_shape and y.dtype == case.dtype
  lp = case.dist.log_prob(f)
  assert tuple(lp.shape) == case.sample_shape and lp.dtype == case.dtype
  halves = ("forward_", "backward_") if case.kind == "bidirectional" else ("",)
  names = ["kernel", "recurrent_kernel"] + (
      ["bias"] if case.kwargs["use_bias"] else [])
  assert list(f.params) == [h + n for h in halves for n in names]
  want = 0.
  for name, v in f.params.items():
    loc = _bias_loc(case, case.dist, v) if name.endswith("bias") else 0.
    part = tfd.Normal(tf.constant(loc, case.dtype), tf.constant(1., case.dtype))
    axes = list(range(len(case.sample_shape), v.shape.rank))
    want += tf.reduce_sum(part.log_prob(v), axes)
  assert_close(lp, want, case.dtype)


_MODE_CASES = [
    (lambda d: jdl.LSTM(3, 2, d, return_sequences=True, go_backwards=True),
     (3,), (), True),
    (lambda d: jdl.GRU(2, 2, d, reset_after=False), (2, 1), (3,), True),
    (lambda d: jdl.Bidirectional(jdl.GRU(2, 2, d, return_sequences=True),
                                 merge_mode="ave"), (2,), (2,), False),
]


@pytest.mark.parametrize("make, s, b, masked", _MODE_CASES)
def test_eager_function_and_xla_agree(make, s, b, masked):
  dtype = tf.float64
  f = make(dtype).sample(s, seed=3)
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=b + (3, 4, 2)), dtype)
  mask = tf.constant(rng.random((3, 4)) < 0.7) if masked else None
  want = f(x, mask=mask)
  for jit in (False, True):
    got = tf.function(lambda x, m: f(x, mask=m), jit_compile=jit)(x, mask)
    assert_close(got, want, dtype)


@pytest.mark.parametrize("make", [
    lambda: jdl.LSTM(2, 3, prior=jdl.priors.horseshoe()),
    lambda: jdl.GRU(2, 3, reset_after=False),
    lambda: jdl.GRU(2, 3, use_bias=True),
    lambda: jdl.Bidirectional(jdl.LSTM(2, 3, return_sequences=True)),
])
def test_gradients_reach_every_leaf(make):
  dist = make()
  f = dist.sample(2, seed=0)
  leaves = tf.nest.flatten(f)
  x = tf.random.stateless_normal([3, 4, 3], [1, 2])
  mask = tf.constant([[True] * 4, [True, False, True, True], [False] * 4])
  with tf.GradientTape() as tape:
    tape.watch(leaves)
    g = tf.nest.pack_sequence_as(f, leaves)
    out = tf.reduce_sum(tf.sin(g(x, mask=mask)))
    loss = out + tf.reduce_sum(dist.log_prob(g))
  for name, grad in zip(f.params, tape.gradient(loss, leaves)):
    assert grad is not None and np.all(np.isfinite(grad)), name
  with tf.GradientTape() as tape:
    tape.watch(leaves)
    out = tf.reduce_sum(tf.sin(tf.nest.pack_sequence_as(f, leaves)(x)))
  for name, grad in zip(f.params, tape.gradient(out, leaves)):
    if "kernel" in name.split("_")[-1] or name.endswith("bias"):
      # The output itself depends on every kernel and bias entry.
      assert grad is not None and np.any(grad != 0), name


def _loops(f, x):
  graph = tf.function(lambda x: f(x)).get_concrete_function(x).graph
  return sum(op.type in ("While", "StatelessWhile")
             for op in graph.get_operations())


def test_one_time_loop_shared_by_all_sampled_networks():
  x = tf.zeros([5, 4, 3])
  for dist in (jdl.LSTM(2, 3), jdl.GRU(2, 3, return_sequences=True)):
    assert _loops(dist.sample(seed=0), x) == 1
    assert _loops(dist.sample([7, 2], seed=0), x) == 1
  assert _loops(jdl.Bidirectional(jdl.LSTM(2, 3)).sample(5, seed=0), x) == 2


def test_sample_dims_broadcast_against_input_dims():
  f = jdl.LSTM(2, 3, tf.float64).sample([2, 1], seed=0)
  x = np.random.default_rng(0).normal(size=(3, 4, 5, 3))
  y = f(x)
  assert y.shape == (2, 3, 4, 2)
  for i in range(2):
    for j in range(3):
      g = jdl.LSTMLayer({k: v[i, 0] for k, v in f.params.items()}, f.config)
      assert_close(y[i, j], g(x[j]), tf.float64)


@pytest.mark.parametrize("cls", [jdl.LSTM, jdl.GRU])
def test_trailing_masked_steps_are_as_if_absent(cls):
  # Keras semantics, checked without Keras: a mask that drops the last
  # steps gives the output of the shorter sequence.
  f = cls(3, 2, tf.float64).sample(2, seed=1)
  x = np.random.default_rng(0).normal(size=(4, 5, 2))
  mask = np.arange(5) < np.array([5, 3, 1, 4])[:, None]
  y = f(x, mask=mask)
  for n, t in enumerate([5, 3, 1, 4]):
    assert_close(y[:, n], f(x[n:n + 1, :t])[:, 0], tf.float64)


def test_hierarchical_prior_gets_latents_per_kernel():
  f = jdl.GRU(2, 3, prior=jdl.priors.horseshoe()).sample(seed=0)
  assert sorted(f.params) == sorted([
      "global_scale", "local_scale", "kernel", "recurrent_kernel_global_scale",
      "recurrent_kernel_local_scale", "recurrent_kernel", "bias"])
  bi = jdl.Bidirectional(jdl.LSTM(2, 3, prior=jdl.priors.horseshoe()))
  assert "backward_recurrent_kernel_local_scale" in bi.param_names
  assert len(jdl.event_space_bijectors(bi)) == len(bi.param_names)


def test_unit_forget_bias_centres_the_forget_gate_prior_and_support_at_one():
  dist = jdl.LSTM(2, 3, tf.float64)
  bij = jdl.event_space_bijectors(dist)[-1]
  # Unconstrained 0 (where VI and MCMC initialise) is Keras' initial bias.
  np.testing.assert_array_equal(bij.forward(tf.zeros([8], tf.float64)),
                                [0, 0, 1, 1, 0, 0, 0, 0])
  off = jdl.LSTM(2, 3, tf.float64, unit_forget_bias=False)
  assert jdl.event_space_bijectors(off)[-1].forward(
      tf.zeros([8], tf.float64)).numpy().tolist() == [0] * 8


def _configs_equal(dist):
  cfg = json.loads(json.dumps(io.to_config(dist)))
  back = io.from_config(cfg)
  assert io.to_config(back) == cfg
  return back


@pytest.mark.parametrize("make", [
    lambda: jdl.LSTM(2, 3, tf.float64, activation="relu",
                     recurrent_activation="tanh", return_sequences=True,
                     go_backwards=True, unit_forget_bias=False,
                     prior=jdl.priors.horseshoe(0.5), name="enc"),
    lambda: jdl.GRU(2, 3, reset_after=False, use_bias=False,
                    zero_output_for_mask=True),
    lambda: jdl.Bidirectional(jdl.GRU(2, 3, return_sequences=True), "mul"),
    lambda: jdl.Bidirectional(
        jdl.LSTM(2, 3), None,
        backward_layer=jdl.LSTM(2, 3, go_backwards=True,
                                prior=jdl.priors.laplace())),
])
def test_config_round_trip(make):
  dist = make()
  back = _configs_equal(dist)
  f = dist.sample(2, seed=4)
  x = np.ones((2, 3, 3), next(iter(f.params.values())).dtype.as_numpy_dtype)
  for a, b in zip(tf.nest.flatten(f(x)),
                  tf.nest.flatten(back.sample(2, seed=4)(x))):
    np.testing.assert_array_equal(a, b)


def test_file_round_trip(tmp_path):
  net = jdl.Sequential(
      jdl.Bidirectional(jdl.LSTM(2, 3, return_sequences=True)),
      jdl.GRU(2, 4, prior=jdl.priors.horseshoe()), jdl.Affine(1, 2))
  fs = net.sample(3, seed=0)
  path = tmp_path / "seq.jdl.npz"
  io.save_network(path, net, fs)
  dist, loaded = io.load_network(path)
  assert io.to_config(dist) == io.to_config(net)
  x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
  np.testing.assert_array_equal(fs(x), loaded(x))


@pytest.mark.parametrize("call, err, match", [
    (lambda f: f(np.ones((4, 3), np.float32)), ValueError,
     r"LSTM\(units=2, input_size=3\) expects an input of rank >= 3 "
     r"\(\[..., N, T, input_size\]\); got shape \[4, 3\]"),
    (lambda f: f(np.ones((4, 5, 2), np.float32)), ValueError,
     r"LSTM\(units=2, input_size=3\) got input with 2 features \(input shape "
     r"\[4, 5, 2\]\); expected input_size=3"),
    (lambda f: f(tf.ones((4, 5, 3), tf.int32)), TypeError,
     r"LSTM\(units=2, input_size=3\) got an input of dtype int32"),
    (lambda f: f(np.ones((4, 5, 3), np.float32), mask=np.ones((4, 5))),
     TypeError, r"LSTM\(units=2, input_size=3\): `mask` must be boolean "
     r"\[..., N, T\].*got dtype float64"),
    (lambda f: f(np.ones((4, 5, 3), np.float32), mask=np.ones((4, 6), bool)),
     ValueError, r"`mask` must be \[..., N, T\] = \[..., 4, 5\] for input "
     r"shape \[4, 5, 3\]; got shape \[4, 6\]"),
    (lambda f: f(np.ones((3, 4, 5, 3), np.float32)), ValueError,
     r"LSTM\(units=2, input_size=3\): the input's leading dims \[3\] .* do "
     r"not broadcast with the layer's sample shape \[2\]"),
])
def test_bad_inputs_fail_early_with_clear_errors(call, err, match):
  f = jdl.LSTM(2, 3).sample(2, seed=0)
  with pytest.raises(err, match=match):
    call(f)


@pytest.mark.parametrize("make, err, match", [
    (lambda: jdl.LSTM(0, 3), ValueError, r"LSTM: `units` must be a positive "
     r"integer; got 0"),
    (lambda: jdl.GRU(2, 3, activation="nope"), ValueError, "nope"),
    (lambda: jdl.GRU(2, 3, reset_after=1), TypeError,
     r"GRU\(units=2, input_size=3\): `reset_after` must be True or False"),
    (lambda: jdl.LSTM(2, 3, tf.int32), TypeError, "must be floating"),
    (lambda: jdl.Bidirectional(jdl.Affine(2, 3)), TypeError,
     r"Bidirectional: `layer` must be a jdl.LSTM or jdl.GRU"),
    (lambda: jdl.Bidirectional(jdl.LSTM(2, 3), "max"), ValueError,
     r"`merge_mode` must be one of"),
    (lambda: jdl.Bidirectional(jdl.LSTM(2, 3, go_backwards=True)), ValueError,
     r"must differ in `go_backwards`; both have True"),
    (lambda: jdl.Bidirectional(
        jdl.LSTM(2, 3), backward_layer=jdl.GRU(2, 3, go_backwards=True,
                                               return_sequences=True)),
     ValueError, r"must agree in `return_sequences`"),
    (lambda: jdl.Bidirectional(
        jdl.LSTM(2, 3), "sum", backward_layer=jdl.LSTM(3, 3,
                                                       go_backwards=True)),
     ValueError, r"merge_mode='sum' needs equal `units`; got 2 and 3"),
])
def test_bad_configurations_fail_at_construction(make, err, match):
  with pytest.raises(err, match=match):
    make()
