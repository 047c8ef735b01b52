"""`tf-seqmodels export hub|kipoi`: publish a model as a TF-Hub SavedModel or a Kipoi folder.

    tf-seqmodels export hub --model dream_cnn --config cfg.yaml --weights run/checkpoints/best \\
        --output exports/dream_cnn --training-data "DREAM 2022 yeast promoters"
    tf-seqmodels export kipoi --model dream_cnn --demo --output kipoi/DreamCNN

Both run the parity check (live vs reloaded vs Kipoi) and write atomically; see export.hub
and export.kipoi. `--options FILE` reads HubExportConfig / KipoiExportConfig fields from a
YAML/JSON file; the flags override it.
"""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
  parser = subparsers.add_parser("export", help="export a model: TF-Hub SavedModel (+ tarball) "
                                 "or Kipoi model folder, parity-checked")
  parser.add_argument("format", choices=("hub", "kipoi"))
  parser.add_argument("--model", default="enformer", help="registered model name")
  parser.add_argument("--config", help="model config file (.yaml/.json); default: the "
                      "published config (or --demo)")
  parser.add_argument("--demo", action="store_true", help="the registry's small demo config")
  parser.add_argument("--weights", help="checkpoint written by tf-seqmodels (prefix or directory)")
  parser.add_argument("--reference-weights", help="weights in the reference implementation's "
                      "format")
  parser.add_argument("--output", required=True, help="destination folder (must not exist "
                      "unless --overwrite)")
  parser.add_argument("--options", help="HubExportConfig / KipoiExportConfig file")
  parser.add_argument("--training-data", help="what the weights were trained on (metadata)")
  parser.add_argument("--description", help="model card / Kipoi doc text")
  parser.add_argument("--atol", type=float, help="parity tolerance (absolute; default 1e-5)")
  parser.add_argument("--rtol", type=float, help="parity tolerance (relative; default 1e-5)")
  parser.add_argument("--no-tarball", action="store_true", help="hub: skip model.tar.gz")
  parser.add_argument("--targets", nargs="+", metavar="[HEAD=]TARGETS_TXT",
                      help="Basenji targets tables whose strand pairs (CAGE +/-) go into the "
                      "metadata (track_permutations), so analyses of the export average reverse "
                      "complements correctly; HEAD defaults to the model's only track head")
  parser.add_argument("--skip-kipoi-test", action="store_true",
                      help="kipoi: skip the final `kipoi test` run (the pipeline parity check "
                      "still runs)")
  parser.add_argument("--overwrite", action="store_true")
  parser.set_defaults(func=run)


def _hub_changes(args) -> dict:
  changes = {"model_name": args.model}
  for field in ("training_data", "description", "atol", "rtol"):
    if getattr(args, field) is not None:
      changes[field] = getattr(args, field)
  return changes


def _strand_pairs(model, specs) -> dict:
  """{head: permutation list} of `--targets [HEAD=]TARGETS_TXT` arguments."""
  from tf_seqmodels.data.strands import targets_permutation
  out = {}
  for spec in specs or ():
    head, sep, path = spec.partition("=")
    if not sep or not head.isidentifier():
      head, path = "", spec
    if not head:
      tracks = [h for h, kind in model.head_kinds.items() if kind == "tracks"]
      if len(tracks) != 1:
        raise ValueError(f"--targets {spec}: name the head (HEAD=TARGETS_TXT); track heads: "
                         f"{tracks}")
      head = tracks[0]
    out[head] = targets_permutation(path).tolist()
  return out


def run(args) -> int:
  from tf_seqmodels.export.hub import ExportError, HubExportConfig, export_hub
  from tf_seqmodels.export.kipoi import KipoiExportConfig, export_kipoi
  from tf_seqmodels.cli import _build
  model = _build(args.model, args.config, args.demo, args.weights, args.reference_weights)
  try:
    if args.format == "hub":
      config = HubExportConfig.load(args.options) if args.options else HubExportConfig()
      if args.targets:
        config = config.replace(track_permutations={**config.track_permutations,
                                                    **_strand_pairs(model, args.targets)})
      config = config.replace(**_hub_changes(args), overwrite=args.overwrite or config.overwrite,
                              tarball=config.tarball and not args.no_tarball)
      result = export_hub(model, args.output, config)
      print(f"wrote {result.savedmodel}" + (f" and {result.tarball}" if result.tarball else ""))
    else:
      config = KipoiExportConfig.load(args.options) if args.options else KipoiExportConfig()
      config = config.replace(hub=config.hub.replace(**_hub_changes(args)),
                              overwrite=args.overwrite or config.overwrite,
                              doc=args.description or config.doc,
                              run_kipoi_test=config.run_kipoi_test and not args.skip_kipoi_test)
      result = export_kipoi(model, args.output, config)
      print(f"wrote Kipoi model folder {result.directory}; try: cd {result.directory} && "
            f"kipoi test .")
  except (ExportError, FileExistsError) as e:
    print(f"tf-seqmodels export: error: {e}", file=sys.stderr)
    return 2
  worst = max((v for check in result.parity.values() for v in check.values()), default=0.0)
  print(f"parity: {', '.join(result.parity)} agree (max |diff| {worst:.2g})")
  return 0

