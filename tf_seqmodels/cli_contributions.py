"""`tf-seqmodels contributions`: contribution scores of regions -> HDF5 (TF-MoDISco), bigWig, logos."""

from __future__ import annotations

import os

from tf_seqmodels.beam import add_runner_arguments, beam_run
from tf_seqmodels.cli_common import nonnegative_int, positive_int
from tf_seqmodels.cli_variants import add_model_arguments, load_model_and_runner

METHODS = ("gradient_x_input", "ism", "deepshap", "deeplift", "attention", "window_ism")
# Computed from the exported SavedModel's predictions and input gradients alone (deeplift needs
# the Sonnet model's ops; attention and window_ism run in one process).
BEAM_METHODS = ("gradient_x_input", "deepshap", "ism")


def add_parser(subparsers) -> None:
  p = subparsers.add_parser("contributions", help="contribution scores of regions (gradient x "
                            "input, ISM, DeepSHAP-style, DeepLIFT, attention) -> HDF5 + bigWig + "
                            "logos")
  add_model_arguments(p)
  p.add_argument("--fasta", required=True)
  p.add_argument("--regions", required=True, help="BED/narrowPeak; windows of the model's input "
                 "length centred on the summit (narrowPeak column 10) or the region centre")
  p.add_argument("--output-dir", required=True)
  p.add_argument("--method", choices=METHODS, default="gradient_x_input",
                 help="gradient_x_input: gradients centred across the four bases (the "
                 "hypothetical scores TF-MoDISco expects) times the input; "
                 "deepshap: expected-gradients approximation of DeepSHAP; deeplift: "
                 "DeepLIFT / DeepSHAP rescale rule (exact completeness for ReLU conv nets "
                 "such as BPNet / ChromBPNet)")
  p.add_argument("--head", default=None, help="target head (default: the only head, else the "
                 "only log-counts head, else the only track head; otherwise required)")
  p.add_argument("--target-tracks", type=nonnegative_int, nargs="*", help="track indices (default: all)")
  p.add_argument("--target-bins", type=nonnegative_int, nargs=2, metavar=("START", "END"),
                 help="positional bins [START, END) of the target (default: all)")
  p.add_argument("--target-kind", choices=("sum", "mean", "profile"), default=None,
                 help="profile = ChromBPNet's mean-normalised softmax-weighted logits (default "
                 "for profile-logit heads; sum otherwise)")
  p.add_argument("--references", type=positive_int, default=10,
                 help="deepshap, deeplift: dinucleotide-shuffled references per region")
  p.add_argument("--steps", type=positive_int, default=8, help="deepshap: path steps per reference")
  p.add_argument("--allow-unsupported-ops", action="store_true", help="deeplift: proceed, with "
                 "a warning, through ops without a DeepLIFT rule (plain gradients there; "
                 "completeness then holds only approximately) instead of failing")
  p.add_argument("--window-size", type=positive_int, default=200, help="window_ism: the input is tiled "
                 "into windows of this size, each replaced in turn (enhancer replacement)")
  p.add_argument("--replacement", choices=("shuffle", "random", "N"), default="shuffle",
                 help="window_ism: what replaces a window")
  p.add_argument("--max-regions", type=positive_int, default=None)
  p.add_argument("--logos", type=nonnegative_int, default=3, help="logo PNGs for the first N regions")
  p.add_argument("--logo-width", type=positive_int, default=100, help="bp around the centre in a logo")
  add_runner_arguments(p)
  p.set_defaults(func=run)


