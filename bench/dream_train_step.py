"""DREAM-CNN / RNN / Attn: train-step time and inference throughput, optionally against PyTorch.

    python bench/dream_train_step.py --models dream_cnn dream_rnn --batch-sizes 1024 64
    python bench/dream_train_step.py --reference /path/to/random-promoter-dream-challenge-2022

One train step = forward + backward + AdamW update in training mode with the soft-bin KL loss
and the OneCycle schedule (the step `training.trainer.Trainer.fit` runs); inference = forward
with is_training=False through the package's inference path (`analysis.inference`). Each
(framework, model, batch) runs in its own subprocess, so its peak RSS is its own. Inputs are random one-hot sequences (6 x 150, the yeast
encoding) with random bins. Each timing is the median over `--repeats` after `--warmup`
untimed calls (tracing, slot creation), reported as wall seconds and process CPU seconds:
on a shared machine CPU-seconds / threads is the steadier figure; `system_s` is the kernel's
share of them. Host memory grows about linearly with the batch (DREAM-CNN train step peak RSS:
3.6 GiB at batch 256, 11.1 GiB at 1024 on CPU).

`--reference` points at a local checkout of de-Boer-Lab/random-promoter-dream-challenge-2022
(only its model modules are imported: needs torch, numpy, pandas); the same steps are timed
with the Prix Fixe PyTorch models as the notebook builds them (PyTorch AdamW + OneCycleLR,
`PrixFixeNet.train_step`) on the same inputs, and TF/PyTorch ratios are printed. Nothing of
the reference is copied into this repository.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

# Run from a checkout without installing: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = ("dream_cnn", "dream_rnn", "dream_attn")
LENGTH, CHANNELS, BINS = 150, 6, 18


def _parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
  parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1024, 64],
                      help="batch sizes to time (the reference trains at 1024)")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement")
  parser.add_argument("--warmup", type=int, default=1, help="untimed calls after the first")
  parser.add_argument("--threads", type=int, default=2,
                      help="intra-op threads for TF and torch (0 = library default)")
  parser.add_argument("--skip-train", action="store_true", help="time inference only")
  parser.add_argument("--reference", default=None,
                      help="path to a local random-promoter-dream-challenge-2022 checkout")
  parser.add_argument("--frameworks", nargs="+", default=None, choices=("tf", "torch"),
                      help="what to time (default: tf, plus torch when --reference is given)")
  parser.add_argument("--json", default=None, help="also write the results to this JSON file")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--xla-train", action="store_true",
                      help="XLA-compile the TF train step (TrainerConfig.jit_compile)")
  parser.add_argument("--one", help=argparse.SUPPRESS)  # child: framework:model:batch
  return parser.parse_args(argv)


def _soft_labels(bins: np.ndarray) -> np.ndarray:
  """The DREAM soft labels (tf_seqmodels.data.dream.soft_labels) without importing TF, so the
  PyTorch-only mode runs where TF is not installed."""
  edges = np.arange(1, BINS, dtype=np.float64)
  z = (edges[None, :] - (bins[:, None] + 0.5)) / 0.5
  cdf = 0.5 * np.vectorize(math.erfc)(-z / math.sqrt(2.0))
  cdf = np.concatenate([np.zeros((len(bins), 1)), cdf, np.ones((len(bins), 1))], axis=1)
  return (cdf[:, 1:] - cdf[:, :-1]).astype(np.float32)


def _inputs(batch: int, seed: int):
  """Random yeast-encoded batch: x [B, 150, 6] (AGCT one-hot, rev, singleton), bins, soft labels."""
  rng = np.random.default_rng(seed)
  x = np.zeros((batch, LENGTH, CHANNELS), np.float32)
  x[np.arange(batch)[:, None], np.arange(LENGTH)[None, :], rng.integers(0, 4, (batch, LENGTH))] = 1
  x[..., 4] = rng.integers(0, 2, (batch, 1))
  x[..., 5] = rng.integers(0, 2, (batch, 1))
  bins = rng.integers(0, BINS, batch).astype(np.float32)
  return x, bins, _soft_labels(bins)


def _time(fn, repeats: int, warmup: int) -> dict:
  fn()  # first call: tracing / variable and slot creation
  for _ in range(warmup):
    fn()
  walls, cpus, systems = [], [], []
  for _ in range(repeats):
    wall, cpu, before = time.perf_counter(), time.process_time(), os.times()
    fn()
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
    systems.append(os.times().system - before.system)
  # system_s: the kernel's share of cpu_s (page faults, thread wake-ups), a sign of allocator
  # or threading trouble when it is more than a few percent.
  return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
          "system_s": statistics.median(systems)}


def bench_tf(name: str, batch: int, args) -> dict:
  import tensorflow as tf
  from tf_seqmodels.analysis.inference import compiled_predictor
  from tf_seqmodels.models import build_model, num_trainable_parameters
  from tf_seqmodels.tasks.dream import DreamSoftBinTask
  from tf_seqmodels.training import DreamTrainingConfig
  from tf_seqmodels.training.trainer import Trainer, TrainerConfig

  tf.random.set_seed(args.seed)
  model = build_model(name)
  x, bins, probs = _inputs(batch, args.seed)
  targets = {"expression": bins, "bin_probs": probs}
  result = {"framework": "tensorflow", "model": name, "batch": batch}
  # The package's inference path (XLA where it wins for the model, bucketed batches).
  predict = compiled_predictor(model)
  result["infer"] = _time(lambda: predict(x), args.repeats, args.warmup)
  result["infer"]["xla"] = predict.jit_compile
  result["params"] = num_trainable_parameters(model)
  if not args.skip_train:
    recipe = DreamTrainingConfig.for_model(name)
    trainer = Trainer(model, DreamSoftBinTask(), recipe.make_optimizer(steps_per_epoch=1000),
                      config=TrainerConfig(progress=False, tensorboard=False,
                                           jit_compile=args.xla_train))
    data = tf.data.Dataset.from_tensors((tf.constant(x), tf.nest.map_structure(
        tf.constant, targets))).repeat()
    steps = trainer.train_steps(data)  # the compiled step `Trainer.fit` runs, one per next()
    result["train"] = _time(lambda: next(steps), args.repeats, args.warmup)
    result["train"]["xla"] = args.xla_train
  return result


def _import_prixfixe_blocks(root: str) -> dict:
  """Imports only the Prix Fixe model modules from a checkout at `root`.

  The packages' `__init__`s also import data processors and trainers (scipy, tqdm, Bio);
  empty stand-in packages keep those out, so torch, numpy and pandas suffice.
  """
  import importlib
  import types
  if not os.path.isdir(os.path.join(root, "prixfixe", "prixfixe")):
    raise ImportError(f"no prixfixe/prixfixe package under {root}")
  for package in ("prixfixe", "prixfixe.prixfixe", "prixfixe.autosome", "prixfixe.bhi",
                  "prixfixe.unlockdna"):
    module = types.ModuleType(package)
    module.__path__ = [os.path.join(root, *package.split("."))]
    sys.modules[package] = module
  base = sys.modules["prixfixe.prixfixe"]
  for module, attr in (("first_layers_block", "FirstLayersBlock"), ("coreblock", "CoreBlock"),
                       ("final_layers_block", "FinalLayersBlock"),
                       ("prix_fixe_net", "PrixFixeNet")):
    setattr(base, attr, getattr(importlib.import_module(f"prixfixe.prixfixe.{module}"), attr))
  names = {"AutosomeFirstLayersBlock": "autosome.first_layers_block",
           "AutosomeCoreBlock": "autosome.coreblock",
           "AutosomeFinalLayersBlock": "autosome.final_layers_block",
           "BHIFirstLayersBlock": "bhi.first_layers_block", "BHICoreBlock": "bhi.coreblock",
           "UnlockDNACoreBlock": "unlockdna.coreblock"}
  blocks = {attr: getattr(importlib.import_module(f"prixfixe.{module}"), attr)
            for attr, module in names.items()}
  blocks["PrixFixeNet"] = base.PrixFixeNet
  return blocks


def bench_torch(name: str, batch: int, args) -> dict:
  """Times the Prix Fixe PyTorch model as the notebook builds and trains it."""
  import torch
  try:
    blocks = _import_prixfixe_blocks(args.reference)
  except ImportError as e:
    raise SystemExit(f"cannot import the Prix Fixe model modules from {args.reference} ({e}); "
                     f"they need torch, numpy and pandas") from None
  AutosomeFirstLayersBlock, AutosomeCoreBlock, AutosomeFinalLayersBlock = (
      blocks["AutosomeFirstLayersBlock"], blocks["AutosomeCoreBlock"],
      blocks["AutosomeFinalLayersBlock"])
  BHIFirstLayersBlock, BHICoreBlock = blocks["BHIFirstLayersBlock"], blocks["BHICoreBlock"]
  UnlockDNACoreBlock, PrixFixeNet = blocks["UnlockDNACoreBlock"], blocks["PrixFixeNet"]

  generator = torch.Generator().manual_seed(2147483647)
  if name == "dream_attn":
    first = AutosomeFirstLayersBlock(in_channels=CHANNELS, out_channels=256, seqsize=LENGTH)
    core = UnlockDNACoreBlock(in_channels=256, out_channels=256, seqsize=LENGTH, n_blocks=4,
                              kernel_size=15, rate=0.1, num_heads=8)
  else:
    first = BHIFirstLayersBlock(in_channels=CHANNELS, out_channels=320, seqsize=LENGTH,
                                kernel_sizes=[9, 15], pool_size=1, dropout=0.2)
    if name == "dream_cnn":
      core = AutosomeCoreBlock(in_channels=320, out_channels=64, seqsize=first.infer_outseqsize())
    else:
      core = BHICoreBlock(in_channels=320, out_channels=320, seqsize=first.infer_outseqsize(),
                          lstm_hidden_channels=320, kernel_sizes=[9, 15], pool_size=1,
                          dropout1=0.2, dropout2=0.5)
  final = AutosomeFinalLayersBlock(in_channels=core.out_channels, seqsize=core.infer_outseqsize())
  model = PrixFixeNet(first=first, core=core, final=final, generator=generator)

  x, bins, probs = _inputs(batch, args.seed)
  x_t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)))  # NCL
  bins_t, probs_t = torch.from_numpy(bins), torch.from_numpy(probs)
  result = {"framework": "torch", "model": name, "batch": batch,
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
  model.eval()

  def infer():
    with torch.no_grad():
      model(x_t).numpy()

  result["infer"] = _time(infer, args.repeats, args.warmup)
  if not args.skip_train:
    max_lr = 0.001 if name == "dream_attn" else 0.005
    optimizer = torch.optim.AdamW(model.parameters(), lr=max_lr / 25, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, div_factor=25.0, steps_per_epoch=1000, epochs=80,
        pct_start=0.3, three_phase=False)
    model.train()

    def train():
      _, loss = model.train_step({"x": x_t.clone(), "y": bins_t, "y_probs": probs_t})
      loss.backward()
      optimizer.step()
      optimizer.zero_grad()
      scheduler.step()
      return loss.item()

    result["train"] = _time(train, args.repeats, args.warmup)
  return result


def _child(args) -> dict:
  """One (framework, model, batch) measurement in this process, with its peak RSS."""
  import resource
  framework, name, batch = args.one.split(":")
  if framework == "tf":
    import tf_seqmodels  # noqa: F401  (first: its allocator setting must precede TF's first op)
  _set_threads(args, framework)
  result = (bench_tf if framework == "tf" else bench_torch)(name, int(batch), args)
  result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  return result


def _set_threads(args, framework: str) -> None:
  if not args.threads:
    return
  os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
  if framework == "tf":
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  else:
    import torch
    torch.set_num_threads(args.threads)


def main(argv=None) -> None:
  import subprocess
  args = _parse_args(argv)
  if args.one:
    print(json.dumps(_child(args)))
    return
  frameworks = args.frameworks or (["tf", "torch"] if args.reference else ["tf"])
  if "torch" in frameworks and not args.reference:
    raise SystemExit("timing PyTorch needs --reference PATH (a random-promoter-dream-challenge-2022 "
                     "checkout)")
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import report
  if "torch" in frameworks:
    import torch  # noqa: F401  (its version goes into the report)
  env = report.environment({"requested": args.threads or "default"})
  results = []
  for name in args.models:
    for batch in args.batch_sizes:
      for framework in frameworks:
        cmd = [sys.executable, os.path.abspath(__file__)] + list(
            argv if argv is not None else sys.argv[1:]) + ["--one", f"{framework}:{name}:{batch}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
          sys.stderr.write(proc.stderr[-4000:])
          raise SystemExit(f"{framework} {name} batch {batch} failed (exit {proc.returncode})")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  measured {framework} {name} batch {batch}", file=sys.stderr, flush=True)
  by = {(r["framework"], r["model"], r["batch"]): r for r in results}
  for r in results:
    other = by.get(("torch", r["model"], r["batch"]))
    if r["framework"] == "tensorflow" and other:
      r["ratio_vs_torch_cpu_s"] = {k: other[k]["cpu_s"] / r[k]["cpu_s"]
                                   for k in ("train", "infer") if k in r and k in other}
      r["ratio_vs_torch_rss"] = r["peak_rss_gib"] / other["peak_rss_gib"]
  tag = "_".join(args.models) + "_b" + "_".join(map(str, args.batch_sizes))
  payload = {"args": {k: v for k, v in vars(args).items() if k != "one"},
             "environment": env, "results": results}
  report.save(f"dream_train_step_{tag}", payload, args.json)
  report.show(payload)


def table(payload: dict):
  """(title, columns, rows, notes) of one results file (printed, and rendered into the README)."""
  a = payload["args"]
  title = (f"DREAM train step and inference (yeast 6 x {LENGTH}, median of {a['repeats']} after "
           f"{a['warmup'] + 1} untimed call(s), {a['threads'] or 'default'} threads)")
  rows = []
  for r in payload["results"]:
    train, infer = r.get("train"), r["infer"]
    ratio = r.get("ratio_vs_torch_cpu_s", {})
    rows.append([r["framework"], r["model"], r["batch"], f"{r['params']:,}",
                 train["cpu_s"] if train else "-", train["wall_s"] if train else "-",
                 f"{train['system_s'] / train['cpu_s']:.0%}" if train and "system_s" in train
                 else "-",
                 infer["cpu_s"], r["batch"] / infer["cpu_s"], r["peak_rss_gib"],
                 f"{ratio['train']:.2f}x" if "train" in ratio else "-",
                 f"{ratio['infer']:.2f}x" if "infer" in ratio else "-",
                 f"{r['ratio_vs_torch_rss']:.2f}x" if "ratio_vs_torch_rss" in r else "-"])
  return title, ["framework", "model", "batch", "params", "train step CPU-s",
                 "train step wall s", "train step system share", "inference CPU-s", "inference seq / CPU-s",
                 "peak RSS GiB", "speed-up vs torch (train)", "speed-up vs torch (infer)",
                 "RSS vs torch"], rows, []

if __name__ == "__main__":
  main()
