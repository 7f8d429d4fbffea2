#!/usr/bin/env python3
"""Turns one device-check run's benchmark output into the figures table and its JSON.

  device_figures.py --dir OUT [--commit SHA] [--json results.json]

Reads OUT/bench_gpu_probes.json and OUT/bench_gpu_train_step.json (Google Benchmark's JSON),
OUT/torch_gpu_baseline.json, OUT/hookrt_bench.json (`hookrt bench --json`) and
OUT/hookrt_bench_bf16.json and OUT/hookrt_bench_fp16.json (the same with `--precision bf16` and
`--precision fp16`), prints one line per figure beside its baseline from the same run, then hookrt's
and PyTorch's step times side by side and issue 5's ratios against their targets, and writes the
figures as JSON: {"date", "card", "commit", "figures": {name: {"value", "baseline", "unit",
"baseline_is", "ratio"}}}. Issue 5's figures (bench_*, torch_bf16_*, torch_fp16_*) also carry
"ratio_is", "target" and "met". hookrt's bf16 step is held to its fp32 step, to PyTorch's bf16
channels_last step, and to its own hooked bf16 step, and its fp16 step likewise at fp16
(HALF_PRECISIONS); without a precision's bench, or with one that ran at another precision, the first
stays in the figures with "value", "ratio" and "met" null and its "baseline_is" saying why, and the
other two are left out. The hooked step's launches (kernels, memcpys, memsets, and all of them:
`hookrt bench` counts one step of each variant with CUPTI) are figures against the unhooked step's,
with no target, and so is its device time (CUPTI's kernels, memcpys and memsets summed); the kernel
families whose time the probes change most are printed last and written as
"hooked_device_time_changes". Where the same bench with one speedup switched off is there too
(OFF_SWITCHES: OUT/hookrt_bench_eager.json from `--no-graphs`, hookrt_bench_no_epilogue_probes.json,
hookrt_bench_heuristic_conv.json), each variant's step is a figure against the same step without
that speedup; so is the default step against the same step on hookrt's fp32 batch norms
(hookrt_bench_own_batchnorm.json, `--own-batchnorm`). A missing input, or launches hookrt could not count, leaves its figures out and says
so on stderr. Where PyTorch's baseline profiled a step (NAME_device_time) and hookrt's bench counted
one at the same precision, their device times are a figure (bench_*_device_time_vs_torch_*) and are
compared by kind of work and kernel (device_time_vs_torch.py), printed and written as
"device_time_vs_torch"; a bench that stopped part way (its "stopped") gives the figures it timed and is named
on stderr. Where either side counted fp16 steps skipped on overflow (cheaper steps), the counts
stand in the hookrt-vs-PyTorch fp16 figure's "baseline_is".
"""
import argparse
import dataclasses
import datetime
import json
import os
import sys
from typing import Optional

import device_time_vs_torch


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"device_figures: {os.path.basename(path)}: {e}", file=sys.stderr)
        return None


def load_bench(directory, source):
    """A `hookrt bench --json` file; one that stopped early (interrupted, out of time, or a variant
    failed) holds what it timed, and says so on stderr."""
    bench = load(os.path.join(directory, source))
    if bench and bench.get("stopped"):
        print(f"device_figures: {source} stopped early ({bench['stopped']}): only what it timed is used",
              file=sys.stderr)
    return bench


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
    """The hooked step against the unhooked step of the same run: fp32 by default, or a 16-bit
    precision's from its own bench (half_figures)."""
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


