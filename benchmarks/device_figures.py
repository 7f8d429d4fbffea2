#!/usr/bin/env python3
"""Turns one device-check run's benchmark output into the figures table and its JSON.

  device_figures.py --dir OUT [--commit SHA] [--json results.json]

Reads OUT/bench_gpu_probes.json and OUT/bench_gpu_train_step.json (Google Benchmark's JSON),
OUT/torch_gpu_baseline.json, OUT/hookrt_bench.json (`hookrt bench --json`) and
OUT/hookrt_bench_bf16.json (the same with `--precision bf16`), prints one line per figure beside its
baseline from the same run, then hookrt's and PyTorch's step times side by side and issue 5's
ratios against their targets, and writes the figures as JSON: {"date", "card", "commit",
"figures": {name: {"value", "baseline", "unit", "baseline_is", "ratio"}}}. Issue 5's figures
(bench_*, torch_bf16_*) also carry "ratio_is", "target" and "met". hookrt's bf16 step is held to
its fp32 step, to PyTorch's bf16 channels_last step, and to its own hooked bf16 step; without
hookrt_bench_bf16.json the first stays in the figures with "value", "ratio" and "met" null and its
"baseline_is" saying why, and the other two are left out. The hooked step's launches (kernels,
memcpys, memsets, and all of them: `hookrt bench` counts one step of each variant with CUPTI) are
figures against the unhooked step's, with no target, and so is its device time (CUPTI's kernels,
memcpys and memsets summed); the kernel families whose time the probes change most are printed
last and written as "hooked_device_time_changes". Where the same bench with one speedup switched off
is there too (OFF_SWITCHES: OUT/hookrt_bench_eager.json from `--no-graphs`,
hookrt_bench_no_epilogue_probes.json, hookrt_bench_heuristic_conv.json), each variant's step is a
figure against the same step without that speedup. A missing input, or launches hookrt could not
count, leaves its figures out and says so on stderr.
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
    """The probe pass against the copy, per size: replayed from a CUDA graph as steps run it, over
    an F32 tensor and a BF16 one of the same bytes, and queued by one eager call (the host's work
    in the call counts there)."""
    for name, run in sorted(runs.items(), key=lambda item: int(item[0].split("/")[1]) if "/" in item[0] else 0):
        bench, _, mib = name.partition("/")
        kind = {"BM_ProbePass": "probe_pass", "BM_ProbePassEager": "probe_pass_eager",
                "BM_ProbePassBf16": "probe_pass_bf16"}.get(bench)
        copy = runs.get(f"BM_DeviceCopy/{mib}")
        if kind is None or copy is None or "read_GB/s" not in run or "read+write_GB/s" not in copy:
            continue
        probe_bw, copy_bw = run["read_GB/s"] / 1e9, copy["read+write_GB/s"] / 1e9
        figures[f"{kind}_{mib}MiB_read_GBps"] = {
            "value": round(probe_bw, 1), "baseline": round(copy_bw, 1), "unit": "GB/s",
            "baseline_is": "device-to-device copy of the same tensor, bytes read+written", "target": ">= 0.90",
            "ratio": significant(probe_bw / copy_bw)}


def batch_figures(runs, figures):
    """Six probe runs sharing one launch against the same six launched apart (bench_gpu_probes'
    BM_ProbeBatch and BM_ProbeRunsApart): what a launch's fixed cost takes from small tensors."""
    for name, batch in runs.items():
        bench, _, mib = name.partition("/")
        apart = runs.get(f"BM_ProbeRunsApart/{mib}")
        if bench != "BM_ProbeBatch" or apart is None or "read_GB/s" not in batch or "read_GB/s" not in apart:
            continue
        batch_bw, apart_bw = batch["read_GB/s"] / 1e9, apart["read_GB/s"] / 1e9
        figures[f"probe_batch_6x{mib}MiB_read_GBps"] = {
            "value": round(batch_bw, 1), "baseline": round(apart_bw, 1), "unit": "GB/s",
            "baseline_is": "the same six probe runs, each its own launch", "ratio": significant(batch_bw / apart_bw)}


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
    # bench_gpu_train_step's BF16 steps (Precision::BF16), the same batch: the hooked one held to
    # the unhooked one as at fp32, the unhooked one to the fp32 step as a time ratio.
    bf16, bf16_hooked = runs.get("BM_GpuTrainStepBf16/256/224"), runs.get("BM_GpuTrainStepBf16Hooked/256/224")
    if bf16 and bf16_hooked:
        figures["train_step_hooked_bf16_ms"] = {
            "value": round(milliseconds(bf16_hooked), 2), "baseline": round(milliseconds(bf16), 2), "unit": "ms",
            "baseline_is": "hookrt's unhooked bf16 step, batch 256, 224x224", "target": "<= 1.10",
            "ratio": significant(milliseconds(bf16_hooked) / milliseconds(bf16))}
    if bf16 and plain:
        figures["train_step_bf16_ms"] = {
            "value": round(milliseconds(bf16), 2), "baseline": round(milliseconds(plain), 2), "unit": "ms",
            "baseline_is": "hookrt's unhooked fp32 step (TF32), batch 256, 224x224",
            "ratio": significant(milliseconds(bf16) / milliseconds(plain))}
    if hooked and torch_result:
        for variant in ("hooks_careful", "hooks_item"):
            if f"{variant}_ms" not in torch_result:
                continue
            figures[f"train_step_hooked_vs_torch_{variant}_ms"] = {
                "value": round(milliseconds(hooked), 2), "baseline": round(torch_result[f"{variant}_ms"], 2),
                "unit": "ms", "baseline_is": f"PyTorch {torch_result['torch']} with {variant} Python hooks",
                "ratio": significant(milliseconds(hooked) / torch_result[f"{variant}_ms"])}


