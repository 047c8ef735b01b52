"""Distribution strategies for the trainer: one factory for CPU, GPUs, workers and TPU.

    info = make_strategy(StrategyConfig(kind="mirrored"))      # or make_strategy("tpu", tpu="local")
    with info.strategy.scope():
      model, optimizer = build_model(...), AdamW(...)
    Trainer(model, task, optimizer, strategy=info, ...)

Kinds (all keep variables *replica-local*, so each replica applies the same all-reduced
update with a Sonnet-style optimizer, `optimizer.apply(gradients, variables)`):

    default      no strategy: CPU or one GPU (`tf.distribute.get_strategy()`)
    mirrored     `snt.distribute.Replicator` over the local GPUs (or logical CPU devices)
    multiworker  `MultiWorkerReplicator`: MultiWorkerMirroredStrategy (TF_CONFIG cluster) with
                 the Replicator's replica-local variables
    tpu          `snt.distribute.TpuReplicator` on a TPUClusterResolver

Plain `tf.distribute.MirroredStrategy` / `MultiWorkerMirroredStrategy` create mirrored
variables that refuse replica-context updates from Sonnet optimizers and from BatchNorm
moving averages; `describe_strategy` rejects them with more than one replica.

One strategy per process: collectives of a second strategy conflict with the first; logical
CPU devices (`configure_logical_devices`) and the multi-worker strategy (which reads
TF_CONFIG and sets up the collective runtime) must come before TensorFlow runs its first op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from typing import Any, Literal, Optional, Union
from urllib.parse import urlparse

import sonnet as snt
import tensorflow as tf
from sonnet.src.distribute.replicator import replica_local_creator

from tf_seqmodels.config import Config, ConfigError

STRATEGY_KINDS = ("default", "mirrored", "multiworker", "tpu")

class StrategyError(RuntimeError):
  """A strategy cannot be created here (devices, cluster or TPU unreachable, wrong order)."""

@dataclasses.dataclass(frozen=True)
class StrategyConfig(Config):
  """How to distribute training.

  Attributes:
    kind: one of STRATEGY_KINDS.
    tpu: TPU to connect to ("local" on a Cloud TPU VM, a TPU name on GCE, or
      "grpc://host:8470"); required for kind "tpu".
    devices: "mirrored" only: device names; None = every local GPU, or every logical CPU
      device when there is no GPU.
    cpu_devices: >= 2 splits the host CPU into this many logical devices first (to exercise
      "mirrored" on a CPU machine); must take effect before TensorFlow initialises.
    communication: collective implementation for "multiworker" ("ring" on CPU, "nccl" on
      GPUs, "auto" lets TensorFlow choose).
    collective_timeout_s: "multiworker": fail a collective after this many seconds instead
      of blocking forever when a worker dies (None = no timeout).
    connect_timeout_s: "tpu" with a grpc:// address: how long to probe the address before
      reporting it unreachable (TensorFlow itself would wait indefinitely).
  """

  kind: Literal["default", "mirrored", "multiworker", "tpu"] = "default"
  tpu: Optional[str] = None
  devices: Optional[tuple[str, ...]] = None
  cpu_devices: int = 0
  communication: Literal["auto", "ring", "nccl"] = "auto"
  collective_timeout_s: Optional[float] = None
  connect_timeout_s: float = 10.0

  def validate(self) -> None:
    if self.kind not in STRATEGY_KINDS:
      raise ConfigError(f"StrategyConfig.kind must be one of {STRATEGY_KINDS}, got {self.kind!r}")
    if self.kind == "tpu" and not self.tpu:
      raise ConfigError("StrategyConfig: kind 'tpu' needs `tpu` (--tpu NAME): 'local' on a Cloud "
                        "TPU VM, the TPU name on GCE, or grpc://host:8470")
    if self.kind != "tpu" and self.tpu:
      raise ConfigError(f"StrategyConfig: `tpu` is only used with kind 'tpu', got kind {self.kind!r}")
    if self.devices is not None and self.kind != "mirrored":
      raise ConfigError("StrategyConfig: `devices` is only used with kind 'mirrored'")
    if self.cpu_devices < 0 or self.cpu_devices == 1:
      raise ConfigError(f"StrategyConfig.cpu_devices must be 0 or >= 2, got {self.cpu_devices}")
    if self.collective_timeout_s is not None and self.collective_timeout_s <= 0:
      raise ConfigError("StrategyConfig.collective_timeout_s must be positive or null")
    if self.connect_timeout_s <= 0:
      raise ConfigError("StrategyConfig.connect_timeout_s must be positive")

class MultiWorkerReplicator(tf.distribute.MultiWorkerMirroredStrategy):
  """MultiWorkerMirroredStrategy with `snt.distribute.Replicator`'s replica-local variables.

  Inside `scope()` new variables default to ON_READ synchronisation with ONLY_FIRST_REPLICA
  aggregation, exactly as under the Replicator: every replica (on every worker) owns a copy
  and updates it in replica context. Initial values are broadcast from worker 0 by the base
  strategy, so the copies start equal and stay equal when every replica applies the same
  all-reduced gradients.
  """

  @contextlib.contextmanager
  def scope(self):
    with contextlib.ExitStack() as stack:
      stack.enter_context(super().scope())
      stack.enter_context(tf.variable_creator_scope(replica_local_creator))
      yield


@dataclasses.dataclass
class StrategyInfo:
  """A strategy plus what the trainer needs to know about it.

  Attributes:
    strategy: the tf.distribute strategy (enter `strategy.scope()` to create variables).
    kind: "default", "mirrored", "multiworker" or "tpu".
    num_replicas: replicas in sync (all workers).
    num_workers: processes in the cluster (1 unless multiworker).
    worker_index: this process's task index (0 unless multiworker).
    is_chief: whether this process writes checkpoints, logs and TensorBoard events.
    devices: the local replica devices.
  """

  strategy: tf.distribute.Strategy
  kind: str
  num_replicas: int
  num_workers: int = 1
  worker_index: int = 0
  is_chief: bool = True
  devices: tuple[str, ...] = ()

  @property
  def is_tpu(self) -> bool:
    """TPU steps run only inside tf.function (no eager mode) and need static shapes."""
    return self.kind == "tpu"

  @property
  def distributed(self) -> bool:
    return self.kind != "default"

  def metadata(self) -> dict[str, Any]:
    """JSON-able description for run metadata."""
    return {"kind": self.kind, "class": type(self.strategy).__name__,
            "num_replicas": self.num_replicas, "num_workers": self.num_workers,
            "worker_index": self.worker_index, "is_chief": self.is_chief,
            "devices": list(self.devices)}

def configure_logical_devices(count: int, device_type: str = "CPU") -> list[str]:
  """Splits the first physical `device_type` device into `count` logical devices.

  Must run before TensorFlow initialises its runtime (before any op or device listing of
  logical devices); a second call asking for the same split is a no-op.

  Returns:
    The logical device names, e.g. ["/device:CPU:0", "/device:CPU:1"].

  Raises:
    StrategyError: no such device, or the runtime is already initialised with another split.
  """
  if count < 1:
    raise StrategyError(f"count must be >= 1, got {count}")
  physical = tf.config.list_physical_devices(device_type)
  if not physical:
    raise StrategyError(f"no physical {device_type} device to split into {count} logical devices")
  current = tf.config.get_logical_device_configuration(physical[0])
  if current is not None and len(current) == count:
    return [d.name for d in tf.config.list_logical_devices(device_type)][:count]
  try:
    tf.config.set_logical_device_configuration(
        physical[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
  except RuntimeError as e:
    raise StrategyError(
        f"cannot split the {device_type} into {count} logical devices: TensorFlow is already "
        f"initialised ({e}). Configure devices first thing in the process, before any "
        f"TensorFlow op runs (one strategy per process).") from None
  return [d.name for d in tf.config.list_logical_devices(device_type)][:count]

def _communication(name: str, timeout: Optional[float]):
  impl = {"auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
          "ring": tf.distribute.experimental.CommunicationImplementation.RING,
          "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL}[name]
  return tf.distribute.experimental.CommunicationOptions(implementation=impl,
                                                         timeout_seconds=timeout)

def _check_tf_config() -> dict:
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    return {}
  try:
    parsed = json.loads(raw)
  except json.JSONDecodeError as e:
    raise StrategyError(f"TF_CONFIG is not valid JSON ({e}): {raw[:200]!r}") from None
  cluster, task = parsed.get("cluster"), parsed.get("task")
  if not isinstance(cluster, dict) or not isinstance(task, dict):
    raise StrategyError('TF_CONFIG needs {"cluster": {"worker": ["host:port", ...]}, '
                        f'"task": {{"type": "worker", "index": i}}}}, got {raw[:200]!r}')
  kind, index = task.get("type"), task.get("index")
  if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
    raise StrategyError(f"TF_CONFIG task {task} is not in its cluster {cluster}")
  return parsed

def _probe(address: str, timeout: float) -> None:
  """Raises StrategyError unless host:port of a grpc:// address accepts a TCP connection."""
  parsed = urlparse(address)
  host, port = parsed.hostname, parsed.port
  if not host or not port:
    raise StrategyError(f"TPU address {address!r} must look like grpc://host:port")
  try:
    with socket.create_connection((host, port), timeout=timeout):
      pass
  except OSError as e:
    raise StrategyError(f"cannot reach the TPU worker at {host}:{port} within {timeout:g} s "
                        f"({e}); check the address and that the TPU is running") from None

