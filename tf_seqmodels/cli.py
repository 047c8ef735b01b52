"""`tf-seqmodels` command line: models, config, demo, predict.

Every subcommand works through the model registry and the model contract, so it serves any
registered model; configs are the same YAML/JSON files the Python API reads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load_config(model_name: str, config_path: Optional[str], demo: bool):
  from tf_seqmodels.models import get_entry
  entry = get_entry(model_name)
  if config_path:
    return entry.config_class.load(config_path)
  if demo and entry.demo_config is not None:
    return entry.demo_config()
  return entry.config_class()


def _build(model_name: str, config_path: Optional[str], demo: bool, weights: Optional[str],
           reference_weights: Optional[str]):
  from tf_seqmodels.models import build_model
  model = build_model(model_name, _load_config(model_name, config_path, demo))
  if weights:
    from tf_seqmodels.convert import load_checkpoint
    load_checkpoint(model, weights)
  if reference_weights:
    from tf_seqmodels.convert import import_reference_weights
    import_reference_weights(model, reference_weights)
  return model


def _random_inputs(model, batch: int, seed: int):
  """A seeded random one-hot DNA batch of the model's training length (extra channels zero)."""
  import numpy as np
  from tf_seqmodels.data.encoding import one_hot_encode
  length = model.sequence_length
  rng = np.random.default_rng(seed)
  seqs = ["".join(rng.choice(list("ACGT"), length)) for _ in range(batch)]
  x = one_hot_encode(seqs)
  if model.input_channels > 4:
    x = np.concatenate([x, np.zeros(x.shape[:2] + (model.input_channels - 4,), x.dtype)], -1)
  return seqs, x


def _write_predictions(path: str, outputs: dict, names: Sequence[str], attrs: dict) -> None:
  """HDF5 with one dataset per head ([N, ...]) plus `names`; written atomically."""
  import h5py
  import numpy as np
  tmp = path + ".tmp"
  with h5py.File(tmp, "w") as f:
    for head, value in outputs.items():
      f.create_dataset(f"predictions/{head}", data=np.asarray(value), compression="gzip")
    f.create_dataset("names", data=np.array(list(names), dtype=h5py.string_dtype()))
    for key, value in attrs.items():
      f.attrs[key] = value
  os.replace(tmp, path)


def _plot_tracks(path: str, outputs: dict, title: str, max_tracks: int = 3) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  heads = [(k, np.asarray(v)) for k, v in outputs.items() if np.asarray(v).ndim == 3]
  if not heads:
    return
  rows = sum(min(max_tracks, v.shape[-1]) for _, v in heads)
  fig, axes = plt.subplots(rows, 1, figsize=(10, 1.4 * rows), sharex=True, squeeze=False)
  row = 0
  for head, value in heads:
    for track in range(min(max_tracks, value.shape[-1])):
      ax = axes[row, 0]
      ax.fill_between(np.arange(value.shape[1]), value[0, :, track], step="mid", lw=0)
      ax.set_ylabel(f"{head}\n#{track}", rotation=0, ha="right", va="center", fontsize=8)
      row += 1
  axes[-1, 0].set_xlabel("output bin")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def cmd_models(args) -> int:
  from tf_seqmodels.models import available_models, get_entry
  for name in available_models():
    print(f"{name:18s} {get_entry(name).description}")
  return 0


def cmd_config(args) -> int:
  config = _load_config(args.model, None, args.demo)
  if args.output:
    config.save(args.output)
    print(f"wrote {args.output}")
  else:
    sys.stdout.write(config.to_json() + "\n" if args.json else config.to_yaml())
  return 0


def cmd_demo(args) -> int:
  import numpy as np
  from tf_seqmodels.models import num_trainable_parameters
  os.makedirs(args.output_dir, exist_ok=True)
  t0 = time.time()
  model = _build(args.model, args.config, not args.full, args.weights, args.reference_weights)
  model.ensure_built()
  print(f"model {args.model}: {num_trainable_parameters(model):,} trainable parameters, "
        f"input length {model.sequence_length}, built in {time.time() - t0:.1f}s")
  model.config.save(os.path.join(args.output_dir, "config.yaml"))
  names, x = _random_inputs(model, args.batch_size, args.seed)
  t0 = time.time()
  outputs = {k: v.numpy() for k, v in model.predict_on_batch(x).items()}
  elapsed = time.time() - t0
  embedding = model.embed(x, is_training=False).numpy()
  for head, value in outputs.items():
    print(f"  head {head:10s} shape {value.shape}  mean {value.mean():.4f}  "
          f"range [{value.min():.4f}, {value.max():.4f}]")
  print(f"  embedding       shape {embedding.shape}")
  print(f"predicted {len(names)} generated sequence(s) in {elapsed:.2f}s")
  h5_path = os.path.join(args.output_dir, "predictions.h5")
  _write_predictions(h5_path, {**outputs, "embedding": embedding},
                     [f"random_seed{args.seed}_{i}" for i in range(len(names))],
                     {"model": args.model, "config": model.config.to_json()})
  png_path = os.path.join(args.output_dir, "predictions.png")
  _plot_tracks(png_path, outputs, f"{args.model}: predictions on a generated sequence "
               f"(seed {args.seed}; "
               f"{'loaded weights' if args.weights or args.reference_weights else 'untrained weights'})")
  print(f"wrote {h5_path}, {png_path} and config.yaml")
  if not np.all(np.isfinite(embedding)):
    print("error: non-finite outputs", file=sys.stderr)
    return 1
  return 0


