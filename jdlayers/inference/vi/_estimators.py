"""Applying a surrogate layer to data: reparameterization, Flipout, local
reparameterization.

All three exploit that affine, convolution and transposed-convolution
layers are linear in their kernel, so one implementation serves every rank,
padding, stride, dilation and data format by calling the layer's own op:

* "reparam": draw the kernel (one draw per call, or per sample dim) and apply
  the sampled layer.
* "flipout" (Wen et al., 2018): `op(x, mean) + s_out * op(x * s_in, delta)`
  with one shared perturbation `delta = kernel draw - mean` and random signs
  `s_in`, `s_out` per example and channel (shared over spatial positions,
  where the kernel is shared). Each example sees a pseudo-independent
  kernel; the output's distribution per example equals reparameterization's
  whenever the perturbation is symmetric (normal surrogates).
  Layers that apply several kernels, or one kernel at every time step
  (recurrent cells, attention, embeddings), name them in their value
  type's `flipout_kernels` and apply each through `jdlayers.ops.linear`;
  flipout then hands them `ops.Perturbed(mean, delta, seed)` kernels and
  the layer's own code computes the flipped output.
* "local" (Kingma et al., 2015): for a normal kernel, the pre-activation is
  normal with mean `op(x, loc)` and variance `op(x^2, scale^2)` (each output
  sums distinct independent kernel entries times inputs), so it is sampled
  directly, independently per example and output unit.

The bias (and any other part) is drawn by reparameterization in every mode.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import ops
from jdlayers.compose._base import CompositeLayer
from jdlayers.inference.vi._builders import normal_params
from jdlayers.layers import _base
from jdlayers.layers.affine import AffineLayer
from jdlayers.layers.conv import ConvLayer
from jdlayers.layers.conv_transpose import ConvTransposeLayer

tfd = tfp.distributions

ESTIMATORS = ("reparam", "flipout", "local")
_ALIASES = {"reparameterization": "reparam", "reparameterized": "reparam",
            "local_reparameterization": "local", "local_reparam": "local"}
# Layers linear in their kernel, and the kernel's parameter name.
_LINEAR = {AffineLayer: "weights", ConvLayer: "kernel",
           ConvTransposeLayer: "kernel"}


def canonical(estimator: str, where: str = "vi") -> str:
  """Normalises an estimator name; raises ValueError for unknown ones."""
  if isinstance(estimator, str):
    name = _ALIASES.get(estimator.lower(), estimator.lower())
    if name in ESTIMATORS:
      return name
  raise ValueError(f"{where}: unknown estimator {estimator!r}; expected one "
                   f"of {list(ESTIMATORS)} (or "
                   f"{sorted(_ALIASES)}).")


def kernel_name(layer) -> Optional[str]:
  """The kernel's parameter name if `layer` supports flipout/local."""
  for cls, name in _LINEAR.items():
    if isinstance(layer, cls):
      return name
  return None


def flipout_kernels(layer) -> tuple:
  """Names of the kernels a multi-kernel layer applies via `ops.linear`."""
  return tuple(getattr(type(layer), "flipout_kernels", ()))


def resolve(estimator, path: str, layer, where: str = "vi") -> str:
  """The estimator for the layer at `path`.

  `estimator` is one name for every layer, or a mapping from layer paths
  ("0", "2/1"; "*" for the rest) to names. Layers that are not linear in a
  kernel use "reparam" when the choice came from a network-wide default;
  naming such a layer explicitly with flipout/local raises.
  """
  explicit = False
  if isinstance(estimator, Mapping):
    if path in estimator:
      name, explicit = estimator[path], True
    else:
      name = estimator.get("*", "reparam")
  else:
    name = estimator
  name = canonical(name, where)
  if name == "flipout" and flipout_kernels(layer):
    return name
  if name != "reparam" and kernel_name(layer) is None:
    if explicit:
      raise ValueError(f"{where}: layer {path!r} ({layer.config.desc}) is not "
                       f"linear in a kernel; estimator {name!r} needs an "
                       "Affine, Conv or ConvTranspose layer.")
    return "reparam"
  return name


def _channel_axis(layer) -> int:
  config = layer.config
  if isinstance(layer, AffineLayer) or config.data_format == "channels_last":
    return -1
  return -(config.rank + 1)


