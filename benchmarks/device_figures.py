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
        name = run["name"].replace("/manual_time", "").replace("/real_time", "")
        runs[name] = run
    return runs


def milliseconds(run):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[run["time_unit"]]
    return run["real_time"] * scale


def probe_figures(runs, figures):
    for name, run in sorted(runs.items(), key=lambda item: int(item[0].split("/")[1]) if "/" in item[0] else 0):
        if not name.startswith("BM_ProbePass/"):
            continue
        mib = name.split("/")[1]
        copy = runs.get(f"BM_DeviceCopy/{mib}")
        if copy is None:
            continue
        probe_bw, copy_bw = run["read_GB/s"] / 1e9, copy["read+write_GB/s"] / 1e9
        figures[f"probe_pass_{mib}MiB_read_GBps"] = {
            "value": round(probe_bw, 1), "baseline": round(copy_bw, 1), "unit": "GB/s",
            "baseline_is": "device-to-device copy of the same tensor, bytes read+written", "target": ">= 0.90",
            "ratio": round(probe_bw / copy_bw, 3)}


def step_figures(runs, torch_result, figures):
    plain, hooked = runs.get("BM_GpuTrainStep/256/224"), runs.get("BM_GpuTrainStepHooked/256/224")
    if plain and hooked:
        figures["train_step_hooked_ms"] = {
            "value": round(milliseconds(hooked), 2), "baseline": round(milliseconds(plain), 2), "unit": "ms",
            "baseline_is": "hookrt's unhooked step, batch 256, 224x224", "target": "<= 1.10",
            "ratio": round(milliseconds(hooked) / milliseconds(plain), 3)}
    if plain and torch_result:
        figures["train_step_ms"] = {
            "value": round(milliseconds(plain), 2), "baseline": round(torch_result["eager_ms"], 2), "unit": "ms",
            "baseline_is": f"PyTorch {torch_result['torch']} eager, same batch (TF32 defaults, cudnn.benchmark)",
            "ratio": round(milliseconds(plain) / torch_result["eager_ms"], 3)}
    if hooked and torch_result:
        for variant in ("hooks_careful", "hooks_item"):
            figures[f"train_step_hooked_vs_torch_{variant}_ms"] = {
                "value": round(milliseconds(hooked), 2), "baseline": round(torch_result[f"{variant}_ms"], 2),
                "unit": "ms", "baseline_is": f"PyTorch {torch_result['torch']} with {variant} Python hooks",
                "ratio": round(milliseconds(hooked) / torch_result[f"{variant}_ms"], 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--json")
    args = parser.parse_args()
    probes = load(os.path.join(args.dir, "bench_gpu_probes.json"))
    step = load(os.path.join(args.dir, "bench_gpu_train_step.json"))
    torch_result = load(os.path.join(args.dir, "torch_gpu_baseline.json"))
    figures = {}
    probe_figures(runs_by_name(probes), figures)
    step_figures(runs_by_name(step), torch_result, figures)
    card = (torch_result or {}).get("card") or ((probes or {}).get("context", {}).get("host_name", "unknown"))
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
