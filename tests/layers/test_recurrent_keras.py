"""LSTM, GRU and Bidirectional equal their Keras 3 twins on the same weights.

Cases come from `jdlayers.testing.recurrent_configs`: units, T,
return_sequences, go_backwards, zero_output_for_mask, masks, activations,
both GRU `reset_after` settings and every merge mode, float32 and float64,
S = [] and S = [3] (each sample against Keras with that sample's weights).
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

import jdlayers as jdl
import jdlayers.testing as jdt

from _layers_testlib import assert_close

_KERAS_ARGS = ("units", "activation", "recurrent_activation", "use_bias",
               "return_sequences", "go_backwards", "zero_output_for_mask",
               "reset_after")


def _keras_layer(case):
  kw = case.kwargs
  cls = keras.layers.LSTM if kw["cell"] == "lstm" else keras.layers.GRU
  args = {k: kw[k] for k in _KERAS_ARGS if k in kw}
  if case.kind == "bidirectional":
    return keras.layers.Bidirectional(cls(**args, dtype=case.dtype.name),
                                      merge_mode=kw["merge_mode"],
                                      dtype=case.dtype.name)
  return cls(**args, dtype=case.dtype.name)


def _keras_weights(layer):
  """The sample's weights in Keras' `get_weights()` order."""
  p = layer.params
  names = ["kernel", "recurrent_kernel"] + (["bias"] if "bias" in p or
                                            "forward_bias" in p else [])
  if isinstance(layer, jdl.BidirectionalLayer):
    names = [h + n for h in ("forward_", "backward_") for n in names]
  want = [p[n].numpy() for n in names]
  for a, b in zip(layer.keras_weights(), want, strict=True):
    np.testing.assert_array_equal(a, b)
  return want


def _check(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  y = f(case.x, **case.call_kwargs)
  assert tuple(y.shape) == case.output_shape
  assert y.dtype == case.dtype
  y = y.numpy()
  s = case.sample_shape
  lead = y.shape[:y.ndim - (3 if case.kwargs["return_sequences"] else 2)]
  weights = [np.broadcast_to(w, lead + w.shape[len(s):])
             for w in _keras_weights(f)]
  x = np.broadcast_to(case.x, lead + case.x.shape[-3:])
  mask = None if case.mask is None else np.broadcast_to(
      case.mask, lead + case.mask.shape[-2:])
  k = _keras_layer(case)
  k.build(x.shape[len(lead):])
  for i in np.ndindex(*lead):
    k.set_weights([w[i] for w in weights])
    want = k(x[i], mask=None if mask is None else mask[i])
    assert_close(y[i], want, case.dtype)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("sample_shape", [(), (3,)])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@settings(deadline=None, max_examples=4)
@given(data=st.data())
def test_equals_keras(kind, sample_shape, dtype, data):
  _check(data.draw(jdt.recurrent_configs(kinds=(kind,), dtype=dtype,
                                         sample_shape=sample_shape),
                   label="case"))


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("sample_shape", [(), (3,)])
@settings(deadline=None, max_examples=2)  # Keras' Bidirectional builds slowly
@given(data=st.data())
def test_bidirectional_equals_keras(sample_shape, dtype, data):
  _check(data.draw(jdt.recurrent_configs(kinds=("bidirectional",),
                                         dtype=dtype,
                                         sample_shape=sample_shape),
                   label="case"))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_gru_both_reset_after_settings_with_mask(reset_after, dtype):
  rng = np.random.default_rng(0)
  dist = jdl.GRU(3, 2, dtype, reset_after=reset_after, return_sequences=True)
  x = rng.normal(size=(4, 5, 2)).astype(dtype.as_numpy_dtype)
  mask = rng.random((4, 5)) < 0.6
  f = dist.sample(3, seed=1)
  y = f(x, mask=mask).numpy()
  k = keras.layers.GRU(3, reset_after=reset_after, return_sequences=True,
                       dtype=dtype.name)
  k.build(x.shape)
  for i in range(3):
    k.set_weights([w[i] for w in _keras_weights(f)])
    assert_close(y[i], k(x, mask=mask), dtype)


def test_bidirectional_merge_mode_none_returns_both_outputs_as_keras():
  rng = np.random.default_rng(1)
  dist = jdl.Bidirectional(jdl.LSTM(2, 3, return_sequences=True),
                           merge_mode=None)
  x = rng.normal(size=(2, 4, 3)).astype(np.float32)
  mask = np.array([[True, True, False, True], [False, True, True, True]])
  f = dist.sample(seed=2)
  k = keras.layers.Bidirectional(keras.layers.LSTM(2, return_sequences=True),
                                 merge_mode=None)
  k.build(x.shape)
  k.set_weights(_keras_weights(f))
  for got, want in zip(f(x, mask=mask), k(x, mask=mask)):
    assert_close(got, want, tf.float32)
