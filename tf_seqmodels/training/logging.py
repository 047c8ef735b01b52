"""What a training run writes besides checkpoints: metrics logs, TensorBoard, metadata, progress.

Layout under the run directory (only the chief process writes):

    run.json        run metadata: config, versions, seed, strategy, determinism flag, status,
                    resumes (rewritten atomically on every change)
    metrics.jsonl   one JSON record per line: {"step", "epoch", "split", "time", <name>: value}
    metrics.csv     the same values in long form: step,epoch,split,name,value,time
    tensorboard/    scalars "<split>/<name>" (written with tf.summary.write: the tensorboard
                    package is needed only to view them)

On resume, `MetricsLog.truncate(step)` rewrites both logs without the records after the
restored checkpoint (and without a line cut short by a kill: only that line is dropped, the
records before and after it are kept), so the logs always describe the run that the
checkpoints continue. TensorBoard event files cannot be edited: after a
resume TensorBoard shows the steps between the checkpoint and the kill twice.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import platform
import socket
import sys
import time
from typing import Any, Iterable, Mapping, Optional

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tf_seqmodels.config import atomic_write_text

RUN_METADATA = "run.json"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
_CSV_FIELDS = ("step", "epoch", "split", "name", "value", "time")


def package_versions() -> dict[str, str]:
  """Versions of the software that determines a run's numerics."""
  import numpy as np
  import sonnet as snt
  import tf_seqmodels
  return {"python": platform.python_version(), "tensorflow": tf.__version__,
          "sonnet": snt.__version__, "numpy": np.__version__,
          "tf_seqmodels": tf_seqmodels.__version__}


def _json_value(value: Any) -> Any:
  """Floats that JSON cannot hold (NaN, Inf) become strings, so every line stays valid JSON."""
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


def write_json(path: str, data: Mapping[str, Any]) -> None:
  """Atomic JSON write (temporary file + rename)."""
  atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