# ---- issue 5: `hookrt bench` beside PyTorch's baseline ------------------------------------------------
# Its ratios come in two directions, each as issue 5 states its target: the hooked step's cost as a
# time ratio (hooked / unhooked, lower is better), and every comparison of two variants as a
# speed-up (the slower one's time / the faster one's, higher is better).
TIME_RATIO = "value / baseline (time; lower is better)"
SPEEDUP = "baseline / value (speed-up; higher is better)"


def target_met(ratio, target):
    """Whether `ratio` meets a target written "<= 1.03" or ">= 5.0" (the unrounded ratio decides)."""
    op, bound = target.split()
    return ratio <= float(bound) if op == "<=" else ratio >= float(bound)


def issue5_figure(value, baseline, baseline_is, ratio_is, target):
    ratio = value / baseline if ratio_is == TIME_RATIO else baseline / value
    return {"value": round(value, 2), "baseline": round(baseline, 2), "unit": "ms", "baseline_is": baseline_is,
            "ratio": significant(ratio), "ratio_is": ratio_is, "target": target,
            "met": target_met(ratio, target) if target else None}


def differences(ours, theirs, ours_is, theirs_is, keys=("batch", "size")):
    """The keys on which two runs differ, each as "batch 2 (ours_is) vs 256 (theirs_is)"."""
    return [f"{key} {ours.get(key)} ({ours_is}) vs {theirs.get(key)} ({theirs_is})"
            for key in keys if ours.get(key) != theirs.get(key)]


def comparable(hookrt_bench, torch_result):
    """Why hookrt's and PyTorch's steps cannot be compared ("" when they can): the same batch and
    image size, hookrt on the GPU."""
    problems = differences(hookrt_bench, torch_result, "hookrt", "PyTorch")
    if not str(hookrt_bench.get("backend", "")).startswith("cuda"):
        problems.append(f"hookrt ran on {hookrt_bench.get('backend')}, not the GPU")
    return "; ".join(problems)


