"""KL-weight schedules for `vi.fit` (KL annealing).

`vi.fit(kl_weight=...)` takes a number, or a schedule: any callable
`fn(epoch) -> float` of the 0-based epoch of that `fit` call. `fit`
evaluates it once per epoch before training (so a bad value fails before
anything is compiled) and feeds the weights into the compiled step as a
`[steps]` tensor: a schedule never retraces the step, and every step of an
epoch uses that epoch's weight.

Two named schedules from the literature:

* `linear_warmup(epochs, start=0.)`: from `start` up to 1 over `epochs`
  epochs, then 1 (Bowman et al. 2016; Sønderby et al. 2016).
* `cyclical(period, ramp=0.5)`: repeated warm-ups, each `period` epochs
  long, rising over the first `ramp` fraction then holding 1 (Fu et al.
  2019).

Annealing changes only the path of the optimisation: the last epochs should
use weight 1 for the fitted posterior to be the ELBO's optimum.

#### Example

```python
import jdlayers as jdl
w = jdl.vi.linear_warmup(10)
[w(e) for e in (0, 5, 10, 20)]     # [0.0, 0.5, 1.0, 1.0]
```
"""

from __future__ import annotations

import math

from jdlayers import _validate


class _Schedule:
  """A named schedule: callable on the epoch, with a readable repr."""

  name = ""

  def __init__(self, **config):
    self._config = config

  def get_config(self) -> dict:
    return dict(self._config)

  def __repr__(self) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
    return f"jdlayers.vi.{self.name}({args})"


class LinearWarmup(_Schedule):
  """The schedule `linear_warmup(...)` returns."""

  name = "linear_warmup"

  def __call__(self, epoch) -> float:
    c = self._config
    frac = min(1., float(epoch) / c["epochs"])
    return c["start"] + (1. - c["start"]) * frac


class Cyclical(_Schedule):
  """The schedule `cyclical(...)` returns."""

  name = "cyclical"

  def __call__(self, epoch) -> float:
    c = self._config
    phase = math.fmod(float(epoch), c["period"]) / c["period"]
    return min(1., phase / c["ramp"])


def linear_warmup(epochs: int, start: float = 0.) -> LinearWarmup:
  """KL weight rising linearly from `start` to 1 over `epochs` epochs.

  Args:
    epochs: Warm-up length in epochs (>= 1); epoch `e` gets
      `start + (1 - start) * min(1, e / epochs)`.
    start: Weight at epoch 0, in `[0, 1]`.

  Returns:
    A callable `fn(epoch) -> float` for `vi.fit(kl_weight=...)`.

  Raises:
    ValueError: If `epochs < 1` or `start` is outside `[0, 1]`.
  """
  where = "vi.linear_warmup"
  return LinearWarmup(epochs=_validate.count(epochs, "epochs", where, 1),
                      start=_validate.real(start, "start", where, low=0.,
                                           high=1.))


def cyclical(period: int, ramp: float = 0.5) -> Cyclical:
  """Cyclical KL annealing: each `period` epochs, rise from 0 to 1 then hold.

  Args:
    period: Epochs per cycle (>= 1).
    ramp: Fraction of a cycle spent rising, in `(0, 1]`.

  Returns:
    A callable `fn(epoch) -> float` for `vi.fit(kl_weight=...)`; choose
    `epochs` a multiple of `period` so the last cycle ends at weight 1.

  Raises:
    ValueError: If `period < 1` or `ramp` is outside `(0, 1]`.
  """
  where = "vi.cyclical"
  return Cyclical(period=_validate.count(period, "period", where, 1),
                  ramp=_validate.real(ramp, "ramp", where, low=0., high=1.,
                                      low_open=True))
