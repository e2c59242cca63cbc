"""`VariationalLayer`: the Keras 3 layer every `jdlayers.keras` layer is.

A variational layer holds a jdlayers layer distribution (the prior) and a
`jdlayers.vi.Surrogate` over it whose variables are the layer's Keras
weights. Each call draws weights once from the surrogate with the chosen
estimator (Flipout and local reparameterization decorrelate the examples of
a batch), and adds the scaled KL divergence to the prior with `add_loss`.

KL scaling, the one convention of jdlayers (`jdlayers.vi.elbo_terms`):
with a mean-reduced Keras loss (the default), pass `num_examples` = the
training-set size `N`; every layer then adds `kl_weight * KL / N` and
`model.fit` minimises the per-example negative ELBO

    loss = mean_batch(-log p(y | x, w)) + sum_layers KL(q || p) / N,

an unbiased estimate for any batch size. With `num_examples=None` the KL is
added unscaled (a sum-reduced loss over the full dataset, or a
divergence function that scales by itself, as in tfp.layers recipes).

Randomness: every layer owns a `keras.random.SeedGenerator(seed)` whose
state `[seed, counter]` advances once per call; the pair becomes the
stateless seed of that call's weight draw (and its KL draw). The state is
saved with the model (`model.save`), so a loaded model continues the same
stream: its next predictions equal the original's next predictions.
`reseed(model, seed)` restarts every layer's stream for repeatable
Monte Carlo predictions.

Under a `tf.distribute` strategy (layers built in `strategy.scope()`,
trained by `model.fit`), every replica folds its replica id into the
call's seed (the rule of `jdlayers.vi.fit(strategy=)`): replicas draw
distinct noise, deterministically. Keras scales each replica's loss,
`add_loss` terms included, by 1 / replicas before it sums the gradients,
so the KL counts once per step and the loss equals the single-device one
at the same global batch.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, List, Mapping, Optional, Union

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _validate
from jdlayers.inference import vi
from jdlayers.inference.vi import _estimators, _replicas

_SEED_KEY = "seed_state"
_MASK = 0x7FFFFFFF


class VariationalLayer(keras.layers.Layer):
  """Base of the `jdlayers.keras` layers (see the module docstring).

  Subclasses implement `_make_distribution(input_shape)` (the jdlayers layer
  distribution, built once the input shape is known) and
  `_surrogate_kwargs()` (builders and divergence functions), and may
  override `_postprocess(y)` (e.g. a Keras activation).

  Args:
    estimator: "flipout" (default), "reparam" or "local"; `Variational`
      also takes a mapping from layer paths to names ("*" for the rest).
    num_examples: Training-set size `N`: the layer adds `kl_weight * KL / N`
      (None adds the unscaled KL; see the module docstring).
    kl_weight: Multiplies the KL term (1 is the ELBO; < 1 tempers or
      anneals it).
    seed: Int seed of the initial values and the noise stream (None: random,
      or from `keras.utils.set_random_seed`). Give each layer its own seed:
      equal seeds give correlated noise.
    **kwargs: Passed to `keras.layers.Layer` (`name`, `dtype`, `trainable`).

  Raises:
    ValueError: For an unknown estimator, `num_examples < 1`, a negative
      `kl_weight` or a non-integer seed.

  #### Example

  ```python
  layer = jdl.keras.Dense(3, num_examples=1000, seed=0)
  y = layer(x)                 # one weight draw; one loss per part, KL / 1000
  layer.surrogate.sample(8)    # 8 callable jdlayers networks (AffineLayer)
  layer.kl_loss()              # the term it adds: kl_weight * KL / N
  ```
  """

  _allow_mapping = False

  def __init__(self, *, estimator: Union[str, Mapping[str, str]] = "flipout",
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    owner = type(self).__name__
    self.estimator = _check_estimator(estimator, owner,
                                      allow_mapping=self._allow_mapping)
    if num_examples is not None and (
        isinstance(num_examples, bool) or
        not isinstance(num_examples, numbers.Integral) or num_examples < 1):
      raise ValueError(f"{owner}: `num_examples` must be the training-set "
                       f"size (an int >= 1) or None; got {num_examples!r}.")
    self.num_examples = None if num_examples is None else int(num_examples)
    if isinstance(kl_weight, bool) or not isinstance(
        kl_weight, numbers.Real) or not kl_weight >= 0:
      raise ValueError(f"{owner}: `kl_weight` must be a number >= 0; got "
                       f"{kl_weight!r}.")
    self.kl_weight = float(kl_weight)
    if seed is not None and (isinstance(seed, bool) or
                             not isinstance(seed, numbers.Integral)):
      raise ValueError(f"{owner}: `seed` must be an int or None; got "
                       f"{seed!r}.")
    self.seed = None if seed is None else int(seed)
    self.seed_generator = keras.random.SeedGenerator(self.seed)
    self._surrogate = None
    self._distribution = None

  # -- subclass interface --------------------------------------------------
  def _make_distribution(self, input_shape):
    raise NotImplementedError

  def _surrogate_kwargs(self) -> Dict[str, Any]:
    return {}

  def _postprocess(self, y):
    return y

  def _variable_name(self, name: str) -> str:
    return name.replace("/", "_")

  # -- state ---------------------------------------------------------------
  def build(self, input_shape):
    """Builds the layer distribution and its surrogate (the weights)."""
    dist = self._make_distribution(input_shape)
    with tf.init_scope():
      state = np.asarray(keras.ops.convert_to_numpy(self.seed_generator.state))
      init_seed = tf.random.experimental.stateless_fold_in(
          tf.constant([int(state[0]) & _MASK, 0], tf.int32), 0x1A17)
      self._surrogate = vi.Surrogate(
          dist, seed=init_seed, make_variable=self._add_variable,
          name=self.name, **self._surrogate_kwargs())
    self._distribution = dist

  def _add_variable(self, name, shape, dtype, initializer):
    # autocast=False: under a mixed-precision policy the posterior stays in
    # the variable dtype (the output is cast to the compute dtype).
    return self.add_weight(
        shape=tuple(shape), dtype=tf.as_dtype(dtype).name,
        initializer=lambda shape, dtype: initializer(),
        name=self._variable_name(name), trainable=True, autocast=False)

  @property
  def surrogate(self) -> Optional[vi.Surrogate]:
    """The `jdlayers.vi.Surrogate` (None before the layer is built): its
    `sample`, `distributions`, `kl_divergence`, `trainable_parameters`."""
    return self._surrogate

  @property
  def distribution(self):
    """The jdlayers layer distribution (the prior); None before build."""
    return self._distribution

  def reseed(self, seed: int) -> None:
    """Restarts this layer's noise stream at `seed` (its weights stay)."""
    state = self.seed_generator.state
    state.assign(np.array([int(seed) & _MASK, 0], dtype=state.dtype))

  def save_own_variables(self, store):
    """Saves the weights and the noise stream's state (see `reseed`)."""
    super().save_own_variables(store)
    store[_SEED_KEY] = self.seed_generator.state

  def load_own_variables(self, store):
    """Loads what `save_own_variables` saved."""
    own = self._trainable_variables + self._non_trainable_variables
    keys = [k for k in store.keys() if k != _SEED_KEY]
    if len(keys) != len(own):
      raise ValueError(f"{type(self).__name__} '{self.name}' expected "
                       f"{len(own)} variables ({[v.name for v in own]}) but "
                       f"the file holds {len(keys)}.")
    for i, v in enumerate(own):
      v.assign(self._loaded_value(v, store[str(i)]))
    if _SEED_KEY in store.keys():
      self.seed_generator.state.assign(store[_SEED_KEY])

  def _loaded_value(self, variable, value):
    del variable  # subclasses convert values saved in an older layout
    return value

  # -- computation ---------------------------------------------------------
  def _next_seed(self) -> tf.Tensor:
    state = self.seed_generator.next()
    seed = tf.cast(tf.bitwise.bitwise_and(state, tf.constant(
        _MASK, state.dtype)), tf.int32)
    # Under a tf.distribute strategy every replica reads the same mirrored
    # state: fold in the replica id (vi.fit's rule), so replicas draw
    # distinct noise; with one replica the stream is the single-device one.
    ctx = tf.distribute.get_replica_context()
    if ctx is None:  # cross-replica context: one call for all replicas
      return seed
    return _replicas.replica_seed(seed, ctx.replica_id_in_sync_group,
                                  ctx.num_replicas_in_sync)

  def call(self, inputs, training=None):
    """Applies the layer with one weight draw; adds the scaled KL.

    Args:
      inputs: `[N, *features]`.
      training: Unused: weights are sampled in training and prediction
        alike (average several calls for the posterior predictive).

    Returns:
      `[N, *out]` outputs.
    """
    del training
    q = self._surrogate
    s_fwd, s_kl = tfp.random.split_seed(self._next_seed(), 2)
    y = self._forward(tf.cast(inputs, q.dtype), s_fwd)
    for loss in self.kl_losses(seed=s_kl):
      self.add_loss(loss)
    return tf.cast(self._postprocess(y), self.compute_dtype)

  def _forward(self, x, seed):
    return self._surrogate.apply(x, estimator=self.estimator, seed=seed)

  def kl_losses(self, seed=None) -> List[tf.Tensor]:
    """The terms this layer adds with `add_loss` (here one, the whole
    `kl_weight * KL / N`; the named layers add one per part).

    Args:
      seed: Stateless seed of the Monte Carlo draw (analytic terms are
        exact).

    Returns:
      A list of scalars.
    """
    q = self._surrogate
    scale = self.kl_weight / (self.num_examples or 1)
    return [tf.cast(scale, q.dtype) * q.kl_divergence(seed=seed)]

  def kl_loss(self, seed=None) -> tf.Tensor:
    """The sum of the terms this layer adds: `kl_weight * KL / N`.

    Args:
      seed: Stateless seed of the Monte Carlo draw (analytic terms are
        exact).

    Returns:
      A scalar.
    """
    terms = self.kl_losses(seed=seed)
    return tf.add_n(terms) if terms else tf.zeros([], self._surrogate.dtype)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    estimator = self.estimator
    if isinstance(estimator, Mapping):
      estimator = dict(estimator)
    config.update(estimator=estimator, num_examples=self.num_examples,
                  kl_weight=self.kl_weight, seed=self.seed)
    return config


