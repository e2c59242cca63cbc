"""Variational inference for Bayesian networks (`jdlayers.vi`).

* `Surrogate(model_or_network)`: a trainable posterior with the network's
  structure (mean-field normal by default; point masses and user builders
  per part); sampling it gives callable networks.
* `Surrogate.apply(x, estimator)`: reparameterization, Flipout or local
  reparameterization for Affine, Conv and ConvTranspose layers of any rank.
* `elbo_terms`: the per-example negative ELBO (convention in `_elbo`).
* `fit(model, x, y)`: minibatch SVI with a compiled step; returns the
  fitted surrogate (`predict`, `history`). `kl_weight` may be a schedule
  (`linear_warmup`, `cyclical`, any `fn(epoch)`), `temperature` tempers the
  posterior (Wenzel et al. 2020), and `init=`/`init_scale=` start the
  surrogate at a MAP or deterministic fit (MOPED).
"""

from jdlayers.inference.vi._builders import (PartSpec, mean_field_normal,
                                             point_mass)
from jdlayers.inference.vi._elbo import ELBOTerms, elbo_terms
from jdlayers.inference.vi._estimators import ESTIMATORS
from jdlayers.inference.vi._fit import History, fit
from jdlayers.inference.vi._io import save_surrogate
from jdlayers.inference.vi._kl import elementwise_kl
from jdlayers.inference.vi._load import load_surrogate
from jdlayers.inference.vi._schedules import cyclical, linear_warmup
from jdlayers.inference.vi._surrogate import Surrogate

__all__ = ["ELBOTerms", "ESTIMATORS", "History", "PartSpec", "Surrogate",
           "cyclical", "elbo_terms", "elementwise_kl", "fit",
           "linear_warmup", "load_surrogate", "mean_field_normal",
           "point_mass", "save_surrogate"]
