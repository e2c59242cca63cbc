"""`vi.Surrogate` builds in every mode TF supports: eagerly, inside a
`tf.function` on its first trace (where variables may be created), and in a
TF1-style `tf.Graph` run by a `tf.compat.v1.Session` (as tfp.layers' own
tests do). For the same seed, the variables' initial values, a sample, the
KL and a forward pass equal the eager ones."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import jdlayers as jdl  # noqa: E402

tfd = tfp.distributions

SEED, SAMPLE_SEED, KL_SEED = 3, 1, 2


def _affine():
  return jdl.Affine(3, 2)


def _model():
  # Hierarchical and mixture priors, a static layer, a likelihood latent:
  # every kind of part and bijector a surrogate builds.
  net = jdl.Sequential(
      jdl.Affine(3, 2, prior=jdl.priors.horseshoe()), tf.nn.relu,
      jdl.Affine(1, 3, prior=jdl.priors.spike_and_slab(bias="spike_and_slab")))
  return jdl.models.Model(net, jdl.models.Normal(scale=tfd.HalfNormal(1.)))


BUILDERS = {"affine": _affine, "model": _model}


def _outputs(q):
  """Tensors to compare: initial values, one draw of every part, the KL and
  a Flipout forward pass (both targets take 2 input features)."""
  x = tf.reshape(tf.linspace(-1., 1., 8), [4, 2])
  return ({k: tf.convert_to_tensor(v)
           for k, v in q.trainable_parameters.items()},
          q.sample_parts(seed=SAMPLE_SEED), q.kl_divergence(seed=KL_SEED),
          q.apply(x, estimator="flipout", seed=SAMPLE_SEED))


def _eager(make):
  return tf.nest.map_structure(lambda t: t.numpy(),
                               _outputs(jdl.vi.Surrogate(make(), seed=SEED)))


def _check_equal(got, want):
  tf.nest.assert_same_structure(got, want)
  params, parts, kl, y = got
  for k in want[0]:
    np.testing.assert_array_equal(params[k], want[0][k], err_msg=k)
  # Same ops on the same values; graph-level rewrites may reorder float
  # sums, hence a tolerance of a few float32 ulps rather than equality.
  for a, b in zip(parts, want[1]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(kl, want[2], rtol=1e-5)
  np.testing.assert_allclose(y, want[3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_tf1_graph_and_session(name):
  make = BUILDERS[name]
  want = _eager(make)
  graph = tf.Graph()
  with graph.as_default():
    q = jdl.vi.Surrogate(make(), seed=SEED)
    assert q.trainable_variables
    outputs = _outputs(q)
    # The KL is differentiable in the graph, as a TF1 training op needs.
    grads = tf.gradients(outputs[2], list(q.trainable_variables))
    assert all(g is not None for g in grads)
    init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(init)
      got = sess.run(outputs)
      assert all(np.all(np.isfinite(g)) for g in sess.run(grads))
  _check_equal(got, want)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_built_inside_tf_function(name):
  make = BUILDERS[name]
  want = _eager(make)
  # The model is configuration, built outside; the surrogate (its variables
  # and everything it derives from the model) is built inside the trace.
  target = make()
  cache = {}

  @tf.function
  def run():
    if "q" not in cache:  # first trace only: variables are created once
      cache["q"] = jdl.vi.Surrogate(target, seed=SEED)
    return _outputs(cache["q"])

  got = tf.nest.map_structure(lambda t: t.numpy(), run())
  _check_equal(got, want)
  # Later calls reuse the variables (no new ones, same values).
  n = len(cache["q"].trainable_variables)
  again = tf.nest.map_structure(lambda t: t.numpy(), run())
  assert len(cache["q"].trainable_variables) == n
  _check_equal(again, want)


def test_eager_construction_is_deterministic():
  # The reference the other modes are compared with is itself reproducible,
  # and a different seed gives different initial values.
  a, b = _eager(_affine), _eager(_affine)
  _check_equal(a, b)
  other = jdl.vi.Surrogate(_affine(), seed=SEED + 1).trainable_parameters
  assert not np.array_equal(other["weights/loc"], a[0]["weights/loc"])