def has(result, source, keys):
    """Whether `result` holds every key; says on stderr which ones it lacks."""
    absent = [key for key in keys if key not in result]
    if absent:
        print(f"device_figures: {source} has no {', '.join(absent)}: the figures that need them are left out",
              file=sys.stderr)
    return not absent


def hookrt_overhead_figure(hookrt_bench, figures, source="hookrt_bench.json", name="bench_hooked_over_unhooked",
                           step_is="hookrt's unhooked step", command="hookrt bench"):
    """The hooked step against the unhooked step of the same run: fp32 by default, bf16 from
    hookrt_bench_bf16.json."""
    if not has(hookrt_bench, source, ("unhooked_ms", "hooked_ms")):
        return
    figures[name] = issue5_figure(
        hookrt_bench["hooked_ms"], hookrt_bench["unhooked_ms"],
        f"{step_is} ({command}; hooked: stats+zeros+nonfinite everywhere), {shape(hookrt_bench)}",
        TIME_RATIO, "<= 1.03")


def hookrt_vs_torch_figures(hookrt_bench, torch_result, figures):
    why_not = comparable(hookrt_bench, torch_result)
    if why_not:
        print(f"device_figures: hookrt_bench.json and torch_gpu_baseline.json differ ({why_not}): "
              "the hookrt-vs-PyTorch figures are left out", file=sys.stderr)
        return
    version = torch_result.get("torch")
    pairs = (("bench_unhooked_vs_torch_eager", "unhooked_ms", "eager_ms", ">= 1.0",
              f"PyTorch {version} eager fp32 (TF32 defaults, cudnn.benchmark), same batch"),
             ("bench_hooked_vs_torch_hooks_item", "hooked_ms", "hooks_item_ms", ">= 5.0",
              f"PyTorch {version} with stats+zeros+nonfinite Python hooks read with .item(), same batch"),
             ("bench_hooked_vs_torch_hooks_careful", "hooked_ms", "hooks_careful_ms", ">= 1.5",
              f"PyTorch {version} with the same hooks kept on the GPU, one sync per step, same batch"))
    for name, ours, theirs, target, baseline_is in pairs:
        if has(hookrt_bench, "hookrt_bench.json", (ours,)) and has(torch_result, "torch_gpu_baseline.json", (theirs,)):
            figures[name] = issue5_figure(hookrt_bench[ours], torch_result[theirs], baseline_is, SPEEDUP, target)


# ---- hookrt's bf16 step (`hookrt bench --precision bf16`) ---------------------------------------------
BF16_SOURCE = "hookrt_bench_bf16.json"


def bf16_layout(hookrt_bf16):
    """The layout hookrt's bf16 step ran in: its settings' "layout" (NCHW or NHWC), or NCHW where a
    bench from before memory formats wrote none."""
    layout = (hookrt_bf16.get("settings") or {}).get("layout")
    return "NCHW (the bench wrote no layout)" if layout is None else str(layout)


def bf16_problem(hookrt_bf16):
    """Why hookrt_bench_bf16.json gives no bf16 step ("" when it does): there, with an unhooked
    step, and run at bf16 where its settings say."""
    if not hookrt_bf16:
        return f"{BF16_SOURCE} is missing or unreadable"
    if not has(hookrt_bf16, BF16_SOURCE, ("unhooked_ms",)):
        return f"{BF16_SOURCE} has no unhooked_ms"
    precision = (hookrt_bf16.get("settings") or {}).get("precision", "bf16")
    if precision != "bf16":
        print(f"device_figures: {BF16_SOURCE} ran at {precision}, not bf16: the bf16 figures are left out",
              file=sys.stderr)
        return f"{BF16_SOURCE} ran at {precision}, not bf16"
    return ""


