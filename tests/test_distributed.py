"""The trainer under several strategies and across a kill, each run in its own process.

One strategy per process (collectives of two strategies conflict) and logical CPU devices
must exist before TensorFlow initialises, so every run here is a subprocess executing this
file as a script (`python test_distributed.py <mode> ...`):

- the same initial weights and batch give the same loss and aggregated gradients (~1e-5)
  with no strategy, `snt.distribute.Replicator` over 2 logical CPU devices and
  `MultiWorkerReplicator` (MultiWorkerMirroredStrategy) with 2 worker processes on
  127.0.0.1, and the same weights and validation metrics after a short training run;
- a deterministic run killed (SIGKILL) after a checkpoint and resumed ends with the same
  weights, validation history and logs as an uninterrupted run.

Every subprocess has a timeout and is killed with its process group on failure.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
TIMEOUT_S = 240


# --- the worker side (runs in the subprocesses) -----------------------------------------------

def _model_class():
  import sonnet as snt
  import tensorflow as tf
  from tf_seqmodels.blocks.core import cross_replica_batch_norm
  from tf_seqmodels.blocks.torch_compat import TorchBatchNorm

  class TwoNormNet(snt.Module):
    """[B, 32, 4] -> {"tracks": [B, 4, 3]}: both cross-replica BatchNorms of the package
    (Sonnet's, as in Enformer; PyTorch-style, as in DREAM), optional dropout."""

    def __init__(self, dropout=0.0):
      super().__init__(name="two_norm_net")
      self.conv1 = snt.Conv1D(8, 5, with_bias=False, name="conv1")
      self.norm1 = cross_replica_batch_norm(name="norm1")
      self.conv2 = snt.Conv1D(8, 3, with_bias=False, name="conv2")
      self.norm2 = TorchBatchNorm(name="norm2")
      self.head = snt.Linear(3, name="head")
      self.dropout = dropout

    def __call__(self, inputs, is_training):
      h = tf.nn.relu(self.norm1(self.conv1(inputs), is_training=is_training))
      h = tf.nn.relu(self.norm2(self.conv2(h), is_training=is_training))
      if is_training and self.dropout:
        h = tf.nn.dropout(h, self.dropout)
      pooled = tf.reduce_mean(tf.reshape(h, [-1, 4, 8, 8]), axis=2)  # 4 bins of 8
      return {"tracks": tf.nn.softplus(snt.BatchApply(self.head)(pooled))}

  return TwoNormNet


def _data(n, seed):
  rng = np.random.default_rng(seed)
  x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, 32))]
  gc = x[..., 1:3].reshape(n, 4, 8, 2).sum(-1).mean(-1, keepdims=True)
  y = (gc * np.array([1.0, 2.0, 0.5]) + rng.gamma(2.0, 0.05, (n, 4, 3))).astype(np.float32)
  return x, {"tracks": y}


def _strategy_worker(mode, out, init, run_dir):
  """Loss/gradients of one batch, then 2 epochs of training, under strategy `mode`."""
  from tf_seqmodels.training.strategy import StrategyError, describe_strategy, make_strategy
  kind = {"none": "default", "mirrored": "mirrored", "multiworker": "multiworker"}[mode]
  options = {"cpu_devices": 2} if mode == "mirrored" else (
      {"collective_timeout_s": 120.0} if mode == "multiworker" else {})
  info = make_strategy(kind, **options)
  import tensorflow as tf
  from tf_seqmodels.tasks.tracks import TrackTask
  from tf_seqmodels.training.optimizers import AdamW
  from tf_seqmodels.training.trainer import Trainer, TrainerConfig
  with info.strategy.scope():
    model = _model_class()()
    optimizer = AdamW(0.01, weight_decay=0.01)
  trainer = Trainer(model, TrackTask(["tracks"]), optimizer, strategy=info,
                    config=TrainerConfig(epochs=2, batch_size=8, select_best_by="min:loss",
                                         progress=False, log_every=1),
                    run_dir=run_dir)
  trainer.build(tf.TensorSpec([None, 32, 4]))
  tf.train.Checkpoint(model=model).read(init).assert_existing_objects_matched()
  x, y = _data(34, 0)
  loss, grads = trainer.loss_and_gradients(x[:8], {"tracks": y["tracks"][:8]})
  train = tf.data.Dataset.from_tensor_slices((x[:24], {"tracks": y["tracks"][:24]})).batch(8)
  valid = tf.data.Dataset.from_tensor_slices((x[24:], {"tracks": y["tracks"][24:]})).batch(4)
  history = trainer.fit(train, valid)
  rejected = ""
  if mode == "mirrored":
    try:  # a plain MirroredStrategy cannot run Sonnet-style updates on its variables
      describe_strategy(tf.distribute.MirroredStrategy(list(info.devices)))
    except StrategyError as e:
      rejected = str(e)
  np.savez(out, loss=loss, replicas=info.num_replicas, workers=info.num_workers,
           chief=info.is_chief, kind=info.kind, cls=type(info.strategy).__name__,
           rejected=rejected, train_loss=history["loss"], val_loss=history["val_loss"],
           val_pearson=history["val_pearson"], best_step=history["best_step"],
           **{f"grad_{i}": g for i, g in enumerate(grads)},
           **{f"var_{i}": v.numpy() for i, v in enumerate(model.variables)})


