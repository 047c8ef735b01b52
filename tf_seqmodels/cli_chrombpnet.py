"""`tf-seqmodels chrombpnet`: reads -> insertion bigWig -> models -> QC report.

    tf-seqmodels chrombpnet pipeline --fragments frags.tsv.gz --genome hg38.fa \\
        --peaks peaks.narrowPeak --output-dir out [--bias-model bias.h5|run_dir]
    tf-seqmodels chrombpnet reads-to-bigwig --bam reads.bam --genome hg38.fa --output x.bw
    tf-seqmodels chrombpnet prep-regions --genome hg38.fa --peaks p.narrowPeak --output-dir aux
"""

from __future__ import annotations

import json
import os

_FORMATS = (("fragments", "fragments"), ("tagalign", "tagalign"), ("bam", "bam"))


def _reads_arguments(p, allow_bigwig: bool) -> None:
  group = p.add_mutually_exclusive_group(required=True)
  group.add_argument("--fragments", help="fragment file (.tsv / .tsv.gz: chrom, start, end, ...)")
  group.add_argument("--tagalign", help="tagAlign file (.gz ok: chrom, start, end, name, score, "
                     "strand)")
  group.add_argument("--bam", help="coordinate-sorted, indexed BAM")
  if allow_bigwig:
    group.add_argument("--bigwig", help="an existing per-base insertion-count bigWig instead of "
                       "reads")
  p.add_argument("--genome", required=True, help="genome FASTA (chromosome sizes from its .fai)")
  p.add_argument("--assay", choices=("ATAC", "DNASE"), default="ATAC",
                 help="final shift ATAC +4/-4, DNase +0/+1 (default ATAC)")
  p.add_argument("--shift", type=int, nargs=2, metavar=("PLUS", "MINUS"), default=None,
                 help="the shift the reads already carry (e.g. 4 -5 for 10x fragments, 0 0 for "
                 "BAM); default: detected from the data")
  p.add_argument("--skip-unknown-chromosomes", action="store_true",
                 help="drop reads on chromosomes absent from the FASTA instead of failing")


def _reads(args) -> tuple:
  for name, fmt in _FORMATS:
    if getattr(args, name, None):
      return getattr(args, name), fmt
  return None, None


def add_parser(subparsers) -> None:
  parent = subparsers.add_parser("chrombpnet", help="ChromBPNet from reads to a QC report "
                                 "(pipeline, reads-to-bigwig, prep-regions)")
  sub = parent.add_subparsers(dest="chrombpnet_command", required=True)

  p = sub.add_parser("pipeline", help="reads -> bigWig -> regions -> bias model -> bias QC -> "
                     "ChromBPNet -> test metrics, prediction and contribution bigWigs, "
                     "TF-MoDISco, footprints, HTML report, export (resumable)")
  _reads_arguments(p, allow_bigwig=True)
  p.add_argument("--peaks", required=True, help="narrowPeak (summit in column 10)")
  p.add_argument("--output-dir", required=True)
  p.add_argument("--nonpeaks", help="non-peak regions instead of GC-matched sampling")
  p.add_argument("--blacklist", help="BED of regions to exclude")
  p.add_argument("--fold", help="fold JSON {train, valid, test}; default: --test-chroms / "
                 "--valid-chroms, else the reference's human fold_0")
  p.add_argument("--test-chroms", nargs="+", default=())
  p.add_argument("--valid-chroms", nargs="+", default=())
  p.add_argument("--bias-model", help="a tf-seqmodels chrombpnet_bias run directory or a "
                 "reference bias .h5 (default: train one)")
  p.add_argument("--bias-threshold-factor", type=float, default=None,
                 help="non-peaks for the bias model have total counts below this x the 1st "
                 "percentile of peak totals (default 0.5 ATAC, 0.8 DNase)")
  defaults = {"input_length": 2114, "output_length": 1000, "filters": 512, "layers": 8,
              "bias_filters": 128, "bias_layers": 4, "max_jitter": 500, "batch_size": 64,
              "epochs": 50, "patience": 5, "seed": 1234, "nonpeak_ratio": 2,
              "nonpeak_stride": 1000, "contrib_references": 20, "contrib_max_regions": 30_000,
              "modisco_max_seqlets": 50_000, "modisco_leiden": 2, "footprint_regions": 1000}
  for name, value in defaults.items():
    p.add_argument("--" + name.replace("_", "-"), type=int, default=value,
                   help=f"default {value}")
  p.add_argument("--bias-epochs", type=int, default=None, help="default: --epochs")
  p.add_argument("--steps-per-epoch", type=int, default=None,
                 help="default: one pass over the training data")
  p.add_argument("--learning-rate", type=float, default=1e-3)
  p.add_argument("--negative-sampling-ratio", type=float, default=0.1)
  p.add_argument("--contrib-method", choices=("deeplift", "gradient"), default="deeplift")
  p.add_argument("--modisco-targets", nargs="+", choices=("counts", "profile"),
                 default=["profile"])
  p.add_argument("--modisco-window", type=int, default=None,
                 help="default: min(500, input length)")
  p.add_argument("--tf-motifs", help="name<TAB>sequence lines: TF motifs to footprint (bias QC)")
  p.add_argument("--enzyme-motifs", help="name<TAB>sequence lines: enzyme motifs (default: the "
                 "k-mer enriched at the reads' insertion sites)")
  p.add_argument("--motif-db", help="MEME file the discovered motifs are matched against")
  p.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
  p.add_argument("--steps", nargs="+", help="run only these steps (earlier ones must be done)")
  p.add_argument("--force", nargs="+", default=(), help="rerun these steps (and all later ones)")
  p.add_argument("--quiet", action="store_true", help="no progress bars")
  p.set_defaults(func=run_pipeline_command)

  p = sub.add_parser("reads-to-bigwig", help="reads -> unstranded per-base insertion bigWig")
  _reads_arguments(p, allow_bigwig=False)
  p.add_argument("--output", required=True, help="output bigWig")
  p.add_argument("--quiet", action="store_true")
  p.set_defaults(func=run_reads_to_bigwig)

  p = sub.add_parser("prep-regions", help="filtered peaks, GC-matched non-peaks, fold JSON")
  p.add_argument("--genome", required=True)
  p.add_argument("--peaks", required=True)
  p.add_argument("--output-dir", required=True)
  p.add_argument("--input-length", type=int, default=2114)
  p.add_argument("--max-jitter", type=int, default=500)
  p.add_argument("--blacklist")
  p.add_argument("--fold")
  p.add_argument("--test-chroms", nargs="+", default=())
  p.add_argument("--valid-chroms", nargs="+", default=())
  p.add_argument("--nonpeak-ratio", type=int, default=2)
  p.add_argument("--nonpeak-stride", type=int, default=1000)
  p.add_argument("--seed", type=int, default=1234)
  p.set_defaults(func=run_prep_regions)


