"""Minimal safetensors reader and writer for torch tensors, without the `safetensors` package.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
a JSON header mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
relative to the end of the header) plus an optional "__metadata__" of string pairs, the header padded
with spaces to a multiple of 8 bytes, then every tensor's bytes, contiguous, in header order.

We write what `safetensors.torch.save_file(tensors)` writes, with "__metadata__": {"format": "pt"},
so that files made here and files made by the real package are interchangeable.
"""
import json
import struct
import sys
from collections import OrderedDict

import torch

# safetensors dtype name <-> torch dtype, for the dtypes hookrt reads (include/hookrt/tensor.h).
DTYPE_TO_TORCH = OrderedDict([
    ("F32", torch.float32),
    ("F64", torch.float64),
    ("F16", torch.float16),
    ("BF16", torch.bfloat16),
    ("I64", torch.int64),
    ("I32", torch.int32),
    ("U8", torch.uint8),
])
TORCH_TO_DTYPE = {torch_dtype: name for name, torch_dtype in DTYPE_TO_TORCH.items()}

# safetensors is little-endian; raw tensor bytes are only correct on a little-endian host.
if sys.byteorder != "little":
    raise ImportError("safetensors_io: this module assumes a little-endian host")

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the same bound the reference implementation enforces


def _tensor_bytes(tensor):
    """The tensor's elements as little-endian bytes, in C order."""
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the same 2-byte patterns as int16.
        tensor = tensor.view(torch.int16)
    return tensor.numpy().tobytes()


def save(path, tensors, metadata=None):
    """Writes `tensors` (name -> torch.Tensor, in the order given) as one safetensors file.

    `metadata` adds string pairs to "__metadata__"; "format": "pt" is always present.
    """
    header = OrderedDict()
    all_metadata = OrderedDict([("format", "pt")])
    for key, value in (metadata or {}).items():
        all_metadata[str(key)] = str(value)
    header["__metadata__"] = all_metadata

    chunks = []
    offset = 0
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"safetensors_io.save: '{name}' is {type(tensor).__name__}, not a torch.Tensor")
        if tensor.dtype not in TORCH_TO_DTYPE:
            raise TypeError(f"safetensors_io.save: '{name}' has unsupported dtype {tensor.dtype}")
        data = _tensor_bytes(tensor)
        header[name] = OrderedDict([
            ("dtype", TORCH_TO_DTYPE[tensor.dtype]),
            ("shape", list(tensor.shape)),
            ("data_offsets", [offset, offset + len(data)]),
        ])
        chunks.append(data)
        offset += len(data)

    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(header_bytes)))
        out.write(header_bytes)
        for data in chunks:
            out.write(data)


def _read_header(blob, path):
    """Parses and bounds-checks the header; returns (header dict, start of the data section)."""
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes, too short for the 8-byte header length")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > _MAX_HEADER_BYTES or 8 + header_len > len(blob):
        raise ValueError(f"{path}: header length {header_len} exceeds the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + header_len].decode("utf-8"), object_pairs_hook=OrderedDict)
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    return header, 8 + header_len


def _element_count(shape):
    count = 1
    for dim in shape:
        count *= dim
    return count


def _decode_tensor(name, entry, data, path):
    """Builds one tensor from its header entry and the data section, checking every bound."""
    dtype_name = entry.get("dtype")
    if dtype_name not in DTYPE_TO_TORCH:
        raise ValueError(f"{path}: '{name}' has unsupported dtype {dtype_name!r}")
    shape = entry.get("shape")
    begin, end = entry.get("data_offsets", [None, None])
    if not isinstance(shape, list) or any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"{path}: '{name}' has invalid shape {shape!r}")
    if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= len(data)):
        raise ValueError(f"{path}: '{name}' data_offsets {[begin, end]} outside the data ({len(data)} bytes)")
    dtype = DTYPE_TO_TORCH[dtype_name]
    expected = _element_count(shape) * torch.empty((), dtype=dtype).element_size()
    if end - begin != expected:
        raise ValueError(f"{path}: '{name}' has {end - begin} bytes, its shape {shape} and dtype "
                         f"{dtype_name} need {expected}")
    if expected == 0:
        return torch.empty(shape, dtype=dtype)
    # bytearray: torch.frombuffer wants a writable buffer; clone() detaches from it.
    flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype)
    return flat.reshape(shape).clone()


def load_with_metadata(path):
    """Returns (OrderedDict name -> torch.Tensor in file order, metadata dict)."""
    with open(path, "rb") as source:
        blob = source.read()
    header, data_start = _read_header(blob, path)
    data = memoryview(blob)[data_start:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = OrderedDict()
    for name, entry in header.items():
        tensors[name] = _decode_tensor(name, entry, data, path)
    return tensors, dict(metadata)


def load(path):
    """Returns an OrderedDict name -> torch.Tensor, in the file's header order."""
    return load_with_metadata(path)[0]