# ---- hookrt's 16-bit steps (`hookrt bench --precision bf16|fp16`) -----------------------------------
@dataclasses.dataclass(frozen=True)
class HalfPrecision:
    """A 16-bit precision hookrt's bench runs at: where its bench is, PyTorch's step at the same
    precision (torch_gpu_baseline.py's variant) and the names of the figures that hold it."""
    name: str            # as `--precision` and the bench's settings spell it
    torch_variant: str   # torch_gpu_baseline.py's variant; its time is "<variant>_ms"
    torch_is: str        # how PyTorch's step ran, for "baseline_is"
    unstated: Optional[str]  # the precision a bench that wrote none ran at (None: it must say)

    @property
    def source(self):
        return f"hookrt_bench_{self.name}.json"

    @property
    def torch_short(self):  # "bf16_nhwc"
        return self.torch_variant.removeprefix("eager_")

    @property
    def vs_fp32(self):
        return f"bench_{self.name}_vs_fp32"

    @property
    def vs_torch(self):
        return f"bench_{self.name}_vs_torch_{self.torch_short}"

    @property
    def hooked(self):
        return f"bench_{self.name}_hooked_over_unhooked"

    @property
    def torch_own(self):
        return f"torch_{self.torch_short}_vs_torch_fp32"


# Benches from before settings wrote no precision and ran at bf16; every bench that runs fp16 names it.
HALF_PRECISIONS = (
    HalfPrecision("bf16", "eager_bf16_nhwc", "eager under bf16 autocast with channels_last tensors", "bf16"),
    HalfPrecision("fp16", "eager_fp16_nhwc",
                  "eager under fp16 autocast with channels_last tensors and GradScaler's loss scaling", None),
)
# Issue 5 sets targets for bf16 alone; fp16 is held to the same ones (and to the hooked step's
# <= 1.03 of hookrt_overhead_figure), because both are 16-bit tensor-core steps with fp32 master
# weights, and what fp16 adds, its loss scaling, is part of the step the targets judge.
HALF_VS_FP32_TARGET = ">= 1.8"
HALF_VS_TORCH_TARGET = ">= 1.0"


def half_settings(half):
    """The layout a 16-bit step ran in, from its settings' "layout" (NCHW where a bench from before
    memory formats wrote none), and its loss scale where the bench names one."""
    settings = half.get("settings") or {}
    layout = settings.get("layout")
    text = f"layout: {'NCHW (the bench wrote no layout)' if layout is None else layout}"
    return text + (f"; loss scale: {settings['loss_scale']}" if "loss_scale" in settings else "")


def half_problem(half, p):
    """Why p's bench gives no step at p ("" when it does): there, with an unhooked step, and run at
    p where its settings say."""
    if not half:
        return f"{p.source} is missing or unreadable"
    if not has(half, p.source, ("unhooked_ms",)):
        return f"{p.source} has no unhooked_ms"
    precision = (half.get("settings") or {}).get("precision", p.unstated)
    if precision != p.name:
        why = f"{p.source} ran at {precision}, not {p.name}" if precision else f"{p.source} names no precision"
        print(f"device_figures: {why}: the {p.name} figures are left out", file=sys.stderr)
        return why
    return ""


def half_vs_fp32_figure(hookrt_bench, half, p, why_no_half, figures):
    """hookrt's unhooked step at p against its fp32 one, as a speed-up; absent (null), saying why,
    where there is an fp32 step but no step at p to hold to it (`why_no_half`), or the two ran on
    different devices or shapes."""
    if not hookrt_bench or not has(hookrt_bench, "hookrt_bench.json", ("unhooked_ms",)):
        return
    fp32_is = f"hookrt's fp32 unhooked step, {shape(hookrt_bench)}"
    why_not = why_no_half
    if not why_not:
        why_not = "; ".join(differences(half, hookrt_bench, p.name, "fp32", ("backend", "batch", "size")))
        if why_not:
            print(f"device_figures: {p.source} and hookrt_bench.json differ ({why_not}): "
                  f"the {p.name}-vs-fp32 figure is absent", file=sys.stderr)
    if why_not:
        figures[p.vs_fp32] = {
            "value": None, "baseline": round(hookrt_bench["unhooked_ms"], 2), "unit": "ms",
            "baseline_is": f"{fp32_is}; hookrt's {p.name} figure is absent: {why_not}", "ratio": None,
            "ratio_is": SPEEDUP, "target": HALF_VS_FP32_TARGET, "met": None}
        return
    figures[p.vs_fp32] = issue5_figure(
        half["unhooked_ms"], hookrt_bench["unhooked_ms"],
        f"{fp32_is}; the {p.name} step's {half_settings(half)}", SPEEDUP, HALF_VS_FP32_TARGET)


