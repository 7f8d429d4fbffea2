#!/usr/bin/python3
"""Checks a make_reference.py output directory against an independent, unhooked PyTorch run.

  check_reference.py DIR

The hooked step in make_reference.py rewrites torchvision's in-place ops and wraps every module in
backward-hook nodes; none of that may change a number. This script re-runs each step with plain
torchvision (in-place ops, no hooks at all), and requires bit-identical logits, loss, parameter
gradients, post-step state and module outputs, and checks what only the captures can show:
  * each `relu#k` backward is paired with its own forward call: grad_input == grad_output * (output > 0)
  * backward_pre's grad_output equals backward's grad_output for every call
  * every stats.jsonl line matches the capture, recomputed here with torch in float64
Exits 1 with the first few failures listed, 0 when everything holds.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

# Both sides are float64 sums of the same float32 values in different orders. A mean that cancels to
# about zero (BatchNorm's grad_input in train mode: ~1e-13 against a mean |x| of ~1e-3) is compared
# relative to the mean |x| instead of to itself.
STATS_RELATIVE_TOLERANCE = 1e-9


class Failures(list):
    def check(self, condition, message):
        if not condition:
            self.append(message)


def plain_step(weights, meta, inputs, labels):
    """The step with untouched torchvision: returns (model, logits, loss, outputs by module path)."""
    model = torchvision.models.resnet18(num_classes=meta["num_classes"])
    model.load_state_dict(weights, strict=True)
    outputs = {}

    def keep_first_output(name, output):
        # clone: a later in-place ReLU would overwrite what the hook saw. Returns None, so the
        # output is left as it is.
        if name not in outputs:
            outputs[name] = output.detach().clone()

    for name, module in model.named_modules():
        module.register_forward_hook(lambda m, i, o, name=name: keep_first_output(name, o))
    model.train(meta["mode"] == "train")
    logits = model(inputs)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    if meta["sgd"] is not None:
        options = {k: meta["sgd"][k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov")}
        torch.optim.SGD(model.parameters(), **options).step()
    return model, logits.detach(), loss.detach(), outputs


def check_against_plain_run(failures, captures, model, logits, loss, outputs):
    failures.check(torch.equal(captures["logits"], logits), "logits differ from plain torchvision")
    failures.check(captures["loss"].item() == loss.item(), "loss differs from plain torchvision")
    for name, param in model.named_parameters():
        failures.check(torch.equal(captures[f"step0/grad/{name}/grad"], param.grad), f"grad of {name} differs")
    for name, output in outputs.items():
        failures.check(torch.equal(captures[f"step0/forward/{name}/output"], output), f"forward output of '{name}' differs")
    if any(key.startswith("after/") for key in captures):
        for key, value in model.state_dict().items():
            failures.check(torch.equal(captures[f"after/{key}"], value), f"after/{key} differs")


def check_relu_pairing(failures, captures):
    for key in captures:
        if key.startswith("step0/backward/") and ".relu" in key and key.endswith("/grad_input"):
            call = key[len("step0/backward/"):-len("/grad_input")]
            grad_output = captures[f"step0/backward/{call}/grad_output"]
            mask = captures[f"step0/forward/{call}/output"] > 0
            failures.check(torch.equal(captures[key], grad_output * mask), f"{call}: backward not paired with its forward call")


def check_backward_pre(failures, captures):
    for key in captures:
        if key.startswith("step0/backward_pre/"):
            twin = key.replace("step0/backward_pre/", "step0/backward/", 1)
            failures.check(twin in captures and torch.equal(captures[key], captures[twin]),
                           f"{key} differs from its backward grad_output")


def _close(expected, actual, scale):
    """Relative to the value, or to `scale` (the mean |x|) for sums that cancel to about zero."""
    if expected is None or actual is None:
        return expected is None and actual is None
    return math.isclose(expected, actual, rel_tol=STATS_RELATIVE_TOLERANCE,
                        abs_tol=STATS_RELATIVE_TOLERANCE * scale)


def check_stats(failures, captures, stats_path):
    with open(stats_path) as source:
        lines = [json.loads(line) for line in source]
    failures.check(len(lines) == sum(k.startswith("step0/") for k in captures), f"{stats_path}: one line per capture")
    for line in lines:
        x = captures[line["key"]].to(torch.float64).flatten()
        finite = x[torch.isfinite(x)]
        expected = {"count": finite.numel(), "min": finite.min().item(), "max": finite.max().item(),
                    "mean": finite.mean().item(), "std": finite.std().item() if finite.numel() > 1 else None,
                    "abs_max": finite.abs().max().item(), "l1": finite.abs().sum().item(),
                    "l2": finite.norm().item(), "nan": int(torch.isnan(x).sum())}
        mean_abs = expected["l1"] / max(expected["count"], 1)
        for field, value in expected.items():
            failures.check(_close(value, line[field], mean_abs), f"{line['key']}: stats {field} {line[field]} != {value}")


def check_mode(failures, directory, mode, weights, inputs, labels):
    with open(os.path.join(directory, f"{mode}_meta.json")) as source:
        meta = json.load(source)
    captures = safetensors_io.load(os.path.join(directory, f"{mode}_captures.safetensors"))
    failures.check(list(captures)[:len(meta["keys"])] == meta["keys"], f"{mode}: captures not in firing order")
    check_against_plain_run(failures, captures, *plain_step(weights, meta, inputs, labels))
    check_relu_pairing(failures, captures)
    check_backward_pre(failures, captures)
    check_stats(failures, captures, os.path.join(directory, f"{mode}_stats.jsonl"))


def main(argv=None):
    directory = (argv or sys.argv[1:] or ["."])[0]
    weights = safetensors_io.load(os.path.join(directory, "weights.safetensors"))
    inputs = torch.from_numpy(np.load(os.path.join(directory, "input.npy")))
    labels = torch.from_numpy(np.load(os.path.join(directory, "labels.npy")))
    failures = Failures()
    failures.check(int(weights["bn1.num_batches_tracked"]) > 0, "num_batches_tracked is trivial")
    failures.check(not torch.equal(weights["bn1.running_var"], torch.ones_like(weights["bn1.running_var"])),
                   "running_var is trivial")
    modes = [m for m in ("train", "eval") if os.path.exists(os.path.join(directory, f"{m}_meta.json"))]
    failures.check(bool(modes), f"{directory}: no train_meta.json or eval_meta.json")
    for mode in modes:
        check_mode(failures, directory, mode, weights, inputs, labels)
    for message in failures[:20]:
        print("FAIL:", message)
    print(f"check_reference: {directory}: modes {modes}: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