def bf16_vs_fp32_figure(hookrt_bench, hookrt_bf16, why_no_bf16, figures):
    """hookrt's bf16 unhooked step against its fp32 one, as a speed-up; absent (null), saying why,
    where there is an fp32 step but no bf16 step to hold to it (`why_no_bf16`), or the two ran on
    different devices or shapes."""
    if not hookrt_bench or not has(hookrt_bench, "hookrt_bench.json", ("unhooked_ms",)):
        return
    fp32_is = f"hookrt's fp32 unhooked step, {shape(hookrt_bench)}"
    why_not = why_no_bf16
    if not why_not:
        why_not = "; ".join(differences(hookrt_bf16, hookrt_bench, "bf16", "fp32", ("backend", "batch", "size")))
        if why_not:
            print(f"device_figures: {BF16_SOURCE} and hookrt_bench.json differ ({why_not}): "
                  "the bf16-vs-fp32 figure is absent", file=sys.stderr)
    if why_not:
        figures["bench_bf16_vs_fp32"] = {
            "value": None, "baseline": round(hookrt_bench["unhooked_ms"], 2), "unit": "ms",
            "baseline_is": f"{fp32_is}; hookrt's bf16 figure is absent: {why_not}", "ratio": None,
            "ratio_is": SPEEDUP, "target": ">= 1.8", "met": None}
        return
    figures["bench_bf16_vs_fp32"] = issue5_figure(
        hookrt_bf16["unhooked_ms"], hookrt_bench["unhooked_ms"],
        f"{fp32_is}; the bf16 step's layout: {bf16_layout(hookrt_bf16)}", SPEEDUP, ">= 1.8")


def bf16_vs_torch_figure(hookrt_bf16, torch_result, figures):
    """hookrt's bf16 unhooked step against PyTorch's eager step at the same precision (bf16
    autocast, channels_last), as a speed-up."""
    why_not = comparable(hookrt_bf16, torch_result)
    if why_not:
        print(f"device_figures: {BF16_SOURCE} and torch_gpu_baseline.json differ ({why_not}): "
              "the hookrt-vs-PyTorch bf16 figure is left out", file=sys.stderr)
        return
    if has(torch_result, "torch_gpu_baseline.json", ("eager_bf16_nhwc_ms",)):
        figures["bench_bf16_vs_torch_bf16_nhwc"] = issue5_figure(
            hookrt_bf16["unhooked_ms"], torch_result["eager_bf16_nhwc_ms"],
            f"PyTorch {torch_result.get('torch')} eager under bf16 autocast with channels_last tensors, same batch; "
            f"hookrt's bf16 step's layout: {bf16_layout(hookrt_bf16)}", SPEEDUP, ">= 1.0")


def bf16_figures(hookrt_bench, hookrt_bf16, torch_result, figures):
    """hookrt's bf16 step held to its fp32 step, to PyTorch's bf16 step and to its own hooked bf16
    step; PyTorch's bf16 speed-up is reported as PyTorch's own, with no target."""
    why_no_bf16 = bf16_problem(hookrt_bf16)
    bf16_vs_fp32_figure(hookrt_bench, hookrt_bf16, why_no_bf16, figures)
    if not why_no_bf16:
        if torch_result:
            bf16_vs_torch_figure(hookrt_bf16, torch_result, figures)
        hookrt_overhead_figure(hookrt_bf16, figures, BF16_SOURCE, "bench_bf16_hooked_over_unhooked",
                               "hookrt's bf16 unhooked step", "hookrt bench --precision bf16")
    if torch_result and has(torch_result, "torch_gpu_baseline.json", ("eager_ms", "eager_bf16_nhwc_ms")):
        figures["torch_bf16_nhwc_vs_torch_fp32"] = issue5_figure(
            torch_result["eager_bf16_nhwc_ms"], torch_result["eager_ms"],
            f"PyTorch {torch_result.get('torch')}'s own fp32 eager step: PyTorch's figure, not hookrt's", SPEEDUP, None)


# ---- launches per step: what CUDA-graph replay and fewer launches per probe are judged by --------------
LAUNCH_KINDS = ("kernels", "memcpy", "memset")


