"""`Embedding`: a distribution over lookup tables `[input_dim, output_dim]`."""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from jdlayers import _registry
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.layers import _base
from jdlayers.layers.affine import _float_dtype


@dataclasses.dataclass(frozen=True)
class EmbeddingConfig:
  """Static configuration of an embedding layer."""
  desc: str
  input_dim: int
  output_dim: int


class EmbeddingLayer(_base.SampledLayer):
  """A sampled embedding: `embeddings[ids]`.

  Parameters: `embeddings` `[*S, input_dim, output_dim]` (Keras 3's name and
  layout), plus any extra latents of the prior.
  """

  __slots__ = ()
  # `jdl.vi` flipout hands this layer an `ops.Perturbed` table.
  flipout_kernels = ("embeddings",)

  def keras_weights(self):
    """The weights in `keras.layers.Embedding`'s order: `[embeddings]`.

    Each has the sample dims `S` in front; index them away (e.g.
    `[w[i] for w in f.keras_weights()]`) before `set_weights`.
    """
    return [self._params["embeddings"]]

  def __call__(self, ids):
    """Looks the token ids up.

    Args:
      ids: `[*B, N, T]` integer token ids in `[0, input_dim)`; `B`
        broadcasts against the sample shape `S`. One token per example is
        `[*B, N, 1]`.

    Returns:
      `[*broadcast(B, S), N, T, output_dim]`.

    Raises:
      TypeError: For float (non-integer) ids.
      ValueError: For rank < 2, or ids outside `[0, input_dim)` (eagerly; in
        a graph a `tf.debugging.Assert` with the same message; under XLA,
        which drops asserts, those rows come out NaN).
    """
    config = self._config
    return ops.embedding_lookup(ids, self._params["embeddings"],
                                input_dim=config.input_dim,
                                layer=config.desc)


@_registry.register_class("Embedding")
class Embedding(_base.LayerDistribution):
  """Distribution over embedding tables: token ids -> random vectors.

  The Bayesian twin of `keras.layers.Embedding(input_dim, output_dim)`: the
  table is `embeddings` `[input_dim, output_dim]` (Keras 3's layout), so
  weights move between the two. The default prior is `Normal(0, 1)` on
  every table entry (`priors.normal()`, as `Affine`); any `jdl.priors` prior
  works through `prior=` (a horseshoe shrinks per output dimension).

  Inputs are `[*B, N, T]` integer ids (N examples of T tokens); `jdl.vi`'s
  flipout gives each sequence its own pseudo-independent table.

  Args:
    output_dim: Size of each embedding vector.
    input_dim: Vocabulary size; ids lie in `[0, input_dim)`.
    dtype: float32 or float64 (of the table and the output).
    name: Name of the distribution.
    prior: A `jdlayers.priors.Prior` (default `priors.normal(1.0)`).
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: For non-positive sizes or a prior without `embeddings`.
    TypeError: For a non-floating dtype.

  #### Example

  ```python
  import jdlayers as jdl
  f = jdl.Embedding(4, 10).sample(3, seed=0)
  f([[1, 2, 9], [0, 0, 5]]).shape  # [3, 2, 3, 4]
  ```
  """

  _value_type = EmbeddingLayer
  # Models keep integer `x` as ids for a network starting with this layer.
  reads_ids = True

  def __init__(self, output_dim: int, input_dim: int, dtype=tf.float32,
               name: str = "Embedding", *,
               prior: Optional[priors_lib.Prior] = None,
               validate_args: bool = False):
    parameters = dict(locals())
    cls = type(self).__name__
    output_dim = ops.positive_int(output_dim, "output_dim", cls)
    input_dim = ops.positive_int(input_dim, "input_dim", cls)
    desc = f"{cls}(output_dim={output_dim}, input_dim={input_dim})"
    dtype = _float_dtype(dtype, desc)
    config = EmbeddingConfig(desc=desc, input_dim=input_dim,
                             output_dim=output_dim)
    prior = priors_lib.normal() if prior is None else prior
    # One-hot inputs: each output unit is fed by one table entry.
    spec = priors_lib.ParamSpec(
        kernel_name="embeddings", kernel_shape=(input_dim, output_dim),
        bias_shape=None, out_axis=1, fan_in=1, fan_out=output_dim,
        dtype=dtype)
    super().__init__(prior.model(spec), config, required=("embeddings",),
                     validate_args=validate_args, name=name)
    self._parameters = parameters
    self._init_args = dict(output_dim=output_dim, input_dim=input_dim,
                           dtype=dtype, name=name, prior=prior,
                           validate_args=validate_args)
    self.output_dim, self.input_dim = output_dim, input_dim
    self.output_feature_ndims = 2
