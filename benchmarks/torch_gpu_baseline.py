#!/usr/bin/env python3
"""PyTorch's ResNet18 train step on the GPU: the peer that hookrt's bench_gpu_train_step is compared
with, on the same card in the same run (scripts/device-check).

  torch_gpu_baseline.py [--batch 256] [--size 224] [--steps 10] [--warmup 3] [--out FILE.json]

Variants, each a full train step (forward, cross-entropy, backward, SGD with momentum):
  eager            torchvision resnet18, fp32 with PyTorch's default TF32 settings
  eager_bf16_nhwc  the same under bf16 autocast with channels_last tensors (tensor cores; fp32
                   master weights, no loss scaling: bf16 has fp32's range)
  eager_fp16_nhwc  the same under fp16 autocast, with PyTorch's standard recipe for fp16's narrow
                   range: GradScaler's dynamic loss scaling (init 65536, x2 every 2000 good steps,
                   x0.5 and the step skipped on overflow: hookrt's --loss-scale auto at fp16); its
                   overflow check reads the device once per step, which is part of the recipe's cost
  hooks_item       Python forward and full backward hooks on every module and a hook on every
                   parameter gradient computing hookrt's stats+zeros+nonfinite figures, each read
                   with .item() as users usually write them
  hooks_careful    the same figures kept on the GPU, one synchronisation per step
Each variant's median goes to --out as it ends (NAME_ms; fp16's also NAME_skipped_steps, the timed
steps GradScaler skipped on overflow); a variant that fails leaves NAME_error instead, and the
script exits 1 once the others have run. The variants without hooks also profile one more step
(NAME_device_time: the GPU's time in each kernel, beside hookrt's in device_figures.py).
Full backward hooks need torchvision's in-place ops rewritten (ReLU(inplace=True) and
`out += identity` make autograd reject the hook's view): the hooked variants rewrite them as
out-of-place ops, which changes no value. Times are CUDA-event medians over --steps steps.
"""
import argparse
import json
import statistics
import types

import torch
import torch.nn.functional as F
import torchvision


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", help="write the figures as JSON here")
    return parser.parse_args()


def _basic_block_out_of_place(self, x):
    """torchvision's BasicBlock.forward with `out = out + identity` for `out += identity`."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu(out + identity)


def remove_inplace_ops(model):
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
        if isinstance(module, torchvision.models.resnet.BasicBlock):
            module.forward = types.MethodType(_basic_block_out_of_place, module)


def figures(t):
    """hookrt's stats+zeros+nonfinite on one tensor, as GPU scalars. The statistics of the finite
    values are taken with masks, not by indexing with the mask (t[finite] waits for the GPU to learn
    its size), so that the careful variant's one synchronisation per step is its only one."""
    t = t.detach().float()
    finite = torch.isfinite(t)
    count = finite.sum()
    zero = torch.zeros((), device=t.device)
    values = torch.where(finite, t, zero)  # the non-finite ones count as 0 in the sums below
    mean = values.sum() / count
    centred = torch.where(finite, t - mean, zero)
    channels = t.transpose(0, 1).reshape(t.shape[1], -1) if t.dim() > 1 else t.reshape(1, -1)
    return [count, torch.where(finite, t, float("inf")).min(), torch.where(finite, t, float("-inf")).max(), mean,
            (centred.square().sum() / (count - 1)).sqrt(), values.abs().max(), values.abs().sum(), values.norm(),
            torch.isnan(t).sum(), (t == float("inf")).sum(), (t == float("-inf")).sum(), (t == 0).sum(),
            (channels <= 0).all(dim=1).sum()]


class Hooks:
    """stats+zeros+nonfinite on every module's output, grad_input and grad_output, and every parameter's grad."""

    def __init__(self, model, careful):
        self.careful = careful
        self.pending = []
        # Every hook returns None: a value returned from a backward or tensor hook replaces the gradient.
        for module in model.modules():
            module.register_forward_hook(self.forward_hook)
            module.register_full_backward_hook(self.backward_hook)
        for p in model.parameters():
            p.register_hook(self.tensor_hook)

    def forward_hook(self, module, inputs, output):
        self.observe(output)

    def backward_hook(self, module, grad_input, grad_output):
        for g in grad_input + grad_output:
            if g is not None:
                self.observe(g)

    def tensor_hook(self, grad):
        self.observe(grad)

    def observe(self, t):
        if t.numel() < 2:
            return
        values = figures(t)
        if self.careful:
            self.pending.append(torch.stack([v.float() for v in values]))
        else:
            self.pending.append([v.item() for v in values])

    def end_step(self):
        if self.careful and self.pending:
            torch.stack(self.pending).cpu()  # the step's one synchronisation
        self.pending = []


def grad_scaler():
    """The fp16 recipe's GradScaler at its defaults (which are hookrt's: init 2**16, growth 2 every
    2000 steps, backoff 0.5): torch.amp's, or torch.cuda.amp's on a torch 2.x from before 2.3."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def prepare(args, precision, hooks):
    """The model, its optimizer, one batch and the hook recorder (None without hooks); a 16-bit
    `precision` runs channels_last, as PyTorch's tensor-core recipe does."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18().cuda()
    x = torch.randn(args.batch, 3, args.size, args.size, device="cuda")
    if precision is not None:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    recorder = None
    if hooks is not None:
        remove_inplace_ops(model)
        recorder = Hooks(model, careful=hooks == "careful")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.arange(args.batch, device="cuda") % 1000
    return model, optimizer, x, labels, recorder


