"""Genome-scale inference on Apache Beam: `score-variants`, `predict` and `contributions` with
`--runner beam` run as Beam pipelines (DirectRunner processes, Flink, Spark or Dataflow).

    tf-seqmodels score-variants --model runs/enformer --vcf cohort.vcf.gz --fasta hg38.fa \\
        --output scores.h5 --runner beam \\
        --beam-options "--runner DirectRunner --direct_num_workers 4 \\
                        --direct_running_mode multi_processing"

The driver reads the inputs with the single-process readers (VCF, FASTA index, BED), exports a
run directory or checkpoint to a temporary parity-checked SavedModel (`export.hub`), and
writes the records to the work directory; the pipeline (`pipelines`) shards them, builds the
windows from the indexed FASTA inside the workers, runs the SavedModel through `RunInference`,
reduces reverse-complement / shift copies, and writes sorted shards; the driver merges them
into the single-process command's HDF5 / TSV / bigWig layout. `worker` holds the worker-side
code. This module only defines the command-line options: it imports Beam when a pipeline runs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from tf_seqmodels.config import ConfigError

INSTALL_HINT = "pip install tf-seqmodels[beam]"


@dataclasses.dataclass(frozen=True)
class BeamRun:
  """How a command runs as a Beam pipeline.

  Attributes:
    options: Beam's own pipeline options, as on Beam's command line (e.g. "--runner
      DirectRunner --direct_num_workers 4 --direct_running_mode multi_processing"); empty: the
      DirectRunner in this process.
    work_dir: where the input records, the temporary SavedModel and the output shards go; it
      must be readable and writable by every worker (a shared file system on a cluster). None:
      a folder beside the output. Removed after the merge.
  """

  options: str = ""
  work_dir: Optional[str] = None


def add_runner_arguments(parser) -> None:
  """`--runner`, `--beam-options`, `--beam-work-dir` of the commands that can run on Beam."""
  parser.add_argument("--runner", choices=("local", "beam"), default="local",
                      help="local: this process (default); beam: an Apache Beam pipeline "
                      f"({INSTALL_HINT}), results merged into the same outputs")
  parser.add_argument("--beam-options", default="", metavar="OPTIONS",
                      help="with --runner beam: Beam's pipeline options as one quoted string, "
                      "e.g. \"--runner DirectRunner --direct_num_workers 4 "
                      "--direct_running_mode multi_processing\" or \"--runner FlinkRunner "
                      "--flink_master HOST:8081 --environment_type PROCESS ...\" (default: "
                      "DirectRunner in this process)")
  parser.add_argument("--beam-work-dir", metavar="DIR",
                      help="with --runner beam: folder for the inputs, the exported SavedModel "
                      "and the shards, reachable by every worker (default: beside the output)")


def beam_run(args) -> Optional[BeamRun]:
  """The BeamRun of parsed arguments (None for --runner local); ConfigError, naming what to
  install, when Apache Beam is missing, and when Beam options are given without --runner beam."""
  runner = getattr(args, "runner", "local")
  if runner != "beam":
    if getattr(args, "beam_options", "") or getattr(args, "beam_work_dir", None):
      raise ConfigError("--beam-options / --beam-work-dir apply only with --runner beam")
    return None
  require_beam()
  work_dir = os.path.abspath(args.beam_work_dir) if args.beam_work_dir else None
  return BeamRun(options=args.beam_options or "", work_dir=work_dir)


def require_beam() -> None:
  try:
    import apache_beam  # noqa: F401
    from apache_beam.ml.inference import base  # noqa: F401
  except ImportError:
    raise ConfigError(f"--runner beam needs Apache Beam: {INSTALL_HINT}") from None
