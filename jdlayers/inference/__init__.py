"""Inference over jdlayers models.

`mcmc`: HMC, NUTS, ChEES and SNAPER over every weight (`jdl.mcmc`); `vi`:
variational fits (`jdl.vi`); `laplace`: Laplace approximations around a point
estimate (`jdl.laplace`).
"""

from jdlayers.inference import mcmc

__all__ = ["mcmc"]
