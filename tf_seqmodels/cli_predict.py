"""`tf-seqmodels predict`: predictions of any model from its natural input -> HDF5 or TSV.

    tf-seqmodels predict --model runs/enformer --fasta windows.fa --output predictions.h5
    tf-seqmodels predict --model runs/dream_cnn --sequences promoters.tsv \\
        --plasmid plasmid.json --output expression.tsv
    tf-seqmodels predict --model runs/chrombpnet --regions peaks.narrowPeak \\
        --genome hg38.fa --output peaks.h5
    tf-seqmodels predict --model runs/chromoformer --chromoformer-metadata metadata.csv \\
        --chromoformer-npy npy/ --output genes.tsv

DNA models read a FASTA file (one record per input), a sequence table (TSV/CSV with a
`sequence` column and an optional `id`/`name` column; or DREAM's header-less
sequence<TAB>expression file), or BED / narrowPeak regions: the window of the model's length
centred on each region (narrowPeak: on its summit) cut from `--genome`, as `contributions`
cuts it (the one interval reader, `data.intervals`; the overhang past a chromosome end reads
N). `--plasmid` pads yeast promoters as the DREAM reference does
(`data.dream.pad_with_plasmid`); forward and reverse-complement predictions are averaged
(default for DREAM models, `--reverse-complement` for others). Chromoformer reads the
reference's metadata.csv and per-region .npy layout (`data.chromoformer`). `--model` takes
every model source (`model_source`). A .tsv output has one row per sequence/gene (scalar
heads); an .h5 output one dataset per head plus `names`.
"""

from __future__ import annotations

import os

from tf_seqmodels.beam import add_runner_arguments, beam_run
from tf_seqmodels.cli_common import positive_int
from tf_seqmodels.model_source import add_model_source_arguments


def add_parser(subparsers) -> None:
  p = subparsers.add_parser("predict", help="predict sequences (FASTA or sequence table) or "
                            "Chromoformer genes (metadata.csv + .npy) -> HDF5 or TSV")
  add_model_source_arguments(p)
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument("--fasta", help="one input sequence per record")
  source.add_argument("--sequences", help="TSV/CSV with a `sequence` column (and `id`/`name`), "
                      "or DREAM's sequence<TAB>expression file")
  source.add_argument("--regions", help="BED / narrowPeak: predict the window of the model's "
                      "length centred on each region (narrowPeak: its summit), cut from --genome")
  source.add_argument("--chromoformer-metadata", help="the Chromoformer reference's "
                      "metadata.csv (with --chromoformer-npy)")
  p.add_argument("--genome", help="indexed genome FASTA the --regions windows are cut from")
  p.add_argument("--chromoformer-npy", help="folder of the reference's <chrom>:<start>-<end>.npy "
                 "histone-mark arrays")
  p.add_argument("--plasmid", help="DREAM plasmid.json: pad sequences to the model's length as "
                 "the DREAM reference does")
  rc = p.add_mutually_exclusive_group()
  rc.add_argument("--reverse-complement", dest="reverse_complement", action="store_true",
                  default=None, help="average forward and reverse-complement predictions "
                  "(default for models published that way: DREAM)")
  rc.add_argument("--no-reverse-complement", dest="reverse_complement", action="store_false")
  p.add_argument("--targets", help="Basenji targets table: strand pairs for reverse-complement "
                 "averaging of a track head")
  p.add_argument("--output", required=True, help="output .h5 (every head) or .tsv (one row per "
                 "sequence; scalar heads)")
  p.add_argument("--batch-size", type=positive_int, default=4)
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  add_runner_arguments(p)
  p.set_defaults(func=run)


def _check_output(args) -> str:
  from tf_seqmodels.outputs import check_not_an_input
  output = args.output
  if not output.endswith((".h5", ".hdf5", ".tsv")):
    raise ValueError(f"--output {output}: give a .h5 or .tsv file")
  check_not_an_input(output, {"--fasta": args.fasta, "--sequences": args.sequences,
                              "--regions": args.regions, "--genome": args.genome,
                              "--chromoformer-metadata": args.chromoformer_metadata,
                              "--plasmid": args.plasmid, "--config": args.config,
                              "--targets": args.targets})
  return output


