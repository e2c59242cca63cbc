"""`vi.fit` going non-finite: the surrogate keeps its last finite state.

A step whose loss terms or gradients are not finite ends the compiled loop;
the block's starting state is restored and its finite steps replayed, so the
surrogate and the optimizer hold the values after the last finite step (an
update that itself overflowed a parameter leaves the block's start). The
error names the step, the epoch and the term (NLL, KL or the gradient of
which variables).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import models

tfd = tfp.distributions

X = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
Y = (2 * X).astype(np.float32)


def _model(likelihood=None):
  return models.Model(jdl.Affine(1, 1),
                      likelihood or models.Normal(scale=0.1))


def _values(surrogate):
  return [v.numpy().copy() for v in surrogate.trainable_variables]


@pytest.mark.parametrize("jit, dataset", [(False, False), (True, False),
                                          (False, True)])
def test_divergence_keeps_the_last_finite_parameters(jit, dataset):
  # SGD at learning rate 1 diverges geometrically: the loss is inf at step
  # 10 (the 3rd step of epoch 3: 64 examples in batches of 16).
  model = _model()
  q = jdl.vi.Surrogate(model, seed=0)
  opt = keras.optimizers.SGD(1.0)
  data = (tf.data.Dataset.from_tensor_slices((X, Y)).batch(16), None) \
      if dataset else (X, Y)
  with pytest.raises(FloatingPointError, match=r"vi\.fit: training went "
                     r"non-finite at step 10 \(epoch 3 of 20, step 3 of the "
                     r"epoch\): the NLL \(mean negative log-likelihood\) was "
                     r"inf.*the last finite ones\)\. Lower the learning rate"):
    jdl.vi.fit(model, *data, surrogate=q, epochs=20, optimizer=opt,
               batch_size=16, shuffle=False, jit_compile=jit, progress=False)
  assert all(np.isfinite(v).all() for v in _values(q))
  assert int(opt.iterations.numpy()) == 10   # steps 0..9 applied, not 10
  # The epochs completed before the bad step are in the history.
  assert len(q.history.loss) == 2 and np.isfinite(q.history.loss).all()
  assert len(q.history.step_loss) == 8


def test_non_finite_gradient_of_a_finite_loss_names_the_variables():
  # sqrt(0 * out) adds 0 to the mean but has gradient 0 * inf = nan.
  nan_grad = models.General(
      lambda out: tfd.Normal(out + tf.sqrt(0. * out), 0.1))
  model = _model(nan_grad)
  q = jdl.vi.Surrogate(model, seed=0)
  before = _values(q)
  with pytest.raises(FloatingPointError) as info:
    jdl.vi.fit(model, X, Y, surrogate=q, epochs=2, progress=False)
  msg = str(info.value)
  assert "at step 0 (epoch 1 of 2, step 1 of the epoch)" in msg
  assert "the gradient of the loss was not finite for [" in msg
  assert "weights_loc" in msg and "NLL" not in msg and "KL" not in msg
  for a, b in zip(before, _values(q)):
    np.testing.assert_array_equal(a, b)


def test_an_overflowing_update_is_undone_to_the_block_start():
  # Finite gradients, but SGD at 1e38 sends the weights to inf: the next
  # step's loss is nan, and the block's starting values come back.
  model = _model()
  q = jdl.vi.Surrogate(model, seed=0)
  before = _values(q)
  with pytest.raises(FloatingPointError, match="at step 1 .*an update made "
                     "parameters non-finite, so the surrogate was restored to "
                     "its parameters and optimizer state at step 0"):
    jdl.vi.fit(model, X, Y, surrogate=q, epochs=2, batch_size=16,
               optimizer=keras.optimizers.SGD(1e38), progress=False)
  for a, b in zip(before, _values(q)):
    np.testing.assert_array_equal(a, b)