def _resume_worker(run_dir, out, slow):
  """Deterministic training with dropout, OneCycle AdamW, per-epoch validation; resumes."""
  from tf_seqmodels.training.strategy import make_strategy
  info = make_strategy()
  import tensorflow as tf
  from tf_seqmodels.tasks.tracks import TrackTask
  from tf_seqmodels.training.optimizers import AdamW
  from tf_seqmodels.training.schedules import OneCycle
  from tf_seqmodels.training.trainer import Trainer, TrainerConfig
  schedule = OneCycle(0.02, 32)
  model = _model_class()(dropout=0.3)
  trainer = Trainer(model, TrackTask(["tracks"]),
                    AdamW(schedule, beta1=schedule.beta1, weight_decay=0.01), strategy=info,
                    config=TrainerConfig(epochs=4, checkpoint_every=4, select_best_by="pearson",
                                         deterministic=True, seed=7, progress=False,
                                         log_every=2),
                    run_dir=run_dir)
  x, y = _data(80, 1)

  def pause(a):
    time.sleep(0.15)  # slow enough for the parent to kill the run between checkpoints
    return a

  train = tf.data.Dataset.from_tensor_slices((x[:64], {"tracks": y["tracks"][:64]}))
  train = train.shuffle(64, seed=3).batch(8)
  if slow:
    train = train.map(lambda a, b: (tf.ensure_shape(tf.numpy_function(pause, [a], tf.float32),
                                                    [None, 32, 4]), b))
  valid = tf.data.Dataset.from_tensor_slices((x[64:], {"tracks": y["tracks"][64:]})).batch(8)
  history = trainer.fit(train, valid, resume=True)
  np.savez(out, steps=history["steps"], resumed_from=history["resumed_from"] or -1,
           val_pearson=history["val_pearson"], loss=history["loss"],
           **{f"var_{i}": v.numpy() for i, v in enumerate(model.variables)})


# --- the test side -----------------------------------------------------------------------------

def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _spawn(args, env_extra=None, log=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="",
             **(env_extra or {}))
  return subprocess.Popen([sys.executable, str(HERE), *map(str, args)], env=env, cwd=str(REPO),
                          stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True)


def _kill(process):
  if process.poll() is None:
    try:
      os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
  process.wait()


def _finish(processes, timeout=TIMEOUT_S):
  """Waits for all; on a timeout or a failure kills them all and fails with their output."""
  deadline = time.monotonic() + timeout
  try:
    for p in processes:
      p.wait(timeout=max(1.0, deadline - time.monotonic()))
  except subprocess.TimeoutExpired:
    pass
  failed = [p for p in processes if p.poll() is None or p.returncode != 0]
  for p in processes:
    _kill(p)
  if failed:
    outputs = [p.stdout.read().decode(errors="replace")[-3000:] if p.stdout else "" for p in failed]
    pytest.fail("subprocess failed or timed out:\n" + "\n-----\n".join(outputs))


def _initial_checkpoint(path):
  import tensorflow as tf
  tf.random.set_seed(11)
  model = _model_class()()
  model(tf.zeros([2, 32, 4]), is_training=False)
  return tf.train.Checkpoint(model=model).write(str(path))


