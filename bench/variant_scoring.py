"""Variant scoring at genome scale: variants/s and peak memory of `score-variants` per model.

    python bench/variant_scoring.py                               # the default table (below)
    python bench/variant_scoring.py --runs enformer:published:4:2 --threads 2
    python bench/variant_scoring.py --memory 20000 200000         # peak RSS vs VCF size
    python bench/variant_scoring.py --runs bpnet:tiny:10000000:1024 --threads 2   # 10M SNVs

Each run scores a VCF of random bi-allelic SNVs (REF taken from a random genome) through the
package's one scoring path, `analysis.variants.score_vcf` (what `tf-seqmodels score-variants`
calls: the VCF streamed batch by batch, the reference window of a site predicted once, forward
and reverse-complement strands in one batch, XLA-compiled inference, HDF5 output), in its own
process, so its peak RSS is its own. A run is MODEL:SIZE:VARIANTS:BATCH with SIZE one of
`published` (the registry defaults), `demo` or `tiny`; models have random weights (speed does not
depend on them). Figures: variants/s (wall), CPU-seconds per variant (all threads), peak RSS,
and for the first batch (tracing and compilation) its seconds separately.

`--memory N1 N2 ...` scores VCFs of growing size with the same small model and reports peak RSS
per size: memory must not grow with the number of variants (the VCF is streamed and results
are appended to the output batch by batch).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402  (bench/report.py)

DEFAULT_RUNS = ("enformer:demo:64:16", "enformer:published:1:1", "dream_cnn:published:1024:64",
                "dream_cnn:published:1024:256", "chrombpnet:published:32:16",
                "bpnet:demo:2048:64")


SPACING = 40        # bp between consecutive SNVs
MARGIN = 262_144    # genome on each side of the SNVs: more than any model's input window


def _write_inputs(work: str, variants: int, seed: int) -> tuple[str, str]:
  """A random one-chromosome genome (FASTA + .fai) and a VCF of `variants` SNVs SPACING bp
  apart, written chunk by chunk (a 10M-variant input needs little memory to write)."""
  import numpy as np
  import pyfaidx
  rng = np.random.default_rng(seed)
  chrom_length = variants * SPACING + 2 * MARGIN
  fasta, vcf = os.path.join(work, "genome.fa"), os.path.join(work, "variants.vcf")
  lut = np.frombuffer(b"ACGT", np.uint8)
  with open(fasta, "wb") as f:
    f.write(b">chr1\n")
    for start in range(0, chrom_length, 6_000_000):  # whole 60-base lines but the last
      bases = lut[rng.integers(0, 4, min(6_000_000, chrom_length - start))]
      f.write(b"\n".join(bases[i:i + 60].tobytes() for i in range(0, len(bases), 60)) + b"\n")
  chrom = pyfaidx.Fasta(fasta, sequence_always_upper=True)["chr1"]  # also writes the .fai
  with open(vcf, "w") as f:
    f.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    for first in range(0, variants, 100_000):
      n = min(100_000, variants - first)
      low = MARGIN + first * SPACING
      refs = str(chrom[low:low + n * SPACING])[::SPACING]
      shifts = rng.integers(1, 4, n)
      f.write("".join(
          f"chr1\t{low + k * SPACING + 1}\tv{first + k}\t{ref}\t"
          f"{'ACGT'[('ACGT'.index(ref) + int(shifts[k])) % 4]}\t.\t.\t.\n"
          for k, ref in enumerate(refs)))
  return fasta, vcf


def _child(spec: str, seed: int, threads: int, fasta: str, vcf: str) -> dict:
  """One run in this process: MODEL:SIZE:VARIANTS:BATCH on the given inputs."""
  name, size, variants, batch = spec.split(":")
  variants, batch = int(variants), int(batch)
  import tensorflow as tf
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner, compiled_predictor
  from tf_seqmodels.analysis import variants as variants_module
  from tf_seqmodels.analysis.variants import VariantScoringConfig, score_vcf
  from tf_seqmodels.models import build_model, get_entry, num_trainable_parameters

  entry = get_entry(name)
  config = {"published": entry.config_class, "demo": entry.demo_config or entry.config_class,
            "tiny": entry.smallest_config}[size]()
  tf.random.set_seed(seed)
  model = build_model(name, config)
  analysis = AnalysisModel(model)
  length = analysis.sequence_length
  scoring = VariantScoringConfig(batch_size=batch)

  first_batch = []  # when the first batch was scored: tracing and compilation included
  score_batches = variants_module.score_variants

  def timed_score_variants(*a, **k):
    for scored in score_batches(*a, **k):
      if not first_batch:
        first_batch.append(time.perf_counter())
      yield scored

  variants_module.score_variants = timed_score_variants
  start = time.perf_counter()
  cpu = time.process_time()
  output = os.path.join(os.path.dirname(vcf), f"scores-{os.getpid()}.h5")
  result = score_vcf(analysis, vcf, fasta, output, scoring, runner=BatchRunner(),
                     progress=variants >= 100_000)
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu
  first_wall = first_batch[0] - start
  output_mib = os.path.getsize(output) / 2**20
  for path in (output, output + ".skipped.tsv"):
    os.remove(path)
  return {"run": spec, "model": name, "size": size, "sequence_length": length,
          "params": num_trainable_parameters(model), "variants": variants, "batch": batch,
          "scored": result["scored"], "threads": threads or "default",
          "xla": compiled_predictor(model).jit_compile,
          "reverse_complement": scoring.reverse_complement, "shifts": list(scoring.shifts),
          "wall_s": wall, "cpu_s": cpu, "first_batch_wall_s": first_wall,
          "variants_per_s": variants / wall, "cpu_s_per_variant": cpu / variants,
          "variants_per_s_after_first_batch": (variants - batch) / max(wall - first_wall, 1e-9),
          "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
          "output_mib": output_mib}


def table(payload: dict):
  """(title, columns, rows, notes) of one results file (printed, and rendered into the README)."""
  results = payload["results"]
  memory = bool(payload["args"].get("memory"))
  title = ("score-variants peak memory against the number of variants" if memory else
           "score-variants throughput (random SNVs; forward + reverse complement; HDF5 output)")
  rows = [[r["model"], r["size"], f"{r['sequence_length']:,}", f"{r['params']:,}",
           f"{r['variants']:,}", r["batch"], r["threads"], "yes" if r["xla"] else "no",
           r["variants_per_s"],
           r["variants_per_s_after_first_batch"] if r["variants"] > r["batch"] else "-",
           r["cpu_s_per_variant"],
           r["first_batch_wall_s"], r["peak_rss_gib"]] for r in results]
  notes = []
  if memory and len(results) > 1:
    low, high = results[0], results[-1]
    notes.append(f"{high['variants'] / low['variants']:.0f}x the variants: peak RSS "
                 f"{low['peak_rss_gib']:.2f} -> {high['peak_rss_gib']:.2f} GiB.")
  return title, ["model", "size", "input bp", "params", "variants", "batch", "threads", "XLA",
                 "variants/s", "variants/s after 1st batch", "CPU-s / variant", "1st batch s",
                 "peak RSS GiB"], rows, notes


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS),
                      help="MODEL:SIZE:VARIANTS:BATCH (SIZE published|demo|tiny)")
  parser.add_argument("--threads", type=int, nargs="+", default=[0],
                      help="TF intra/inter-op threads per run (0 = TF default); several values "
                           "repeat every run")
  parser.add_argument("--memory", type=int, nargs="+", default=None,
                      help="VCF sizes for the constant-memory check (runs bpnet:tiny at each)")
  parser.add_argument("--memory-model", default="bpnet:tiny", help="MODEL:SIZE for --memory")
  parser.add_argument("--memory-batch", type=int, default=256)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", help="results file (default bench/results/variant_scoring[_memory].json)")
  parser.add_argument("--one", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.one:
    spec, threads, fasta, vcf = args.one.split("@")
    print(json.dumps(_child(spec, args.seed, int(threads), fasta, vcf)))
    return 0
  env = report.environment()
  runs = ([f"{args.memory_model}:{n}:{args.memory_batch}" for n in args.memory] if args.memory
          else args.runs)
  results = []
  inputs = {}  # VCF size -> (fasta, vcf), written once here so no run's RSS includes it
  with tempfile.TemporaryDirectory(prefix="variant-bench-") as work:
    for spec in runs:
      variants = int(spec.split(":")[2])
      if variants not in inputs:
        folder = os.path.join(work, str(variants))
        os.makedirs(folder)
        tick = time.perf_counter()
        inputs[variants] = _write_inputs(folder, variants, args.seed)
        print(f"  wrote {variants:,} SNVs in {time.perf_counter() - tick:.1f} s", file=sys.stderr)
      for threads in args.threads:
        cmd = [sys.executable, os.path.abspath(__file__), "--seed", str(args.seed),
               "--one", "@".join([spec, str(threads), *inputs[variants]])]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode:
          raise SystemExit(f"run {spec} (threads {threads}) failed (exit {proc.returncode})")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"  {spec} threads {r['threads']}: {r['variants_per_s']:.1f} variants/s, "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB", file=sys.stderr, flush=True)
  payload = {"args": {k: v for k, v in vars(args).items() if k != "one"}, "environment": env,
             "results": results}
  report.save("variant_scoring_memory" if args.memory else "variant_scoring", payload, args.json)
  report.show(payload)
  return 0


if __name__ == "__main__":
  sys.exit(main())