def half_vs_torch_figure(half, torch_result, p, figures):
    """hookrt's unhooked step at p against PyTorch's eager step at the same precision, as a speed-up."""
    why_not = comparable(half, torch_result)
    if why_not:
        print(f"device_figures: {p.source} and torch_gpu_baseline.json differ ({why_not}): "
              f"the hookrt-vs-PyTorch {p.name} figure is left out", file=sys.stderr)
        return
    if has(torch_result, "torch_gpu_baseline.json", (f"{p.torch_variant}_ms",)):
        figures[p.vs_torch] = issue5_figure(
            half["unhooked_ms"], torch_result[f"{p.torch_variant}_ms"],
            f"PyTorch {torch_result.get('torch')} {p.torch_is}, same batch; "
            f"hookrt's {p.name} step's {half_settings(half)}{skipped_steps(half, torch_result, p)}", SPEEDUP,
            HALF_VS_TORCH_TARGET)


def skipped_steps(half, torch_result, p):
    """"; timed steps skipped on overflow: hookrt 0 of 10, PyTorch 2 of 20" where either side counted
    them (under loss scaling): a skipped step is cheaper, so the counts belong beside the ratio."""
    def count(result, key):
        skipped = result.get(key)
        return "not counted" if skipped is None else f"{skipped} of {result.get('steps', '?')}"
    if half.get("unhooked_skipped_steps") is None and torch_result.get(f"{p.torch_variant}_skipped_steps") is None:
        return ""
    return (f"; timed steps skipped on overflow: hookrt {count(half, 'unhooked_skipped_steps')}, "
            f"PyTorch {count(torch_result, f'{p.torch_variant}_skipped_steps')}")


