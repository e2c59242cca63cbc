"""Keras 3 variational layers built on `jdlayers.vi` (`jdlayers.keras`).

`Dense`, `Conv1D/2D/3D`, `Conv1D/2D/3DTranspose`, `Embedding`, `LSTM`,
`GRU`, `LayerNormalization` and `MultiHeadAttention` take Keras' arguments
and defaults (and Keras masks); `Variational` wraps any jdlayers layer or
network distribution. Each call samples weights from a trainable posterior with
the chosen estimator ("flipout" by default) and adds the layer's KL term
with `add_loss`, so `model.compile(...)` / `model.fit(...)` trains a
Bayesian network and `model.save` / `keras.models.load_model` round-trip.

KL scaling (the one convention of jdlayers, see `jdlayers.vi.elbo_terms`):
keep Keras' mean-reduced loss and pass `num_examples=N`, the training-set
size, to every layer. The loss `fit` minimises is then the per-example
negative ELBO, `mean NLL + KL / N`, for any batch size. Passing
`num_examples=None` adds the KL unscaled.

Hooks as in tfp.layers, with tfp.layers' meanings (README: "Migrating
from tfp.layers"): `kernel_posterior_fn` / `bias_posterior_fn` (VI
builders `jdlayers.vi.mean_field_normal()`, `jdlayers.vi.point_mass()`, or
tfp.layers posterior functions such as
`tfp.layers.default_mean_field_normal_fn()`; `bias_posterior_fn=None`: no
bias), `kernel_prior_fn` / `bias_prior_fn` (a `jdlayers.priors` prior or
`(dtype, shape) -> tfd.Distribution`; None: no KL term), `*_divergence_fn`
(`(q, p, z) -> scalar`, unscaled; None: no KL term) and
`*_posterior_tensor_fn`. Arguments left out keep jdlayers' defaults (a
mean-field bias with a `Normal(0, 1)` prior, where tfp.layers has a point
mass without KL). Kernels use Keras' layout (`Dense`: `[in, units]`), and
each part's KL is its own loss, as in tfp.layers.

Under `tf.distribute` (build and compile inside `strategy.scope()`), each
replica draws its own weight noise and the KL counts once per step, as in
`jdlayers.vi.fit(strategy=)`. On CPU, Keras' per-step loop costs as much as
a small network's step: `compile(steps_per_execution=k)` runs k steps per
compiled call, with the same noise stream and results.

Predictions are Monte Carlo: every `model(x)` draws new weights; average
several (`predict_samples`) for the predictive. `reseed(model, seed)`
makes them repeatable.

#### Example

```python
import jdlayers as jdl, keras
n = len(x_train)
model = keras.Sequential([
    keras.Input((8, 8, 1)),
    jdl.keras.Conv2D(16, 3, padding="same", activation="relu",
                     num_examples=n),
    keras.layers.Flatten(),
    jdl.keras.Dense(10, num_examples=n)])
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
    from_logits=True))
model.fit(x_train, y_train, epochs=5)
logits = jdl.keras.predict_samples(model, x_test, 20, seed=0)  # [20, N, 10]
probs = keras.ops.mean(keras.ops.softmax(logits), axis=0)
```
"""

from jdlayers.keras._base import (VariationalLayer, predict_samples, reseed,
                                  variational_layers)
from jdlayers.keras._conv import (Conv1D, Conv1DTranspose, Conv2D,
                                  Conv2DTranspose, Conv3D, Conv3DTranspose)
from jdlayers.keras._hooks import default_divergence_fn, mc_divergence_fn
from jdlayers.keras._dense import Dense
from jdlayers.keras._attention import MultiHeadAttention
from jdlayers.keras._embedding import Embedding
from jdlayers.keras._norm import LayerNormalization
from jdlayers.keras._recurrent import GRU, LSTM
from jdlayers.keras._variational import Variational

__all__ = [
    "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D",
    "Conv3DTranspose", "Dense", "Embedding", "GRU", "LSTM",
    "LayerNormalization", "MultiHeadAttention", "Variational", "VariationalLayer",
    "default_divergence_fn", "mc_divergence_fn", "predict_samples", "reseed",
    "variational_layers",
]
