"""`MultiHeadAttention`: a distribution over Keras 3 multi-head attention."""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from jdlayers import _registry
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.layers import _base
from jdlayers.layers.affine import _float_dtype

# Keras 3's sublayer names, in its `get_weights()` order.
PROJECTIONS = ("query", "key", "value", "attention_output")


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
  """Static configuration of a multi-head attention layer."""
  desc: str
  num_heads: int
  key_dim: int
  value_dim: int
  input_dim: int
  value_input_dim: int
  key_input_dim: int


class MultiHeadAttentionLayer(_base.SampledLayer):
  """A sampled multi-head attention layer (Keras 3's math and layouts).

  Parameters (`S` the sample shape): `query_kernel` `[*S, in, H, key_dim]`,
  `key_kernel` `[*S, key_in, H, key_dim]`, `value_kernel`
  `[*S, value_in, H, value_dim]`, `attention_output_kernel`
  `[*S, H, value_dim, out]`, the matching `*_bias` (`[*S, H, key_dim]`, ...,
  `[*S, out]`; absent without bias), plus any extra latents of the prior.
  """

  __slots__ = ()

  # `jdl.vi` flipout hands these kernels as `ops.Perturbed`; each is applied
  # through `ops.linear`, with one sign per sequence.
  flipout_kernels = tuple(f"{p}_kernel" for p in PROJECTIONS)

  def __call__(self, query, value=None, key=None, attention_mask=None,
               return_attention_scores: bool = False,
               use_causal_mask: bool = False, *, query_mask=None,
               value_mask=None, key_mask=None):
    """Applies the layer (self-attention when only `query` is given).

    Args:
      query: `[*B, N, T, in]`; `B` broadcasts against the sample shape `S`.
      value: `[*B, N, Tv, value_in]` (default: `query`).
      key: `[*B, N, Tv, key_in]` (default: `value`).
      attention_mask: Optional boolean `[..., N, T, Tv]` (leading dims
        broadcast): True where a query position may attend to a key.
      return_attention_scores: Also return the attention probabilities.
      use_causal_mask: Mask keys after each query position (decoders).
      query_mask: Optional `[..., N, T]` padding mask (Keras' implicit
        mask of the query): a False position attends to nothing and gets
        uniform weights, as in Keras.
      value_mask: Optional `[..., N, Tv]` padding mask of the value.
      key_mask: Optional `[..., N, Tv]` padding mask of the key. All given
        masks are combined by AND, as Keras does.

    Returns:
      `[*broadcast(B, S), N, T, out]`, and with `return_attention_scores`
      also the scores `[*broadcast(B, S), N, H, T, Tv]`.

    Raises:
      ValueError: For an input of rank < 3, feature sizes that differ from
        the layer's, key and value of different lengths, leading dims that
        do not broadcast with `S`, a mask of the wrong shape, or a missing
        `value` (`key`) where the layer's value (key) width differs.
      TypeError: For a non-floating input or one of another float dtype.
    """
    c = self._config
    if value is None and c.value_input_dim != c.input_dim:
      raise ValueError(
          f"{c.desc}: called with only `query` (self-attention), but the "
          f"layer's value_input_dim={c.value_input_dim} differs from its "
          f"input_dim={c.input_dim}; pass `value` (cross-attention).")
    if key is None and c.key_input_dim != c.value_input_dim:
      raise ValueError(
          f"{c.desc}: called without `key` (it defaults to `value`), but the "
          f"layer's key_input_dim={c.key_input_dim} differs from its "
          f"value_input_dim={c.value_input_dim}; pass `key`.")
    value = query if value is None else value
    key = value if key is None else key
    p = self._params
    y, scores = ops.multi_head_attention(
        query, value, key, [p[f"{n}_kernel"] for n in PROJECTIONS],
        [p.get(f"{n}_bias") for n in PROJECTIONS],
        attention_mask=attention_mask, use_causal_mask=use_causal_mask,
        query_mask=query_mask, value_mask=value_mask, key_mask=key_mask,
        layer=c.desc)
    return (y, scores) if return_attention_scores else y

  def keras_weights(self):
    """The tensors in `keras.layers.MultiHeadAttention.get_weights()` order.

    Returns:
      `[query_kernel, query_bias, key_kernel, ..., attention_output_bias]`
      (biases only if the layer has them), each with the sample dims `S`
      leading; for `S = []` pass them to the Keras layer's `set_weights`.
    """
    return [self._params[f"{n}_{w}"] for n in PROJECTIONS
            for w in ("kernel", "bias") if f"{n}_{w}" in self._params]


