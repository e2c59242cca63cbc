"""Durable, code-free save/load of jdlayers objects (`jdlayers.io`).

Configurations (`to_config`/`from_config`, `to_json`/`from_json`) describe
layers, networks, priors, likelihoods and models as JSON; files hold a
configuration plus numeric arrays in a pickle-free npz container (see
`FORMAT`, `VERSION`): `save_distribution`/`load_distribution` and
`save_network`/`load_network` (a sampled network with any sample dims).
Loading never executes code: functions are saved by name and looked up in
the activations or in `register_function`'s registry.
"""

from jdlayers.io._config import (from_config, from_json, register_function,
                                 to_config, to_json)
from jdlayers.io._files import FORMAT, VERSION, FileFormatError
from jdlayers.io._network import (load_distribution, load_network,
                                  save_distribution, save_network)

__all__ = [
    "FORMAT", "VERSION", "FileFormatError", "from_config", "from_json",
    "load_distribution", "load_network", "register_function",
    "save_distribution", "save_network", "to_config", "to_json",
]