def _read_fasta(path: str) -> tuple[list[str], list[str]]:
  if not os.path.exists(path):
    raise FileNotFoundError(f"FASTA file not found: {path}")
  names, seqs, chunks = [], [], []
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line.startswith(">"):
        if names:
          seqs.append("".join(chunks))
        names.append(line[1:].split()[0] if len(line) > 1 else f"record{len(names)}")
        chunks = []
      elif line:
        if not names:
          raise ValueError(f"{path}: sequence data before the first '>' header")
        chunks.append(line)
  if names:
    seqs.append("".join(chunks))
  if not names:
    raise ValueError(f"{path}: no FASTA records")
  return names, seqs


def cmd_predict(args) -> int:
  import numpy as np
  from tqdm import tqdm
  from tf_seqmodels.data.encoding import SequenceError, one_hot_encode
  model = _build(args.model, args.config, False, args.weights, args.reference_weights)
  names, seqs = _read_fasta(args.fasta)
  lengths = {len(s) for s in seqs}
  if len(lengths) != 1:
    raise SequenceError(f"{args.fasta}: all records must have the same length, got {sorted(lengths)}")
  model.check_length(lengths.pop())
  chunks: dict[str, list] = {}
  for start in tqdm(range(0, len(seqs), args.batch_size), desc="predict", unit="batch"):
    x = one_hot_encode(seqs[start:start + args.batch_size])
    for head, value in model.predict_on_batch(x).items():
      chunks.setdefault(head, []).append(value.numpy())
  outputs = {k: np.concatenate(v) for k, v in chunks.items()}
  _write_predictions(args.output, outputs, names,
                     {"model": args.model, "config": model.config.to_json()})
  print(f"wrote predictions for {len(names)} sequences to {args.output}: "
        + ", ".join(f"{k} {v.shape}" for k, v in outputs.items()))
  return 0


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="tf-seqmodels", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser("models", help="list registered models")
  p.set_defaults(func=cmd_models)

  p = sub.add_parser("config", help="print or write a model's config (YAML/JSON)")
  p.add_argument("model")
  p.add_argument("--demo", action="store_true", help="the small demo config instead of the published one")
  p.add_argument("--json", action="store_true")
  p.add_argument("-o", "--output", help="write to this .yaml/.json file")
  p.set_defaults(func=cmd_config)

  def model_args(p, demo: bool):
    p.add_argument("--model", default="enformer", help="registered model name (see `models`)")
    p.add_argument("--config", help="model config file (.yaml/.json); default: "
                   + ("the model's small demo config" if demo else "the published config"))
    p.add_argument("--weights", help="checkpoint written by tf-seqmodels (prefix or directory)")
    p.add_argument("--reference-weights",
                   help="weights in the reference implementation's format (e.g. the published "
                   "Enformer Sonnet checkpoint or SavedModel)")
    p.add_argument("--batch-size", type=int, default=1 if demo else 4)

  p = sub.add_parser("demo", help="build a model and predict on a generated sequence")
  model_args(p, demo=True)
  p.add_argument("--full", action="store_true", help="use the published full-size config")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--output-dir", default="demo_output")
  p.set_defaults(func=cmd_demo)

  p = sub.add_parser("predict", help="predict every record of a FASTA file -> HDF5")
  model_args(p, demo=False)
  p.add_argument("--fasta", required=True, help="one input sequence per record")
  p.add_argument("--output", required=True, help="output .h5")
  p.set_defaults(func=cmd_predict)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = make_parser().parse_args(argv)
  try:
    return args.func(args)
  except (FileNotFoundError, ValueError) as e:  # ConfigError, SequenceError, WeightImportError
    print(f"tf-seqmodels {args.command}: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