def _tpu_strategy(config: StrategyConfig) -> tf.distribute.Strategy:
  name = config.tpu
  hint = ("pass --tpu local on a Cloud TPU VM, the TPU's name on a GCE VM in its zone, or "
          "grpc://host:8470 for a TPU node")
  if name.startswith("grpc://"):
    _probe(name, config.connect_timeout_s)
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, tf.errors.OpError, OSError) as e:
    # URLError (an OSError) = the name could not be resolved through the Cloud TPU API;
    # NotFoundError = connected, but the cluster has no TPU devices.
    message = str(e).splitlines()[0][:300]
    raise StrategyError(f"could not connect to TPU {name!r}: {type(e).__name__}: {message}. "
                        f"{hint}.") from None
  return snt.distribute.TpuReplicator(resolver)

def make_strategy(config: Union[StrategyConfig, str, None] = None, **overrides) -> StrategyInfo:
  """Builds the strategy named by `config` (a StrategyConfig or its kind) and describes it.

  Examples: `make_strategy()`, `make_strategy("mirrored", cpu_devices=2)`,
  `make_strategy("tpu", tpu="local")`.

  Raises:
    ConfigError: an invalid configuration.
    StrategyError: the devices, cluster or TPU are not available, with what to do about it.
  """
  if config is None or isinstance(config, str):
    config = StrategyConfig(kind=config or "default", **overrides)
  elif overrides:
    config = config.replace(**overrides)
  if config.cpu_devices:
    configure_logical_devices(config.cpu_devices, "CPU")
  if config.kind == "default":
    strategy = tf.distribute.get_strategy()
  elif config.kind == "mirrored":
    devices = list(config.devices) if config.devices else None
    if devices is None and not tf.config.list_physical_devices("GPU"):
      devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = snt.distribute.Replicator(devices=devices)
  elif config.kind == "multiworker":
    _check_tf_config()
    communication = config.communication
    if communication == "auto" and not tf.config.list_physical_devices("GPU"):
      communication = "ring"  # the only CPU implementation; AUTO picks it too, say so explicitly
    strategy = MultiWorkerReplicator(
        communication_options=_communication(communication, config.collective_timeout_s))
  else:
    strategy = _tpu_strategy(config)
  return describe_strategy(strategy)