def launch_figures(hookrt_bench, figures):
    """The hooked step's GPU work items against the unhooked step's, per kind and in all; left out,
    saying why on stderr, where `hookrt bench` could not count them (CPU, no CUPTI)."""
    if not has(hookrt_bench, "hookrt_bench.json", ("unhooked_launches", "hooked_launches")):
        return
    plain, hooked = hookrt_bench["unhooked_launches"], hookrt_bench["hooked_launches"]
    if plain is None or hooked is None:
        why = hookrt_bench.get("launches_not_counted") or "no reason given"
        print(f"device_figures: hookrt_bench.json: launches not counted ({why}): the launch figures are left out",
              file=sys.stderr)
        return
    for kind in LAUNCH_KINDS + ("launches",):
        value = sum(hooked[k] for k in LAUNCH_KINDS) if kind == "launches" else hooked[kind]
        baseline = sum(plain[k] for k in LAUNCH_KINDS) if kind == "launches" else plain[kind]
        figures[f"bench_hooked_{kind}_per_step"] = {
            "value": value, "baseline": baseline, "unit": "count",
            "baseline_is": f"hookrt's unhooked step, {shape(hookrt_bench)}; one step of each counted with CUPTI "
                           "after the timed steps",
            "ratio": significant(value / baseline) if baseline else None}


# ---- device time by kernel: where the hooked step's extra time goes ----------------------------------
SHOWN_CHANGES = 10


def device_times(hookrt_bench):
    """(unhooked, hooked) device time lists from `hookrt bench` ({"name", "items", "ms"} each), or
    None where the bench could not count them (CPU, no CUPTI) or predates them."""
    bench = hookrt_bench or {}
    plain, hooked = bench.get("unhooked_device_time"), bench.get("hooked_device_time")
    return (plain, hooked) if plain is not None and hooked is not None else None


def device_time_figures(hookrt_bench, figures):
    """The hooked step's device time (kernels, memcpys and memsets summed) against the unhooked
    step's: the part of the hooked step's wall time that is the device's own work."""
    times = device_times(hookrt_bench)
    if times is None:
        return
    plain, hooked = (sum(t["ms"] for t in side) for side in times)
    figures["bench_hooked_device_ms"] = {
        "value": round(hooked, 3), "baseline": round(plain, 3), "unit": "ms",
        "baseline_is": f"hookrt's unhooked step, {shape(hookrt_bench)}; device time of one step of each, "
                       "summed from CUPTI's records after the timed steps",
        "ratio": significant(hooked / plain) if plain else None}


def device_time_changes(hookrt_bench, count=SHOWN_CHANGES):
    """The `count` names whose device time the probes change most, either way, growth first:
    [{"name", "delta_ms", "unhooked_ms", "hooked_ms", "unhooked_items", "hooked_items"}]."""
    times = device_times(hookrt_bench)
    if times is None:
        return []
    by_name = {}
    for side, entries in zip(("unhooked", "hooked"), times):
        for t in entries:
            change = by_name.setdefault(t["name"], {"name": t["name"], "unhooked_ms": 0.0, "hooked_ms": 0.0,
                                                    "unhooked_items": 0, "hooked_items": 0})
            change[f"{side}_ms"] += t["ms"]
            change[f"{side}_items"] += t["items"]
    changes = sorted(by_name.values(), key=lambda c: c["name"])
    for c in changes:
        c["delta_ms"] = round(c["hooked_ms"] - c["unhooked_ms"], 4)
    largest = sorted(changes, key=lambda c: -abs(c["delta_ms"]))[:count]
    return sorted(largest, key=lambda c: -c["delta_ms"])


def print_device_time_changes(changes):
    if not changes:
        return
    print("hooked - unhooked device time by kernel (CUPTI, one step of each): ms/step, unhooked -> hooked")
    for c in changes:
        print(f"  {c['delta_ms']:+8.3f}  {c['name'][:56]:56s} {c['unhooked_ms']:8.3f} -> {c['hooked_ms']:8.3f}"
              f"  ({c['unhooked_items']} -> {c['hooked_items']})")