def run_pipeline_command(args) -> int:
  from tf_seqmodels.chrombpnet.pipeline import PipelineConfig, run_pipeline
  reads, fmt = _reads(args)
  config = PipelineConfig(
      genome=args.genome, peaks=args.peaks, output_dir=args.output_dir, reads=reads,
      reads_format=fmt, bigwig=args.bigwig, assay=args.assay,
      shift=tuple(args.shift) if args.shift else None,
      skip_unknown_chromosomes=args.skip_unknown_chromosomes, nonpeaks=args.nonpeaks,
      blacklist=args.blacklist, fold=args.fold, test_chroms=tuple(args.test_chroms),
      valid_chroms=tuple(args.valid_chroms), bias_model=args.bias_model,
      bias_threshold_factor=args.bias_threshold_factor, bias_epochs=args.bias_epochs,
      steps_per_epoch=args.steps_per_epoch, learning_rate=args.learning_rate,
      negative_sampling_ratio=args.negative_sampling_ratio, contrib_method=args.contrib_method,
      modisco_targets=tuple(args.modisco_targets), modisco_window=args.modisco_window,
      tf_motifs=args.tf_motifs, enzyme_motifs=args.enzyme_motifs, motif_db=args.motif_db,
      export=not args.no_export, progress=not args.quiet,
      input_length=args.input_length, output_length=args.output_length, filters=args.filters,
      layers=args.layers, bias_filters=args.bias_filters, bias_layers=args.bias_layers,
      max_jitter=args.max_jitter, batch_size=args.batch_size, epochs=args.epochs,
      patience=args.patience, seed=args.seed, nonpeak_ratio=args.nonpeak_ratio,
      nonpeak_stride=args.nonpeak_stride, contrib_references=args.contrib_references,
      contrib_max_regions=args.contrib_max_regions,
      modisco_max_seqlets=args.modisco_max_seqlets, modisco_leiden=args.modisco_leiden,
      footprint_regions=args.footprint_regions)
  records = run_pipeline(config, args.steps, args.force)
  report = os.path.join(os.path.abspath(args.output_dir), "report", "index.html")
  print(f"done: {len(records)} steps; report: {report}" if os.path.exists(report)
        else f"done: steps {list(records)}")
  return 0


def run_reads_to_bigwig(args) -> int:
  from tf_seqmodels.chrombpnet.reads import reads_to_bigwig
  reads, fmt = _reads(args)
  summary = reads_to_bigwig(reads, fmt, args.genome, args.output, args.assay, args.shift,
                            skip_unknown=args.skip_unknown_chromosomes, progress=not args.quiet)
  print(json.dumps({k: v for k, v in summary.items() if "composition" not in k}, indent=1))
  return 0


def run_prep_regions(args) -> int:
  from tf_seqmodels.chrombpnet.regions import default_fold, prepare_regions
  from tf_seqmodels.data.genome import Genome
  from tf_seqmodels.data.intervals import read_fold
  if args.fold:
    fold = read_fold(args.fold)
  else:
    with Genome(args.genome) as genome:
      fold = default_fold(genome.chrom_sizes, args.test_chroms or None, args.valid_chroms or None)
  summary = prepare_regions(args.genome, args.peaks, fold, args.output_dir, args.input_length,
                            args.blacklist, None, args.nonpeak_ratio, args.nonpeak_stride,
                            args.max_jitter, args.seed)
  print(json.dumps(summary, indent=1))
  return 0
