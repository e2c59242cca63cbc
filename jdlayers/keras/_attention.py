"""`MultiHeadAttention`: variational multi-head attention (Keras' arguments)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.keras._core_base import CoreLayer
from jdlayers.layers import attention as jdl_attention

_register = keras.saving.register_keras_serializable(package="jdlayers")


@_register
class MultiHeadAttention(CoreLayer):
  """Variational multi-head attention, as `keras.layers.MultiHeadAttention`.

  The query, key, value and output projections (`query_kernel` `[in, H,
  key_dim]`, `query_bias` `[H, key_dim]`, ..., `attention_output_kernel`
  `[H, value_dim, out]`, `attention_output_bias` `[out]`: Keras 3's layouts
  and `get_weights()` order) are drawn on every call from a trainable
  posterior, and the scaled KL divergence to the prior (`jdl.
  MultiHeadAttention`'s, default `fan_in_normal("lecun")`) is added with
  `add_loss`. With "flipout" (the default) every example sees its own
  pseudo-independent projections.

  Masks as Keras: the Keras masks of `query`, `value` and `key` (e.g. from
  `jdlayers.keras.Embedding(mask_zero=True)`), `attention_mask` and
  `use_causal_mask` are combined with a logical and; the output carries the
  query's mask.

  Args:
    num_heads: Number of heads `H`.
    key_dim: Size of each query/key head.
    value_dim: Size of each value head (default `key_dim`).
    dropout: Only 0 (the posterior is the noise).
    use_bias: Whether the projections have biases.
    output_shape: Output features (an int or 1-tuple; default: the query's
      features, as Keras).
    attention_axes: Only None (attention over the sequence axis, axis 1).
    estimator: "flipout" (default) or "reparam".
    prior, posterior_fns, divergence_fns, num_examples, kl_weight, seed,
      **kwargs: As `jdlayers.keras.LSTM` (part names "query_kernel",
      "query_bias", ..., "attention_output_bias").

  Raises:
    ValueError: For non-positive sizes, dropout, `attention_axes`, a
      multi-dimensional `output_shape`, an unknown estimator, and (at build)
      inputs that are not `[N, T, features]`.

  #### Example

  ```python
  import jdlayers as jdl, numpy as np
  mha = jdl.keras.MultiHeadAttention(2, 4, num_examples=100, seed=0)
  q = np.ones([3, 5, 8], "float32")
  y = mha(q, q)  # [3, 5, 8]
  ```
  """

  def __init__(self, num_heads: int, key_dim: int,
               value_dim: Optional[int] = None, dropout: float = 0.0,
               use_bias: bool = True, output_shape=None,
               attention_axes=None, *, estimator: str = "flipout",
               prior: Optional[priors_lib.Prior] = None,
               posterior_fns=None, divergence_fns=None,
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    super().__init__(estimator=estimator, prior=prior,
                     posterior_fns=posterior_fns,
                     divergence_fns=divergence_fns,
                     num_examples=num_examples, kl_weight=kl_weight,
                     seed=seed, **kwargs)
    owner = type(self).__name__
    self.num_heads = ops.positive_int(num_heads, "num_heads", owner)
    self.key_dim = ops.positive_int(key_dim, "key_dim", owner)
    self.value_dim = (self.key_dim if value_dim is None else
                      ops.positive_int(value_dim, "value_dim", owner))
    if dropout:
      raise ValueError(f"{owner}: `dropout={dropout!r}` is not supported (the "
                       "posterior's weight noise replaces it).")
    if attention_axes is not None:
      raise ValueError(f"{owner}: `attention_axes={attention_axes!r}` is not "
                       "supported: attention runs over axis 1 of [batch, "
                       "time, features] inputs.")
    if not isinstance(use_bias, bool):
      raise TypeError(f"{owner}: `use_bias` must be True or False; got "
                      f"{use_bias!r:.80}.")
    self.use_bias = use_bias
    if isinstance(output_shape, (tuple, list)):
      if len(output_shape) != 1:
        raise ValueError(f"{owner}: `output_shape` must be an int or a "
                         f"1-tuple (output features); got {output_shape!r}.")
      output_shape = output_shape[0]
    self.output_dim = None if output_shape is None else ops.positive_int(
        output_shape, "output_shape", owner)
    self.dropout = 0.0
    self.supports_masking = True

  def build(self, query_shape, value_shape=None, key_shape=None):
    """Builds the distribution and surrogate from the inputs' shapes."""
    super().build((query_shape, value_shape, key_shape))

  def _make_distribution(self, input_shape):
    owner = f"{type(self).__name__} '{self.name}'"
    query, value, key = input_shape
    value = query if value is None else value
    key = value if key is None else key
    features = []
    for arg, shape in (("query", query), ("value", value), ("key", key)):
      if len(shape) != 3 or shape[-1] is None:
        raise ValueError(f"{owner}: `{arg}` must be [batch, time, features] "
                         f"with known features; got shape {tuple(shape)}.")
      features.append(int(shape[-1]))
    return jdl_attention.MultiHeadAttention(
        self.num_heads, self.key_dim, features[0], self.variable_dtype,
        name=self.name, value_dim=self.value_dim, output_dim=self.output_dim,
        use_bias=self.use_bias, value_input_dim=features[1],
        key_input_dim=features[2], **self._prior_kwargs())

  def call(self, query, value=None, key=None, query_mask=None,
           value_mask=None, key_mask=None, attention_mask=None,
           return_attention_scores: bool = False, training=None,
           use_causal_mask: bool = False):
    """Attends with this call's weight draw; adds the scaled KL.

    Args:
      query: `[N, T, in]`.
      value: `[N, S, value_in]` (default: `query`, self-attention).
      key: `[N, S, key_in]` (default: `value`).
      query_mask, value_mask, key_mask: Optional boolean `[N, T]` / `[N, S]`
        (Keras fills them from the inputs' Keras masks).
      attention_mask: Optional boolean `[N, T, S]`: True where a query
        position may attend to a key position.
      return_attention_scores: Also return the scores `[N, H, T, S]`.
      training: Unused (weights are sampled in training and prediction).
      use_causal_mask: Mask keys after each query position.

    Returns:
      `[N, T, out]`, and the scores with `return_attention_scores`.
    """
    del training
    value = query if value is None else value
    mask = _attention_mask(query_mask, value_mask,
                           None if key is None else key_mask, attention_mask)
    f = self._draw()
    out = f(self._float(query), self._float(value),
            None if key is None else self._float(key), attention_mask=mask,
            return_attention_scores=return_attention_scores,
            use_causal_mask=use_causal_mask)
    if return_attention_scores:
      return self._out(out[0]), self._out(out[1])
    # (Keras' `__call__` gives the output the query's mask, as Keras' layer.)
    return self._out(out)

  def compute_output_shape(self, query_shape, value_shape=None,
                           key_shape=None):
    del value_shape, key_shape
    out = query_shape[-1] if self.output_dim is None else self.output_dim
    return tuple(query_shape[:-1]) + (out,)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(num_heads=self.num_heads, key_dim=self.key_dim,
                  value_dim=self.value_dim, dropout=self.dropout,
                  use_bias=self.use_bias, output_shape=self.output_dim,
                  attention_axes=None)
    return config


def _attention_mask(query_mask, value_mask, key_mask, attention_mask):
  """Keras' merge of the masks: `[N, T, 1] & [N, 1, S] & [N, 1, S] &
  attention_mask` (None if there is none)."""
  out = None
  for m, axis in ((query_mask, -1), (value_mask, -2), (key_mask, -2)):
    if m is not None:
      m = tf.expand_dims(tf.cast(m, tf.bool), axis)
      out = m if out is None else tf.logical_and(out, m)
  if attention_mask is not None:
    a = tf.cast(attention_mask, tf.bool)
    out = a if out is None else tf.logical_and(a, out)
  return out

