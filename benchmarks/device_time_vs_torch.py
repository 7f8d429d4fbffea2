"""hookrt's and PyTorch's device time for one unhooked train step at the same precision, side by
side: where the GPU spends a step in each, by kind of work (convolutions by direction, batch norm,
elementwise ops, pooling, the loss, the optimizer, copies) and kernel by kernel, so that a step
slower than PyTorch's says which part of it is slower, and a step whose device time matches
PyTorch's while its wall time does not says that the gap is between the kernels, not in them.

hookrt's side is `hookrt bench`'s "unhooked_device_time" (CUPTI, one counted step, names already
reduced to kernel families); PyTorch's is torch_gpu_baseline.py's "<variant>_device_time"
(torch.profiler, one profiled step, full demangled names), both [{"name", "items", "ms"}]. Both
sides' convolutions run on the same cuDNN (the check builds hookrt against PyTorch's wheel), so
their convolution kernels share names, and a difference there is an algorithm choice.
Used by device_figures.py.
"""
import re

# A kind of work, by kernel family: the first pattern that matches (case-insensitive) names it. The
# patterns cover hookrt's own kernels (cuda/*.cu), PyTorch's ATen kernels, and cuDNN's and cuBLAS's
# as they are named on Hopper; a kernel none of them knows is "other", and the kernel-by-kernel
# differences below still show it.
KINDS = (
    ("memcpy", r"^memcpy"),
    ("memset", r"^memset"),
    ("probes", r"^hookrt::cuda::detail::"),
    ("convolution backward data", r"dgrad"),
    ("convolution backward filter", r"wgrad|bprop_filter|backward_filter"),
    ("layout transforms", r"nchwtonhwc|nhwctonchw|transpose"),
    ("batch norm", r"batch_?norm|(^|::)bn_|^hookrt::cuda::(batchnorm::)?(nchw_)?(sums|dx|normalize)_kernel$|"
                   r"^hookrt::cuda::(forward_finish|backward_finish|saved_stats|inference_backward)_kernel$"),
    # "conv" but not hookrt's convert_kernel, an elementwise cast.
    ("convolution forward", r"fprop|conv(?!ert)|im2col|winograd|implicit_gemm|precompute_indices|computeoffsets"),
    # cuBLAS's GEMMs (nvjet_* on Hopper) and the bias: PyTorch's fc bias gradient is a sum over
    # the batch, a reduce_kernel below, where hookrt's is column_sums_kernel.
    ("linear layer", r"gemm|gemv|cublas|cutlass|nvjet|splitk|^hookrt::cuda::broadcast_bias_kernel$"),
    # PyTorch's average pool to 1x1 is a mean, and its fc bias gradient and loss mean are sums: a
    # reduce_kernel each, so pooling and reductions are one kind on both sides.
    ("pooling and reductions", r"pool|reduce|adaptive_average|^hookrt::cuda::column_sums_kernel$"),
    ("loss", r"softmax|nll_loss|cross_entropy|mean_in_row_order"),
    ("optimizer and loss scaling", r"sgd|multi_tensor_apply|foreach|amp_|unscale|update_scale"),
    ("elementwise", r"elementwise|relu|threshold|add|accumulate|convert|copy|fill|multiply|mul|clamp|cast"),
)
OTHER = "other"
KIND_ORDER = [kind for kind, _ in KINDS] + [OTHER]
# How many kernels' differences the comparison keeps.
SHOWN_KERNELS = 10


def without_brackets(name):
    """`name` without anything inside <...> or (...), at any depth (src/device_work_times.cpp's rule)."""
    out, depth = [], 0
    for c in name:
        if c in "<(":
            depth += 1
        if depth == 0:
            out.append(c)
        if c in ">)" and depth > 0:
            depth -= 1
    return "".join(out)


GENERIC_ENTRIES = ("Kernel", "Kernel2", "kernel", "device_kernel")


def first_template_argument(name, family):
    """The first template argument after `family` in `name`, without its own arguments."""
    start = name.find(family + "<")
    if start < 0:
        return ""
    argument, depth = [], 0
    for c in name[start + len(family) + 1:]:
        if depth == 0 and c in ",>":
            break
        depth += (c in "<(") - (c in ">)")
        argument.append(c)
    return without_brackets("".join(argument)).strip()


