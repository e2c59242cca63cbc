"""Priors over a layer's parameters, usable with every layer via `prior=`.

A prior is an object with `model(spec)` that returns a zero-argument
`JointDistributionCoroutine` model (a generator yielding named component
distributions); `spec` (a `ParamSpec`) tells it the kernel's name, shape,
output axis and fan-in/fan-out. Every prior yields `spec.kernel_name` and,
when `spec.bias_shape` is set, `bias` (a `Normal(0, bias_scale)` unless the
prior says otherwise); hierarchical priors also yield their scales as extra
latents, which then appear in the sampled layer, in `log_prob` and in the
event-space bijectors.

Every prior declares its support: `support(spec)` maps each component to a
bijector from unconstrained space onto the values it can take, and the
component carries it (`with_support`), so HMC and VI work for every prior,
including mixtures for which TFP defines no default event-space bijector.

#### Example

```python
import jdlayers as jdl
layer = jdl.Affine(10, 5, prior=jdl.priors.horseshoe(global_scale=0.1))
f = layer.sample(4, seed=0)
sorted(f.params)  # ['bias', 'global_scale', 'local_scale', 'weights']
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _registry
from jdlayers._support import Supported, with_support

tfd = tfp.distributions
tfb = tfp.bijectors
Root = tfd.JointDistributionCoroutine.Root

__all__ = [
    "ParamSpec", "Prior", "Supported", "with_support", "joint_model", "normal",
    "fan_in_normal", "he_normal", "lecun_normal", "glorot_normal", "laplace",
    "student_t", "spike_and_slab", "horseshoe",
]


@dataclasses.dataclass(frozen=True)
class ParamSpec:
  """What a prior needs to know about a layer's parameters.

  Attributes:
    kernel_name: "weights" (Affine) or "kernel" (convolutions).
    kernel_shape: Shape of the kernel, e.g. `(out, in)` or `(*size, in, out)`.
    bias_shape: `(out,)`, or None for a layer without bias.
    out_axis: Axis of `kernel_shape` that indexes output units.
    fan_in: Inputs feeding one output unit.
    fan_out: Outputs fed by one input unit.
    dtype: Floating dtype of the parameters.
    bias_name: Name of the bias component ("bias"; layers with several
      kernels, such as attention, name one bias per kernel).
    latent_prefix: Prefix of a hierarchical prior's extra latents (e.g.
      "recurrent_kernel_" gives "recurrent_kernel_global_scale"), so several
      kernels of one layer can each have their own.
  """
  kernel_name: str
  kernel_shape: Tuple[int, ...]
  bias_shape: Optional[Tuple[int, ...]]
  out_axis: int
  fan_in: int
  fan_out: int
  dtype: tf.DType = tf.float32
  bias_name: str = "bias"
  latent_prefix: str = ""


class Prior:
  """Base class of priors: subclasses implement `kernel_dist(spec)` (i.i.d.
  priors) or `_kernel_model(spec)` (hierarchical ones) and declare supports.

  Attributes:
    bias_scale: Scale of the `Normal(0, bias_scale)` bias prior.
  """

  latent_names: Tuple[str, ...] = ()

  def __init__(self, bias_scale: float = 1.0):
    if not bias_scale > 0:
      raise ValueError(f"{type(self).__name__}: `bias_scale` must be > 0; got "
                       f"{bias_scale!r}.")
    self.bias_scale = float(bias_scale)

  def model(self, spec: ParamSpec) -> Callable:
    """Returns the coroutine model for a layer described by `spec`."""

    def model_fn():
      yield from self._kernel_model(spec)
      yield from self._bias_model(spec)

    return model_fn

  def _kernel_model(self, spec: ParamSpec):
    yield Root(_iid(self.kernel_dist(spec), self.kernel_support(spec),
                    spec.kernel_shape, spec.kernel_name))

  def _bias_model(self, spec: ParamSpec):
    if spec.bias_shape is not None:
      yield Root(_iid(self.bias_dist(spec), self.bias_support(spec),
                      spec.bias_shape, spec.bias_name))

  def kernel_dist(self, spec: ParamSpec) -> tfd.Distribution:
    """The scalar distribution each kernel entry gets (i.i.d. priors)."""
    raise NotImplementedError(
        f"{type(self).__name__}: a Prior subclass implements "
        "`kernel_dist(spec)` (a scalar distribution per kernel entry) or "
        "`_kernel_model(spec)`.")

  def kernel_support(self, spec: ParamSpec) -> Optional[tfb.Bijector]:
    """Bijector from the real line onto the support of one kernel entry.

    Every built-in prior declares it. A subclass that does not is left to
    its kernel distribution's own default event-space bijector, and
    `jdlayers.event_space_bijectors` raises if TFP defines none (e.g. for a
    `tfd.MixtureSameFamily`): override this method then, e.g. to return
    `tfb.Identity()` for a real-valued kernel.

    Returns:
      A scalar (elementwise) bijector, or None for "not declared".
    """
    del spec
    return None

  def bias_dist(self, spec: ParamSpec) -> tfd.Distribution:
    """The scalar distribution of each bias entry: `Normal(0, bias_scale)`."""
    return tfd.Normal(_c(0., spec), _c(self.bias_scale, spec))

  def bias_support(self, spec: ParamSpec) -> Optional[tfb.Bijector]:
    """Bijector onto the support of one bias entry (the real line)."""
    del spec
    return tfb.Identity()

  def support(self, spec: ParamSpec) -> Dict[str, Optional[tfb.Bijector]]:
    """The declared support of every component, by component name.

    Args:
      spec: The layer's `ParamSpec`.

    Returns:
      Component name -> elementwise bijector from unconstrained space (None
      where the prior leaves it to the distribution's default), in model
      order: hierarchical latents, the kernel, then `bias` if present.

    #### Example

    ```python
    import jdlayers as jdl
    spec = jdl.priors.ParamSpec("weights", (3, 2), (3,), 0, 2, 3)
    jdl.priors.spike_and_slab().support(spec)
    # {'weights': Identity, 'bias': Identity}
    ```
    """
    out = {spec.kernel_name: self.kernel_support(spec)}
    if spec.bias_shape is not None:
      out[spec.bias_name] = self.bias_support(spec)
    return out

  def get_config(self) -> dict:
    """JSON-friendly constructor arguments."""
    return dict(vars(self))

  @classmethod
  def from_config(cls, config: Mapping[str, Any]) -> "Prior":
    """Builds the prior from `get_config()`'s output.

    Raises:
      TypeError: For unexpected or missing arguments.
      ValueError: For invalid values (as the constructor).

    #### Example

    ```python
    import jdlayers as jdl
    p = jdl.priors.horseshoe(0.1)
    assert type(p).from_config(p.get_config()) == p
    ```
    """
    return cls(**config)

  def __repr__(self) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
    return f"{type(self).__name__}({args})"

  def __eq__(self, other) -> bool:
    return type(self) is type(other) and self.get_config() == other.get_config()

  def __hash__(self) -> int:
    return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


def _c(value, spec: ParamSpec) -> tf.Tensor:
  return tf.constant(value, spec.dtype)


def _iid(dist: tfd.Distribution, support: Optional[tfb.Bijector], shape,
         name: str) -> tfd.Distribution:
  """I.i.d. draws of the scalar `dist`, which carries its declared support
  (wrapping the scalar, not the draws, keeps the support through any
  reshaping container TFP or a caller may rebuild around it)."""
  if support is not None:
    dist = with_support(dist, support)
  return tfd.Sample(dist, sample_shape=list(shape), name=name)


def _real_line(self, spec: ParamSpec) -> tfb.Bijector:
  """The real line: the support of a real-valued kernel entry."""
  del self, spec
  return tfb.Identity()


def _positive(value, arg: str, prior: str) -> float:
  if not value > 0:
    raise ValueError(f"{prior}: `{arg}` must be > 0; got {value!r}.")
  return float(value)


@_registry.register_class("priors.Normal")
class Normal(Prior):
  """Isotropic `Normal(0, scale)` on every kernel entry."""

  def __init__(self, scale: float = 1.0, bias_scale: Optional[float] = None):
    self.scale = _positive(scale, "scale", "normal")
    super().__init__(self.scale if bias_scale is None else bias_scale)

  def kernel_dist(self, spec):
    return tfd.Normal(_c(0., spec), _c(self.scale, spec))

  kernel_support = _real_line


@_registry.register_class("priors.FanInNormal")
class FanInNormal(Prior):
  """`Normal(0, gain * sqrt(k / fan))`: He (k=2, fan_in), LeCun (k=1, fan_in)
  or Glorot (k=2, fan_in + fan_out)."""

  def __init__(self, mode: str = "he", gain: float = 1.0,
               bias_scale: float = 1.0):
    if mode not in ("he", "lecun", "glorot"):
      raise ValueError(f"fan_in_normal: unknown `mode` {mode!r}; expected "
                       "'he', 'lecun' or 'glorot'.")
    self.mode = mode
    self.gain = _positive(gain, "gain", "fan_in_normal")
    super().__init__(bias_scale)

  def scale(self, spec: ParamSpec) -> float:
    """The kernel scale for a layer of this fan-in/fan-out."""
    if self.mode == "he":
      var = 2.0 / spec.fan_in
    elif self.mode == "lecun":
      var = 1.0 / spec.fan_in
    else:
      var = 2.0 / (spec.fan_in + spec.fan_out)
    return self.gain * var ** 0.5

  def kernel_dist(self, spec):
    return tfd.Normal(_c(0., spec), _c(self.scale(spec), spec))

  kernel_support = _real_line


@_registry.register_class("priors.Laplace")
class Laplace(Prior):
  """`Laplace(0, scale)` on every kernel entry (a sparsity-favouring prior)."""

  def __init__(self, scale: float = 1.0, bias_scale: float = 1.0):
    self.scale = _positive(scale, "scale", "laplace")
    super().__init__(bias_scale)

  def kernel_dist(self, spec):
    return tfd.Laplace(_c(0., spec), _c(self.scale, spec))

  kernel_support = _real_line


@_registry.register_class("priors.StudentT")
class StudentT(Prior):
  """`StudentT(df, 0, scale)` on every kernel entry (heavy tails)."""

  def __init__(self, df: float = 3.0, scale: float = 1.0,
               bias_scale: float = 1.0):
    self.df = _positive(df, "df", "student_t")
    self.scale = _positive(scale, "scale", "student_t")
    super().__init__(bias_scale)

  def kernel_dist(self, spec):
    return tfd.StudentT(_c(self.df, spec), _c(0., spec), _c(self.scale, spec))

  kernel_support = _real_line


@_registry.register_class("priors.SpikeAndSlab")
class SpikeAndSlab(Prior):
  """Two-scale normal mixture: `(1-p) N(0, spike) + p N(0, slab)`.

  The kernel always gets the mixture; the bias gets `Normal(0, bias_scale)`
  (`bias="normal"`) or the same mixture (`bias="spike_and_slab"`, as
  `tfp.experimental.nn.util.make_kernel_bias_prior_spike_and_slab`). Both
  are real-valued: the declared support is the identity.
  """

  BIAS_CHOICES = ("normal", "spike_and_slab")

  def __init__(self, spike_scale: float = 0.01, slab_scale: float = 1.0,
               slab_prob: float = 0.5, bias_scale: float = 1.0,
               bias: str = "normal"):
    self.spike_scale = _positive(spike_scale, "spike_scale", "spike_and_slab")
    self.slab_scale = _positive(slab_scale, "slab_scale", "spike_and_slab")
    if not 0. < slab_prob < 1.:
      raise ValueError("spike_and_slab: `slab_prob` must be in (0, 1); got "
                       f"{slab_prob!r}.")
    self.slab_prob = float(slab_prob)
    if bias not in self.BIAS_CHOICES:
      raise ValueError(f"spike_and_slab: `bias` must be one of "
                       f"{self.BIAS_CHOICES}; got {bias!r}.")
    super().__init__(bias_scale)
    self.bias = bias

  def kernel_dist(self, spec):
    probs = _c([1. - self.slab_prob, self.slab_prob], spec)
    return tfd.MixtureSameFamily(
        tfd.Categorical(probs=probs),
        tfd.Normal(_c([0., 0.], spec),
                   _c([self.spike_scale, self.slab_scale], spec)))

  kernel_support = _real_line

  def bias_dist(self, spec):
    if self.bias == "spike_and_slab":
      return self.kernel_dist(spec)
    return super().bias_dist(spec)


@_registry.register_class("priors.Horseshoe")
class Horseshoe(Prior):
  """Hierarchical (node-wise) horseshoe: latent global and local scales.

  `global_scale ~ HalfCauchy(0, tau0)`, `local_scale[j] ~ HalfCauchy(0, 1)`
  per output unit `j`, and `kernel[..., j] ~ Normal(0, global * local[j])`
  (Ghosh, Yao & Doshi-Velez, 2019). Both scales are latents of the layer's
  joint distribution; their declared support is the positive half-line
  (`exp`, as TFP's default for `HalfCauchy(0, .)`).
  """

  latent_names = ("global_scale", "local_scale")

  def __init__(self, global_scale: float = 1.0, bias_scale: float = 1.0):
    self.global_scale = _positive(global_scale, "global_scale", "horseshoe")
    super().__init__(bias_scale)

  kernel_support = _real_line

  def support(self, spec):
    glob, loc = (spec.latent_prefix + n for n in self.latent_names)
    return {glob: tfb.Exp(), loc: tfb.Exp(), **super().support(spec)}

  def _kernel_model(self, spec):
    support = self.support(spec)
    glob, loc = (spec.latent_prefix + n for n in self.latent_names)
    tau = yield Root(with_support(
        tfd.HalfCauchy(_c(0., spec), _c(self.global_scale, spec)),
        support[glob], name=glob))
    n_out = spec.kernel_shape[spec.out_axis]
    lam = yield Root(_iid(tfd.HalfCauchy(_c(0., spec), _c(1., spec)),
                          support[loc], [n_out], loc))
    k = len(spec.kernel_shape)
    local_shape = [1] * k
    local_shape[spec.out_axis] = n_out
    lam = tf.reshape(lam, tf.concat([tf.shape(lam)[:-1], local_shape], 0))
    tau = tf.reshape(tau, tf.concat([tf.shape(tau), [1] * k], 0))
    scale = tau * lam
    loc = tf.zeros(spec.kernel_shape, spec.dtype)
    yield tfd.Independent(
        with_support(tfd.Normal(loc, scale), support[spec.kernel_name]),
        reinterpreted_batch_ndims=k, name=spec.kernel_name)


def joint_model(prior: Prior, specs: Sequence[ParamSpec]) -> Callable:
  """One coroutine model over several kernels of a layer, each with its spec.

  Layers with more than one kernel (recurrent cells, attention) describe
  each kernel with its own `ParamSpec` (distinct `kernel_name`, `bias_name`
  and `latent_prefix`) and get one model that yields the prior's
  components for each in turn, so every prior works with every layer.

  Args:
    prior: The layer's prior.
    specs: One `ParamSpec` per kernel, in model order.

  Returns:
    A zero-argument coroutine model for `tfd.JointDistributionCoroutine`.

  Raises:
    ValueError: If two specs would yield components of the same name.

  #### Example

  ```python
  import jdlayers as jdl
  P = jdl.priors
  specs = [P.ParamSpec("kernel", (4, 8), None, 1, 4, 8),
           P.ParamSpec("recurrent_kernel", (2, 8), (8,), 1, 2, 8,
                       latent_prefix="recurrent_kernel_")]
  model = P.joint_model(P.horseshoe(), specs)
  ```
  """
  specs = tuple(specs)
  seen = {}
  for spec in specs:
    for name in prior.support(spec):
      if name in seen:
        raise ValueError(
            f"priors.joint_model: {type(prior).__name__} yields {name!r} for "
            f"both {seen[name]!r} and {spec.kernel_name!r}; give the specs "
            "distinct `bias_name` / `latent_prefix`.")
      seen[name] = spec.kernel_name
  models = [prior.model(spec) for spec in specs]

  def model_fn():
    for model in models:
      yield from model()

  return model_fn


def normal(scale: float = 1.0, bias_scale: Optional[float] = None) -> Prior:
  """Isotropic normal prior (the default, `scale=1` as the TFP anchor)."""
  return Normal(scale, bias_scale)


def fan_in_normal(mode: str = "he", gain: float = 1.0,
                  bias_scale: float = 1.0) -> Prior:
  """Fan-in scaled normal prior: mode "he", "lecun" or "glorot"."""
  return FanInNormal(mode, gain, bias_scale)


def he_normal(gain: float = 1.0, bias_scale: float = 1.0) -> Prior:
  """`Normal(0, sqrt(2 / fan_in))` (suits ReLU networks)."""
  return FanInNormal("he", gain, bias_scale)


def lecun_normal(gain: float = 1.0, bias_scale: float = 1.0) -> Prior:
  """`Normal(0, sqrt(1 / fan_in))` (suits tanh networks)."""
  return FanInNormal("lecun", gain, bias_scale)


def glorot_normal(gain: float = 1.0, bias_scale: float = 1.0) -> Prior:
  """`Normal(0, sqrt(2 / (fan_in + fan_out)))`."""
  return FanInNormal("glorot", gain, bias_scale)


def laplace(scale: float = 1.0, bias_scale: float = 1.0) -> Prior:
  """I.i.d. Laplace prior on the kernel."""
  return Laplace(scale, bias_scale)


def student_t(df: float = 3.0, scale: float = 1.0,
              bias_scale: float = 1.0) -> Prior:
  """I.i.d. Student-t prior on the kernel."""
  return StudentT(df, scale, bias_scale)


def spike_and_slab(spike_scale: float = 0.01, slab_scale: float = 1.0,
                   slab_prob: float = 0.5, bias_scale: float = 1.0,
                   bias: str = "normal") -> Prior:
  """Two-scale normal mixture prior `(1-p) N(0, spike) + p N(0, slab)`.

  Args:
    spike_scale: Scale of the spike component (> 0).
    slab_scale: Scale of the slab component (> 0).
    slab_prob: Weight `p` of the slab, in (0, 1).
    bias_scale: Scale of the `Normal(0, bias_scale)` bias prior (used when
      `bias="normal"`).
    bias: "normal" (default: the bias is not sparsified, and configurations
      saved before this argument existed keep their meaning) or
      "spike_and_slab" (the bias gets the kernel's mixture, as in
      `tfp.experimental.nn`).

  Returns:
    A `Prior`.

  Raises:
    ValueError: For a non-positive scale, `slab_prob` outside (0, 1) or an
      unknown `bias`.

  #### Example

  ```python
  import jdlayers as jdl
  layer = jdl.Affine(3, 2, prior=jdl.priors.spike_and_slab(
      slab_prob=0.2, bias="spike_and_slab"))
  q = jdl.vi.Surrogate(layer)   # HMC and VI work: the support is declared
  ```
  """
  return SpikeAndSlab(spike_scale, slab_scale, slab_prob, bias_scale, bias)


def horseshoe(global_scale: float = 1.0, bias_scale: float = 1.0) -> Prior:
  """Hierarchical node-wise horseshoe prior (latent global/local scales)."""
  return Horseshoe(global_scale, bias_scale)
