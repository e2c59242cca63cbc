"""`Embedding`: the variational lookup table (Keras' arguments)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from jdlayers import layers as jdl_layers
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.keras._core_base import CoreLayer

_register = keras.saving.register_keras_serializable(package="jdlayers")


@_register
class Embedding(CoreLayer):
  """Variational embedding: token ids -> rows of a random table.

  The table `embeddings` `[input_dim, output_dim]` (Keras' name and
  layout; variables `embeddings_loc`, `embeddings_untransformed_scale`) is
  drawn on every call from a trainable posterior, and the scaled KL
  divergence to the prior (`jdl.Embedding`'s, default `Normal(0, 1)`) is
  added with `add_loss`. With "flipout" (the default) every example (row of
  the batch) sees its own pseudo-independent table, shared over its tokens.

  As `keras.layers.Embedding`, non-integer ids are cast to int32 (so a
  float `keras.Input` works) and `mask_zero=True` makes id 0 padding: the
  layer passes the mask `ids != 0` on, e.g. to `jdlayers.keras.LSTM`. Ids
  outside `[0, input_dim)` raise (eagerly: a ValueError naming them; in a
  graph: an assertion); under XLA, which drops assertions, their rows come
  out NaN.

  Args:
    input_dim: Vocabulary size.
    output_dim: Size of each embedding vector.
    mask_zero: Whether id 0 is padding to mask in later layers.
    estimator: "flipout" (default) or "reparam" (one table per call).
    prior: A `jdlayers.priors.Prior` (default `priors.normal()`).
    posterior_fns, divergence_fns, num_examples, kl_weight, seed,
      **kwargs: As `jdlayers.keras.LSTM` (part name: "embeddings").

  Raises:
    ValueError: For non-positive sizes, a bad estimator or settings.

  #### Example

  ```python
  import jdlayers as jdl, numpy as np
  layer = jdl.keras.Embedding(10, 4, mask_zero=True, num_examples=100)
  y = layer(np.array([[1, 2, 0], [3, 0, 0]]))  # [2, 3, 4]
  mask = layer.compute_mask(np.array([[1, 2, 0]]))  # [[True, True, False]]
  ```
  """

  def __init__(self, input_dim: int, output_dim: int, *,
               mask_zero: bool = False, estimator: str = "flipout",
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
    self.input_dim = ops.positive_int(input_dim, "input_dim", owner)
    self.output_dim = ops.positive_int(output_dim, "output_dim", owner)
    if not isinstance(mask_zero, bool):
      raise TypeError(f"{owner}: `mask_zero` must be True or False; got "
                      f"{mask_zero!r:.80}.")
    self.mask_zero = mask_zero
    self.supports_masking = mask_zero

  def _make_distribution(self, input_shape):
    del input_shape  # any shape of ids
    return jdl_layers.Embedding(self.output_dim, self.input_dim,
                                self.variable_dtype, name=self.name,
                                **self._prior_kwargs())

  def call(self, inputs):
    """Looks the ids up in this call's table draw; adds the scaled KL.

    Args:
      inputs: `[N, *T]` token ids (any rank >= 1).

    Returns:
      `[N, *T, output_dim]`.
    """
    ids = tf.convert_to_tensor(inputs)
    if not ids.dtype.is_integer:
      ids = tf.cast(ids, tf.int32)  # as keras.layers.Embedding
    single = ids.shape.rank == 1  # the core layer's inputs are [N, T]
    if single:
      ids = ids[:, None]
    y = self._draw()(ids)
    return self._out(y[:, 0] if single else y)

  def compute_mask(self, inputs, mask=None):
    del mask
    if not self.mask_zero:
      return None
    return keras.ops.not_equal(inputs, 0)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape) + (self.output_dim,)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(input_dim=self.input_dim, output_dim=self.output_dim,
                  mask_zero=self.mask_zero)
    return config