def run(args) -> int:
  import numpy as np
  from tqdm import tqdm
  from tf_seqmodels.analysis import contributions as C
  from tf_seqmodels.analysis.hypothetical import hypothetical_contributions
  from tf_seqmodels.analysis.contribution_outputs import (write_contribution_bigwig,
                                                          write_modisco_h5)
  from tf_seqmodels.analysis.logos import plot_contribution_logo
  from tf_seqmodels.analysis.regions import read_region_centres
  from tf_seqmodels.analysis.variants import one_hot_indices
  from tf_seqmodels.config import atomic_write_text
  from tf_seqmodels.data.genome import Genome
  beam = beam_run(args)
  if beam and args.method not in BEAM_METHODS:
    raise ValueError(f"--runner beam computes --method {', '.join(BEAM_METHODS)} (from the "
                     f"exported SavedModel); {args.method} runs in one process")
  from tf_seqmodels.outputs import check_not_an_input
  if args.target_bins and args.target_bins[0] >= args.target_bins[1]:
    raise ValueError(f"--target-bins {args.target_bins[0]} {args.target_bins[1]}: START must be "
                     f"< END")
  from tf_seqmodels.errors import require_file
  for path, what in ((args.fasta, "FASTA file"), (args.regions, "BED file")):
    if path:  # the readers' own check, before the model loads
      require_file(path, what)
  if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
    raise FileExistsError(f"--output-dir {args.output_dir} is a file, not a folder")
  for name in ("scores.h5", "contributions.bw", "regions.bed", "attention.npz",
               "window_ism.tsv", "window_ism.bw"):
    check_not_an_input(os.path.join(args.output_dir, name),
                       {"--fasta": args.fasta, "--regions": args.regions,
                        "--targets": args.targets, "--config": args.config},
                       "--output-dir")
  model, runner = load_model_and_runner(args)
  length = model.sequence_length
  if length is None:
    raise ValueError("the model has no fixed input length")
  with Genome(args.fasta) as genome:
    centres = read_region_centres(args.regions, genome.chrom_sizes, genome.path,
                                  window=length)[:args.max_regions]
    if not centres:
      raise ValueError(f"{args.regions}: no regions")
    os.makedirs(args.output_dir, exist_ok=True)
    chroms = [c for c, _ in centres]
    starts = [p - length // 2 for _, p in centres]
    one_hot = np.stack([one_hot_indices(genome.fetch_window(c, s, s + length))
                        for c, s in zip(chroms, starts)])
    chrom_sizes = dict(genome.chrom_sizes)
  if args.method == "attention":
    rows = C.attention_rows(model, one_hot, runner=runner, batch_size=args.batch_size)
    path = os.path.join(args.output_dir, "attention.npz")
    from tf_seqmodels.config import atomic_output
    with atomic_output(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
      np.savez(f, rows=rows, chroms=np.array(chroms), starts=np.array(starts))
    print(f"wrote attention rows {rows.shape} (centre query bin, mean over layers and heads) to {path}")
    return 0
  head, kind = C.default_target(model, args.head, args.target_kind)
  target = C.Target(head=head, kind=kind,
                    tracks=tuple(args.target_tracks) if args.target_tracks else None,
                    bins=tuple(args.target_bins) if args.target_bins else None)
  _check_target(model, runner, one_hot[:1], target)
  if args.method == "window_ism":
    return _run_window_ism(args, model, runner, target, one_hot, chroms, starts, chrom_sizes)
  hypothetical = np.zeros_like(one_hot)
  step = max(1, args.batch_size)
  if beam:  # the same scores from an Apache Beam pipeline
    from tf_seqmodels.beam.pipelines import contributions_beam
    hypothetical = contributions_beam(
        model, args.fasta, centres, target, args.method, run=beam, output_dir=args.output_dir,
        model_source=args.model, batch_size=args.batch_size, num_references=args.references,
        steps=args.steps)
  # Sequences per forward pass: gradients run `step` at a time; the methods that run many
  # copies of each sequence (references x path steps, substitutions) run more.
  per_pass = {"deepshap": 4, "deeplift": 4, "ism": 16}.get(args.method, 1) * step
  batches = () if beam else range(0, len(one_hot), step)  # (the pipeline scored them all)
  for i in tqdm(batches, desc=f"contributions ({args.method})", unit="batch", disable=args.quiet):
    hypothetical[i:i + step] = hypothetical_contributions(
        model, one_hot[i:i + step], target, args.method, runner,
        num_references=args.references, steps=args.steps, seed=i, batch_size=per_pass,
        strict=not args.allow_unsupported_ops)
  scores_path = os.path.join(args.output_dir, "scores.h5")
  write_modisco_h5(scores_path, one_hot, hypothetical, chroms, starts,
                   {"method": args.method, "target": target.to_json(), "model": model.name})
  projected = (hypothetical * one_hot).sum(-1)
  bigwig = os.path.join(args.output_dir, "contributions.bw")
  write_contribution_bigwig(bigwig, chrom_sizes, chroms, starts, projected)
  atomic_write_text(os.path.join(args.output_dir, "regions.bed"), "".join(  # on the chromosome
      f"{c}\t{max(s, 0)}\t{min(s + length, chrom_sizes[c])}\n" for c, s in zip(chroms, starts)))
  half = min(args.logo_width, length) // 2
  for k in range(min(args.logos, len(chroms))):
    lo = length // 2 - half
    plot_contribution_logo(os.path.join(args.output_dir, f"logo_{k}.png"),
                           (hypothetical * one_hot)[k, lo:lo + 2 * half],
                           title=f"{chroms[k]}:{starts[k] + lo}-{starts[k] + lo + 2 * half} "
                           f"({args.method}, {head})", start=starts[k] + lo)
  print(f"wrote {scores_path} (TF-MoDISco layout), {bigwig}, regions.bed and "
        f"{min(args.logos, len(chroms))} logos for {len(chroms)} regions")
  return 0


def _check_target(model, runner, one_hot, target) -> None:
  """Refuses --target-tracks / --target-bins outside the head's output (one forward pass),
  before the scores are computed, with the valid range."""
  import numpy as np
  if target.tracks is None and target.bins is None:
    return
  outputs = runner.predict(model, one_hot)
  if target.head not in outputs:
    raise ValueError(f"--head {target.head}: the model has heads {sorted(outputs)}")
  value = np.asarray(outputs[target.head])
  tracks = value.shape[-1] if value.ndim >= 2 else 1
  if target.tracks is not None:
    bad = [t for t in target.tracks if t >= tracks]
    if bad:
      raise ValueError(f"--target-tracks {' '.join(map(str, bad))}: head {target.head!r} has "
                       f"{tracks} tracks (indices 0..{tracks - 1})")
  if target.bins is not None:
    axis = model.position_axis(target.head, value)
    if axis is None:
      raise ValueError(f"--target-bins: head {target.head!r} has no positional axis")
    bins = value.shape[axis]
    if target.bins[1] > bins:
      raise ValueError(f"--target-bins {target.bins[0]} {target.bins[1]}: head {target.head!r} "
                       f"has {bins} bins (START < END <= {bins})")


def _run_window_ism(args, model, runner, target, one_hot, chroms, starts, chrom_sizes) -> int:
  """Tiles each input into windows, replaces each in turn -> window_ism.tsv + bigWig."""
  import numpy as np
  from tqdm import tqdm
  from tf_seqmodels.analysis import contributions as C
  from tf_seqmodels.analysis.contribution_outputs import write_contribution_bigwig
  from tf_seqmodels.config import atomic_write_text
  length = one_hot.shape[1]
  if not 0 < args.window_size <= length:
    raise ValueError(f"--window-size must be in [1, {length}], got {args.window_size}")
  windows = [(s, min(s + args.window_size, length)) for s in range(0, length, args.window_size)]
  deltas = np.concatenate([
      C.window_ism(model, one_hot[i:i + 1], target, windows, runner, args.replacement,
                   batch_size=args.batch_size * 4, seed=i)
      for i in tqdm(range(len(one_hot)), desc="window ism", unit="region", disable=args.quiet)])
  rows = ["chrom\tstart\tend\tdelta"]
  per_base = np.zeros((len(one_hot), length), np.float32)
  for k in range(len(one_hot)):
    for w, (s, e) in enumerate(windows):
      rows.append(f"{chroms[k]}\t{starts[k] + s}\t{starts[k] + e}\t{deltas[k, w]:.6g}")
      per_base[k, s:e] = deltas[k, w]
  atomic_write_text(os.path.join(args.output_dir, "window_ism.tsv"), "\n".join(rows) + "\n")
  write_contribution_bigwig(os.path.join(args.output_dir, "window_ism.bw"), chrom_sizes, chroms,
                            starts, per_base)
  print(f"wrote window_ism.tsv and window_ism.bw ({len(windows)} windows x {len(one_hot)} "
        f"regions, f(replaced) - f(reference)) to {args.output_dir}")
  return 0
