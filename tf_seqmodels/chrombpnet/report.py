"""The pipeline's QC report: one HTML page a person reads (plus report.json / report.md and
the PNGs), built with `evaluation.report` sections from the steps' outputs.

Sections: data (reads, shift, regions, fold), training (loss curves of both models),
bias QC (metrics, enzyme and TF footprints in the bias model, flags), test metrics (counts
scatter on peaks and non-peaks, profile JSD against the uniform / average-profile /
shuffled-label baselines, example profiles), footprints (with vs without the bias; the
reference's "corrected" gate) and motifs (TF-MoDISco patterns with their logos and best
database matches).
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

import numpy as np

from tf_seqmodels.config import atomic_write_text
from tf_seqmodels.evaluation.report import Report, Section, new_figure


def _format(value: Any) -> str:
  """A table cell: 4 significant digits for floats, '-' for missing values."""
  if value is None:
    return "-"
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def _load(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _loss_curves(run_dir: str, title: str):
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  train, valid = [], []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        break
      if "loss" in record and record.get("split") in ("train", "valid"):
        (train if record["split"] == "train" else valid).append((record["step"], record["loss"]))
  if not train and not valid:
    return None
  fig, ax = new_figure(5.5, 3.5)
  ax = ax[0, 0]
  for points, label in ((train, "train"), (valid, "validation")):
    if points:
      ax.plot(*zip(*points), marker="o" if label == "validation" else None, ms=3, label=label)
  ax.set_xlabel("step")
  ax.set_ylabel("loss (MNLL + w x MSE)")
  ax.set_title(title)
  ax.legend(fontsize=8)
  return fig


def _counts_scatter(obs, pred, is_peak):
  fig, ax = new_figure(4.5, 4.2)
  ax = ax[0, 0]
  for mask, label, colour in ((~is_peak, "non-peaks", "0.6"), (is_peak, "peaks", "C0")):
    if mask.any():
      r = np.corrcoef(obs[mask], pred[mask])[0, 1] if mask.sum() > 2 else float("nan")
      ax.scatter(obs[mask], pred[mask], s=5, alpha=0.6, color=colour, label=f"{label} (r = {r:.2f})")
  lo, hi = float(min(obs.min(), pred.min())), float(max(obs.max(), pred.max()))
  ax.plot([lo, hi], [lo, hi], color="k", lw=0.6)
  ax.set_xlabel("observed log(1 + counts)")
  ax.set_ylabel("predicted log counts")
  ax.legend(fontsize=8)
  return fig


def _jsd_figure(baselines: dict):
  fig, ax = new_figure(5.5, 3.5)
  ax = ax[0, 0]
  bins = np.linspace(0, 1, 41)
  for name, values in baselines.items():
    values = values[np.isfinite(values)]
    ax.hist(values, bins=bins, histtype="step", lw=1.4, label=f"{name} (median {np.median(values):.3f})")
  ax.set_xlabel("Jensen-Shannon distance, test peaks")
  ax.set_ylabel("regions")
  ax.legend(fontsize=7)
  return fig


def _example_profiles(obs, preds: dict, is_peak, count: int = 4):
  totals = obs.sum(axis=1)
  pool = np.flatnonzero(is_peak) if is_peak.any() else np.arange(len(obs))
  top = pool[np.argsort(-totals[pool], kind="mergesort")][:count]
  fig, axes = new_figure(8.0, 1.7 * len(top) + 0.4, len(top), 1, sharex=True)
  for ax, i in zip(axes[:, 0], top):
    ax.fill_between(np.arange(obs.shape[1]), obs[i], step="mid", color="0.7", label="observed")
    for (name, (logits, logcounts)), colour in zip(preds.items(), ("C3", "C0")):
      z = np.exp(logits[i] - logits[i].max())
      ax.plot(z / z.sum() * np.exp(logcounts[i]), color=colour, lw=0.9, label=name)
    ax.set_ylabel(f"region {i}", fontsize=8)
  axes[0, 0].legend(fontsize=7, loc="upper right")
  axes[-1, 0].set_xlabel("position (bp)")
  return fig


def _footprint_figure(profiles: dict, name: str, width: int = 100):
  fig, ax = new_figure(5.0, 3.0)
  ax = ax[0, 0]
  for model, colour in (("chrombpnet", "C3"), ("chrombpnet_nobias", "C0"), ("bias", "0.5")):
    key = f"{model}__{name}"
    if key in profiles:
      values = profiles[key]
      mid = len(values) // 2
      lo, hi = max(0, mid - width), min(len(values), mid + width)
      ax.plot(np.arange(lo, hi) - mid, values[lo:hi], color=colour, lw=1.0, label=model)
  ax.axhline(3.0 / len(values), color="k", lw=0.5, ls=":", label="3 x uniform (gate)")
  ax.set_xlabel("position from motif centre (bp)")
  ax.set_ylabel("normalised footprint")
  ax.set_title(name, fontsize=9)
  ax.legend(fontsize=7)
  return fig


def build_report(p, out_dir: str) -> tuple[Report, dict[str, list[str]]]:
  """The Report of a finished pipeline `p` (`pipeline.Pipeline`) and the motif logo PNGs
  it wrote into `out_dir` ({section: [file names]})."""
  from tf_seqmodels.analysis.logos import plot_contribution_logo
  os.makedirs(out_dir, exist_ok=True)
  logos: dict[str, list[str]] = {"motifs": []}
  c = p.config
  report = Report(f"ChromBPNet pipeline: {os.path.basename(p.root)}",
                  {"genome": c.genome, "peaks": c.peaks, "reads": c.reads or c.bigwig,
                   "assay": c.assay, "input/output length": f"{c.input_length} / {c.output_length}"})
  data = report.add_section(Section("data", notes=(
      "Reads -> insertion counts (shift detected from the data unless given; final "
      "convention ATAC +4/-4, DNase +0/+1), peaks after edge/blacklist filtering, GC-matched "
      "non-peaks, chromosome fold.")))
  reads = p.path("auxiliary", "reads.json")
  if os.path.exists(reads):
    summary = _load(reads)
    data.metrics.update({"reads (tags)": summary["tags"], "insertions": summary["insertions"],
                         "input shift": "{:+d}/{:+d}".format(*summary["input_shift"]),
                         "shift detected": summary["detected"]})
  regions = p.result("regions")
  data.metrics.update({k: v for k, v in regions.items() if v is not None})
  data.add_table("fold", [{"split": k, "chromosomes": ", ".join(v)} for k, v in
                          _load(p.fold).items()])

  training = report.add_section(Section("training", notes=(
      "Training (metrics.jsonl of each run) and validation loss; the best checkpoint is the "
      "one with the lowest validation loss, early stopping after `patience` validations "
      "without improvement.")))
  for name, run_dir in (("bias", p.bias_dir), ("chrombpnet", p.chrombpnet_dir)):
    fig = _loss_curves(run_dir, f"{name} model")
    if fig is not None:
      training.add_figure(f"{name}_loss", fig)

  qc = _load(p.path("evaluation", "bias_qc.json"))
  bias = report.add_section(Section("bias model QC", notes=(
      "The bias model must capture the enzyme's preference and no TF motif. Gate (reference): "
      "counts Pearson on test peaks > -0.5. Footprints: max_ratio = footprint maximum x output "
      "length (uniform = 1); counts_log2fc = predicted counts with / without one motif copy. "
      "A TF motif with counts_log2fc >= 0.5 in the bias model is flagged.")))
  bias.add_table("metrics", [{"subset": k, **v} for k, v in qc["metrics"].items()])
  bias.add_table("footprints", [{"name": k, **v} for k, v in qc["footprints"].items()])
  fp_path = p.path("footprints", "footprints.json")
  flags = list(qc["flags"])
  if os.path.exists(fp_path):
    flags += _load(fp_path)["bias_tf_flags"]
  bias.add_table("flags", [{"flag": f} for f in flags] or [{"flag": "none"}])
  bias.metrics["peak Pearson gate passed"] = qc["peak_pearson_gate"]["passed"]

  test = _load(p.path("evaluation", "test_metrics.json"))
  preds = np.load(p.path("evaluation", "test_predictions.npz"))
  evaluation = report.add_section(Section("test metrics", notes=(
      "Test-chromosome peaks and non-peaks. Counts: log(1 + observed total) vs predicted log "
      "counts. Profile: Jensen-Shannon distance of observed vs predicted profiles (lower is "
      "better) against a uniform profile, the average observed profile and the model's "
      "profiles with shuffled labels.")))
  evaluation.add_table("metrics", [{"model": m, "subset": s, **row}
                                   for m, subsets in test["metrics"].items()
                                   for s, row in subsets.items()])
  evaluation.metrics.update({f"median JSD ({k})": v
                             for k, v in test["jsd_baselines_peaks"].items()})
  observed, is_peak = preds["observed"], preds["is_peak"].astype(bool)
  evaluation.add_figure("counts_scatter", _counts_scatter(np.log1p(observed.sum(1)),
                                                          preds["chrombpnet_logcounts"], is_peak))
  if is_peak.any():
    from tf_seqmodels.chrombpnet.evaluation import jsd_baselines
    evaluation.add_figure("profile_jsd", _jsd_figure(jsd_baselines(
        observed[is_peak], preds["chrombpnet_profile"][is_peak], c.seed)))
  evaluation.add_figure("example_profiles", _example_profiles(observed, {
      "chrombpnet": (preds["chrombpnet_profile"], preds["chrombpnet_logcounts"]),
      "no bias": (preds["chrombpnet_nobias_profile"], preds["chrombpnet_nobias_logcounts"])},
      is_peak))

  if os.path.exists(fp_path):
    fps = _load(fp_path)
    verdict = fps["bias_correction"]
    section = report.add_section(Section("footprints", notes=(
        "Marginal footprints: each motif inserted at the centre of test non-peaks, the "
        "predicted profile (forward + reverse complement) normalised and averaged. The "
        "bias-corrected model must not answer the enzyme motifs (reference gate: max < 3 x "
        "uniform, 0.003 at 1000 bp -> 'corrected').")))
    section.metrics["bias corrected"] = verdict["corrected"]
    section.add_table("responses", [{"model": m, "motif": k, **v}
                                    for m, rows in fps["footprints"].items()
                                    for k, v in rows.items()])
    profiles = dict(np.load(p.path("footprints", "profiles.npz")))
    for name in list(fps["enzyme_motifs"]) + list(fps["tf_motifs"])[:6]:
      section.add_figure(f"footprint_{name}", _footprint_figure(profiles, name))

  motifs = report.add_section(Section("motifs", notes=(
      "TF-MoDISco (modisco-lite) on the bias-corrected model's contribution scores; best "
      "match by column correlation against the motif database (match: similarity >= 0.75).")))
  for target in c.modisco_targets:
    path = p.path("modisco", target, "patterns.json")
    if not os.path.exists(path):
      continue
    rows = _load(path)
    error = p.result("modisco").get(target, {}).get("error")
    if error:
      motifs.metrics[f"{target}: modisco-lite failed"] = error
    motifs.add_table(target, [{k: r[k] for k in ("pattern", "seqlets", "consensus", "match",
                                                 "best_target", "similarity")} for r in rows])
    for r in rows[:8]:
      name = f"logo_{target}_{r['pattern']}.png"
      plot_contribution_logo(os.path.join(out_dir, name), np.array(r["cwm"]),
                             title=f"{target} {r['pattern']} ({r['seqlets']} seqlets)"
                             f"{' ~ ' + r['match'] if r['match'] else ''}")
      logos["motifs"].append(name)
  return report, logos


def _html(report: Report, logos: dict[str, list[str]]) -> str:
  data = report.to_dict()
  esc = html.escape
  parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           f"<title>{esc(report.title)}</title><style>body{{font-family:sans-serif;max-width:"
           "1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
           "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%;margin:.3em}"
           ".flag{color:#b00}</style></head><body>", f"<h1>{esc(report.title)}</h1><ul>"]
  parts += [f"<li><b>{esc(str(k))}</b>: {esc(_format(v))}</li>" for k, v in data["metadata"].items()]
  parts.append("</ul>")
  for s in data["sections"]:
    parts.append(f"<h2>{esc(s['name'])}</h2><p>{esc(s['notes'])}</p>")
    if s["metrics"]:
      parts.append("<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(_format(v))}</td></tr>"
                                       for k, v in s["metrics"].items()) + "</table>")
    for name, rows in s["tables"].items():
      parts.append(f"<h3>{esc(name)}</h3>")
      if not rows:
        continue
      columns = list(rows[0])
      parts.append("<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>")
      for row in rows:
        cls = " class='flag'" if name == "flags" and row.get("flag") != "none" else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(_format(row.get(c)))}</td>"
                                            for c in columns) + "</tr>")
      parts.append("</table>")
    parts += [f"<img src='{esc(f)}' alt='{esc(n)}'>" for n, f in s["figures"].items()]
    parts += [f"<img src='{esc(f)}' alt='{esc(f)}'>" for f in logos.get(s["name"], [])]
  parts.append("</body></html>\n")
  return "".join(parts)


def write_report(p) -> str:
  """Writes report/index.html (+ report.json, report.md, PNGs); returns the HTML path."""
  out = p.path("report")
  report, logos = build_report(p, out)
  html_text = _html(report, logos)  # before write(): writing closes the figures
  report.write(out)
  path = os.path.join(out, "index.html")
  atomic_write_text(path, html_text)
  return path


__all__ = ["build_report", "write_report"]
