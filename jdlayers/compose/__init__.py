"""Composition: `Sequential`, `Residual`, `Parallel` (each a joint
distribution whose sample is a callable network)."""

from jdlayers.compose._base import Composite, CompositeLayer
from jdlayers.compose._parallel import Parallel, ParallelLayer
from jdlayers.compose._residual import Residual, ResidualLayer
from jdlayers.compose._sequential import Sequential, SequentialLayer

__all__ = ["Composite", "CompositeLayer", "Parallel", "ParallelLayer",
           "Residual", "ResidualLayer", "Sequential", "SequentialLayer"]
