#!/usr/bin/python3
"""Writes PyTorch reference data for hookrt's ResNet18 parity test: one hooked step, every hook firing.

  make_reference.py --out DIR --seed 0 --batch 2 --size 64 --num-classes 10 [--mode train|eval|both]
                    [--device cpu|cuda]

--device cuda runs the step on the GPU in full float32 (TF32 off, deterministic cuDNN and cuBLAS),
for holding hookrt's CUDA backend to PyTorch's own GPU step; weights and batch are made on the CPU
either way, so both devices start from the same bits.

DIR/weights.safetensors   the model's state_dict, torchvision keys (num_batches_tracked I64, shape [])
DIR/input.npy             float32 (N, 3, H, W), standard normal
DIR/labels.npy            int64 (N,), uniform in [0, C)
DIR/{mode}_captures.safetensors
    step0/{when}/{module}[#k]/{tensor}   every hook firing (see hook_recorder.py), float32
    loss                                 F64, shape [1]: the float32 mean cross-entropy, widened
    logits                               F32, (N, C)
    after/{state_key}                    train only: state_dict after the SGD step (running stats
                                         and num_batches_tracked included, in their own dtypes)
DIR/{mode}_meta.json      settings, the SGD options, the capture keys in firing order, counts
DIR/{mode}_stats.jsonl    per capture key: float64 reference of hookrt's `stats` probe
"""
import argparse
import copy
import os

# Deterministic cuBLAS (torch.use_deterministic_algorithms on CUDA) needs this before cuBLAS starts.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import json
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402  (sibling modules, found through the path set above)
from hook_recorder import StepRecorder  # noqa: E402

NUM_BATCHES_TRACKED = 3  # a non-zero start, so the C++ side must read it and add 1, not write 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--mode", choices=("train", "eval", "both"), default="both")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    return parser.parse_args(argv)


