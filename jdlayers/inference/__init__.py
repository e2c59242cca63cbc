"""Inference over jdlayers models: `mcmc` (HMC/NUTS)."""

from jdlayers.inference import mcmc

__all__ = ["mcmc"]