def kernel_family(name):
    """A demangled kernel name reduced as hookrt reduces its own (kernel_family in
    src/device_work_times.cpp): no return type, template arguments, parameters or "(anonymous
    namespace)::", except that a library's generic entry point (cutlass::Kernel2, xmma's
    gemm::kernel) keeps its first template argument, which says what it runs; the profiler's
    memcpys and memsets ("Memcpy DtoD (Device -> Device)") are "memcpy" and "memset", as CUPTI's
    are in hookrt's list. hookrt's names are families already, and stay as they are."""
    lowered = name.lower()
    for kind in ("memcpy", "memset"):
        if lowered.startswith(kind):
            return kind
    name = name.replace("(anonymous namespace)::", "")
    family = without_brackets(name).strip().rsplit(" ", 1)[-1]
    if not family:
        return name
    if family.rsplit("::", 1)[-1] in GENERIC_ENTRIES:
        argument = first_template_argument(name, family)
        if argument:
            family += f"<{argument}>"
    return family


def kind_of(family):
    for kind, pattern in KINDS:
        if re.search(pattern, family, re.IGNORECASE):
            return kind
    return OTHER


def by_family(times):
    """{family: {"ms", "items"}} from a device time list."""
    families = {}
    for t in times:
        entry = families.setdefault(kernel_family(t["name"]), {"ms": 0.0, "items": 0})
        entry["ms"] += t["ms"]
        entry["items"] += t["items"]
    return families


def comparison(hookrt_times, torch_times, count=SHOWN_KERNELS):
    """{"hookrt_ms", "torch_ms", "by_kind": [{"kind", "hookrt_ms", "torch_ms", "hookrt_items",
    "torch_items"}] in KIND_ORDER (kinds neither side ran left out), "largest_differences": the
    `count` kernel families whose time differs most, either way, hookrt's excess first}."""
    sides = {"hookrt": by_family(hookrt_times), "torch": by_family(torch_times)}
    kinds, kernels = {}, {}
    for side, families in sides.items():
        for family, t in families.items():
            kind = kinds.setdefault(kind_of(family), {"hookrt_ms": 0.0, "torch_ms": 0.0, "hookrt_items": 0,
                                                      "torch_items": 0})
            kind[f"{side}_ms"] += t["ms"]
            kind[f"{side}_items"] += t["items"]
            kernel = kernels.setdefault(family, {"name": family, "kind": kind_of(family), "hookrt_ms": 0.0,
                                                 "torch_ms": 0.0})
            kernel[f"{side}_ms"] += t["ms"]
    for kernel in kernels.values():
        kernel["delta_ms"] = round(kernel["hookrt_ms"] - kernel["torch_ms"], 4)
    largest = sorted(sorted(kernels.values(), key=lambda k: k["name"]), key=lambda k: -abs(k["delta_ms"]))[:count]
    return {
        "hookrt_ms": round(sum(t["ms"] for t in hookrt_times), 4),
        "torch_ms": round(sum(t["ms"] for t in torch_times), 4),
        "by_kind": [{"kind": kind, **{key: round(v, 4) if isinstance(v, float) else v for key, v in kinds[kind].items()}}
                    for kind in KIND_ORDER if kind in kinds],
        "largest_differences": sorted(largest, key=lambda k: -k["delta_ms"]),
    }


def print_comparison(label, c):
    """The comparison of one precision: the totals, each kind, then the kernels that differ most."""
    print(f"device time, one unhooked step, {label}: hookrt {c['hookrt_ms']:.3f} ms, PyTorch {c['torch_ms']:.3f} ms "
          "(hookrt - PyTorch by kind, ms/step; kernels)")
    for k in c["by_kind"]:
        print(f"  {k['hookrt_ms'] - k['torch_ms']:+8.3f}  {k['kind']:30s} {k['hookrt_ms']:8.3f} vs {k['torch_ms']:8.3f}"
              f"  ({k['hookrt_items']} vs {k['torch_items']})")
    if c["largest_differences"]:
        print(f"  kernels that differ most ({label}): hookrt - PyTorch, ms/step")
    for k in c["largest_differences"]:
        print(f"  {k['delta_ms']:+8.3f}  {k['name'][:60]:60s} {k['hookrt_ms']:8.3f} vs {k['torch_ms']:8.3f}  [{k['kind']}]")
