"""Files: save/load of distributions, models and sampled networks."""

import io as stdio
import json
import os
import pathlib
import pickle
import re
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings

import jdlayers as jdl
import jdlayers.testing as jdt
from jdlayers import io
from jdlayers.io import _files

tfd = tfp.distributions


def _at(path) -> str:
  """A regex matching the path at the start of an error message."""
  return re.escape(str(path))


def _leaves_equal(a, b):
  la, lb = tf.nest.flatten(a), tf.nest.flatten(b)
  assert len(la) == len(lb)
  for u, v in zip(la, lb):
    assert u.dtype == v.dtype
    np.testing.assert_array_equal(u, v)


def _small_net():
  return jdl.Sequential(
      jdl.Conv1D(2, 3, 1, activation="relu"), jdl.MaxPool1D(2), jdl.Flatten(),
      jdl.Residual(jdl.Sequential(jdl.Affine(4, 4), tf.nn.tanh)),
      jdl.Parallel(jdl.Affine(2, 4, prior=jdl.priors.horseshoe()),
                   jdl.Affine(1, 4)))


_X = np.random.default_rng(0).standard_normal([3, 4, 1]).astype(np.float32)


# -- round trips -------------------------------------------------------------

@settings(max_examples=8, deadline=None)
@given(jdt.networks())
def test_generated_networks_round_trip_bit_identically(tmp_path_factory, case):
  path = tmp_path_factory.mktemp("net") / "net.jdl.npz"
  fs = case.dist.sample(case.sample_shape, seed=case.seed)
  io.save_network(path, case.dist, fs)
  dist, loaded = io.load_network(path)
  assert io.to_config(dist) == io.to_config(case.dist)
  _leaves_equal(fs, loaded)
  np.testing.assert_array_equal(fs(case.x), loaded(case.x))
  np.testing.assert_array_equal(case.dist.log_prob(fs), dist.log_prob(loaded))


@settings(max_examples=10, deadline=None)
@given(jdt.layer_configs())
def test_generated_layers_round_trip(tmp_path_factory, case):
  path = tmp_path_factory.mktemp("layer") / "layer.jdl.npz"
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  io.save_network(path, case.dist, f)
  dist, loaded = io.load_network(path)
  _leaves_equal(f, loaded)
  np.testing.assert_array_equal(f(case.x), loaded(case.x))


def test_nested_network_array_names(tmp_path):
  net = _small_net()
  fs = net.sample([2, 3], seed=1)
  path = io.save_network(tmp_path / "n.jdl.npz", net, fs)
  meta, arrays = _files.read(path, "network")
  assert meta["arrays"] == [
      "0/kernel", "0/bias", "3/0/0/weights", "3/0/0/bias",
      "4/0/global_scale", "4/0/local_scale", "4/0/weights", "4/0/bias",
      "4/1/weights", "4/1/bias"]
  assert sorted(arrays) == sorted(meta["arrays"])
  assert meta["sample_shape"] == [2, 3]
  assert arrays["4/0/local_scale"].shape == (2, 3, 2)
  dist, loaded = io.load_network(path)
  np.testing.assert_array_equal(fs(_X), loaded(_X))
  np.testing.assert_array_equal(net.log_prob(fs), dist.log_prob(loaded))
  path = io.save_distribution(tmp_path / "d.jdl.npz", net)
  assert io.to_config(io.load_distribution(path)) == io.to_config(net)


def test_model_files(tmp_path):
  net = jdl.Sequential(jdl.Affine(3, 1, activation="tanh"), jdl.Affine(1, 3))
  model = jdl.models.Model(net, jdl.models.Normal(scale=tfd.HalfNormal(0.5)))
  io.save_distribution(tmp_path / "m.jdl.npz", model)
  again = io.load_distribution(tmp_path / "m.jdl.npz")
  assert isinstance(again, jdl.models.Model)
  assert io.to_config(again) == io.to_config(model)
  fs = model.network.sample(2, seed=3)
  io.save_network(tmp_path / "mn.jdl.npz", model, fs)
  loaded_model, loaded = io.load_network(tmp_path / "mn.jdl.npz")
  assert isinstance(loaded_model, jdl.models.Model)
  x = np.linspace(-1, 1, 4, dtype=np.float32)[:, None]
  np.testing.assert_array_equal(fs(x), loaded(x))