def train_step(model, optimizer, x, labels, precision, scaler):
    optimizer.zero_grad(set_to_none=True)
    # autocast's dtype matters only when enabled; bf16 stands in for fp32's "none".
    with torch.autocast("cuda", dtype=precision or torch.bfloat16, enabled=precision is not None):
        loss = F.cross_entropy(model(x), labels)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)  # skipped where the unscaled gradients hold an inf or a NaN
    scaler.update()


def device_time(step):
    """One more step under PyTorch's profiler: the GPU's time in each kernel (by its full name), in
    memcpys and in memsets, in the shape of `hookrt bench`'s device time, [{"name", "items", "ms"}],
    most time first (device_time_vs_torch.py reduces the names to kernel families as hookrt does).
    The ranges PyTorch marks on the GPU's timeline (the optimizer's "Optimizer.step#SGD.step")
    span kernels already counted, and are left out."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        step()
        torch.cuda.synchronize()
    totals = {}
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA or getattr(event, "is_user_annotation", False):
            continue
        entry = totals.setdefault(event.name, {"name": event.name, "items": 0, "ms": 0.0})
        entry["items"] += 1
        entry["ms"] += event.time_range.elapsed_us() / 1e3
    return sorted(totals.values(), key=lambda e: (-e["ms"], e["name"]))


def time_variant(name, args, hooks=None, precision=None):
    """The median step of one variant; `precision` None is fp32, else autocast's 16-bit dtype (fp16
    with GradScaler). Returns (median ms, steps skipped on overflow or None, and a function that
    profiles one more step: device_time's list, and whether GradScaler skipped that step's update)."""
    model, optimizer, x, labels, recorder = prepare(args, precision, hooks)
    scaler = grad_scaler() if precision == torch.float16 else None
    times, skipped = [], 0
    for i in range(args.warmup + args.steps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        scale = scaler.get_scale() if scaler else None  # read outside the timed events
        start.record()
        train_step(model, optimizer, x, labels, precision, scaler)
        if recorder is not None:
            recorder.end_step()
        stop.record()
        stop.synchronize()
        if i >= args.warmup:
            times.append(start.elapsed_time(stop))
            # A backed-off scale means a skipped (cheaper) step: say so beside the median.
            skipped += bool(scaler and scaler.get_scale() < scale)
    median = statistics.median(times)
    note = f"  ({skipped} of {args.steps} steps skipped on overflow)" if scaler else ""
    print(f"torch {name:14s} {median:8.2f} ms/step  {args.batch / median * 1e3:8.0f} images/s{note}", flush=True)

    def profile():
        scale = scaler.get_scale() if scaler else None
        times = device_time(lambda: train_step(model, optimizer, x, labels, precision, scaler))
        return times, (scaler.get_scale() < scale) if scaler else None

    return median, (skipped if scaler else None), profile


def profile_variant(name, profile, result):
    """NAME_device_time (and, under GradScaler, NAME_device_time_step_skipped: whether the profiled
    step skipped its update, which makes it cheaper); a profiler that fails leaves NAME_device_time_error and the
    variant's timing as it is."""
    try:
        times, skipped = profile()
        result[f"{name}_device_time"] = times
        if skipped is not None:
            result[f"{name}_device_time_step_skipped"] = skipped
    except Exception as error:  # noqa: BLE001 (the profiler or CUPTI, whatever it raises)
        result[f"{name}_device_time_error"] = f"{type(error).__name__}: {error}"
        print(f"torch {name:14s} device time not profiled: {result[f'{name}_device_time_error']}", flush=True)


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("torch_gpu_baseline: torch sees no GPU")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, batch {args.batch}, {args.size}x{args.size}, "
          f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32} matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}")
    torch.backends.cudnn.benchmark = True
    result = {"torch": torch.__version__, "card": torch.cuda.get_device_name(), "batch": args.batch, "size": args.size,
              "steps": args.steps}
    variants = [("eager", {}), ("eager_bf16_nhwc", {"precision": torch.bfloat16}),
                ("eager_fp16_nhwc", {"precision": torch.float16}), ("hooks_careful", {"hooks": "careful"}),
                ("hooks_item", {"hooks": "item"})]
    failed = False
    for name, settings in variants:
        # A variant that fails loses its own figure only: the others' are written as each ends.
        try:
            median, skipped, profile = time_variant(name, args, **settings)
            result[f"{name}_ms"] = median
            if skipped is not None:
                result[f"{name}_skipped_steps"] = skipped
            if "hooks" not in settings:
                profile_variant(name, profile, result)
        except Exception as error:  # noqa: BLE001 (any failure of one variant)
            failed = True
            result[f"{name}_error"] = f"{type(error).__name__}: {error}"
            print(f"torch {name:14s} failed: {result[f'{name}_error']}", flush=True)
            torch.cuda.empty_cache()
        if args.out:
            with open(args.out, "w") as out:
                json.dump(result, out, indent=1)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
