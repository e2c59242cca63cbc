"""Checks of what `vi.fit` receives, before any data is read or compiled.

Settings that cannot work used to train anyway (`learning_rate=-1e-3`
ascends the loss, `kl_weight=-1` rewards distance from the prior), and an
unbatched `tf.data` dataset was reported as a wrong input shape. Each is
refused here with the argument and value named.
"""

from __future__ import annotations

import numpy as np

from jdlayers import _validate
from jdlayers.inference.vi._surrogate import Surrogate

_WHERE = "vi.fit"


def check_settings(*, surrogate, epochs, batch_size, optimizer,
                   learning_rate, num_samples, num_examples, analytic_kl,
                   kl_weight, seed, shuffle, jit_compile, progress,
                   temperature=1.0) -> None:
  """Checks `vi.fit`'s settings (see its docstring for their meaning).

  Raises:
    TypeError: For a setting of the wrong kind.
    ValueError: For a count < 1, a learning rate <= 0, a negative KL
      weight, a temperature <= 0, or NaN/inf.
  """
  for name, v in (("epochs", epochs), ("batch_size", batch_size),
                  ("num_samples", num_samples)):
    _validate.count(v, name, _WHERE, minimum=1)
  if num_examples is not None:
    _validate.count(num_examples, "num_examples", _WHERE, minimum=1)
  if not callable(learning_rate):  # a Keras schedule is a callable
    _validate.positive(learning_rate, "learning_rate", _WHERE)
  if not callable(kl_weight):  # a schedule is checked by `kl_weights`
    _validate.real(kl_weight, "kl_weight", _WHERE, low=0.)
  _validate.positive(temperature, "temperature", _WHERE)
  _validate.boolean(analytic_kl, "analytic_kl", _WHERE)
  _validate.boolean(shuffle, "shuffle", _WHERE)
  _validate.boolean(jit_compile, "jit_compile", _WHERE, allow_none=True)
  _validate.callable_or_flag(progress, "progress", _WHERE)
  _validate.seed(seed, _WHERE, allow_none=False)
  if surrogate is not None and not isinstance(surrogate, Surrogate):
    raise TypeError(f"{_WHERE}: `surrogate` must be a jdlayers.vi.Surrogate "
                    f"or None; got {type(surrogate).__name__}.")
  if optimizer is not None and not hasattr(optimizer, "apply_gradients"):
    raise TypeError(f"{_WHERE}: `optimizer` must be a Keras optimizer (with "
                    f"`apply_gradients`) or None; got "
                    f"{type(optimizer).__name__}.")


def kl_weights(kl_weight, epochs: int) -> np.ndarray:
  """The KL weight of each epoch of a fit: `[epochs]` float64.

  A number is repeated; a schedule `fn(epoch)` is called on each 0-based
  epoch, here, before training, so a bad value fails early. A `tf.Variable`
  gives ones (`fit` multiplies by the variable in the step, so assigning
  it between fits takes effect without retracing).

  Raises:
    TypeError: If the schedule returns a non-number.
    ValueError: If it returns a negative, NaN or infinite weight, or
      raises; the message names the schedule and the epoch.
  """
  if not callable(kl_weight):
    if hasattr(kl_weight, "assign"):
      return np.ones([epochs])
    return np.full([epochs], float(np.asarray(kl_weight)))
  out = np.empty([epochs])
  for e in range(epochs):
    try:
      value = kl_weight(e)
    except Exception as err:  # pylint: disable=broad-except
      raise ValueError(f"{_WHERE}: the `kl_weight` schedule {kl_weight!r} "
                      f"failed at epoch {e}: {err}") from err
    if isinstance(value, np.generic):
      value = value.item()
    out[e] = _validate.real(value, f"kl_weight({e})", _WHERE, low=0.)
  return out


def check_unbatched(model, element) -> None:
  """Raises if a dataset's first element is one example, not a batch.

  Called when the element's `x` does not fit the network: if `x[None]`
  would, the dataset was not batched, and the message says so.

  Args:
    model: The `jdlayers.models.Model`.
    element: The dataset's first `(x, y)` element.

  Raises:
    ValueError: Naming the element's shapes and `.batch()`.
  """
  x = element[0]
  try:
    model.check_x(x[None])
  except (TypeError, ValueError):
    return  # not an unbatched dataset: the original error stands
  shapes = [list(getattr(v, "shape", ())) for v in element]
  raise ValueError(
      f"{_WHERE}: the dataset yields single examples (x of shape "
      f"{shapes[0]}, y of shape {shapes[1]}), not batches; batch it, e.g. "
      "`dataset.batch(32)`.")
