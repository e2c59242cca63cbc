"""JSON configurations of jdlayers objects: `to_config`, `from_config`, JSON.

A config is `{"class": NAME, "config": {...}}`, NAME being the object's public
path under `jdlayers` ("Affine", "Conv2D", "Sequential", "priors.Horseshoe",
"models.Normal", "models.Model"). The codec and the class registry live on the
ground floor (`jdlayers._registry`), where every class registers itself; this
module reads them and adds the JSON text form.

Loading only looks names up in fixed tables: the registered jdlayers classes,
the activation names of `jdlayers.ops`, functions registered with
`register_function`, and `tfp.distributions` classes with numeric parameters.
It never evaluates code or unpickles anything.
"""

from __future__ import annotations

import json
from typing import Optional

# The codec is re-exported for `jdlayers.io`'s file formats and for
# inference's result files.
from jdlayers._registry import (decode_args, decode_param,  # pylint: disable=unused-import
                                distribution_from_config,
                                distribution_to_config, encode_args,
                                encode_param, from_config, function_from_name,
                                function_to_name, known_classes,
                                register_function, to_config)


def to_json(obj, indent: Optional[int] = None) -> str:
  """`to_config(obj)` as a JSON string (keys sorted).

  Args:
    obj: A layer or network distribution, a static layer, a prior, a
      likelihood or a `models.Model`.
    indent: Passed to `json.dumps`.

  Returns:
    The JSON text.

  Raises:
    TypeError: As `to_config`.

  #### Example

  ```python
  import jdlayers as jdl
  text = jdl.io.to_json(jdl.Affine(3, 2))
  jdl.io.from_json(text)  # an equal Affine
  ```
  """
  return json.dumps(to_config(obj), sort_keys=True, indent=indent,
                    allow_nan=False)


def from_json(text: str):
  """Rebuilds an object from `to_json`'s output.

  Raises:
    ValueError: For invalid JSON or an invalid config.
  """
  try:
    config = json.loads(text)
  except (TypeError, json.JSONDecodeError, RecursionError) as e:
    raise ValueError(f"from_json: not valid JSON ({e}).") from None
  return from_config(config)
