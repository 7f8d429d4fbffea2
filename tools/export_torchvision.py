#!/usr/bin/python3
"""Exports a torchvision ResNet's state_dict as safetensors with torchvision's keys, for hookrt.

  export_torchvision.py --out resnet18.safetensors --weights resnet18-f37072fd.pth
  export_torchvision.py --out random.safetensors --random --seed 0 --num-classes 10

Pretrained weights come only from a .pth file you already have (no network access here): a raw
state_dict (what torchvision downloads), a checkpoint holding one under "state_dict" or "model",
or a pickled nn.Module. The file is loaded strictly into the named architecture, so every key and
shape is checked, and the model's own state_dict() is written: num_batches_tracked included (I64;
old torchvision checkpoints lack it and BatchNorm fills in 0 on load, as PyTorch does).
"""
import argparse
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402  (the sibling module, found through the path set above)

ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="safetensors file to write")
    parser.add_argument("--arch", default="resnet18", choices=ARCHITECTURES)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="local torchvision .pth (state_dict or checkpoint)")
    source.add_argument("--random", action="store_true", help="torchvision's own random initialisation")
    parser.add_argument("--seed", type=int, default=0, help="with --random: torch.manual_seed")
    parser.add_argument("--num-classes", type=int, default=1000, help="with --random: fc output size")
    return parser.parse_args(argv)


def state_dict_from_file(path):
    """Finds the state_dict inside whatever torch.save wrote to `path`."""
    loaded = torch.load(path, map_location="cpu")
    if isinstance(loaded, torch.nn.Module):
        return loaded.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict):
        raise SystemExit(f"{path}: holds {type(loaded).__name__}, not a state_dict")
    # Checkpoints saved from DataParallel/DDP prefix every key with "module.".
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = type(loaded)((key[len("module."):], value) for key, value in loaded.items())
    return loaded


def build_model(args):
    builder = getattr(torchvision.models, args.arch)
    if args.random:
        torch.manual_seed(args.seed)
        return builder(num_classes=args.num_classes)
    state = state_dict_from_file(args.weights)
    if "fc.weight" not in state:
        raise SystemExit(f"{args.weights}: no 'fc.weight' key; is this a torchvision {args.arch}?")
    model = builder(num_classes=state["fc.weight"].shape[0])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise SystemExit(f"{args.weights}: does not match torchvision {args.arch}: {error}")
    return model


def check_round_trip(path, state):
    """Reads the file back: every key, dtype and value must survive."""
    written = safetensors_io.load(path)
    if list(written) != list(state):
        raise SystemExit(f"{path}: keys read back differ from the state_dict")
    for key, tensor in state.items():
        if written[key].dtype != tensor.dtype or not torch.equal(written[key], tensor):
            raise SystemExit(f"{path}: '{key}' read back differs")


def main(argv=None):
    args = parse_args(argv)
    model = build_model(args)
    state = model.state_dict()
    source = args.weights if args.weights else f"random seed {args.seed}"
    safetensors_io.save(args.out, state, metadata={"arch": args.arch, "source": source})
    check_round_trip(args.out, state)
    parameters = sum(t.numel() for t in model.parameters())
    print(f"wrote {args.out}: {args.arch}, {len(state)} tensors, {parameters} parameters, "
          f"{model.fc.out_features} classes, from {source}")


if __name__ == "__main__":
    main()
