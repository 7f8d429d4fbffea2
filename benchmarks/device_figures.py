#!/usr/bin/env python3
"""Turns one device-check run's benchmark output into the figures table and its JSON.

  device_figures.py --dir OUT [--commit SHA] [--json results.json]

Reads OUT/bench_gpu_probes.json and OUT/bench_gpu_train_step.json (Google Benchmark's JSON) and
OUT/torch_gpu_baseline.json, prints one line per figure beside its baseline from the same run, and
writes them as JSON: {"date", "card", "commit", "figures": {name: {"value", "baseline", "unit",
"baseline_is", "ratio"}}}. A missing input leaves its figures out and says so.
"""
import argparse
import datetime
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"device_figures: {os.path.basename(path)}: {e}", file=sys.stderr)
        return None


def runs_by_name(bench):
    """{"BM_ProbePass/64": run} for the plain iterations (no aggregates)."""
    runs = {}
    for run in (bench or {}).get("benchmarks", []):
        if run.get("run_type", "iteration") != "iteration" or run.get("error_occurred"):
            continue
        # "BM_ProbePass/64/min_time:0.300/manual_time" -> "BM_ProbePass/64"
        parts = [p for p in run["name"].split("/") if ":" not in p and p not in ("manual_time", "real_time")]
        runs["/".join(parts)] = run
    return runs


def significant(ratio):
    """Three significant digits: small ratios stay readable (0.000385, not 0.0)."""
    return float(f"{ratio:.3g}")


def milliseconds(run):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[run["time_unit"]]
    return run["real_time"] * scale


def probe_figures(runs, figures):
    for name, run in sorted(runs.items(), key=lambda item: int(item[0].split("/")[1]) if "/" in item[0] else 0):
        if not name.startswith("BM_ProbePass/"):
            continue
        mib = name.split("/")[1]
        copy = runs.get(f"BM_DeviceCopy/{mib}")
        if copy is None or "read_GB/s" not in run or "read+write_GB/s" not in copy:
            continue
        probe_bw, copy_bw = run["read_GB/s"] / 1e9, copy["read+write_GB/s"] / 1e9
        figures[f"probe_pass_{mib}MiB_read_GBps"] = {
            "value": round(probe_bw, 1), "baseline": round(copy_bw, 1), "unit": "GB/s",
            "baseline_is": "device-to-device copy of the same tensor, bytes read+written", "target": ">= 0.90",
            "ratio": significant(probe_bw / copy_bw)}


def step_figures(runs, torch_result, figures):
    plain, hooked = runs.get("BM_GpuTrainStep/256/224"), runs.get("BM_GpuTrainStepHooked/256/224")
    if plain and hooked:
        figures["train_step_hooked_ms"] = {
            "value": round(milliseconds(hooked), 2), "baseline": round(milliseconds(plain), 2), "unit": "ms",
            "baseline_is": "hookrt's unhooked step, batch 256, 224x224", "target": "<= 1.10",
            "ratio": significant(milliseconds(hooked) / milliseconds(plain))}
    if plain and torch_result and "eager_ms" in torch_result:
        figures["train_step_ms"] = {
            "value": round(milliseconds(plain), 2), "baseline": round(torch_result["eager_ms"], 2), "unit": "ms",
            "baseline_is": f"PyTorch {torch_result['torch']} eager, same batch (TF32 defaults, cudnn.benchmark)",
            "ratio": significant(milliseconds(plain) / torch_result["eager_ms"])}
    if hooked and torch_result:
        for variant in ("hooks_careful", "hooks_item"):
            if f"{variant}_ms" not in torch_result:
                continue
            figures[f"train_step_hooked_vs_torch_{variant}_ms"] = {
                "value": round(milliseconds(hooked), 2), "baseline": round(torch_result[f"{variant}_ms"], 2),
                "unit": "ms", "baseline_is": f"PyTorch {torch_result['torch']} with {variant} Python hooks",
                "ratio": significant(milliseconds(hooked) / torch_result[f"{variant}_ms"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--json")
    parser.add_argument("--card", help="the GPU's name (default: PyTorch's, from its baseline)")
    args = parser.parse_args()
    probes = load(os.path.join(args.dir, "bench_gpu_probes.json"))
    step = load(os.path.join(args.dir, "bench_gpu_train_step.json"))
    torch_result = load(os.path.join(args.dir, "torch_gpu_baseline.json"))
    figures = {}
    probe_figures(runs_by_name(probes), figures)
    step_figures(runs_by_name(step), torch_result, figures)
    card = args.card or (torch_result or {}).get("card") or "unknown"
    result = {"date": datetime.date.today().isoformat(), "card": card, "commit": args.commit, "figures": figures}
    print(f"figures ({card}, commit {args.commit}): value | baseline | ratio")
    for name, f in figures.items():
        print(f"  {name:44s} {f['value']:>10} {f['unit']:5s} | {f['baseline']:>10} | {f['ratio']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
            out.write("\n")
    return 0 if figures else 1


if __name__ == "__main__":
    sys.exit(main())
