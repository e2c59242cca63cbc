"""Keras-named variational layers: the shared `_Named` base.

The named layers (`Dense` in `_dense`, the convolutions in `_conv`) take Keras'
arguments and defaults, infer the input size in `build`, and build the
matching jdlayers distribution (`jdlayers.Affine`, `Conv`, `ConvTranspose`)
with a `jdlayers.vi.Surrogate` over it; see `_base` for the estimators, the
KL convention and seeds, `_hooks` for the tfp.layers-style hooks.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import priors as priors_lib
from jdlayers.inference.vi import _builders
from jdlayers.inference.vi import _estimators, _kl
from jdlayers.keras import _hooks, _layout
from jdlayers.keras._base import VariationalLayer
from jdlayers.keras._hooks import DEFAULT

tfd = tfp.distributions

_register = keras.saving.register_keras_serializable(package="jdlayers")

# (config key, kind) of the per-part hooks of the named layers.
_PART_HOOKS = (("kernel_posterior_fn", "builder"),
               ("kernel_posterior_tensor_fn", "tensor"),
               ("kernel_prior_fn", "prior"),
               ("kernel_divergence_fn", "divergence"),
               ("bias_posterior_fn", "builder"),
               ("bias_posterior_tensor_fn", "tensor"),
               ("bias_prior_fn", "prior"),
               ("bias_divergence_fn", "divergence"))
_CHECKS = {"builder": _hooks.check_builder, "prior": _hooks.check_prior_fn,
           "divergence": _hooks.check_divergence_fn,
           "tensor": _hooks.check_divergence_fn}
# Configs written since the hooks mean what they mean in tfp.layers (None:
# no KL / no bias) and the dense kernel is `[in, units]` carry this key;
# older configs are read with the old meanings and layout.
_FORMAT_KEY = "keras_layout"


def _no_kl(q, p, z):
  del p, z
  return tf.zeros([], q.dtype)


class _Named(VariationalLayer):
  """Shared part of `Dense` and the convolutions: activation, bias, prior,
  the tfp.layers-style hooks (see `_hooks`) and tfp.layers' accessors
  (`kernel_posterior`, `kernel_prior`, `bias_posterior`, `bias_prior`), all
  in Keras' layout."""

  _kernel_name = "kernel"  # the jdlayers part
  _kernel_perm = None      # Keras -> jdlayers permutation of the kernel

  def __init__(self, *, activation=None, use_bias: bool = True,
               prior: Optional[priors_lib.Prior] = None,
               kernel_posterior_fn=DEFAULT, kernel_posterior_tensor_fn=None,
               kernel_prior_fn=DEFAULT, kernel_divergence_fn=DEFAULT,
               bias_posterior_fn=DEFAULT, bias_posterior_tensor_fn=None,
               bias_prior_fn=DEFAULT, bias_divergence_fn=DEFAULT, **kwargs):
    super().__init__(**kwargs)
    owner = type(self).__name__
    self.activation = keras.activations.get(activation)
    if not isinstance(use_bias, (bool, np.bool_)):
      # tfp.layers' third positional argument is `activity_regularizer`.
      raise TypeError(f"{owner}: `use_bias` must be True or False; got "
                      f"{use_bias!r:.80} (tfp.layers' third positional "
                      "argument is `activity_regularizer`: pass it by "
                      "keyword).")
    self.use_bias = bool(use_bias)
    hooks = dict(kernel_posterior_fn=kernel_posterior_fn,
                 kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
                 kernel_prior_fn=kernel_prior_fn,
                 kernel_divergence_fn=kernel_divergence_fn,
                 bias_posterior_fn=bias_posterior_fn,
                 bias_posterior_tensor_fn=bias_posterior_tensor_fn,
                 bias_prior_fn=bias_prior_fn,
                 bias_divergence_fn=bias_divergence_fn)
    for key, kind in _PART_HOOKS:
      setattr(self, key, _CHECKS[kind](hooks[key], owner, key))
    if kernel_posterior_fn is None:
      raise ValueError(
          f"{owner}: `kernel_posterior_fn=None`: the kernel needs a posterior "
          "(tfp.layers fails here too). Pass jdlayers.vi.mean_field_normal() "
          "(the default), jdlayers.vi.point_mass() (MAP) or a tfp.layers "
          "posterior function such as tfp.layers.default_mean_field_normal_fn()"
          ".")
    for key in ("kernel_posterior_tensor_fn", "bias_posterior_tensor_fn"):
      if hooks[key] is DEFAULT:
        setattr(self, key, None)
    self._layer_prior = _hooks.layer_prior(
        prior, kernel_prior_fn, bias_prior_fn, owner, self._kernel_perm)
    self.prior = prior
    self._legacy_layout = False
    self._keras_makers = {}  # "kernel"/"bias" -> Keras-layout posterior
    # Set by each call, as tfp.layers: the weight draws (Keras layout) the
    # divergence functions get (None where the estimator draws noise).
    self.kernel_posterior_tensor = None
    self.bias_posterior_tensor = None

  # -- hooks -----------------------------------------------------------------
  @property
  def has_bias(self) -> bool:
    """`use_bias` and a bias posterior (`bias_posterior_fn=None`: no bias,
    as tfp.layers)."""
    return self.use_bias and self.bias_posterior_fn is not None

  def _part(self, name: str) -> str:
    """"kernel" or "bias" for a jdlayers part name, else the name."""
    return "kernel" if name == self._kernel_name else name

  def _perm(self, name: str):
    return self._kernel_perm if self._part(name) == "kernel" else None

  def _no_kl_parts(self) -> List[str]:
    """The parts tfp.layers would give no loss: a None prior or
    divergence function, or no posterior."""
    out = []
    for part, name in (("kernel", self._kernel_name), ("bias", "bias")):
      if (getattr(self, f"{part}_prior_fn") is None or
          getattr(self, f"{part}_divergence_fn") is None):
        out.append(name)
    return out

  def _divergence(self, name: str) -> Optional[Callable]:
    """The part's divergence function on jdlayers' layout (None: default)."""
    part = self._part(name)
    if name in self._no_kl_parts():
      return _no_kl
    fn = getattr(self, f"{part}_divergence_fn", DEFAULT)
    if fn is DEFAULT:
      return None
    perm = _layout.inverse(self._perm(name))

    def keras_fn(q, p, z):  # the user's function sees Keras' layout
      return fn(_layout.keras_view(q, self._perm(name)),
                _layout.keras_view(p, self._perm(name)),
                _layout.transpose_tensor(z, perm))
    return keras_fn

  def _surrogate_kwargs(self) -> Dict[str, Any]:
    owner = f"{type(self).__name__} '{self.name}'"
    builders = {}
    for part, name in (("kernel", self._kernel_name), ("bias", "bias")):
      fn = getattr(self, f"{part}_posterior_fn")
      if part == "bias" and not self.has_bias:
        continue
      fn = _builders.mean_field_normal() if fn is DEFAULT else fn
      builders[name] = _hooks.as_builder(fn, part, self._perm(name), owner,
                                         f"{part}_posterior_fn",
                                         sink=self._keras_makers)
    divergences = {name: self._divergence(name)
                   for name in (self._kernel_name, "bias")}
    return dict(builders=builders, divergence_fns={
        k: v for k, v in divergences.items() if v is not None})

  def _postprocess(self, y):
    return self.activation(y)

  # -- tfp.layers' accessors (Keras layout) ----------------------------------
  def _index(self, name: str) -> Optional[int]:
    names = self._surrogate.part_names if self._surrogate else ()
    return names.index(name) if name in names else None

  def _posterior(self, name):
    part = self._part(name)
    if self._index(name) is None:
      return None
    return self._keras_makers[part]()

  def _prior(self, name, p=None):
    """The part's prior in Keras' layout (`p`: its jdlayers-layout
    component, given the parents' values)."""
    part = self._part(name)
    i = self._index(name)
    if i is None or name in self._no_kl_parts():
      return None
    fn = getattr(self, f"{part}_prior_fn")
    if fn is not DEFAULT and not isinstance(fn, priors_lib.Prior):
      shape = _layout.permute_shape(self._surrogate.specs[i].shape,
                                    _layout.inverse(self._perm(name)))
      return _hooks.keras_prior(fn, self._surrogate.dtype, shape,
                                f"{type(self).__name__} '{self.name}'",
                                f"{part}_prior_fn")
    if p is None:
      p = _kl.prior_components(self._distribution,
                               self._surrogate.mean_parts())[i]
    return _layout.keras_view(p, self._perm(name))

  @property
  def kernel_posterior(self):
    """The kernel's surrogate posterior in Keras' layout (None before
    build), as tfp.layers' `kernel_posterior`."""
    return self._posterior(self._kernel_name)

  @property
  def kernel_prior(self):
    """The kernel's prior in Keras' layout (hierarchical priors: given the
    posterior means of their scales); None with `kernel_prior_fn=None` or
    before build."""
    return self._prior(self._kernel_name)

  @property
  def bias_posterior(self):
    """The bias' surrogate posterior; None without bias or before build."""
    return self._posterior("bias")

  @property
  def bias_prior(self):
    """The bias' prior; None without bias, with `bias_prior_fn=None` or
    before build."""
    return self._prior("bias")

  # -- calls and losses ------------------------------------------------------
  def call(self, inputs, training=None):
    """Applies the layer with one weight draw; adds one loss per part.

    As tfp.layers: `kernel_posterior_tensor_fn` gives the kernel with
    estimator "reparam" (Flipout and local reparameterization draw their
    own noise), `bias_posterior_tensor_fn` the bias with every estimator,
    and divergence functions get `(posterior, prior, draw)` in Keras'
    layout, the draw None where the estimator made none.

    Args:
      inputs: `[N, *features]`.
      training: Unused (weights are sampled in training and prediction).

    Returns:
      `[N, *out]` outputs.
    """
    del training
    q = self._surrogate
    s_fwd, s_kl = tfp.random.split_seed(self._next_seed(), 2)
    s_kernel, s_bias, s_apply = tfp.random.split_seed(s_fwd, 3)
    dists = q.distributions()
    keras_q, draws = {}, {}  # by jdlayers part name; draws in Keras' layout
    for part, name in (("kernel", self._kernel_name), ("bias", "bias")):
      i = self._index(name)
      if i is None:
        continue
      keras_q[name] = self._keras_makers[part]()
      dists[i] = _layout.transpose_dist(keras_q[name], self._perm(name))
      fn = getattr(self, f"{part}_posterior_tensor_fn")
      if part == "kernel" and self.estimator != "reparam":
        continue
      if fn is not None:
        draws[name] = tf.cast(fn(keras_q[name]), q.dtype)
      elif part == "kernel" or self.estimator != "local":
        # (local reparameterization folds a normal bias into its noise)
        draws[name] = keras_q[name].sample(seed=s_kernel if part == "kernel"
                                           else s_bias)
    fwd = {n: dists[i] for n, i in zip(q.part_names, range(len(dists)))}
    for name, value in draws.items():
      fwd[name] = tfd.Independent(
          tfd.Deterministic(_layout.transpose_tensor(value, self._perm(name))),
          reinterpreted_batch_ndims=len(value.shape))
    x = tf.cast(inputs, q.dtype)
    y = _estimators.apply_layer(q.structure, fwd, x, estimator=self.estimator,
                                sample_shape=[], seed=s_apply, path=self.name)
    self.kernel_posterior_tensor = draws.get(self._kernel_name)
    self.bias_posterior_tensor = draws.get("bias")
    for loss in self._kl_terms(dists, keras_q, draws, s_kl):
      self.add_loss(loss)
    return tf.cast(self._postprocess(y), self.compute_dtype)

  def _kl_terms(self, dists, keras_q, draws, seed) -> List[tf.Tensor]:
    q = self._surrogate
    z = q.sample_parts((), seed=seed)
    for name, value in draws.items():  # the forward's draws, as tfp.layers
      z[self._index(name)] = _layout.transpose_tensor(value, self._perm(name))
    priors = _kl.prior_components(self._distribution, z)
    scale = tf.cast(self.kl_weight / (self.num_examples or 1), q.dtype)
    out = []
    for i, name in enumerate(q.part_names):
      if name in self._no_kl_parts():
        continue
      fn = getattr(self, f"{self._part(name)}_divergence_fn", DEFAULT)
      if fn is DEFAULT:
        term = _kl._kl_term(dists[i], priors[i], z[i], analytic=True)  # pylint: disable=protected-access
      else:  # tfp.layers' arguments: the very objects, Keras' layout
        draw = draws.get(name)
        if draw is None and fn in (_hooks.mc_divergence_fn,
                                   _hooks.default_divergence_fn):
          # jdlayers' own functions get the KL draw where tfp.layers has
          # none (Flipout, local reparameterization).
          draw = _layout.transpose_tensor(z[i], _layout.inverse(
              self._perm(name)))
        term = tf.reduce_sum(tf.cast(fn(
            keras_q[name], self._prior(name, priors[i]), draw), q.dtype))
      out.append(scale * term)
    return out

  def kl_losses(self, seed=None) -> List[tf.Tensor]:
    """One `kl_weight * KL / N` term per part with a KL (kernel, bias and
    any scale of a hierarchical prior, in the order of the parts), as
    tfp.layers adds one loss per part; divergence functions get a draw
    from the posterior.

    Args:
      seed: Stateless seed of the draw the terms use.

    Returns:
      A list of scalars (empty when no part has a KL term).
    """
    q = self._surrogate
    dists = q.distributions()
    keras_q, draws = {}, {}
    seeds = tfp.random.split_seed(tfp.random.sanitize_seed(seed), 3)
    for part, name in (("kernel", self._kernel_name), ("bias", "bias")):
      i = self._index(name)
      if i is not None:
        keras_q[name] = self._keras_makers[part]()
        dists[i] = _layout.transpose_dist(keras_q[name], self._perm(name))
        draws[name] = keras_q[name].sample(seed=seeds[len(draws)])
    return self._kl_terms(dists, keras_q, draws, seeds[2])

  # -- saving ------------------------------------------------------------------
  def _loaded_value(self, variable, value):
    # Files from before `keras_layout` hold the dense kernel as [units, in].
    if self._legacy_layout and self._kernel_perm is not None and (
        variable.name.startswith("kernel_")):
      return np.transpose(np.asarray(value), _layout.inverse(
          self._kernel_perm))
    return value

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    owner = f"{type(self).__name__} '{self.name}'"
    config.update(activation=keras.activations.serialize(self.activation),
                  use_bias=self.use_bias,
                  prior=_hooks.serialize(self.prior, owner, "prior"))
    for key, _ in _PART_HOOKS:
      value = getattr(self, key)
      if value is not DEFAULT and not (key.endswith("tensor_fn") and
                                       value is None):
        config[key] = _hooks.serialize(value, owner, key)
    config[_FORMAT_KEY] = True
    return config

  @classmethod
  def from_config(cls, config: Mapping[str, Any]):
    config = dict(config)
    owner = cls.__name__
    legacy = not config.pop(_FORMAT_KEY, False)
    for key in ("prior",) + tuple(k for k, _ in _PART_HOOKS):
      if key in config:
        config[key] = _hooks.deserialize(config[key], owner, key)
        if legacy and config[key] is None and key != "prior":
          del config[key]  # None meant the default before
    layer = super().from_config(config)
    layer._legacy_layout = legacy  # pylint: disable=protected-access
    return layer
