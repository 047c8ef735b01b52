"""`tf-seqmodels score-variants`: alt - ref scores of a VCF against a FASTA -> HDF5 / TSV."""

from __future__ import annotations

import sys

from tf_seqmodels.beam import add_runner_arguments, beam_run
from tf_seqmodels.cli_common import nonnegative_int, positive_int
from tf_seqmodels.model_source import add_model_source_arguments


def add_model_arguments(p) -> None:
  """Model-loading options shared by the DNA-analysis subcommands: the model source flags of
  every command (`model_source`) plus the analysis options."""
  add_model_source_arguments(p)
  p.add_argument("--without-bias", action="store_true", help="score the bias-corrected model "
                 "of a bias-factorised model (ChromBPNet's no-bias model)")
  p.add_argument("--targets", help="Basenji targets table whose strand pairs (CAGE +/-) apply "
                 "to the model's track head when averaging reverse complements (default: the "
                 "run's data config or the export's metadata)")
  p.add_argument("--position-axes", nargs="*", metavar="HEAD:AXIS",
                 help="positional output axis per head (AXIS or 'none'), for SavedModels "
                 "without tf-seqmodels metadata")
  p.add_argument("--strategy", choices=("default", "mirrored", "multiworker", "tpu"),
                 default="default", help="distribute batches like the trainer")
  p.add_argument("--cpu-devices", type=nonnegative_int, default=0,
                 help="with --strategy mirrored on a CPU machine: logical CPU replicas")
  p.add_argument("--batch-size", type=positive_int, default=8)
  p.add_argument("--quiet", action="store_true", help="no progress bar")


def load_model_and_runner(args):
  from tf_seqmodels.analysis.inference import BatchRunner, load_analysis_model
  from tf_seqmodels.model_source import ModelSource
  from tf_seqmodels.training.strategy import StrategyConfig, make_strategy
  options = {"cpu_devices": args.cpu_devices} if args.cpu_devices else {}
  info = make_strategy(StrategyConfig(kind=args.strategy, **options))
  runner = BatchRunner(info)
  model = load_analysis_model(None, source=ModelSource.from_args(args),
                              without_bias=args.without_bias, strategy=info.strategy,
                              position_axes=_position_axes(getattr(args, "position_axes", None)),
                              targets=getattr(args, "targets", None))
  return model, runner


def _position_axes(specs) -> dict:
  out = {}
  for spec in specs or ():
    head, _, axis = spec.partition(":")
    if not head or not axis or not (axis == "none" or axis.lstrip("-").isdigit()):
      raise ValueError(f"--position-axes {spec!r}: expected HEAD:AXIS or HEAD:none")
    out[head] = None if axis == "none" else int(axis)
  return out


def _tracks(specs) -> dict:
  out = {}
  for spec in specs or ():
    head, _, indices = spec.partition(":")
    if not indices:
      raise ValueError(f"--tracks {spec!r}: expected HEAD:I,J,...")
    try:
      out[head] = tuple(int(i) for i in indices.split(","))
    except ValueError:
      raise ValueError(f"--tracks {spec!r}: track indices must be integers") from None
    if any(i < 0 for i in out[head]):
      raise ValueError(f"--tracks {spec!r}: track indices must be >= 0")
  return out


