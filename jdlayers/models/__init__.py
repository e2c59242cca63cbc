"""Bayesian models: a network distribution plus a likelihood head.

`Model(network, likelihood)` gives the joint over weights, likelihood latents
and `y` (`joint(x)`) and the posterior given data (`posterior(x, y)`), the
target that `jdlayers.mcmc` samples.
"""

from jdlayers.models._likelihoods import (Bernoulli, Categorical, General,
                                          HeteroscedasticNormal, Likelihood,
                                          Normal, Poisson, StudentT)
from jdlayers.models._model import Model, ModelJoint
from jdlayers.models._posterior import Posterior

__all__ = [
    "Bernoulli", "Categorical", "General", "HeteroscedasticNormal",
    "Likelihood", "Model", "ModelJoint", "Normal", "Poisson", "Posterior",
    "StudentT",
]
