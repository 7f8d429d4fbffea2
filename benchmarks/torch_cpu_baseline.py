#!/usr/bin/env python3
"""PyTorch's CPU ResNet18 train step, timed the same way as benchmarks/bench_train_step.cpp.

Run with an interpreter that has torch and torchvision (Debian: /usr/bin/python3 with
python3-torch and python3-torchvision), on the same machine and in the same session as the
hookrt benchmark, and record the ratio in benchmarks/RESULTS.md.

    /usr/bin/python3 benchmarks/torch_cpu_baseline.py --batch 8 --size 224
"""
import argparse
import json
import time

import torch
import torchvision


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--min-time", type=float, default=5.0, help="seconds of timed steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=1000).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.arange(args.batch) % 1000

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()

    step()  # warm-up, as the hookrt benchmark does
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.min_time:
        step()
        steps += 1
    seconds = (time.perf_counter() - start) / steps
    print(json.dumps({
        "benchmark": "torch_cpu_train_step", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "batch": args.batch, "size": args.size, "steps": steps,
        "ms_per_step": round(seconds * 1e3, 2), "images_per_s": round(args.batch / seconds, 2),
    }))


if __name__ == "__main__":
    main()