def test_static_layer_network(tmp_path):
  pool = jdl.AvgPool2D(2)
  io.save_network(tmp_path / "p.jdl.npz", pool, pool.sample())
  dist, layer = io.load_network(tmp_path / "p.jdl.npz")
  x = tf.ones([2, 4, 4, 1])
  np.testing.assert_array_equal(pool.sample()(x), layer(x))


# -- refusing to save --------------------------------------------------------

def test_unsaveable_distribution_writes_nothing(tmp_path):
  net = jdl.Sequential(jdl.Affine(2, 2), lambda x: x)
  with pytest.raises(TypeError, match="cannot be saved"):
    io.save_network(tmp_path / "x.npz", net, net.sample(seed=0))
  with pytest.raises(TypeError, match="cannot be saved"):
    io.save_distribution(tmp_path / "x.npz", net)
  assert not os.listdir(tmp_path)


def test_network_that_does_not_fit_is_refused(tmp_path):
  net = jdl.Sequential(jdl.Affine(2, 3), jdl.Affine(1, 2))
  with pytest.raises(ValueError, match="has 2 random tensors but"):
    io.save_network(tmp_path / "x.npz", net, jdl.Affine(2, 3).sample(seed=0))
  other = jdl.Sequential(jdl.Affine(2, 4), jdl.Affine(1, 2)).sample(seed=0)
  with pytest.raises(ValueError, match=r"part '0' of the network \(AffineLayer\)"
                     " has .*in_units=4.* expects .*in_units=3"):
    io.save_network(tmp_path / "x.npz", net, other)
  fs = net.sample(2, seed=0)
  parts = tf.nest.flatten(fs)
  wrong = tf.nest.pack_sequence_as(fs, [tf.zeros([2, 2, 4])] + parts[1:])
  with pytest.raises(ValueError, match="'0/weights' has shape .* event shape"):
    io.save_network(tmp_path / "x.npz", net, wrong)
  bad = tf.nest.pack_sequence_as(fs, [p[:1] if i == 3 else p for i, p in
                                      enumerate(tf.nest.flatten(fs))])
  with pytest.raises(ValueError, match="'1/bias' has sample dims"):
    io.save_network(tmp_path / "x.npz", net, bad)
  relu = jdl.Sequential(jdl.Affine(2, 3, activation="relu"),
                        jdl.Affine(1, 2)).sample(seed=0)
  with pytest.raises(ValueError, match="part '0' of the network .*relu.* "
                     "expects .*activation=None"):
    io.save_network(tmp_path / "x.npz", net, relu)
  f64 = jdl.Sequential(jdl.Affine(2, 3, tf.float64),
                       jdl.Affine(1, 2, tf.float64)).sample(seed=0)
  with pytest.raises(ValueError, match="dtype float64"):
    io.save_network(tmp_path / "x.npz", net, f64)
  assert not os.listdir(tmp_path)


# -- overwriting and crashes -------------------------------------------------

def _saved(tmp_path):
  net = jdl.Sequential(jdl.Affine(2, 3), jdl.Affine(1, 2))
  path = tmp_path / "net.jdl.npz"
  io.save_network(path, net, net.sample(4, seed=0))
  return net, path, path.read_bytes()


def test_existing_file_needs_overwrite(tmp_path):
  net, path, before = _saved(tmp_path)
  with pytest.raises(FileExistsError, match="overwrite=True"):
    io.save_network(path, net, net.sample(4, seed=1))
  with pytest.raises(FileExistsError):
    io.save_distribution(path, net)
  assert path.read_bytes() == before
  io.save_network(path, net, net.sample(4, seed=1), overwrite=True)
  assert path.read_bytes() != before
  assert os.listdir(tmp_path) == ["net.jdl.npz"]


