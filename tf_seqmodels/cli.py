"""`tf-seqmodels` command line: models, config, demo, predict, train, evaluate, ...

Every subcommand works through the model registry and the model contract, so it serves any
registered model; configs are the same YAML/JSON files the Python API reads. Commands that
read a model take the same `--model` sources (`model_source`). Each subcommand module has
`add_parser(subparsers)`; `main` maps every error to one line and an exit code
(`cli_common`). TensorFlow is imported only inside command bodies, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

from tf_seqmodels import cli_common
from tf_seqmodels.cli_common import nonnegative_int, positive_float, positive_int


def _load_config(model_name: str, config_path: Optional[str], demo: bool):
  from tf_seqmodels.models import get_entry
  entry = get_entry(model_name)
  if config_path:
    return entry.config_class.load(config_path)
  if demo and entry.demo_config is not None:
    return entry.demo_config()
  return entry.config_class()


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


def _demo_model_config():
  """Enformer's architecture at demo size: 96 channels, one transformer layer, max pooling
  (as the reference's training notebook), 4,096-bp inputs -> 24 central 128-bp bins."""
  from tf_seqmodels.models.enformer import EnformerConfig
  return EnformerConfig(channels=96, num_transformer_layers=1, num_heads=4, pooling_type="max",
                        filters_divisible_by=16, sequence_length=4096, target_length=24,
                        dropout_rate=0.1, heads={"tracks": 4})


def _plot_demo_tracks(path: str, title: str, names, coords, predicted, observed, truth) -> None:
  """One panel per track: observed counts (bars), ground truth and prediction (lines)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(len(names), 1, figsize=(10, 1.6 * len(names)), sharex=True,
                           squeeze=False)
  for k, name in enumerate(names):
    ax = axes[k, 0]
    ax.bar(coords, observed[:, k], width=coords[1] - coords[0], color="0.75", label="observed")
    ax.plot(coords, truth[:, k], color="tab:green", lw=1.2, label="ground truth")
    ax.plot(coords, predicted[:, k], color="tab:red", lw=1.2, label="predicted")
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
  axes[0, 0].legend(loc="upper right", fontsize=8, ncol=3)
  axes[-1, 0].set_xlabel("position (bp)")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)


def cmd_demo(args) -> int:
  """Synthetic genome -> train a small Enformer -> evaluate against truth -> plot -> predict."""
  import json
  import numpy as np
  import tensorflow as tf
  from tf_seqmodels.config import atomic_write_text
  from tf_seqmodels.convert import save_checkpoint
  from tf_seqmodels.data.genome import read_chrom_sizes
  from tf_seqmodels.data.intervals import read_fold, tile_regions
  from tf_seqmodels.data.synthetic import (SyntheticConfig, generate_synthetic_dataset,
                                           track_accuracy)
  from tf_seqmodels.data.tracks import (TrackDataConfig, TrackSource, check_bins, load_windows,
                                        track_splits)
  from tf_seqmodels.models import Enformer, EnformerConfig, num_trainable_parameters
  from tf_seqmodels.tasks.tracks import TrackTask, poisson_loss
  from tf_seqmodels.training import Adam, fit, restore_model

  from tf_seqmodels.outputs import check_replaceable, write_output_marker
  check_replaceable(args.output_dir, args.overwrite, "--output-dir")  # never replace others' work
  start = time.time()
  # The model's geometry decides the data windows; a bad config fails before any work.
  config = EnformerConfig.load(args.config) if args.config else _demo_model_config()
  config = config.replace(heads={"tracks": 4})
  data_config = TrackDataConfig(sequence_length=config.sequence_length, bin_size=config.bin_size,
                                target_length=config.target_length, max_shift=3, jitter_bins=4,
                                reverse_complement=True, head="tracks")
  check_bins(data_config, config.output_length(config.sequence_length))
  out = os.path.abspath(args.output_dir)
  os.makedirs(out, exist_ok=True)
  write_output_marker(out, "demo")
  # 1. Data: a synthetic genome with planted JASPAR motifs, tracks, peaks, truth.
  syn_config = SyntheticConfig(seed=args.seed, num_chromosomes=args.chromosomes,
                               chromosome_length=args.chromosome_length)
  try:
    data = generate_synthetic_dataset(os.path.join(out, "data"), syn_config,
                                      overwrite=args.overwrite, progress=not args.quiet)
  except FileExistsError as e:
    print(f"tf-seqmodels demo: error: {e}", file=sys.stderr)
    return 2
  with open(data.manifest) as f:
    manifest = json.load(f)
  print(f"data: {args.chromosomes} x {args.chromosome_length:,} bp synthetic genome, "
        f"{manifest['genes']} genes, {manifest['planted_sites']} planted JASPAR motif sites, "
        f"{manifest['peaks']} peaks -> {data.root} ({time.time() - start:.0f}s)")

  # 2. Model and windows tiling the genome: each target window once, inputs overlapping.
  fold = read_fold(data.fold)
  windows = tile_regions(read_chrom_sizes(data.chrom_sizes), config.sequence_length,
                         stride=data_config.target_bins * data_config.bin_size)
  splits = track_splits(data.fasta, data.tracks, windows, fold, data_config,
                        batch_size=args.batch_size, seed=args.seed, drop_remainder=True)
  tf.random.set_seed(args.seed)  # the initial weights and dropout
  model = Enformer(config)
  model.ensure_built()  # every variable exists before the optimizer sees them
  config.save(os.path.join(out, "config.yaml"))
  print(f"model: Enformer, {num_trainable_parameters(model):,} parameters, "
        f"{config.sequence_length:,} bp -> {data_config.target_bins} x {config.bin_size}-bp bins of "
        f"{', '.join(splits.info['tracks'])}; windows train/valid/test "
        f"{splits.sizes['train']}/{splits.sizes['valid']}/{splits.sizes['test']}")

  # 3. Train (Poisson loss), keeping the epoch with the best validation Pearson r.
  task = TrackTask(["tracks"])
  epochs = max(1, min(args.epochs, args.steps))
  warmup = float(max(1, args.steps // 20))
  peak = args.learning_rate
  optimizer = Adam(learning_rate=lambda step: peak * tf.minimum(  # linear warm-up, then constant
      1.0, tf.cast(step + 1, tf.float32) / warmup))
  run_dir = os.path.join(out, "train")
  if args.overwrite and os.path.isdir(run_dir):
    import shutil
    shutil.rmtree(run_dir)  # the previous demo's run (its data was just regenerated)
  history = fit(model, task, splits.train, optimizer=optimizer, epochs=epochs,
                steps_per_epoch=max(1, args.steps // epochs), validation_data=splits.valid,
                select_best_by="pearson", run_dir=run_dir, seed=args.seed,
                # Without clipping, whether this short run learns or collapses to the mean
                # hinged on rounding (tests/test_synthetic.py); Enformer's recipe clips at 0.2.
                clip_global_norm=1.0, progress=not args.quiet, tensorboard=False)
  if history["best_epoch"] is not None:
    restore_model(model, run_dir, "best")
  print(f"trained {history['steps']} steps in {sum(history['epoch_time']):.0f}s; best epoch "
        f"{history['best_epoch']} (validation pearson {history['best_value'] or float('nan'):.3f})")

  # 4. Evaluate on the held-out test chromosome, against observations and ground truth.
  test = splits.info["windows"]["test"]
  with TrackSource(data.fasta, data.truth_tracks) as source:
    truth = load_windows(source, test.regions, data_config).targets
  predicted = np.concatenate([model.predict_on_batch(x)["tracks"].numpy()
                              for x, _ in test.dataset(args.batch_size)])
  metrics = {"loss": float(np.mean(poisson_loss(test.targets, predicted)))}
  for name, metric in task.make_metrics().items():
    metric.update({"tracks": test.targets}, {"tracks": predicted})
    metrics[name] = metric.result()
  train_mean = splits.info["windows"]["train"].targets.mean(axis=(0, 1))
  accuracy = track_accuracy(predicted, test.targets, truth, train_mean, splits.info["tracks"])
  print(f"test chromosome {', '.join(fold.test)}: loss {metrics['loss']:.4f}, pearson "
        f"{metrics['pearson']:.3f}, pearson_log {metrics['pearson_log']:.3f}")
  print("\n".join(accuracy.lines()))
  atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(
      {"test": metrics, "accuracy": accuracy.to_dict(), "history": history,
       "data": manifest}, indent=2, default=float) + "\n")

  # 5. Plot the test window with the strongest promoter output.
  cage = truth[..., 2:].sum(axis=(1, 2))
  best = int(np.argmax(cage))
  region = test.regions.subset([best])
  t_start = int(region.centre[0]) - config.sequence_length // 2 + data_config.crop_bp
  coords = t_start + config.bin_size * (np.arange(data_config.target_bins) + 0.5)
  png = os.path.join(out, "tracks.png")
  t_end = t_start + data_config.target_bins * config.bin_size
  _plot_demo_tracks(png, f"{region.chrom[0]}:{t_start:,}-{t_end:,} (test chromosome): Enformer "
                    f"predictions vs observed counts",
                    splits.info["tracks"], coords, predicted[best], test.targets[best], truth[best])
  save_checkpoint(model, os.path.join(out, "checkpoint"))

  # 6. Predict from FASTA with the trained weights, as a user would (`tf-seqmodels predict`).
  fasta = os.path.join(out, "test_windows.fa")
  letters = np.frombuffer(b"ACGTN", np.uint8)
  records = [f">{test.regions.chrom[i]}:{test.regions.start[i]}-{test.regions.end[i]}\n"
             f"{letters[test.sequences[i]].tobytes().decode()}\n" for i in range(min(16, len(test)))]
  atomic_write_text(fasta, "".join(records))
  _predict_fasta(model, "enformer", fasta, os.path.join(out, "predictions.h5"), args.batch_size)
  print(f"wrote {png}, metrics.json, config.yaml, checkpoint/ and predictions.h5 to {out} "
        f"(total {time.time() - start:.0f}s)")
  print(f"next: tf-seqmodels predict --model {out}/checkpoint --config {out}/config.yaml "
        f"--fasta YOUR.fa --output predictions.h5")
  if not np.all(np.isfinite(predicted)):
    print("error: non-finite predictions", file=sys.stderr)
    return 1
  return 0


def _predict_fasta(model, model_name: str, fasta: str, output: str, batch_size: int) -> None:
  """Predicts every record of `fasta` with a contract model -> HDF5 (as `tf-seqmodels predict`)."""
  from tf_seqmodels.analysis.inference import AnalysisModel
  from tf_seqmodels.cli_predict import predict_sequences, read_fasta, write_predictions
  names, seqs = read_fasta(fasta)
  outputs = predict_sequences(AnalysisModel(model, name=model_name), names, seqs, where=fasta,
                              batch_size=batch_size, reverse_complement=False, progress=False)
  write_predictions(output, outputs, names, {"model": model_name, "config": model.config.to_json()})
  print(f"wrote predictions for {len(names)} sequences to {output}: "
        + ", ".join(f"{k} {v.shape}" for k, v in outputs.items()))


def cmd_train(args) -> int:
  """Trains the model/task/data of a training config (`training.run_config.TrainConfig`)."""
  from tf_seqmodels.training.run_config import TrainConfig, run_training
  from tf_seqmodels.training.strategy import StrategyError
  from tf_seqmodels.training.trainer import NonFiniteLossError, TrainingInterrupted
  config = TrainConfig.load(args.config)
  strategy = {k: v for k, v in (("kind", args.strategy), ("tpu", args.tpu)) if v}
  if strategy:
    config = config.replace(strategy=config.strategy.replace(**strategy))
  if args.run_dir:
    config = config.replace(run_dir=args.run_dir)
  try:
    history = run_training(config, resume=args.resume, metadata={"config_file": args.config})
  except (StrategyError, FileExistsError) as e:
    print(f"tf-seqmodels train: error: {e}", file=sys.stderr)
    return 2
  except NonFiniteLossError as e:
    print(f"tf-seqmodels train: stopped: {e}", file=sys.stderr)
    return 3
  except TrainingInterrupted as e:
    print(f"tf-seqmodels train: {e}", file=sys.stderr)
    return 130
  summary = f"trained {history['steps']} steps ({history['stopped']}) into {config.run_dir}"
  if history["best_value"] is not None:
    summary += (f"; best {config.trainer.select_best_by} {history['best_value']:.4g} at step "
                f"{history['best_step']}")
  print(summary)
  return 0


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="tf-seqmodels", description=__doc__.splitlines()[0])
  parser.add_argument("--verbose", action="store_true", help="show TensorFlow's logs and full "
                      "tracebacks (for debugging)")
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser("models", help="list registered models")
  p.set_defaults(func=cmd_models)

  p = sub.add_parser("config", help="print or write a model's config (YAML/JSON)")
  p.add_argument("model")
  p.add_argument("--demo", action="store_true", help="the small demo config instead of the published one")
  p.add_argument("--json", action="store_true")
  p.add_argument("-o", "--output", help="write to this .yaml/.json file")
  p.set_defaults(func=cmd_config)

  p = sub.add_parser("demo", help="generate a synthetic genome from JASPAR motifs, train a small "
                     "Enformer on its tracks, evaluate against the ground truth, plot, predict")
  p.add_argument("--config", help="Enformer config (.yaml/.json); default: a 96-channel, "
                 "one-layer model on 4,096 bp (its heads are replaced by the 4 demo tracks)")
  p.add_argument("--output-dir", default="demo_output")
  p.add_argument("--seed", type=nonnegative_int, default=0,
                 help="seeds the data, the shuffling and the model")
  p.add_argument("--steps", type=positive_int, default=800, help="training steps in total")
  p.add_argument("--epochs", type=positive_int, default=4, help="validation passes during training")
  p.add_argument("--batch-size", type=positive_int, default=8)
  p.add_argument("--learning-rate", type=positive_float, default=4e-3)
  p.add_argument("--chromosomes", type=positive_int, default=6, help="synthetic chromosomes (the "
                 "last two are validation and test)")
  p.add_argument("--chromosome-length", type=positive_int, default=300_000)
  p.add_argument("--overwrite", action="store_true", help="replace an existing output folder "
                 "(only one a previous demo wrote)")
  p.add_argument("--quiet", action="store_true", help="no progress bars")
  p.set_defaults(func=cmd_demo)

  p = sub.add_parser("train", help="train a model on a task (config: model, task, data, "
                     "optimizer, trainer, strategy)")
  p.add_argument("--config", required=True, help="training config (.yaml/.json)")
  p.add_argument("--strategy", choices=("default", "mirrored", "multiworker", "tpu"),
                 help="override the config's strategy.kind")
  p.add_argument("--tpu", help="TPU name or address (with --strategy tpu)")
  p.add_argument("--run-dir", help="override the config's run_dir")
  p.add_argument("--resume", action="store_true",
                 help="continue from the run directory's latest checkpoint (fresh if none)")
  p.set_defaults(func=cmd_train)

  # Each module imports only argparse-level code here; heavy imports are in its run().
  from tf_seqmodels import (cli_chrombpnet, cli_contributions, cli_evaluate, cli_export,
                            cli_predict, cli_tune, cli_variants)
  for module in (cli_predict, cli_evaluate, cli_variants, cli_contributions, cli_export,
                 cli_tune, cli_chrombpnet):
    module.add_parser(sub)
  for command in sub.choices.values():
    cli_common.add_verbose(command)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs one command; every error ends in one line `tf-seqmodels <command>: error: ...` and
  an exit code (`cli_common.exit_code_of`); `--verbose` adds the traceback."""
  args = make_parser().parse_args(argv)
  verbose = bool(getattr(args, "verbose", False))
  command = getattr(args, "command", "")
  try:
    cli_common.quiet_tensorflow(verbose)
    return args.func(args)
  except SystemExit:
    raise
  except BaseException as e:  # pylint: disable=broad-except
    code = cli_common.exit_code_of(e)
    if verbose:
      import traceback
      traceback.print_exc()
    if code == cli_common.EXIT_INTERRUPTED:
      what = "interrupted" + (f": {e}" if str(e) else "")
      print(f"tf-seqmodels {command}: {what}", file=sys.stderr)
    elif code == cli_common.EXIT_GUARD_STOP:
      print(f"tf-seqmodels {command}: stopped: {cli_common.error_message(e)}", file=sys.stderr)
    elif code == 1:
      print(f"tf-seqmodels {command}: internal error ({type(e).__name__}): "
            f"{cli_common.error_message(e, 2)}; rerun with --verbose for the traceback and "
            f"please report it",
            file=sys.stderr)
    else:
      print(f"tf-seqmodels {command}: error: {cli_common.error_message(e)}", file=sys.stderr)
    return code


if __name__ == "__main__":
  sys.exit(main())