@_registry.register_class("MultiHeadAttention")
class MultiHeadAttention(_base.LayerDistribution):
  """Distribution over multi-head attention layers, as Keras 3 computes them.

  The query, key, value and output projections are random, in the layouts,
  order and names of `keras.layers.MultiHeadAttention` (`query/kernel` is
  `query_kernel` here), so `f.keras_weights()` of a sample moves into a
  Keras layer with `set_weights` and both give the same output: scaling by
  `1 / sqrt(key_dim)`, boolean `attention_mask`, causal masks, no dropout.

  The default prior is `priors.fan_in_normal("lecun")`: `Normal(0,
  1/fan_in)` on every kernel entry, so the projections keep unit scale and
  the prior's attention logits stay O(1) (a `Normal(0, 1)` prior on a
  16-feature input saturates the softmax); biases get `Normal(0, 1)`. Every
  `jdl.priors` prior works through `prior=`; hierarchical ones (horseshoe)
  give each projection its own latents (`query_global_scale`, ...) and
  shrink per head (`out_axis` is the head axis of the q/k/v kernels).
  `key_bias` (kept for Keras' layout) never changes the output: the
  softmax is shift-invariant per query, so its posterior is its prior.

  Args:
    num_heads: Number of heads `H`.
    key_dim: Size of each query/key head.
    input_dim: Features of the query (`in`).
    dtype: float32 or float64.
    name: Name of the distribution.
    value_dim: Size of each value head (default `key_dim`).
    output_dim: Output features (default `input_dim`, as Keras).
    use_bias: Whether the projections have biases.
    key_input_dim: Features of the key (default `value_input_dim`).
    value_input_dim: Features of the value (default `input_dim`).
    prior: A `jdlayers.priors.Prior` (default `fan_in_normal("lecun")`).
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: For non-positive sizes.
    TypeError: For a non-floating dtype.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  mha = jdl.MultiHeadAttention(num_heads=2, key_dim=4, input_dim=8)
  f = mha.sample(3, seed=0)
  f(tf.ones([5, 7, 8])).shape  # [3, 5, 7, 8]: self-attention
  ```
  """

  _value_type = MultiHeadAttentionLayer

  def __init__(self, num_heads: int, key_dim: int, input_dim: int,
               dtype=tf.float32, name: str = "MultiHeadAttention", *,
               value_dim: Optional[int] = None,
               output_dim: Optional[int] = None, use_bias: bool = True,
               key_input_dim: Optional[int] = None,
               value_input_dim: Optional[int] = None,
               prior: Optional[priors_lib.Prior] = None,
               validate_args: bool = False):
    parameters = dict(locals())
    cls = type(self).__name__
    pos = lambda v, arg, default=None: ops.positive_int(
        default if v is None else v, arg, cls)
    heads = pos(num_heads, "num_heads")
    key_dim = pos(key_dim, "key_dim")
    input_dim = pos(input_dim, "input_dim")
    value_dim = pos(value_dim, "value_dim", key_dim)
    output_dim = pos(output_dim, "output_dim", input_dim)
    value_input_dim = pos(value_input_dim, "value_input_dim", input_dim)
    key_input_dim = pos(key_input_dim, "key_input_dim", value_input_dim)
    desc = (f"{cls}(num_heads={heads}, key_dim={key_dim}, "
            f"input_dim={input_dim})")
    dtype = _float_dtype(dtype, desc)
    config = AttentionConfig(
        desc=desc, num_heads=heads, key_dim=key_dim, value_dim=value_dim,
        input_dim=input_dim, value_input_dim=value_input_dim,
        key_input_dim=key_input_dim)
    prior = priors_lib.fan_in_normal("lecun") if prior is None else prior
    use_bias = bool(use_bias)
    shapes = {"query": (input_dim, heads, key_dim),
              "key": (key_input_dim, heads, key_dim),
              "value": (value_input_dim, heads, value_dim),
              "attention_output": (heads, value_dim, output_dim)}
    specs = []
    for proj, shape in shapes.items():
      last = proj == "attention_output"
      fan_in = heads * value_dim if last else shape[0]
      fan_out = output_dim if last else heads * shape[2]
      specs.append(priors_lib.ParamSpec(
          kernel_name=f"{proj}_kernel", kernel_shape=shape,
          bias_shape=((shape[-1],) if last else shape[1:]) if use_bias
          else None,
          out_axis=2 if last else 1, fan_in=fan_in, fan_out=fan_out,
          dtype=dtype, bias_name=f"{proj}_bias", latent_prefix=f"{proj}_"))
    super().__init__(
        priors_lib.joint_model(prior, specs), config,
        required=tuple(f"{p}_kernel" for p in PROJECTIONS),
        forbidden=() if use_bias else tuple(f"{p}_bias" for p in PROJECTIONS),
        validate_args=validate_args, name=name)
    self._parameters = parameters
    self._init_args = dict(
        num_heads=heads, key_dim=key_dim, input_dim=input_dim, dtype=dtype,
        name=name, value_dim=value_dim, output_dim=output_dim,
        use_bias=use_bias, key_input_dim=key_input_dim,
        value_input_dim=value_input_dim, prior=prior,
        validate_args=validate_args)
    self.num_heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
    self.input_dim, self.output_dim = input_dim, output_dim
    self.key_input_dim, self.value_input_dim = key_input_dim, value_input_dim
    self.use_bias = use_bias
    # Output `[..., N, T, out]`: two feature dims after N (for Flatten).
    self.output_feature_ndims = 2