def _check_estimator(estimator, owner: str, allow_mapping: bool):
  if isinstance(estimator, Mapping) and allow_mapping:
    out = {}
    for path, name in estimator.items():
      if not isinstance(path, str):
        raise ValueError(f"{owner}: estimator mapping keys must be layer paths "
                         f"(strings such as '0' or '*'); got {path!r}.")
      out[path] = _estimators.canonical(name, owner)
    return out
  return _estimators.canonical(estimator, owner)


def variational_layers(model):
  """The `VariationalLayer`s in `model` (itself included), depth first."""
  if hasattr(model, "_flatten_layers"):
    layers = model._flatten_layers(include_self=True, recursive=True)  # pylint: disable=protected-access
  else:
    layers = [model]
  return [l for l in layers if isinstance(l, VariationalLayer)]


def reseed(model, seed: int) -> None:
  """Restarts the noise stream of every jdlayers.keras layer in `model`.

  Layer `i` (depth-first order) gets a seed derived from `(seed, i)`, so
  layers never share a stream, and the same `seed` gives the same
  predictions for the same weights: before and after `model.save` /
  `keras.models.load_model`, or across copies of a model.

  Args:
    model: A Keras model or layer.
    seed: An int.

  #### Example

  ```python
  jdl.keras.reseed(model, 0); y1 = model(x)
  jdl.keras.reseed(model, 0); y2 = model(x)   # y1 == y2
  ```
  """
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
    raise ValueError(f"reseed: `seed` must be an int; got {seed!r}.")
  for i, layer in enumerate(variational_layers(model)):
    derived = np.random.SeedSequence([int(seed) & _MASK, i]).generate_state(1)
    layer.reseed(int(derived[0]) & _MASK)