@pytest.mark.parametrize("target", ["replace", "fsync", "write"])
def test_crash_mid_overwrite_keeps_the_old_file(tmp_path, monkeypatch, target):
  net, path, before = _saved(tmp_path)

  def crash(*args, **kwargs):
    raise OSError("simulated crash")

  class HalfWritten:
    """A file that dies after writing half of the data."""

    def __init__(self, f):
      self.f = f

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self.f.close()

    def write(self, data):
      self.f.write(data[:len(data) // 2])
      raise OSError("simulated crash")

  if target == "write":
    fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen",
                        lambda fd, mode: HalfWritten(fdopen(fd, mode)))
  else:
    monkeypatch.setattr(os, target, crash)
  with pytest.raises(OSError, match="simulated crash"):
    io.save_network(path, net, net.sample(4, seed=1), overwrite=True)
  monkeypatch.undo()
  assert path.read_bytes() == before
  assert os.listdir(tmp_path) == ["net.jdl.npz"]  # no temp file left
  _, loaded = io.load_network(path)
  _leaves_equal(net.sample(4, seed=0), loaded)


def test_crash_mid_new_save_leaves_nothing(tmp_path, monkeypatch):
  net = jdl.Affine(2, 3)

  def crash(*args, **kwargs):
    raise OSError("simulated crash")
  monkeypatch.setattr(os, "link", crash)
  with pytest.raises(OSError, match="simulated crash"):
    io.save_network(tmp_path / "new.npz", net, net.sample(seed=0))
  assert not os.listdir(tmp_path)


# -- invalid files -----------------------------------------------------------

def _write_network_file(path, config, arrays, sample_shape=(), **meta):
  meta = {"config": config, "sample_shape": list(sample_shape),
          "arrays": list(arrays), **meta}
  _files.write(path, "network", meta, arrays)
  return str(path)


def _affine_arrays(s=(2,), out=2, inp=3):
  return {"weights": np.zeros(s + (out, inp), np.float32),
          "bias": np.zeros(s + (out,), np.float32)}


def test_wrong_kind(tmp_path):
  path = io.save_distribution(tmp_path / "d.npz", jdl.Affine(2, 3))
  with pytest.raises(io.FileFormatError,
                     match=f"{_at(path)}: holds a 'distribution', expected "
                     "'network'"):
    io.load_network(path)
  path = io.save_network(tmp_path / "n.npz", jdl.Affine(2, 3),
                         jdl.Affine(2, 3).sample(seed=0))
  with pytest.raises(io.FileFormatError, match="expected 'distribution'"):
    io.load_distribution(path)


def test_shapes_that_disagree_with_the_config(tmp_path):
  config = io.to_config(jdl.Affine(2, 3))
  path = _write_network_file(tmp_path / "a.npz", config,
                             _affine_arrays(out=3), (2,))
  with pytest.raises(io.FileFormatError, match=f"{_at(path)}: array 'weights' "
                     r"has shape \[2, 3, 3\] but the config implies \[2, 2, 3\]"):
    io.load_network(path)
  arrays = _affine_arrays()
  arrays["bias"] = np.zeros((4, 2), np.float32)  # other sample dims
  path = _write_network_file(tmp_path / "b.npz", config, arrays, (2,))
  with pytest.raises(io.FileFormatError, match="array 'bias' has shape "
                     r"\[4, 2\] but the config implies \[2, 2\]"):
    io.load_network(path)
  path = _write_network_file(tmp_path / "c.npz", config, _affine_arrays(),
                             (3,))
  with pytest.raises(io.FileFormatError, match="'weights' has shape"):
    io.load_network(path)


def test_missing_extra_and_mistyped_arrays(tmp_path):
  config = io.to_config(jdl.Affine(2, 3))
  arrays = _affine_arrays()
  del arrays["bias"]
  path = _write_network_file(tmp_path / "a.npz", config, arrays, (2,))
  with pytest.raises(io.FileFormatError, match=rf"{_at(path)}: missing arrays "
                     r"\['bias'\]"):
    io.load_network(path)
  arrays = {**_affine_arrays(), "extra": np.zeros(2)}
  path = _write_network_file(tmp_path / "b.npz", config, arrays, (2,))
  with pytest.raises(io.FileFormatError, match=r"unexpected arrays \['extra'"):
    io.load_network(path)
  arrays = {k: v.astype(np.float64) for k, v in _affine_arrays().items()}
  path = _write_network_file(tmp_path / "c.npz", config, arrays, (2,))
  with pytest.raises(io.FileFormatError, match="'weights' has dtype float64 "
                     "but the configuration implies float32"):
    io.load_network(path)
  path = _write_network_file(tmp_path / "d.npz", config, _affine_arrays(),
                             sample_shape=())
  _files.write(path, "network", {"config": config, "sample_shape": "2"},
               _affine_arrays(), overwrite=True)
  with pytest.raises(io.FileFormatError, match="network metadata lacks a "
                     "valid 'sample_shape': '2' is not a list"):
    io.load_network(path)


def test_unknown_layer_class(tmp_path):
  config = {"class": "Sequential", "config": {"layers": [
      {"class": "FancyLayer", "config": {}}]}}
  path = _write_network_file(tmp_path / "a.npz", config, {})
  with pytest.raises(io.FileFormatError, match=rf"{_at(path)}: invalid "
                     r"configuration: unknown class 'FancyLayer' in config; "
                     r"known classes: \['Affine'"):
    io.load_network(path)
  bad = {"class": "Affine", "config": {"out_units": "x", "in_units": 2}}
  path = _write_network_file(tmp_path / "c.npz", bad, {})
  with pytest.raises(io.FileFormatError, match=rf"{_at(path)}: invalid "
                     r"configuration: Affine: `out_units` must be a positive"):
    io.load_network(path)
  _files.write(tmp_path / "b.npz", "distribution", {}, {})
  with pytest.raises(io.FileFormatError,
                     match="distribution metadata lacks 'config'"):
    io.load_distribution(tmp_path / "b.npz")


def _rewrite_meta(path, **changes):
  """Rewrites a file's metadata in place, bypassing `_files.write`."""
  with np.load(path) as npz:
    arrays = {k: npz[k] for k in npz.files}
  meta = json.loads(arrays["__meta__"].tobytes().decode())
  meta.update(changes)
  arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
  np.savez(path, **arrays)


def test_deeply_nested_metadata(tmp_path):
  _, path, _ = _saved(tmp_path)
  with np.load(path) as npz:
    arrays = {k: npz[k] for k in npz.files}
  arrays["__meta__"] = np.frombuffer(b"[" * 100000, np.uint8)
  np.savez(path, **arrays)
  with pytest.raises(io.FileFormatError, match="corrupted metadata"):
    io.load_network(path)


def test_newer_version(tmp_path):
  _, path, _ = _saved(tmp_path)
  _rewrite_meta(path, version=io.VERSION + 1)
  with pytest.raises(io.FileFormatError, match=f"{_at(path)}: written by a "
                     "newer jdlayers"):
    io.load_network(path)


def test_truncated_and_corrupt_files(tmp_path):
  _, path, data = _saved(tmp_path)
  for i, bad in enumerate([data[:len(data) // 2], data[:-30], b"",
                           data[:200] + bytes(50) + data[250:]]):
    p = tmp_path / f"bad{i}.npz"
    p.write_bytes(bad)
    with pytest.raises(io.FileFormatError, match=re.escape(f"{p}: ")):
      io.load_network(p)


class _Marker:
  """Unpickling this creates a marker file: proof that code ran."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_pickle_file_is_never_unpickled(tmp_path):
  marker = tmp_path / "pwned"
  pkl = tmp_path / "evil.pkl"
  pkl.write_bytes(pickle.dumps(_Marker(str(marker))))
  evil = tmp_path / "evil.jdl.npz"
  os.rename(pkl, evil)
  with pytest.raises(io.FileFormatError,
                     match=f"{_at(evil)}: not a jdlayers file"):
    io.load_network(evil)
  with pytest.raises(io.FileFormatError):
    io.load_distribution(evil)
  assert not marker.exists()


def test_object_array_is_never_unpickled(tmp_path):
  marker = tmp_path / "pwned"
  _, path, _ = _saved(tmp_path)
  with np.load(path) as npz:
    arrays = {k: npz[k] for k in npz.files}
  arrays["0/weights"] = np.array([_Marker(str(marker))], dtype=object)
  buf = stdio.BytesIO()
  np.savez(buf, **arrays)
  path.write_bytes(buf.getvalue())
  assert zipfile.is_zipfile(path)
  with pytest.raises(io.FileFormatError, match=f"{_at(path)}: holds pickled"):
    io.load_network(path)
  assert not marker.exists()