def read_fasta(path: str) -> tuple[list[str], list[str]]:
  """(names, sequences) of a FASTA file of input sequences, through the one FASTA reader
  (`data.genome.read_fasta_records`: plain, gzip or bgzip; IUPAC codes read as N with a
  counted warning, other characters an error naming record and position)."""
  from tf_seqmodels.data.genome import read_fasta_records
  if not os.path.exists(path):
    raise FileNotFoundError(f"FASTA file not found: {path}")
  if os.path.isdir(path):
    raise IsADirectoryError(f"--fasta {path} is a directory, expected a FASTA file")
  names, seqs = read_fasta_records(path)
  if not names:
    raise ValueError(f"{path}: no FASTA records")
  return names, seqs


def read_region_windows(regions: str, genome_path: str, length: int
                        ) -> tuple[list[str], list[str], list[tuple[str, int, int]]]:
  """(names "chrom:start-end", sequences, windows (chrom, start, end)) of the `length`-bp
  window centred on each region of `regions` (narrowPeak: its summit), in file order."""
  import numpy as np
  from tf_seqmodels.analysis.regions import read_region_centres
  from tf_seqmodels.data.genome import Genome
  from tf_seqmodels.data.intervals import window_bounds
  bases = np.array(list("ACGTN"))
  with Genome(genome_path) as genome:
    centres = read_region_centres(regions, genome.chrom_sizes, genome_path, window=length)
    starts, ends = window_bounds(np.array([c for _, c in centres], np.int64), length)
    windows = [(chrom, int(s), int(e)) for (chrom, _), s, e in zip(centres, starts, ends)]
    seqs = ["".join(bases[genome.fetch_window(*w)]) for w in windows]
  return [f"{c}:{s}-{e}" for c, s, e in windows], seqs, windows


def read_sequence_table(path: str) -> tuple[list[str], list[str]]:
  """(names, sequences) of a TSV/CSV with a `sequence` column (optional `id`/`name`), or of
  DREAM's header-less sequence<TAB>expression file."""
  import csv
  if not os.path.exists(path):
    raise FileNotFoundError(f"sequence table not found: {path}")
  if os.path.isdir(path):
    raise IsADirectoryError(f"--sequences {path} is a directory, expected a TSV/CSV file")
  with open(path, newline="", encoding="utf-8") as f:
    try:
      text = f.read()
    except UnicodeDecodeError as e:
      raise ValueError(f"{path}: not a text table ({e.reason} at byte {e.start})") from None
  delimiter = "," if path.endswith(".csv") else "\t"
  rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in r)]
  if not rows:
    raise ValueError(f"{path}: no rows")
  header = [c.strip().lower() for c in rows[0]]
  if "sequence" in header:
    column = header.index("sequence")
    name_column = next((header.index(k) for k in ("id", "name", "gene_id") if k in header), None)
    body, first_line = rows[1:], 2
  elif set(rows[0][0].strip().upper()) <= set("ACGTN"):  # DREAM: sequence, expression
    column, name_column, body, first_line = 0, None, rows, 1
  else:
    raise ValueError(f"{path}: no 'sequence' column in the header ({', '.join(rows[0])}); "
                     f"give a header with 'sequence' (and optionally 'id')")
  names, seqs = [], []
  for line, row in enumerate(body, first_line):
    if column >= len(row) or not row[column].strip():
      raise ValueError(f"{path}:{line}: no sequence in column {column + 1}")
    seqs.append(row[column].strip().upper())
    names.append(row[name_column].strip() if name_column is not None and name_column < len(row)
                 else f"seq{len(names)}")
  if not seqs:
    raise ValueError(f"{path}: a header but no sequences")
  return names, seqs


def _check_characters(seq: str, index: int, where: str) -> None:
  """A SequenceError naming the record (1-based) and the first character outside ACGTN."""
  from tf_seqmodels.data.encoding import SequenceError, one_hot_encode
  try:
    one_hot_encode(seq.upper())
  except SequenceError as e:
    raise SequenceError(f"{where}: sequence {index + 1}: {e}") from None


def _encode(sequences, where: str):
  from tf_seqmodels.data.encoding import one_hot_encode
  for i, seq in enumerate(sequences):
    _check_characters(seq, i, where)
  if not sequences:
    return None
  return one_hot_encode([s.upper() for s in sequences])