def predict_samples(model, x, num_samples: int = 32,
                    batch_size: Optional[int] = None,
                    seed: Optional[int] = None) -> np.ndarray:
  """Monte Carlo predictions: `num_samples` passes of the model over `x`.

  Each pass draws fresh weights (per batch; Flipout and local
  reparameterization also per example), so the mean over the first axis
  estimates the posterior predictive mean. Batches run through Keras'
  compiled `predict_on_batch`.

  Args:
    model: A Keras model with jdlayers.keras layers.
    x: `[N, *features]` inputs (an array or tensor).
    num_samples: Number of passes.
    batch_size: Examples per call (default: all of `x` at once).
    seed: If given, `reseed(model, seed)` first (repeatable results).

  Returns:
    `[num_samples, N, *out]` predictions.

  Raises:
    ValueError: For `num_samples < 1` or `batch_size < 1`.

  #### Example

  ```python
  logits = jdl.keras.predict_samples(model, x_test, 50, seed=0)
  probs = keras.ops.mean(keras.ops.softmax(logits), axis=0)
  ```
  """
  for name, v in (("num_samples", num_samples), ("batch_size", batch_size)):
    if v is not None:
      _validate.count(v, name, "predict_samples", minimum=1)
  if seed is not None:
    reseed(model, seed)
  n = int(x.shape[0])
  step = n if batch_size is None else int(batch_size)
  return np.stack([
      np.concatenate([np.asarray(model.predict_on_batch(x[i:i + step]))
                      for i in range(0, n, step)])
      for _ in range(num_samples)])