# ---- each speedup against the same bench with it switched off -------------------------------------
# (file in OUT, the flag that switches the speedup off, the figure's name for a variant, what the
# speedup is). A ratio below 1 is what the speedup gains.
OFF_SWITCHES = (
    ("hookrt_bench_eager.json", "--no-graphs", "bench_{}_graphs_over_eager",
     "run op by op (--no-graphs)"),
    ("hookrt_bench_no_epilogue_probes.json", "--no-epilogue-probes", "bench_{}_epilogue_probes_over_without",
     "with ReLUs writing their tensors and the probes reading them again (--no-epilogue-probes)"),
    ("hookrt_bench_heuristic_conv.json", "--heuristic-conv", "bench_{}_measured_conv_over_heuristic",
     "with cuDNN's heuristic convolution algorithms (--heuristic-conv)"),
)


def off_switch_figures(hookrt_bench, other, source, name, what, figures):
    """Each variant's step against the same step with one speedup switched off, with how the timed
    steps of the default bench actually ran (a hook or a failed recording keeps them op by op)."""
    if not hookrt_bench or not other:
        return
    for variant in ("unhooked", "hooked"):
        key = f"{variant}_ms"
        if not (has(hookrt_bench, "hookrt_bench.json", (key,)) and has(other, source, (key,))):
            continue
        ran = hookrt_bench.get(f"{variant}_steps", "unknown")
        because = hookrt_bench.get(f"{variant}_eager_because")
        figures[name.format(variant)] = issue5_figure(
            hookrt_bench[key], other[key],
            f"hookrt's {variant} step {what}, {shape(other)}; the timed steps ran "
            f"{ran}" + (f" ({because})" if because else ""), TIME_RATIO, None)


def issue5_figures(hookrt_bench, hookrt_bf16, torch_result, figures):
    if hookrt_bench:
        hookrt_overhead_figure(hookrt_bench, figures)
        launch_figures(hookrt_bench, figures)
    if hookrt_bench and torch_result:
        hookrt_vs_torch_figures(hookrt_bench, torch_result, figures)
    bf16_figures(hookrt_bench, hookrt_bf16, torch_result, figures)


def shape(result):
    return f"batch {result.get('batch')}, {result.get('size')}x{result.get('size')}"


# (side, variant as printed, the run it comes from, the run's field): each PyTorch variant below the
# hookrt variant it is held to; hookrt's hooked bf16 step, which PyTorch's baseline has no
# counterpart for, last.
SIDE_BY_SIDE = (("hookrt", "unhooked", "hookrt", "unhooked_ms"), ("torch", "eager", "torch", "eager_ms"),
                ("hookrt", "bf16", "hookrt bf16", "unhooked_ms"),
                ("torch", "eager_bf16_nhwc", "torch", "eager_bf16_nhwc_ms"),
                ("hookrt", "hooked", "hookrt", "hooked_ms"), ("torch", "hooks_item", "torch", "hooks_item_ms"),
                ("torch", "hooks_careful", "torch", "hooks_careful_ms"),
                ("hookrt", "bf16_hooked", "hookrt bf16", "hooked_ms"))
# A row printed as absent, saying why, where hookrt ran but this run of it is missing.
ABSENT = {("hookrt", "bf16"): f"absent (no {BF16_SOURCE})"}


def step_line(side, variant, ms, batch):
    """One variant in the producers' own format: `name  ms/step  images/s`."""
    return f"  {side:6s} {variant:15s} {ms:8.2f} ms/step  {batch / ms * 1e3:8.0f} images/s"


