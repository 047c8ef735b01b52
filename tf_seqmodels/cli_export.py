"""`tf-seqmodels export hub|kipoi`: publish a model as a TF-Hub SavedModel or a Kipoi folder.

    tf-seqmodels export hub --model runs/dream_cnn --output exports/dream_cnn \\
        --training-data "DREAM 2022 yeast promoters"
    tf-seqmodels export kipoi --model dream_cnn --demo --output kipoi/DreamCNN

`--model` is any model source but a SavedModel (`model_source`): a run directory, a
checkpoint with its --config, or a registered name (+ --config/--demo, --weights).
`--overwrite` replaces only a folder an earlier export wrote (its marker file).

Both run the parity check (live vs reloaded vs Kipoi) and write atomically; see export.hub
and export.kipoi. `--options FILE` reads HubExportConfig / KipoiExportConfig fields from a
YAML/JSON file; the flags override it.
"""

from __future__ import annotations

from tf_seqmodels.cli_common import nonnegative_float
from tf_seqmodels.model_source import add_model_source_arguments


def add_parser(subparsers) -> None:
  parser = subparsers.add_parser("export", help="export a model: TF-Hub SavedModel (+ tarball) "
                                 "or Kipoi model folder, parity-checked")
  parser.add_argument("format", choices=("hub", "kipoi"))
  add_model_source_arguments(parser)
  parser.add_argument("--output", required=True, help="destination folder (must not exist "
                      "unless --overwrite)")
  parser.add_argument("--options", help="HubExportConfig / KipoiExportConfig file")
  parser.add_argument("--training-data", help="what the weights were trained on (metadata)")
  parser.add_argument("--description", help="model card / Kipoi doc text")
  parser.add_argument("--atol", type=nonnegative_float, help="parity tolerance (absolute; default 1e-5)")
  parser.add_argument("--rtol", type=nonnegative_float, help="parity tolerance (relative; default 1e-5)")
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


def _hub_changes(args, model_name: str) -> dict:
  changes = {"model_name": model_name}
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
  from tf_seqmodels.export.hub import HubExportConfig, export_hub
  from tf_seqmodels.export.kipoi import KipoiExportConfig, export_kipoi
  from tf_seqmodels.model_source import SAVED_MODEL, ModelSource, ModelSourceError, load_model
  from tf_seqmodels.outputs import check_replaceable
  if args.format == "hub":
    config = HubExportConfig.load(args.options) if args.options else HubExportConfig()
  else:
    config = KipoiExportConfig.load(args.options) if args.options else KipoiExportConfig()
  overwrite = args.overwrite or config.overwrite
  check_replaceable(args.output, overwrite)  # before the model is built
  source = ModelSource.from_args(args)
  if source.check() == SAVED_MODEL:
    raise ModelSourceError(f"--model {args.model} is already a SavedModel: export reads a run "
                           f"directory, a checkpoint or a registered model")
  loaded = load_model(source)
  model = loaded.model
  hub = config if args.format == "hub" else config.hub
  permutations = dict(hub.track_permutations)
  if loaded.train_config is not None:  # a run's stranded track heads, as the analyses use them
    from tf_seqmodels.data.strands import data_track_permutations
    permutations.update({h: p.tolist() for h, p in
                         data_track_permutations(loaded.train_config.data).items()})
  permutations.update(_strand_pairs(model, args.targets))
  hub = hub.replace(**_hub_changes(args, loaded.name), track_permutations=permutations)
  if args.format == "hub":
    config = hub.replace(overwrite=overwrite, tarball=hub.tarball and not args.no_tarball)
    result = export_hub(model, args.output, config)
    print(f"wrote {result.savedmodel}" + (f" and {result.tarball}" if result.tarball else ""))
  else:
    config = config.replace(hub=hub, overwrite=overwrite, doc=args.description or config.doc,
                            run_kipoi_test=config.run_kipoi_test and not args.skip_kipoi_test)
    result = export_kipoi(model, args.output, config)
    print(f"wrote Kipoi model folder {result.directory}; try: cd {result.directory} && "
          f"kipoi test --source dir .")
  worst = max((v for check in result.parity.values() for v in check.values()), default=0.0)
  print(f"parity: {', '.join(result.parity)} agree (max |diff| {worst:.2g})")
  return 0