def predict_sequences(model, names, sequences, *, where: str, batch_size: int,
                      reverse_complement: bool, runner=None, progress: bool = True):
  """{head: [N, ...]} predictions of an `analysis.inference.AnalysisModel` for equal-length
  DNA `sequences`, averaged with the reverse-complement copies if `reverse_complement`."""
  import numpy as np
  from tqdm import tqdm
  from tf_seqmodels.analysis.inference import BatchRunner
  from tf_seqmodels.data.encoding import SequenceError
  from tf_seqmodels.data.strands import CopyAverage
  lengths = sorted({len(s) for s in sequences})
  if len(lengths) != 1:
    raise SequenceError(f"{where}: all sequences must have one length, got lengths {lengths[:5]}"
                        + (" (pad DREAM promoters with --plasmid plasmid.json)"
                           if model.name.startswith("dream") else ""))
  if model.sequence_length and lengths[0] != model.sequence_length:
    hint = " (pad DREAM promoters with --plasmid plasmid.json)" \
        if model.name.startswith("dream") else ""
    raise SequenceError(f"{where}: {model.name} expects {model.sequence_length}-bp inputs, got "
                        f"{lengths[0]}-bp sequences{hint}")
  model.check_length(lengths[0])
  runner = runner or BatchRunner()
  chunks: dict[str, list] = {}
  for start in tqdm(range(0, len(sequences), batch_size), desc="predict", unit="batch",
                    disable=not progress):
    x = _encode(sequences[start:start + batch_size], where)
    passes = [(x, False)] + ([(x[:, ::-1, ::-1].copy(), True)] if reverse_complement else [])
    average = None
    for one_hot, is_reverse in passes:
      outputs = runner.predict(model, one_hot, is_reverse=is_reverse)
      if average is None:
        average = CopyAverage({h: model.position_axis(h, v) for h, v in outputs.items()},
                              {h: p for h, p in model.track_permutations.items() if h in outputs})
      average.add({h: np.asarray(v, np.float64) for h, v in outputs.items()}, is_reverse)
    for head, value in average.result().items():
      chunks.setdefault(head, []).append(value.astype(np.float32))
  return {head: np.concatenate(parts) for head, parts in chunks.items()}