def print_side_by_side(hookrt_bench, hookrt_bf16, torch_result):
    results = {"hookrt": hookrt_bench, "hookrt bf16": hookrt_bf16, "torch": torch_result}
    if not hookrt_bench and not hookrt_bf16 and not torch_result:
        return
    shapes = {run: shape(r) for run, r in results.items() if r}
    heading = "; ".join(f"{run} {s}" for run, s in shapes.items()) if len(set(shapes.values())) > 1 \
        else next(iter(shapes.values()))
    print(f"side by side ({heading}): hookrt's and PyTorch's steps, same card, one run")
    for side, variant, run, field in SIDE_BY_SIDE:
        result = results[run]
        if not result:
            if (side, variant) in ABSENT and results[side]:
                print(f"  {side:6s} {variant:15s} {ABSENT[(side, variant)]}")
        elif field in result:
            print(step_line(side, variant, result[field], result["batch"]))


def shown(number):
    return "absent" if number is None else number


def verdict(met):
    return {True: "met", False: "missed", None: "not measured"}[met]


def print_figures(figures):
    """One line per figure beside its baseline; issue 5's also say whether their target is met."""
    for name, f in figures.items():
        met = f"  (target {f['target']}: {verdict(f['met'])})" if f.get("target") and "met" in f else ""
        print(f"  {name:44s} {shown(f['value']):>10} {f['unit']:5s} | {shown(f['baseline']):>10} | {shown(f['ratio'])}{met}")


ISSUE5_LINES = (("bench_hooked_over_unhooked", "hookrt hooked / hookrt unhooked"),
                ("bench_unhooked_vs_torch_eager", "PyTorch eager / hookrt unhooked"),
                ("bench_hooked_vs_torch_hooks_item", "PyTorch hooks_item / hookrt hooked"),
                ("bench_hooked_vs_torch_hooks_careful", "PyTorch hooks_careful / hookrt hooked"),
                ("bench_bf16_vs_fp32", "hookrt fp32 / hookrt bf16"),
                ("bench_bf16_vs_torch_bf16_nhwc", "PyTorch eager_bf16_nhwc / hookrt bf16"),
                ("bench_bf16_hooked_over_unhooked", "hookrt bf16 hooked / hookrt bf16 unhooked"),
                ("torch_bf16_nhwc_vs_torch_fp32", "PyTorch eager / PyTorch eager_bf16_nhwc"))


def print_issue5_ratios(figures):
    lines = [(figures[name], label) for name, label in ISSUE5_LINES if name in figures]
    if not lines:
        return
    print("ratios against issue 5's targets:")
    for f, label in lines:
        ratio = "absent" if f["ratio"] is None else f"{f['ratio']}x"
        target = f"target {f['target']}: {verdict(f['met'])}" if f["target"] else "PyTorch's own, no target"
        print(f"  {label:42s} {ratio:>8}  {target}")


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
    batch_figures(runs_by_name(probes), figures)
    step_figures(runs_by_name(step), torch_result, figures)
    hookrt_bench = load(os.path.join(args.dir, "hookrt_bench.json"))
    hookrt_bf16 = load(os.path.join(args.dir, BF16_SOURCE))
    issue5_figures(hookrt_bench, hookrt_bf16, torch_result, figures)
    device_time_figures(hookrt_bench, figures)
    for source, _, name, what in OFF_SWITCHES:
        off_switch_figures(hookrt_bench, load(os.path.join(args.dir, source)), source, name, what, figures)
    card = args.card or (torch_result or {}).get("card") or "unknown"
    changes = device_time_changes(hookrt_bench)
    result = {"date": datetime.date.today().isoformat(), "card": card, "commit": args.commit, "figures": figures}
    if changes:
        result["hooked_device_time_changes"] = changes
    print(f"figures ({card}, commit {args.commit}): value | baseline | ratio")
    print_figures(figures)
    print_side_by_side(hookrt_bench, hookrt_bf16, torch_result)
    print_issue5_ratios(figures)
    print_device_time_changes(changes)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
            out.write("\n")
    return 0 if figures else 1


if __name__ == "__main__":
    sys.exit(main())