def half_figures(hookrt_bench, half, why_no_half, torch_result, p, figures):
    """hookrt's step at p held to its fp32 step, to PyTorch's step at p and to its own hooked step
    at p (where `why_no_half`, half_problem's answer, is ""); PyTorch's speed-up at p is reported as
    PyTorch's own, with no target."""
    half_vs_fp32_figure(hookrt_bench, half, p, why_no_half, figures)
    if not why_no_half:
        if torch_result:
            half_vs_torch_figure(half, torch_result, p, figures)
        hookrt_overhead_figure(half, figures, p.source, p.hooked, f"hookrt's {p.name} unhooked step",
                               f"hookrt bench --precision {p.name}")
    torch_ms = f"{p.torch_variant}_ms"
    if torch_result and has(torch_result, "torch_gpu_baseline.json", ("eager_ms", torch_ms)):
        figures[p.torch_own] = issue5_figure(
            torch_result[torch_ms], torch_result["eager_ms"],
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


# ---- hookrt's and PyTorch's device time, one unhooked step of each at the same precision ---------------
def torch_device_time_figures(hookrt_bench, halves, problems, torch_result, figures):
    """For each precision both sides measured: hookrt's device time against PyTorch's as a figure (no
    target: it says whether a gap in the wall-time ratio is in the kernels or between them), and the
    comparison by kind of work and kernel (device_time_vs_torch.py), by precision."""
    if not torch_result:
        return {}
    runs = [("fp32", hookrt_bench, "eager", "bench_unhooked_device_time_vs_torch_eager", "hookrt_bench.json")]
    runs += [(p.name, halves[p.name] if not problems[p.name] else None, p.torch_variant,
              f"bench_{p.name}_device_time_vs_torch_{p.torch_short}", p.source) for p in HALF_PRECISIONS]
    comparisons = {}
    for precision, bench, variant, name, source in runs:
        ours, theirs = (bench or {}).get("unhooked_device_time"), torch_result.get(f"{variant}_device_time")
        if not ours or not theirs:
            if bench and (ours or theirs):
                print(f"device_figures: no {'PyTorch' if ours else 'hookrt'} device time at {precision}: "
                      f"the {precision} device time comparison is left out", file=sys.stderr)
            continue
        if comparable(bench, torch_result):
            continue  # hookrt_vs_torch_figures and half_vs_torch_figure say why
        c = device_time_vs_torch.comparison(ours, theirs)
        comparisons[precision] = c
        # A step that skipped its update on overflow is cheaper: say where either side's was one.
        skips = [side for side, skipped in (("PyTorch's", torch_result.get(f"{variant}_device_time_step_skipped")),
                                            ("hookrt's", bench.get("unhooked_counted_step_skipped"))) if skipped]
        figures[name] = {
            "value": c["hookrt_ms"], "baseline": c["torch_ms"], "unit": "ms",
            "baseline_is": f"PyTorch {torch_result.get('torch')}'s {variant} step's device time (torch.profiler, one "
                           f"profiled step) against hookrt's unhooked {precision} step's ({source}: CUPTI, one "
                           f"counted step), {shape(bench)}"
                           + (f"; {' and '.join(skips)} step skipped its update on overflow" if skips else ""),
            "ratio": significant(c["torch_ms"] / c["hookrt_ms"]), "ratio_is": SPEEDUP}
    return comparisons


def print_device_time_vs_torch(comparisons):
    for precision, c in comparisons.items():
        device_time_vs_torch.print_comparison(precision, c)


# ---- each speedup against the same bench with it switched off -------------------------------------
# (file in OUT, the flag that switches the speedup off, the figure's name for a variant, what the
# speedup is). A ratio below 1 is what the speedup gains. The last is a choice, not yet a default:
# cuDNN's fp32 batch norm against hookrt's; a ratio above 1 says hookrt's should become the default.
OFF_SWITCHES = (
    ("hookrt_bench_eager.json", "--no-graphs", "bench_{}_graphs_over_eager",
     "run op by op (--no-graphs)"),
    ("hookrt_bench_no_epilogue_probes.json", "--no-epilogue-probes", "bench_{}_epilogue_probes_over_without",
     "with ReLUs writing their tensors and the probes reading them again (--no-epilogue-probes)"),
    ("hookrt_bench_heuristic_conv.json", "--heuristic-conv", "bench_{}_measured_conv_over_heuristic",
     "with cuDNN's heuristic convolution algorithms (--heuristic-conv)"),
    ("hookrt_bench_own_batchnorm.json", "--own-batchnorm", "bench_{}_cudnn_batchnorm_over_own",
     "with hookrt's fp32 batch norms, whose passes probe what they read and write (--own-batchnorm)"),
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


def issue5_figures(hookrt_bench, halves, problems, torch_result, figures):
    """`halves`: each 16-bit precision's bench by name (None where it is missing); `problems`: why
    each gives no step, by name ("" where it does)."""
    if hookrt_bench:
        hookrt_overhead_figure(hookrt_bench, figures)
        launch_figures(hookrt_bench, figures)
    if hookrt_bench and torch_result:
        hookrt_vs_torch_figures(hookrt_bench, torch_result, figures)
    for p in HALF_PRECISIONS:
        half_figures(hookrt_bench, halves[p.name], problems[p.name], torch_result, p, figures)


def shape(result):
    return f"batch {result.get('batch')}, {result.get('size')}x{result.get('size')}"


# (side, variant as printed, the run it comes from, the run's field): each PyTorch variant below the
# hookrt variant it is held to; hookrt's hooked 16-bit steps, which PyTorch's baseline has no
# counterpart for, last.
SIDE_BY_SIDE = (
    ("hookrt", "unhooked", "hookrt", "unhooked_ms"), ("torch", "eager", "torch", "eager_ms"),
    *[row for p in HALF_PRECISIONS
      for row in (("hookrt", p.name, f"hookrt {p.name}", "unhooked_ms"),
                  ("torch", p.torch_variant, "torch", f"{p.torch_variant}_ms"))],
    ("hookrt", "hooked", "hookrt", "hooked_ms"), ("torch", "hooks_item", "torch", "hooks_item_ms"),
    ("torch", "hooks_careful", "torch", "hooks_careful_ms"),
    *[("hookrt", f"{p.name}_hooked", f"hookrt {p.name}", "hooked_ms") for p in HALF_PRECISIONS])


def step_line(side, variant, ms, batch):
    """One variant in the producers' own format: `name  ms/step  images/s`."""
    return f"  {side:6s} {variant:15s} {ms:8.2f} ms/step  {batch / ms * 1e3:8.0f} images/s"


def absent_rows(halves, problems):
    """The side-by-side rows of the 16-bit benches that give no step, each saying why (printed
    where hookrt ran at fp32): a bench at the wrong precision is not shown as that precision's."""
    return {("hookrt", p.name): f"absent ({problems[p.name] if halves[p.name] else f'no {p.source}'})"
            for p in HALF_PRECISIONS if problems[p.name]}


def print_side_by_side(hookrt_bench, halves, problems, torch_result):
    shown_halves = {f"hookrt {name}": None if problems[name] else r for name, r in halves.items()}
    results = {"hookrt": hookrt_bench, **shown_halves, "torch": torch_result}
    if not any(results.values()):
        return
    absent = absent_rows(halves, problems)
    shapes = {run: shape(r) for run, r in results.items() if r}
    heading = "; ".join(f"{run} {s}" for run, s in shapes.items()) if len(set(shapes.values())) > 1 \
        else next(iter(shapes.values()))
    print(f"side by side ({heading}): hookrt's and PyTorch's steps, same card, one run")
    for side, variant, run, field in SIDE_BY_SIDE:
        result = results[run]
        if not result:
            if (side, variant) in absent and results[side]:
                print(f"  {side:6s} {variant:15s} {absent[(side, variant)]}")
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


ISSUE5_LINES = (
    ("bench_hooked_over_unhooked", "hookrt hooked / hookrt unhooked"),
    ("bench_unhooked_vs_torch_eager", "PyTorch eager / hookrt unhooked"),
    ("bench_hooked_vs_torch_hooks_item", "PyTorch hooks_item / hookrt hooked"),
    ("bench_hooked_vs_torch_hooks_careful", "PyTorch hooks_careful / hookrt hooked"),
    *[line for p in HALF_PRECISIONS
      for line in ((p.vs_fp32, f"hookrt fp32 / hookrt {p.name}"),
                   (p.vs_torch, f"PyTorch {p.torch_variant} / hookrt {p.name}"),
                   (p.hooked, f"hookrt {p.name} hooked / hookrt {p.name} unhooked"),
                   (p.torch_own, f"PyTorch eager / PyTorch {p.torch_variant}"))])


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
    hookrt_bench = load_bench(args.dir, "hookrt_bench.json")
    halves = {p.name: load_bench(args.dir, p.source) for p in HALF_PRECISIONS}
    problems = {p.name: half_problem(halves[p.name], p) for p in HALF_PRECISIONS}
    issue5_figures(hookrt_bench, halves, problems, torch_result, figures)
    device_time_figures(hookrt_bench, figures)
    for source, _, name, what in OFF_SWITCHES:
        off_switch_figures(hookrt_bench, load_bench(args.dir, source), source, name, what, figures)
    card = args.card or (torch_result or {}).get("card") or "unknown"
    changes = device_time_changes(hookrt_bench)
    versus_torch = torch_device_time_figures(hookrt_bench, halves, problems, torch_result, figures)
    result = {"date": datetime.date.today().isoformat(), "card": card, "commit": args.commit, "figures": figures}
    if changes:
        result["hooked_device_time_changes"] = changes
    if versus_torch:
        result["device_time_vs_torch"] = versus_torch
    print(f"figures ({card}, commit {args.commit}): value | baseline | ratio")
    print_figures(figures)
    print_side_by_side(hookrt_bench, halves, problems, torch_result)
    print_issue5_ratios(figures)
    print_device_time_vs_torch(versus_torch)
    print_device_time_changes(changes)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
            out.write("\n")
    return 0 if figures else 1


if __name__ == "__main__":
    sys.exit(main())
