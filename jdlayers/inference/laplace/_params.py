"""The point estimate a Laplace approximation expands around, from any source.

`params` may be flat parts (`Posterior.part_names` order, with or without
the likelihood latents), a sampled network, a `jdlayers.vi.Surrogate` (its
means: a `point_mass` fit is a MAP fit), or a trained Keras model of the
same architecture (plain Keras `Dense`/`Conv*`/`Conv*Transpose` layers, or
`jdlayers.keras` layers, whose posterior means are used). Keras keeps a
dense kernel as `[in, out]`; jdlayers' `weights` are `[out, in]`, so that
one is transposed; convolution kernels share their layout.
"""

from __future__ import annotations

from typing import List

import numpy as np
import tensorflow as tf

from jdlayers.compose._base import CompositeLayer
from jdlayers.inference.laplace._select import layers_by_path
from jdlayers.layers import _base
from jdlayers.layers.affine import AffineLayer


def resolve(params, post, where: str) -> List[tf.Tensor]:
  """All parts (network, then latents) as tensors of the model's dtype.

  Raises:
    ValueError: For a wrong number of parts, a shape that disagrees with the
      model (naming the part), a Keras model whose layers do not match, or
      missing latents.
    TypeError: For an unsupported `params`.
  """
  model = post.model
  structure = model.probe
  num_net = len(tf.nest.flatten(structure))
  if hasattr(params, "mean_parts"):  # a jdlayers.vi.Surrogate
    parts = list(params.mean_parts())
  elif isinstance(params, (CompositeLayer, _base.SampledLayer)):
    parts = tf.nest.flatten(params)
  elif hasattr(params, "get_weights") and hasattr(params, "layers"):
    parts = _from_keras(params, structure, where)
  elif isinstance(params, (list, tuple)):
    parts = list(params)
  else:
    raise TypeError(f"{where}: `params` must be flat parts, a sampled "
                    "network, a jdlayers.vi.Surrogate or a Keras model; got "
                    f"{type(params).__name__}.")
  names = post.part_names
  if len(parts) == num_net and len(names) > num_net:
    raise ValueError(f"{where}: `params` holds the {num_net} network parts "
                     f"but the model also has latents {names[num_net:]}; "
                     "pass their values too (all parts in part_names order).")
  if len(parts) != len(names):
    raise ValueError(f"{where}: `params` has {len(parts)} parts; the model "
                     f"has {len(names)}: {names}.")
  probe = tf.nest.flatten(structure) + [
      p.sample(seed=(0, 0)) for p in model.likelihood.latents.values()]
  out = []
  for name, got, ref in zip(names, parts, probe):
    got = tf.convert_to_tensor(np.asarray(got), ref.dtype)
    if tuple(got.shape) != tuple(ref.shape):
      raise ValueError(f"{where}: part {name!r} of `params` has shape "
                       f"{list(got.shape)}; the model's is {list(ref.shape)}.")
    out.append(got)
  return out


def _keras_layers(model):
  out = []
  for layer in model.layers:
    if hasattr(layer, "layers") and not hasattr(layer, "kernel") and not (
        hasattr(layer, "surrogate")):
      out.extend(_keras_layers(layer))
    elif layer.weights:
      out.append(layer)
  return out


def _from_keras(model, structure, where) -> List[np.ndarray]:
  ours = list(layers_by_path(structure).items())
  theirs = _keras_layers(model)
  if len(ours) != len(theirs):
    raise ValueError(
        f"{where}: the Keras model has {len(theirs)} layers with weights "
        f"({[l.name for l in theirs]}) but the network has {len(ours)} "
        f"({[p or '(network)' for p, _ in ours]}).")
  parts = []
  for (path, layer), kl in zip(ours, theirs):
    surrogate = getattr(kl, "surrogate", None)
    if surrogate is not None:
      values = [np.asarray(v) for v in surrogate.mean_parts()]
    else:
      values = [np.asarray(kl.kernel)]
      if getattr(kl, "bias", None) is not None:
        values.append(np.asarray(kl.bias))
    want = layer.params
    if len(values) != len(want):
      raise ValueError(f"{where}: Keras layer {kl.name!r} holds "
                       f"{len(values)} tensors; layer {path or '(network)'} "
                       f"has parameters {list(want)}.")
    for (name, ref), v in zip(want.items(), values):
      if isinstance(layer, AffineLayer) and name == "weights" and (
          v.shape != tuple(ref.shape)) and v.T.shape == tuple(ref.shape):
        v = v.T  # Keras' [in, out] -> jdlayers' [out, in]
      if v.shape != tuple(ref.shape):
        raise ValueError(f"{where}: Keras layer {kl.name!r} {name} has "
                         f"shape {list(v.shape)}; layer {path or '(network)'}"
                         f" needs {list(ref.shape)}.")
      parts.append(v)
  return parts
