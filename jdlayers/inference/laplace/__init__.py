"""Laplace approximations of jdlayers models (`jdlayers.laplace`).

In the style of laplace-torch: around a point estimate (a MAP fit, a VI
point-mass fit or a trained Keras model), a Gaussian over all weights, the
last layer or any glob of parts, with diagonal, KFAC or full generalized
Gauss-Newton curvature and a prior precision fixed or tuned by the marginal
likelihood. Its result samples callable networks and predicts with the
sampled networks or the linearised (GLM) network and the probit
approximation.

* `fit(model, x, y, hessian=..., subset=..., prior_precision=...)`
* `map_estimate(model, x, y)`: the posterior mode.
* `LaplaceResult`: `sample`, `predict`, `log_marginal_likelihood`, `save`;
  `load(path)` reads it back.
"""

from jdlayers.inference.laplace._fit import fit
from jdlayers.inference.laplace._load import load
from jdlayers.inference.laplace._map import map_estimate
from jdlayers.inference.laplace._predictive import Prediction
from jdlayers.inference.laplace._result import LaplaceResult

__all__ = ["LaplaceResult", "Prediction", "fit", "load", "map_estimate"]