def _core_ndims(layer) -> int:
  return 2 if isinstance(layer, AffineLayer) else layer.config.rank + 2


@tf.autograph.experimental.do_not_convert
def _signs(like: tf.Tensor, channel_axis: int, core: int, seed) -> tf.Tensor:
  """Rademacher signs shaped like `like` but 1 along its spatial dims."""
  shape = tf.unstack(tf.shape(like))
  rank = len(shape)
  chan = rank + channel_axis
  for ax in range(rank - core + 1, rank):
    if ax != chan:
      shape[ax] = 1
  return tfp.random.rademacher(tf.stack(shape), like.dtype, seed=seed)


@tf.autograph.experimental.do_not_convert
def apply_layer(layer, dists: Mapping[str, tfd.Distribution], x, *,
                estimator: str, sample_shape: Sequence[int], seed,
                path: str = ""):
  """Applies one surrogate layer to `x`.

  Args:
    layer: The layer's sampled value from the prior (its type and static
      config; its tensors are not used).
    dists: Parameter name -> surrogate distribution of that parameter.
    x: `[*B, N, *features]` input.
    estimator: "reparam", "flipout" or "local" (see `resolve`).
    sample_shape: `S`: independent weight draws; `[]` is one draw per call.
    seed: Stateless seed pair.
    path: The layer's path, for error messages.

  Returns:
    `[*broadcast(B, S), N, *out]`.
  """
  value_type, config = type(layer), layer.config
  sample_shape = list(sample_shape)
  names = list(dists)
  if estimator == "reparam" or kernel_name(layer) is None:
    return sampled_layer(layer, dists, estimator=estimator,
                         sample_shape=sample_shape, seed=seed, path=path)(x)
  seeds = tfp.random.split_seed(seed, len(names) + 2)
  kname = kernel_name(layer)
  q = normal_params(dists[kname])
  if q is None:
    raise ValueError(
        f"vi: estimator {estimator!r} for layer {path!r} "
        f"({config.desc}) needs a normal or point-mass surrogate for "
        f"{kname!r}; got {type(dists[kname]).__name__}. Use 'reparam' for "
        "other families.")
  loc, scale = q
  linear = dataclasses.replace(config, activation=None)
  axis, core = _channel_axis(layer), _core_ndims(layer)
  # Every example needs its own noise, so the input is broadcast to the
  # sample dims first: `[*broadcast(B, S), N, *features]`.
  x = tf.convert_to_tensor(x, loc.dtype)
  lead = tf.broadcast_dynamic_shape(tf.shape(x)[:-core],
                                    tf.constant(sample_shape, tf.int32))
  x = tf.broadcast_to(x, tf.concat([lead, tf.shape(x)[-core:]], 0))
  bias_q = normal_params(dists["bias"]) if "bias" in dists else None
  if "bias" in dists and (estimator == "flipout" or bias_q is None):
    bias = dists["bias"].sample(sample_shape, seed=seeds[names.index("bias")])
    bias_var = None
  elif "bias" in dists:
    # Local reparameterization folds a normal bias into the per-example
    # noise with its exact variance.
    bias = bias_q[0]
    bias_var = None if bias_q[1] is None else tf.square(bias_q[1])
  else:
    bias, bias_var = None, None
  params = {kname: loc} if bias is None else {kname: loc, "bias": bias}
  y = value_type(params, linear)(x)
  if scale is not None and estimator == "flipout":
    delta = dists[kname].sample(sample_shape, seed=seeds[-1]) - loc
    s_in_seed, s_out_seed = tfp.random.split_seed(seeds[-2])
    pert = value_type({kname: delta}, linear)(x * _signs(x, axis, core,
                                                         s_in_seed))
    y = y + pert * _signs(pert, axis, core, s_out_seed)
  elif estimator == "local":
    var = 0.
    if scale is not None:
      var = value_type({kname: tf.square(scale)}, linear)(tf.square(x))
    if bias_var is not None:
      var = var + _expand_bias(bias_var, layer)
    if scale is not None or bias_var is not None:
      tiny = float(np.finfo(loc.dtype.as_numpy_dtype).tiny)
      # Philox explicitly: XLA's default generator on CPU was 15x slower
      # (benchmarks/vi.py), and the stream no longer depends on XLA.
      eps = tf.random.stateless_normal(tf.shape(y), seeds[-1], dtype=y.dtype,
                                       alg="philox")
      y = y + tf.sqrt(var + tiny) * eps
  return y if config.activation is None else config.activation(y)