def use_device(name):
    """The torch device for the step; on CUDA, full float32 and deterministic kernels."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("make_reference: --device cuda, but torch sees no GPU")
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
    return device


# ---- model, weights and batch ------------------------------------------------------------------

def randomize_batchnorm_state(model, generator):
    """Gives every BatchNorm non-trivial state, so a C++ side that ignores any part of it fails."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            with torch.no_grad():
                module.weight.copy_(0.5 + torch.rand(channels, generator=generator))  # [0.5, 1.5)
                module.bias.copy_(0.1 * torch.randn(channels, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(channels, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(channels, generator=generator))  # > 0
                module.num_batches_tracked.fill_(NUM_BATCHES_TRACKED)


def build_reference_model(seed, num_classes):
    """torchvision's resnet18 with its own seeded initialisation, then random BatchNorm state."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=num_classes)
    randomize_batchnorm_state(model, torch.Generator().manual_seed(seed + 1))
    return model


def make_batch(seed, batch, size, num_classes):
    generator = torch.Generator().manual_seed(seed + 2)
    inputs = torch.randn(batch, 3, size, size, generator=generator)
    labels = torch.randint(0, num_classes, (batch,), generator=generator, dtype=torch.int64)
    return inputs, labels


# ---- making torchvision's ResNet hookable ------------------------------------------------------

def _basic_block_forward_out_of_place(self, x):
    """torchvision's BasicBlock.forward, op for op, with `out = out + identity` for `out += identity`."""
    identity = x
    out = self.conv1(x)
    out = self.bn1(out)
    out = self.relu(out)
    out = self.conv2(out)
    out = self.bn2(out)
    if self.downsample is not None:
        identity = self.downsample(x)
    out = out + identity
    out = self.relu(out)
    return out


def remove_inplace_ops(model):
    """Rewrites torchvision's in-place ops as out-of-place ones; the math is unchanged.

    Full backward hooks wrap each module's output in a BackwardHookFunction node, and autograd
    refuses an in-place change of such an output ("Output 0 of BackwardHookFunctionBackward is a
    view and is being modified inplace", pytorch#61519): ReLU(inplace=True) modifies bn1's output,
    `out += identity` modifies bn2's. So ReLUs become inplace=False and BasicBlock adds out of place.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
        if isinstance(module, torchvision.models.resnet.BasicBlock):
            module.forward = _basic_block_forward_out_of_place.__get__(module)


def model_from_weights(weights, num_classes):
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.load_state_dict(weights, strict=True)
    return model


# ---- one step ----------------------------------------------------------------------------------

def sgd_options(args):
    return OrderedDict([("lr", args.lr), ("momentum", args.momentum), ("dampening", 0.0),
                        ("weight_decay", args.weight_decay), ("nesterov", args.nesterov)])


def run_step(model, mode, inputs, labels, sgd):
    """One hooked step; returns (recorder, loss, logits, optimizer or None)."""
    recorder = StepRecorder(model, step=0)
    model.train(mode == "train")
    logits = model(inputs)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    recorder.check_complete()
    optimizer = None
    if mode == "train":
        optimizer = torch.optim.SGD(model.parameters(), **sgd)
        optimizer.step()
    return recorder, loss.detach(), logits.detach(), optimizer


def check_hooks_change_nothing(weights, num_classes, mode, inputs, labels, logits, loss):
    """The hooked, out-of-place model must give bit-identical results to untouched torchvision."""
    plain = model_from_weights(weights, num_classes).to(inputs.device)
    plain.train(mode == "train")
    plain_logits = plain(inputs)
    plain_loss = F.cross_entropy(plain_logits, labels)
    if not (torch.equal(plain_logits, logits) and torch.equal(plain_loss, loss)):
        raise RuntimeError(f"{mode}: hooked model differs from plain torchvision resnet18")


# ---- stats reference ---------------------------------------------------------------------------

def stats_reference(values):
    """hookrt's `stats` probe in float64 over the finite elements; null where nothing to describe."""
    x = values.detach().cpu().to(torch.float64).numpy().ravel()
    finite = x[np.isfinite(x)]
    count = int(finite.size)
    result = OrderedDict(count=count, min=None, max=None, mean=None, std=None, abs_max=None)
    if count > 0:
        result.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()),
                      abs_max=float(np.abs(finite).max()))
    if count > 1:
        result["std"] = float(finite.std(ddof=1))  # unbiased, as torch.std
    result["l1"] = float(np.abs(finite).sum())
    result["l2"] = float(np.sqrt(np.square(finite).sum()))
    result["nan"] = int(np.isnan(x).sum())
    result["posinf"] = int(np.isposinf(x).sum())
    result["neginf"] = int(np.isneginf(x).sum())
    return result


def stats_line(record):
    line = OrderedDict(key=record.key, step=0, when=record.when, module=record.module, call=record.call)
    if record.when == "grad":
        line["param"] = record.param
    line["tensor"] = record.tensor_name
    line["shape"] = list(record.value.shape)
    line.update(stats_reference(record.value))
    return json.dumps(line)


# ---- outputs -----------------------------------------------------------------------------------

def write_inputs(out_dir, weights, inputs, labels, args):
    safetensors_io.save(os.path.join(out_dir, "weights.safetensors"), weights,
                        metadata={"arch": "resnet18", "seed": args.seed, "num_classes": args.num_classes})
    np.save(os.path.join(out_dir, "input.npy"), inputs.numpy().astype(np.float32))
    np.save(os.path.join(out_dir, "labels.npy"), labels.numpy().astype(np.int64))


def step_tensors(recorder, loss, logits, model, optimizer):
    tensors = recorder.captures()
    tensors["loss"] = loss.to(torch.float64).reshape(1)
    tensors["logits"] = logits.to(torch.float32)
    if optimizer is not None:
        for key, value in model.state_dict().items():
            tensors[f"after/{key}"] = value.detach().clone()
    return tensors