def describe_strategy(strategy: Optional[tf.distribute.Strategy] = None) -> StrategyInfo:
  """StrategyInfo for an existing strategy (None = the current one).

  Raises:
    StrategyError: a multi-replica strategy that does not keep variables replica-local
      (plain MirroredStrategy / MultiWorkerMirroredStrategy / TPUStrategy).
  """
  strategy = strategy or tf.distribute.get_strategy()
  replicas = int(strategy.num_replicas_in_sync)
  try:
    devices = tuple(strategy.extended.worker_devices)
  except (AttributeError, RuntimeError):  # the default strategy has no device list
    devices = ()
  if isinstance(strategy, snt.distribute.TpuReplicator):
    kind = "tpu"
  elif isinstance(strategy, MultiWorkerReplicator):
    kind = "multiworker"
  elif isinstance(strategy, snt.distribute.Replicator):
    kind = "mirrored"
  elif replicas == 1 and not isinstance(strategy, tf.distribute.TPUStrategy):
    kind = "default"
  else:
    raise StrategyError(
        f"{type(strategy).__name__} with {replicas} replicas keeps mirrored variables, which "
        f"Sonnet-style optimizers and BatchNorm statistics cannot update from a replica; use "
        f"training.make_strategy (snt.distribute.Replicator, MultiWorkerReplicator or "
        f"snt.distribute.TpuReplicator)")
  workers, index, chief = 1, 0, True
  resolver = getattr(strategy, "cluster_resolver", None)
  if kind == "multiworker" and resolver is not None:
    cluster = resolver.cluster_spec().as_dict()
    workers = max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))
    task_type, index = resolver.task_type, int(resolver.task_id or 0)
    chief = (task_type in (None, "chief")
             or (task_type == "worker" and index == 0 and "chief" not in cluster))
  return StrategyInfo(strategy, kind, replicas, workers, index, chief, devices)