@tf.autograph.experimental.do_not_convert
def sampled_layer(layer, dists: Mapping[str, tfd.Distribution], *,
                  estimator: str, sample_shape: Sequence[int], seed,
                  path: str = ""):
  """The sampled layer one "reparam" pass (or "flipout" pass, for a layer
  naming its `flipout_kernels`) applies, to call with the layer's own
  arguments (several inputs, masks); `apply_layer` calls it with `x`.

  Args:
    layer, dists, sample_shape, seed, path: As `apply_layer`.
    estimator: "reparam", or "flipout" for a layer with `flipout_kernels`.

  Returns:
    A sampled layer of `layer`'s type: parameters `[*S, ...]` (Flipout
    kernels are `ops.Perturbed`).

  Raises:
    ValueError: For another estimator.
  """
  names = list(dists)
  seeds = tfp.random.split_seed(seed, len(names) + 2)
  if estimator == "reparam":
    params = {n: dists[n].sample(list(sample_shape), seed=s)
              for n, s in zip(names, seeds)}
    return type(layer)(params, layer.config)
  if estimator != "flipout" or not flipout_kernels(layer):
    raise ValueError(f"vi: estimator {estimator!r} for layer {path!r} "
                     f"({layer.config.desc}) needs `apply_layer` (a layer "
                     "linear in one kernel); here use 'reparam' or 'flipout'.")
  return _perturbed_layer(layer, dists, list(sample_shape), seeds, path)


def _perturbed_layer(layer, dists, sample_shape, seeds, path: str):
  """Flipout for a layer that names its `flipout_kernels`: those kernels
  become `ops.Perturbed` (one shared draw, signs from their own seed), every
  other part is drawn by reparameterization."""
  params = {}
  for i, name in enumerate(dists):
    if name not in flipout_kernels(layer):
      params[name] = dists[name].sample(sample_shape, seed=seeds[i])
      continue
    q = normal_params(dists[name])
    if q is None:
      raise ValueError(
          f"vi: estimator 'flipout' for layer {path!r} ({layer.config.desc}) "
          f"needs a normal or point-mass surrogate for {name!r}; got "
          f"{type(dists[name]).__name__}. Use 'reparam' for other families.")
    loc, scale = q
    if scale is None:  # A point mass: nothing to flip.
      params[name] = dists[name].sample(sample_shape, seed=seeds[i])
      continue
    delta = dists[name].sample(sample_shape, seed=seeds[i]) - loc
    sign_seed = tf.random.experimental.stateless_fold_in(seeds[-1], i)
    params[name] = ops.Perturbed(loc, delta, sign_seed)
  return type(layer)(params, layer.config)


def _expand_bias(b: tf.Tensor, layer) -> tf.Tensor:
  """`[out]` per-channel values -> broadcastable against the output."""
  axis = _channel_axis(layer)
  core = _core_ndims(layer)
  shape = [1] * (core - 1)
  shape[axis] = -1
  return tf.reshape(b, shape)


def leaf_layers(value, prefix: str = ""):
  """Yields `(path, sampled layer)` for each layer with random parameters,
  in `tf.nest.flatten` order."""
  if isinstance(value, CompositeLayer):
    for i, child in enumerate(value.layers):
      yield from leaf_layers(child, f"{prefix}{i}/")
  elif isinstance(value, _base.SampledLayer) and len(value):
    yield prefix.rstrip("/"), value


def replace_leaves(value, fn, prefix: str = ""):
  """Rebuilds a network value with each random leaf layer `l` at `path`
  replaced by `fn(path, l)` (composites keep their static config)."""
  if isinstance(value, CompositeLayer):
    kids = tuple(replace_leaves(c, fn, f"{prefix}{i}/")
                 for i, c in enumerate(value.layers))
    return type(value)(kids, value.config)
  if isinstance(value, _base.SampledLayer) and len(value):
    return fn(prefix.rstrip("/"), value)
  return value