def add_parser(subparsers) -> None:
  p = subparsers.add_parser("score-variants", help="score VCF variants (alt - ref per head and "
                            "track, RC/shift averaged) -> HDF5 or TSV")
  add_model_arguments(p)
  p.add_argument("--vcf", help="variants (.vcf or .vcf.gz)")
  p.add_argument("--fasta", help="reference genome (indexed or indexable FASTA)")
  p.add_argument("--pairs", help="instead of --vcf/--fasta: TSV of id, ref_sequence, "
                 "alt_sequence of the model's length (e.g. DREAM challenge SNV pairs)")
  p.add_argument("--plasmid", help="with --pairs: DREAM plasmid.json; sequences are padded to "
                 "the model's length as the DREAM reference does")
  p.add_argument("--output", required=True, help="scores: .h5 (all tracks, PCA) or .tsv")
  p.add_argument("--heads", nargs="*", default=(), help="heads to score (default: all)")
  p.add_argument("--tracks", nargs="*", help="track subsets, HEAD:I,J,... (default: all tracks)")
  p.add_argument("--window-bins", type=positive_int, help="sum this many output bins centred on the "
                 "variant (or TSS); default: all bins")
  p.add_argument("--genes", help="gene mode: BED of genes/TSSs (strand in column 6); windows are "
                 "centred on each TSS within reach (defaults --window-bins to 3)")
  p.add_argument("--statistics", nargs="+", choices=("diff", "log_fc", "abs_diff", "jsd"),
                 default=None, help="default: all; each head gets those its kind supports "
                 "(profile heads: jsd; scalar heads: diff, abs_diff)")
  p.add_argument("--shifts", type=int, nargs="+", default=(0,), help="window shifts (bp) to "
                 "average over, e.g. -1 0 1")
  p.add_argument("--no-reverse-complement", action="store_true")
  p.add_argument("--sequence-length", type=positive_int, help="input length (default: the model's)")
  p.add_argument("--pca", type=nonnegative_int, default=0, metavar="K",
                 help="add a K-component PCA summary of each score matrix (HDF5 only; 20 = the "
                 "Enformer release format)")
  add_runner_arguments(p)
  p.set_defaults(func=run)


def run(args) -> int:
  from tf_seqmodels.analysis.variants import (VariantScoringConfig, score_pairs_file,
                                              score_vcf)
  from tf_seqmodels.outputs import check_not_an_input
  if not args.pairs and not (args.vcf and args.fasta):
    raise ValueError("give --vcf and --fasta, or --pairs")
  beam = beam_run(args)
  if beam and args.pairs:
    raise ValueError("--runner beam scores --vcf/--fasta inputs; --pairs runs in one process")
  if args.pairs and (args.vcf or args.genes):
    raise ValueError("--pairs replaces --vcf/--fasta/--genes; give one input")
  if not args.output.endswith((".h5", ".hdf5", ".tsv", ".txt")):
    raise ValueError(f"--output {args.output}: give a .h5 or .tsv file")
  check_not_an_input(args.output, {"--vcf": args.vcf, "--fasta": args.fasta, "--pairs":
                                   args.pairs, "--genes": args.genes, "--plasmid": args.plasmid,
                                   "--targets": args.targets, "--config": args.config})
  model, runner = load_model_and_runner(args)
  window = args.window_bins if args.window_bins or not args.genes else 3
  statistics = {"statistics": tuple(args.statistics)} if args.statistics else {}
  config = VariantScoringConfig(heads=tuple(args.heads), tracks=_tracks(args.tracks),
                                window_bins=window, **statistics,
                                reverse_complement=not args.no_reverse_complement,
                                shifts=tuple(args.shifts), sequence_length=args.sequence_length,
                                batch_size=args.batch_size)
  if args.pairs:
    plasmid = None
    if args.plasmid:
      from tf_seqmodels.data.dream import load_plasmid
      plasmid = load_plasmid(args.plasmid)
    count = score_pairs_file(model, args.pairs, args.output, config, runner=runner,
                             plasmid=plasmid)
    print(f"scored {count} sequence pairs -> {args.output}")
    return 0
  if beam:  # the same scores from an Apache Beam pipeline
    from tf_seqmodels.beam.pipelines import score_vcf_beam
    result = score_vcf_beam(model, args.vcf, args.fasta, args.output, config, run=beam,
                            model_source=args.model, genes_bed=args.genes, pca_components=args.pca)
  else:
    result = score_vcf(model, args.vcf, args.fasta, args.output, config, runner=runner,
                       genes_bed=args.genes, pca_components=args.pca, progress=not args.quiet)
  print(f"scored {result['scored']} variants -> {result['output']}; {result['skipped']} not "
        f"scored (listed in {result['skipped_file']})")
  for reason in result["skipped_reasons"][:10]:
    print(f"  skipped: {reason}", file=sys.stderr)
  return 0