def write_predictions(path: str, outputs: dict, names, attrs: dict, windows=None) -> None:
  """.h5: one dataset per head [N, ...] plus `names` (and `windows/{chrom,start,end}` of
  genome windows); .tsv: one row per name, one column per scalar output (head, or
  head_<track>). Written atomically."""
  import numpy as np
  from tf_seqmodels.config import atomic_output, atomic_write_text
  if path.endswith(".tsv"):
    columns = []
    for head, value in outputs.items():
      value = np.asarray(value)
      flat = value.reshape(len(value), -1)
      if value.ndim > 2 or flat.shape[1] > 64:
        raise ValueError(f"head {head!r} has outputs of shape {value.shape[1:]} per sequence: "
                         f"write them to an .h5 file")
      columns += ([(head, flat[:, 0])] if flat.shape[1] == 1 else
                  [(f"{head}_{k}", flat[:, k]) for k in range(flat.shape[1])])
    lines = ["name\t" + "\t".join(c for c, _ in columns)]
    lines += [name + "\t" + "\t".join(f"{v[i]:.6g}" for _, v in columns)
              for i, name in enumerate(names)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return
  import h5py
  with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
    for head, value in outputs.items():
      f.create_dataset(f"predictions/{head}", data=np.asarray(value), compression="gzip")
    f.create_dataset("names", data=np.array(list(names), dtype=h5py.string_dtype()))
    if windows is not None:
      chrom, start, end = zip(*windows)
      f.create_dataset("windows/chrom", data=np.array(chrom, dtype=h5py.string_dtype()))
      f.create_dataset("windows/start", data=np.array(start, np.int64))
      f.create_dataset("windows/end", data=np.array(end, np.int64))
    for key, value in attrs.items():
      f.attrs[key] = value


def _predict_chromoformer(args, output: str) -> int:
  import numpy as np
  from tf_seqmodels.data.chromoformer import predict_reference_layout
  from tf_seqmodels.model_source import SAVED_MODEL, ModelSource, ModelSourceError, load_model
  if not args.chromoformer_npy:
    raise ValueError("--chromoformer-metadata needs --chromoformer-npy (the folder of .npy "
                     "region arrays)")
  source = ModelSource.from_args(args)
  if source.check() == SAVED_MODEL:
    raise ModelSourceError("Chromoformer prediction reads a run directory, checkpoint or "
                           "registered model, not a SavedModel")
  loaded = load_model(source)
  if getattr(loaded.model, "takes_dna_sequence", True):
    raise ModelSourceError(f"--chromoformer-metadata needs a Chromoformer model; "
                           f"{loaded.name} reads DNA (use --fasta or --sequences)")
  # The one reference-layout path (data.chromoformer): the reference's Dataset layout, and the
  # probability its run_demo.py reports (sigmoid of logit 1), one row per gene in file order.
  rows = predict_reference_layout(loaded.model, args.chromoformer_metadata,
                                  args.chromoformer_npy, batch_size=args.batch_size,
                                  progress=not args.quiet)
  gene_ids = [row.pop("gene_id") for row in rows]
  outputs = {column: np.array([row[column] for row in rows]) for column in rows[0]}
  write_predictions(output, outputs, gene_ids,
                    {"model": loaded.name, "config": loaded.config.to_json()})
  print(f"wrote predictions for {len(gene_ids)} genes to {output}: "
        + ", ".join(f"{k} {v.shape}" for k, v in outputs.items()))
  return 0


def run(args) -> int:
  output = _check_output(args)
  if args.chromoformer_metadata:
    return _predict_chromoformer(args, output)
  if args.chromoformer_npy:
    raise ValueError("--chromoformer-npy goes with --chromoformer-metadata")
  if bool(args.regions) != bool(args.genome):
    raise ValueError("--regions and --genome go together (the regions' windows are cut from "
                     "the genome FASTA)")
  from tf_seqmodels.analysis.inference import load_analysis_model
  from tf_seqmodels.model_source import ModelSource
  where = args.fasta or args.sequences or args.regions
  windows = None
  if not args.regions:
    names, seqs = read_fasta(args.fasta) if args.fasta else read_sequence_table(args.sequences)
    for i, seq in enumerate(seqs):  # every sequence, before the model loads
      _check_characters(seq, i, where)
  model = load_analysis_model(None, source=ModelSource.from_args(args), targets=args.targets)
  if args.regions:
    if not model.sequence_length:
      raise ValueError(f"--regions: {model.name} has no fixed input length to cut windows of")
    if args.plasmid:
      raise ValueError("--plasmid pads short promoters; --regions windows already have the "
                       "model's length")
    names, seqs, windows = read_region_windows(args.regions, args.genome, model.sequence_length)
  if args.plasmid:
    from tf_seqmodels.data.dream import load_plasmid, pad_with_plasmid
    length = model.sequence_length
    if not length:
      raise ValueError(f"--plasmid: {model.name} has no fixed input length to pad to")
    seqs = pad_with_plasmid([s.upper() for s in seqs], load_plasmid(args.plasmid), length)
  rc = args.reverse_complement
  if rc is None:  # the model's published convention (DREAM: both strands averaged)
    rc = model.strand_averaged_prediction
  beam = beam_run(args)
  if beam:  # the same predictions from an Apache Beam pipeline over an exported SavedModel
    if args.sequences or args.plasmid:
      raise ValueError("--runner beam predicts --fasta records or --regions windows (no "
                       "--sequences, no --plasmid); use the single-process command for these")
    from tf_seqmodels.beam.pipelines import predict_beam
    outputs = predict_beam(model, genome=args.fasta or args.genome, run=beam, output=output,
                           windows=windows, batch_size=args.batch_size, reverse_complement=rc,
                           model_source=args.model)
  else:
    outputs = predict_sequences(model, names, seqs, where=where, batch_size=args.batch_size,
                                reverse_complement=rc, progress=not args.quiet)
  attrs = {"model": model.name, "reverse_complement_average": bool(rc)}
  if model.model is not None:
    attrs["config"] = model.model.config.to_json()
  if args.regions:
    attrs.update(regions=os.path.abspath(args.regions), genome=os.path.abspath(args.genome))
  write_predictions(output, outputs, names, attrs, windows)
  print(f"wrote predictions for {len(names)} {'windows' if windows else 'sequences'} to "
        f"{output}: " + ", ".join(f"{k} {v.shape}" for k, v in outputs.items()))
  return 0
