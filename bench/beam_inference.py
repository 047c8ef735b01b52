"""Variant scoring on Apache Beam: records/s of `score-variants --runner beam` on DirectRunner
with 1, 2 and 4 worker processes against the single-process scorer, on the same input.

Builds a registered model at its demo size (random weights: speed does not depend on them),
exports it once (the SavedModel the workers load; its export time is reported, not counted),
writes a random genome and a VCF of random SNVs, then scores the VCF in one process and as
Beam pipelines (`--direct_running_mode multi_processing`), checks that every run wrote the
same scores, and writes JSON.

    python bench/beam_inference.py                                    # bpnet, 2,000 SNVs
    python bench/beam_inference.py --model enformer --variants 200 --workers 1 2

Pipeline wall time includes starting the worker processes (each imports TensorFlow and loads
the SavedModel) and the driver's merge: on a small machine the numbers measure Beam's
overhead, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="bpnet")
  parser.add_argument("--variants", type=int, default=2000)
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--workers", type=int, nargs="+", default=(1, 2, 4))
  parser.add_argument("--shifts", type=int, nargs="+", default=(0,))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                       "beam_inference.json"))
  args = parser.parse_args()

  import h5py
  import numpy as np
  from tf_seqmodels.analysis.inference import load_analysis_model
  from tf_seqmodels.analysis.variants import VariantScoringConfig, score_vcf
  from tf_seqmodels.beam import BeamRun
  from tf_seqmodels.beam.pipelines import export_model, score_vcf_beam
  from tf_seqmodels.data.vcf import Variant, write_vcf
  from tf_seqmodels.models import build_model, get_entry

  rng = np.random.default_rng(args.seed)
  work = tempfile.mkdtemp(prefix="beam-bench-")
  model = build_model(args.model, get_entry(args.model).demo_config())
  model.ensure_built()
  length = model.sequence_length
  start = time.perf_counter()
  savedmodel = export_model(model, work)
  export_s = time.perf_counter() - start
  chrom_length = max(20 * length, args.variants * 50)
  genome = "".join(rng.choice(list("ACGT"), chrom_length))
  fasta = os.path.join(work, "genome.fa")
  with open(fasta, "w") as f:
    f.write(">chr1\n" + "\n".join(genome[i:i + 60] for i in range(0, chrom_length, 60)) + "\n")
  positions = np.sort(rng.choice(np.arange(length, chrom_length - length), args.variants,
                                 replace=False))
  variants = [Variant("chr1", int(p) + 1, f"v{k}", genome[p], "ACGT"[("ACGT".index(genome[p]) + 1) % 4])
              for k, p in enumerate(positions)]
  vcf = os.path.join(work, "variants.vcf")
  write_vcf(vcf, variants)
  config = VariantScoringConfig(shifts=tuple(args.shifts), batch_size=args.batch_size)
  analysis = load_analysis_model(savedmodel)

  runs = []
  start = time.perf_counter()
  score_vcf(analysis, vcf, fasta, os.path.join(work, "local.h5"), config, progress=False)
  local_s = time.perf_counter() - start
  runs.append({"runner": "single process", "workers": 1, "seconds": local_s,
               "records_per_s": args.variants / local_s})
  print(f"single process: {args.variants / local_s:8.1f} variants/s ({local_s:.1f} s)")
  with h5py.File(os.path.join(work, "local.h5")) as f:
    reference = {k: f[f"scores/{k}"][:] for k in _score_names(f)}
  for workers in args.workers:
    options = (f"--runner DirectRunner --direct_num_workers {workers} "
               f"--direct_running_mode multi_processing")
    output = os.path.join(work, f"beam{workers}.h5")
    start = time.perf_counter()
    score_vcf_beam(analysis, vcf, fasta, output, config, run=BeamRun(options),
                   model_source=savedmodel)
    seconds = time.perf_counter() - start
    with h5py.File(output) as f:
      diff = max(float(np.abs(f[f"scores/{k}"][:] - v).max()) for k, v in reference.items())
    runs.append({"runner": "beam DirectRunner multi_processing", "workers": workers,
                 "beam_options": options, "seconds": seconds,
                 "records_per_s": args.variants / seconds, "max_abs_diff_vs_single": diff})
    print(f"beam, {workers} worker(s): {args.variants / seconds:8.1f} variants/s ({seconds:.1f} s; "
          f"max |diff| vs single process {diff:.2g})")
  result = {"model": args.model, "sequence_length": length, "variants": args.variants,
            "shifts": list(args.shifts), "reverse_complement": True,
            "batch_size": args.batch_size, "export_seconds": export_s, "runs": runs,
            "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
                        "platform": platform.platform(), "python": platform.python_version()},
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(result, f, indent=2)
  print(f"wrote {args.output}")
  return 0


def _score_names(f) -> list[str]:
  return [f"{head}/{stat}" for head in f["scores"] for stat in f["scores"][head]]


if __name__ == "__main__":
  sys.exit(main())
