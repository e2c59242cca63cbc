"""`Model`: a network distribution plus a likelihood, as one joint distribution.

`Model(network, likelihood).joint(x)` is a `tfd.JointDistributionCoroutine`
over the network, the likelihood's latents and `y`; `posterior(x, y)` pins `y`
(see `jdlayers.models.Posterior`).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _registry
from jdlayers.layers import _base
from jdlayers.models import _likelihoods
from jdlayers.models._posterior import Posterior

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root


class ModelJoint(_base.StatelessSeedMixin, tfd.JointDistributionCoroutine):
  """Joint over `(network, *likelihood latents, y)` with those field names."""

  def __init__(self, model_fn, names, name="ModelJoint"):
    self._names = tuple(names)
    super().__init__(model_fn, name=name)

  def _flat_resolve_names(self, dummy_name="var"):
    # The network distribution is named by the user (e.g. "Sequential");
    # fixed field names make samples read `s.network`, `s.y`.
    return list(self._names)


@_registry.register_class("models.Model")
class Model:
  """A Bayesian model: a network distribution and a likelihood head.

  The network maps inputs `[N, *features]` to outputs `[N, *out]`; the
  likelihood turns outputs into a distribution of `y` (`[N, *obs]`).

  Args:
    network: A layer or network distribution (e.g. `jdl.Sequential(...)`).
    likelihood: A `jdlayers.models.Likelihood` (e.g. `Normal(scale=0.1)`).

  Attributes:
    probe: One fixed sampled network (`seed=(0, 0)`): the structure of every
      state, and the network that checks inputs in `check_x`.

  Raises:
    TypeError: If `network` is not a layer distribution or `likelihood` not a
      `Likelihood`.

  #### Example

  ```python
  import jdlayers as jdl, numpy as np
  net = jdl.Sequential(jdl.Affine(16, 1, activation="tanh"), jdl.Affine(1, 16))
  model = jdl.models.Model(net, jdl.models.Normal(scale=0.1))
  x = np.linspace(-1, 1, 20, dtype=np.float32)[:, None]
  draws = model.joint(x).sample(8, seed=0)   # draws.network, draws.y [8, 20, 1]
  post = model.posterior(x, np.sin(3 * x))
  post.log_prob(*post.init(4, seed=1)).shape  # [4]
  ```
  """

  def __init__(self, network, likelihood: _likelihoods.Likelihood):
    if not (isinstance(network, tfd.Distribution) and hasattr(network, "sample")):
      raise TypeError(f"Model: `network` must be a jdlayers layer or network "
                      f"distribution; got {type(network).__name__}.")
    if not isinstance(likelihood, _likelihoods.Likelihood):
      raise TypeError(f"Model: `likelihood` must be a jdlayers.models "
                      f"likelihood (e.g. jdl.models.Normal(scale=0.1)); got "
                      f"{type(likelihood).__name__}.")
    self.network = network
    self.likelihood = likelihood
    # One fixed draw serves as the structure of every state and as the probe
    # network that checks inputs (see `check_x`).
    self.probe = network.sample(seed=(0, 0))
    parts = tf.nest.flatten(self.probe)
    self.dtype: tf.DType = parts[0].dtype if parts else tf.float32
    names = set(likelihood.latents)
    if "network" in names or "y" in names:
      raise ValueError("Model: likelihood latents cannot be named 'network' "
                       "or 'y'.")

  # -- configuration ------------------------------------------------------
  def get_config(self) -> Dict[str, Any]:
    """The network and likelihood as nested JSON-able configs.

    Raises:
      TypeError: If the network or likelihood cannot be saved (see
        `jdlayers.io.to_config`).

    #### Example

    ```python
    import jdlayers as jdl
    model = jdl.models.Model(jdl.Affine(1, 2), jdl.models.Normal(0.1))
    same = jdl.models.Model.from_config(model.get_config())
    ```
    """
    return {"network": _registry.to_config(self.network),
            "likelihood": _registry.to_config(self.likelihood)}

  @classmethod
  def from_config(cls, config: Mapping[str, Any]) -> "Model":
    """Builds a model from `get_config()`'s output.

    Raises:
      ValueError: For an invalid or unknown nested config.
    """
    unknown = sorted(set(config) - {"network", "likelihood"})
    if unknown or len(config) != 2:
      raise ValueError(f"models.Model: config needs exactly 'network' and "
                       f"'likelihood'; got keys {sorted(config)}.")
    return cls(_registry.from_config(config["network"]),
               _registry.from_config(config["likelihood"]))

  @property
  def latent_names(self) -> Tuple[str, ...]:
    """Field names of the unobserved components: `network`, then latents."""
    return ("network",) + tuple(self.likelihood.latents)

  # -- data ---------------------------------------------------------------
  def check_x(self, x) -> Tuple[tf.Tensor, Tuple[int, ...]]:
    """Validates `x` and returns it as a tensor plus the per-point out shape.

    Raises:
      TypeError: For a non-floating `x`.
      ValueError: For NaN/inf, a rank-0 `x`, or a shape the network rejects.
    """
    arr = _to_numpy(x, "x")
    # Integer token ids stay integers for a network that reads them.
    ids = np.issubdtype(arr.dtype, np.integer) and _reads_ids(self.network)
    if not ids and not np.issubdtype(arr.dtype, np.floating):
      raise TypeError(f"Model: x must be floating ({self.dtype.name}); got "
                      f"dtype {arr.dtype}. Cast it, e.g. x.astype(np.float32) "
                      "(integer token ids need an Embedding first layer).")
    if arr.ndim < 1:
      raise ValueError("Model: x must be [N, *features]; got a scalar.")
    if not ids:
      _check_finite(arr, "x")
    x = tf.convert_to_tensor(arr, None if ids else self.dtype)
    # A probe pass with one sampled network checks x against the layers (their
    # errors name the layer and the shapes) and gives the output shape.
    try:
      out = self.probe(x[:1])
    except ValueError:
      _raise_with_full_shape(self.probe, x)
      raise
    out_shape = tuple(out.shape[1:])
    self.likelihood.check_outputs(out_shape)
    return x, out_shape

  def check_y(self, y, n: int, out_shape) -> tf.Tensor:
    """Validates `y` against `N` and the likelihood; returns it as a tensor."""
    arr = _to_numpy(y, "y")
    if arr.ndim < 1 or arr.shape[0] != n:
      raise ValueError(f"Model: x has {n} points but y has shape "
                       f"{list(arr.shape)}; they must agree on the first "
                       "dim.")
    if np.issubdtype(arr.dtype, np.inexact):
      _check_finite(arr, "y")
    arr = self.likelihood.check_y(arr, out_shape, self.dtype)
    return tf.convert_to_tensor(arr)

  # -- distributions ------------------------------------------------------
  def joint(self, x) -> ModelJoint:
    """The joint distribution of network, latents and `y` at inputs `x`.

    Args:
      x: `[N, *features]` inputs.

    Returns:
      A `JointDistributionCoroutine` whose samples have fields `network`
      (a callable network), one per likelihood latent, and `y`
      (`[*sample_shape, N, *obs]`): the prior predictive.
    """
    x, out_shape = self.check_x(x)
    core = 1 + len(out_shape)
    network, likelihood = self.network, self.likelihood

    def model_fn():
      net = yield Root(network)
      latents = {}
      for name, prior in likelihood.latents.items():
        latents[name] = yield Root(prior)
      out = net(x)
      yield likelihood.distribution(out, latents, out.shape.rank - core)

    return ModelJoint(model_fn, self.latent_names + ("y",))

  def posterior(self, x, y):
    """The posterior given data, as a target for MCMC.

    Args:
      x: `[N, *features]` inputs.
      y: `[N, *obs]` observations (see the likelihood for dtype and shape).

    Returns:
      A `jdlayers.models.Posterior`.

    Raises:
      TypeError, ValueError: For invalid data (see `check_x`, `check_y`).
    """
    x, out_shape = self.check_x(x)
    y = self.check_y(y, int(x.shape[0]), out_shape)
    return Posterior(self, x, y, out_shape)

  def __repr__(self) -> str:
    return (f"Model(network={self.network.name}, "
            f"likelihood={self.likelihood.desc})")


def _to_numpy(v, name: str) -> np.ndarray:
  if isinstance(v, (tf.Tensor, tf.Variable)):
    return v.numpy()
  try:
    return np.asarray(v)
  except Exception as e:  # pylint: disable=broad-except
    raise TypeError(f"Model: {name} must be array-like; got "
                    f"{type(v).__name__}.") from e


def _reads_ids(network) -> bool:
  """Whether the network's first layer reads integer ids (`reads_ids`, e.g.
  `jdl.Embedding`), looking through composites' first children."""
  while not getattr(network, "reads_ids", False):
    children = getattr(network, "layers", None)
    if not children:
      return False
    network = children[0]
  return True


def _check_finite(arr: np.ndarray, name: str) -> None:
  bad = ~np.isfinite(arr)
  if bad.any():
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(f"Model: {name} holds {int(bad.sum())} non-finite "
                     f"value(s) (NaN or inf), e.g. {name}{list(idx)} = "
                     f"{arr[idx]}.")


def _raise_with_full_shape(probe, x) -> None:
  """Re-raises a probe's shape error for the user's `x`, not its first row.

  The probe runs on `x[:1]`, so a layer would report `[1, 2]` for an
  `x` of shape `[40, 2]`; tracing (no computation) on `x`'s full shape
  makes the same check name the shape the user passed.
  """
  try:
    tf.function(probe, autograph=False).get_concrete_function(
        tf.TensorSpec(x.shape, x.dtype))
  except ValueError as e:
    raise e.with_traceback(None) from None