class RunMetadata:
  """`run.json`: created at the start of a run, updated (atomically) as it progresses."""

  def __init__(self, run_dir: Optional[str], enabled: bool = True):
    self.path = os.path.join(run_dir, RUN_METADATA) if run_dir else None
    self.enabled = enabled and run_dir is not None
    self.data: dict[str, Any] = {}
    if self.path and os.path.exists(self.path):
      with open(self.path) as f:
        self.data = json.load(f)

  def start(self, metadata: Mapping[str, Any], resumed_step: Optional[int]) -> None:
    """Records a (re)start: the first start keeps `metadata`; a resume appends to "resumes"."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if not self.data:
      self.data = {"created": now, **metadata, "resumes": []}
    else:
      # A resumed run keeps its original record; what changed (e.g. versions) is logged.
      self.data.setdefault("resumes", []).append(
          {"time": now, "step": resumed_step, "versions": metadata.get("versions"),
           "strategy": metadata.get("strategy"), "command": metadata.get("command")})
    self.data.update(status="running", updated=now, host=socket.gethostname())
    self._write()

  def update(self, **fields: Any) -> None:
    self.data.update(fields, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    self._write()

  def _write(self) -> None:
    if self.enabled:
      write_json(self.path, self.data)


class MetricsLog:
  """Appends metric records to metrics.jsonl and metrics.csv; rebuilds history from them."""

  def __init__(self, run_dir: Optional[str], enabled: bool = True):
    self.jsonl = os.path.join(run_dir, METRICS_JSONL) if run_dir else None
    self.csv = os.path.join(run_dir, METRICS_CSV) if run_dir else None
    self.enabled = enabled and run_dir is not None
    # Every worker reads the chief's log (a shared filesystem), so histories agree.
    self.records: list[dict[str, Any]] = self._read()

  def _read(self) -> list[dict[str, Any]]:
    if self.jsonl is None or not os.path.exists(self.jsonl):
      return []
    records, torn = [], 0
    with open(self.jsonl) as f:
      for line in f:
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          record = None
        if not (isinstance(record, dict) and isinstance(record.get("step"), int)):
          torn += 1  # a line cut short by a kill (or damaged): only it is dropped
          continue
        records.append(record)
    if torn:
      logging.getLogger(__name__).warning(
          "%s: dropped %d unreadable line(s); %d records kept", self.jsonl, torn, len(records))
    return records

  def truncate(self, step: int) -> None:
    """Keeps the records up to and including `step`, rewriting both files atomically."""
    self.records = [r for r in self.records if r["step"] <= step]
    if not self.enabled:
      return
    atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in self.records))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_FIELDS)
    for record in self.records:
      writer.writerows(self._csv_rows(record))
    atomic_write_text(self.csv, buffer.getvalue())

  @staticmethod
  def _csv_rows(record: Mapping[str, Any]) -> Iterable[list]:
    for name, value in record.items():
      if name not in ("step", "epoch", "split", "time"):
        yield [record["step"], record.get("epoch"), record["split"], name, value, record["time"]]

  def append(self, step: int, split: str, values: Mapping[str, float],
             epoch: Optional[int] = None) -> dict[str, Any]:
    record = {"step": int(step), "epoch": epoch, "split": split, "time": round(time.time(), 3),
              **{k: _json_value(float(v)) for k, v in values.items()}}
    self.records.append(record)
    if self.enabled:
      new_csv = not os.path.exists(self.csv)
      with open(self.jsonl, "a") as f:
        f.write(json.dumps(record) + "\n")
      with open(self.csv, "a", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        if new_csv:
          writer.writerow(_CSV_FIELDS)
        writer.writerows(self._csv_rows(record))
    return record

  def series(self, split: str, name: str) -> list[tuple[int, float]]:
    """[(step, value)] of one metric, in log order."""
    return [(r["step"], float(r[name])) for r in self.records
            if r["split"] == split and name in r]


# What tensorboard.summary.v2.scalar attaches: TensorBoard's scalars plugin reads these
# events. Writing them with tf.summary.write keeps the tensorboard package optional.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()


class TensorBoard:
  """Scalars through tf.summary.write (event files under run_dir/tensorboard, readable by
  TensorBoard's scalars dashboard); a no-op when disabled."""

  def __init__(self, run_dir: Optional[str], enabled: bool = True):
    self.enabled = enabled and run_dir is not None
    self._writer = (tf.summary.create_file_writer(os.path.join(run_dir, TENSORBOARD_DIR))
                    if self.enabled else None)

  def scalars(self, step: int, split: str, values: Mapping[str, float]) -> None:
    if self._writer is None:
      return
    # Written from the host in the default (cross-replica) context: never inside a step.
    with self._writer.as_default(step=int(step)):
      for name, value in values.items():
        tf.summary.write(f"{split}/{name}", tf.constant(float(value), tf.float32),
                         metadata=_SCALAR_METADATA)
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


class Progress:
  """A tqdm bar over training steps with loss, examples/s and an ETA; disabled off the chief."""

  def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train"):
    import tqdm
    self._bar = tqdm.tqdm(total=total, initial=initial, disable=not enabled, desc=desc,
                          unit="step", dynamic_ncols=True, leave=True, file=sys.stderr)

  def update(self, steps: int, **postfix: Any) -> None:
    self._bar.update(steps)
    if postfix:
      self._bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v)
                             for k, v in postfix.items()}, refresh=False)

  def write(self, message: str) -> None:
    if not self._bar.disable:
      self._bar.write(message)

  def close(self) -> None:
    self._bar.close()


def run_metadata(config: Optional[Mapping[str, Any]], seed: int, deterministic: bool,
                 strategy: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
  """The metadata dict recorded in run.json at the start of a run."""
  return {"config": dict(config) if config is not None else None, "versions": package_versions(),
          "seed": seed, "deterministic": deterministic, "strategy": dict(strategy),
          "command": list(sys.argv), **extra}