def step_meta(args, mode, recorder, tensors, loss, sgd):
    capture_keys = recorder.keys()
    return OrderedDict([
        ("arch", "resnet18"), ("mode", mode), ("step", 0),
        ("seed", args.seed), ("batch", args.batch), ("size", args.size), ("num_classes", args.num_classes),
        ("torch", torch.__version__), ("torchvision", torchvision.__version__), ("device", args.device),
        ("loss", OrderedDict([("function", "cross_entropy"), ("reduction", "mean"), ("value", loss.item())])),
        ("batchnorm", OrderedDict([("momentum", 0.1), ("eps", 1e-5),
                                   ("num_batches_tracked_before", NUM_BATCHES_TRACKED)])),
        ("sgd", OrderedDict(sgd, applies_to="every parameter, BatchNorm weights and biases included",
                            first_step="momentum_buffer = grad + weight_decay * param")
         if mode == "train" else None),
        ("grad_input_absent_for", sorted({r.module for r in recorder.records if r.when == "backward"}
                                         - {r.module for r in recorder.records if r.tensor_name == "grad_input"})),
        ("grad_event_source", "post-hook on each parameter's AccumulateGrad node (torch 1.13 has no "
                              "register_post_accumulate_grad_hook); firing order is autograd's"),
        ("module_calls", recorder.module_calls()),
        ("counts_by_when", recorder.counts_by_when()),
        ("keys", capture_keys),
        ("other_keys", [key for key in tensors if key not in set(capture_keys)]),
    ])


def write_step(out_dir, mode, args, recorder, tensors, meta):
    safetensors_io.save(os.path.join(out_dir, f"{mode}_captures.safetensors"), tensors,
                        metadata={"mode": mode, "seed": args.seed})
    with open(os.path.join(out_dir, f"{mode}_meta.json"), "w") as out:
        json.dump(meta, out, indent=1)
        out.write("\n")
    with open(os.path.join(out_dir, f"{mode}_stats.jsonl"), "w") as out:
        for record in recorder.records:
            out.write(stats_line(record) + "\n")


def make_mode(out_dir, mode, args, weights, inputs, labels, device):
    model = model_from_weights(copy.deepcopy(weights), args.num_classes).to(device)  # fresh copy per mode
    remove_inplace_ops(model)
    inputs, labels = inputs.to(device), labels.to(device)
    sgd = sgd_options(args)
    recorder, loss, logits, optimizer = run_step(model, mode, inputs, labels, sgd)
    check_hooks_change_nothing(weights, args.num_classes, mode, inputs, labels, logits, loss)
    tensors = step_tensors(recorder, loss, logits, model, optimizer)
    meta = step_meta(args, mode, recorder, tensors, loss, sgd)
    write_step(out_dir, mode, args, recorder, tensors, meta)
    return meta


def summary(mode, meta):
    counts = " ".join(f"{when}={n}" for when, n in meta["counts_by_when"].items())
    twice = sum(1 for calls in meta["module_calls"].values() if calls > 1)
    return (f"{mode}: loss={meta['loss']['value']:.6f} keys={len(meta['keys'])} ({counts}) "
            f"modules={len(meta['module_calls'])} called_twice={twice} "
            f"no_grad_input={meta['grad_input_absent_for']}")


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    device = use_device(args.device)
    # On CUDA, max-pool's and adaptive average pool's backward have no deterministic kernel: warn
    # there instead of failing (their atomics add at most a few ulps, far inside the tolerances).
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    os.makedirs(args.out, exist_ok=True)
    weights = build_reference_model(args.seed, args.num_classes).state_dict()
    inputs, labels = make_batch(args.seed, args.batch, args.size, args.num_classes)
    write_inputs(args.out, weights, inputs, labels, args)
    modes = ("train", "eval") if args.mode == "both" else (args.mode,)
    lines = [summary(mode, make_mode(args.out, mode, args, weights, inputs, labels, device)) for mode in modes]
    print(f"make_reference: wrote {args.out} in {time.time() - started:.1f}s; " + "; ".join(lines))


if __name__ == "__main__":
    main()