def test_same_loss_gradients_and_training_under_every_strategy(tmp_path):
  init = _initial_checkpoint(tmp_path / "init")
  runs = {}
  for mode in ("none", "mirrored"):
    out = tmp_path / f"{mode}.npz"
    _finish([_spawn(["strategy", mode, out, init, tmp_path / f"run_{mode}"])])
    runs[mode] = dict(np.load(out))
  ports = _free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  workers = [
      _spawn(["strategy", "multiworker", tmp_path / f"worker{i}.npz", init, tmp_path / "run_mw"],
             {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
      for i in range(2)]
  _finish(workers)
  for i in range(2):
    runs[f"worker{i}"] = dict(np.load(tmp_path / f"worker{i}.npz"))

  reference = runs["none"]
  assert str(runs["mirrored"]["cls"]) == "Replicator" and int(runs["mirrored"]["replicas"]) == 2
  assert "MirroredStrategy with 2 replicas keeps mirrored variables" in str(
      runs["mirrored"]["rejected"])
  assert str(runs["worker0"]["cls"]) == "MultiWorkerReplicator"
  assert [int(runs[f"worker{i}"]["workers"]) for i in range(2)] == [2, 2]
  assert [bool(runs[f"worker{i}"]["chief"]) for i in range(2)] == [True, False]
  grads = sorted(k for k in reference if k.startswith("grad_"))
  variables = sorted(k for k in reference if k.startswith("var_"))
  assert len(grads) == 8 and len(variables) > len(grads)  # BN statistics included
  for name in ("mirrored", "worker0", "worker1"):
    run = runs[name]
    assert float(run["loss"]) == pytest.approx(float(reference["loss"]), rel=1e-5, abs=1e-6)
    for key in grads:
      np.testing.assert_allclose(run[key], reference[key], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(run["train_loss"], reference["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(run["val_loss"], reference["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(run["val_pearson"], reference["val_pearson"], rtol=1e-4)
    assert int(run["best_step"]) == int(reference["best_step"])
    for key in variables:  # weights, BN statistics and counters after 6 updates
      np.testing.assert_allclose(run[key], reference[key], rtol=1e-5, atol=1e-5, err_msg=name)
  # Only the chief wrote into the shared run directory; the other worker left nothing behind.
  files = sorted(p.name for p in (tmp_path / "run_mw").iterdir())
  assert {"checkpoints", "best.json", "metrics.jsonl", "run.json"} <= set(files)
  lines = (tmp_path / "run_mw" / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == len({line for line in lines})  # one writer: no duplicated records
  meta = json.loads((tmp_path / "run_mw" / "run.json").read_text())
  assert meta["strategy"]["num_workers"] == 2 and meta["strategy"]["kind"] == "multiworker"


def test_killed_run_resumes_to_the_same_weights(tmp_path):
  straight = tmp_path / "straight.npz"
  _finish([_spawn(["resume", tmp_path / "run_straight", straight, 0])])

  run_dir = tmp_path / "run_killed"
  index = run_dir / "checkpoints" / "checkpoint"
  with open(tmp_path / "killed.log", "wb") as log:
    victim = _spawn(["resume", run_dir, tmp_path / "unused.npz", 1], log=log)
    deadline = time.monotonic() + TIMEOUT_S
    killed_after = None
    try:
      while time.monotonic() < deadline and victim.poll() is None:
        if index.exists() and 'ckpt-0"' not in index.read_text().splitlines()[0]:
          killed_after = index.read_text().splitlines()[0]
          break
        time.sleep(0.02)
    finally:
      _kill(victim)
  assert killed_after is not None, (tmp_path / "killed.log").read_text()[-3000:]
  assert not (tmp_path / "unused.npz").exists()  # it died before finishing

  resumed = tmp_path / "resumed.npz"
  _finish([_spawn(["resume", run_dir, resumed, 1])])
  a, b = dict(np.load(straight)), dict(np.load(resumed))
  assert int(a["steps"]) == int(b["steps"]) == 32 and int(a["resumed_from"]) == -1
  assert 2 <= int(b["resumed_from"]) < 32, killed_after
  variables = sorted(k for k in a if k.startswith("var_"))
  for key in variables:
    np.testing.assert_array_equal(b[key], a[key], err_msg=key)
  np.testing.assert_array_equal(b["val_pearson"], a["val_pearson"])
  np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-6)
  # The resumed run's log has each record once, steps in order.
  records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
  keys = [(r["step"], r["split"]) for r in records]
  assert len(keys) == len(set(keys)) and [k[0] for k in keys] == sorted(k[0] for k in keys)
  meta = json.loads((run_dir / "run.json").read_text())
  assert meta["status"] == "completed" and meta["deterministic"] is True
  assert [r["step"] for r in meta["resumes"]] == [int(b["resumed_from"])]


if __name__ == "__main__":
  sys.path.insert(0, str(REPO))
  if sys.argv[1] == "strategy":
    _strategy_worker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
  elif sys.argv[1] == "resume":
    _resume_worker(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
  else:
    raise SystemExit(f"unknown mode {sys.argv[1]!r}")
