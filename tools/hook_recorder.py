"""Records every PyTorch hook firing of one training or eval step under hookrt's capture keys.

Key: `step{S}/{when}/{module}[#k]/{tensor}` (src/records.cpp, ProbeRecord::capture_key):
  when    forward_pre, forward, backward_pre, backward, grad
  module  the named_modules() path; the root is "" (so its keys hold "//": `step0/forward//output`)
  #k      the call index within the step, 0-based, written only when k > 0: a BasicBlock's `relu`
          runs twice per forward, its first call is `layer1.0.relu`, its second `layer1.0.relu#1`
  tensor  input, output, grad_output, grad_input; grad events are `step{S}/grad/{param}/grad`

How each event is observed in torch 1.13:
  forward_pre   register_forward_pre_hook (the input, before the module runs)
  forward       register_forward_hook (the output)
  backward      register_full_backward_hook (grad_input, grad_output after the module's backward).
                A module whose input does not require grad (the root and conv1, whose input is the
                model input) gets grad_input == (None,): nothing is recorded for it, only grad_output.
  backward_pre  torch 1.13 has no register_full_backward_pre_hook (added in 2.0). We emulate it at
                the same point 2.0 fires it: a tensor hook on the tensor the module call returns.
                That tensor's grad_fn is the BackwardHookFunctionBackward node that the full backward
                hook machinery put there, and a tensor hook is a pre-hook of that node, so it runs
                with the complete grad_output just before the node's post-hook, which is where 2.0
                runs backward pre hooks (and, for the root and conv1, the backward hooks themselves).
                To see the returned tensor we give each module instance a subclass whose __call__
                observes the result (a forward hook only sees the output before that wrapping).
  grad          Tensor.register_post_accumulate_grad_hook does not exist in torch 1.13; a post-hook on
                the parameter's AccumulateGrad node fires at the same moment (after p.grad is written)
                and gives the true firing order; the value recorded is p.grad at that moment.

Which call a backward firing belongs to: backward_pre's tensor hook is registered per call, so it
knows k exactly; it pushes k on a per-module stack and the module's backward hook, which fires after
the module's own backward, pops it. Calls of one module run their backward in reverse order of their
forward calls, and a module's backward never contains another call of the same module, so the stack
pairs every backward with its forward call.
"""
from collections import Counter, OrderedDict, defaultdict

import torch

WHENS = ("forward_pre", "forward", "backward_pre", "backward", "grad")


class CaptureRecord:
    """One captured tensor and where it came from (the fields of a hookrt ProbeRecord)."""

    def __init__(self, key, when, module, call, tensor_name, value, param=""):
        self.key = key
        self.when = when
        self.module = module
        self.call = call
        self.param = param
        self.tensor_name = tensor_name
        self.value = value


def capture_key(step, when, module, call, tensor_name, param=""):
    """The same string as hookrt's ProbeRecord::capture_key()."""
    if when == "grad":
        return f"step{step}/grad/{param}/{tensor_name}"
    suffix = f"#{call}" if call > 0 else ""
    return f"step{step}/{when}/{module}{suffix}/{tensor_name}"


def _single_tensor(values, what):
    """ResNet modules take and return one tensor; anything else has no hookrt key to go under."""
    if isinstance(values, torch.Tensor):
        return values
    tensors = [v for v in values if isinstance(v, torch.Tensor) or v is None]
    if len(tensors) != 1:
        raise RuntimeError(f"{what}: expected exactly one tensor, got {len(tensors)}")
    return tensors[0]


def _observe_call_results(module, observer):
    """Makes every call of `module` pass its returned value to observer(result).

    Python looks __call__ up on the type, so the instance gets its own subclass (same name, so its
    kind still reads `ReLU`, `Conv2d`...); nothing else about the module changes.
    """
    base = type(module)

    def __call__(self, *args, **kwargs):
        result = base.__call__(self, *args, **kwargs)
        observer(result)
        return result

    module.__class__ = type(base.__name__, (base,), {"__call__": __call__})


class StepRecorder:
    """Hooks every module (root included) and every parameter of `model`; records one step."""

    def __init__(self, model, step=0):
        self.step = step
        self.records = []  # CaptureRecord, in firing order
        self._seen_keys = set()
        self._forward_calls = Counter()  # module -> calls so far this step
        self._current_call = {}  # module -> k of the call running now (modules do not recurse)
        self._backward_pending = defaultdict(list)  # module -> stack of k whose backward_pre fired
        self._grad_nodes = []  # AccumulateGrad nodes, kept alive so the graph reuses them
        for name, module in model.named_modules():
            self._hook_module(name, module)
        for name, param in model.named_parameters():
            self._hook_parameter(name, param)

    # ---- registration ----------------------------------------------------------------------

    def _hook_module(self, name, module):
        module.register_forward_pre_hook(lambda m, inputs: self._on_forward_pre(name, inputs))
        module.register_forward_hook(lambda m, inputs, output: self._on_forward(name, output))
        module.register_full_backward_hook(
            lambda m, grad_input, grad_output: self._on_backward(name, grad_input, grad_output))
        _observe_call_results(module, lambda result: self._arm_backward_pre(name, result))

    def _hook_parameter(self, name, param):
        # expand_as makes a graph node whose next function is param's AccumulateGrad node; holding a
        # reference keeps that node alive, so the step's graph accumulates through this same node.
        node = param.expand_as(param).grad_fn.next_functions[0][0]
        node.register_hook(lambda grad_inputs, grad_outputs: self._on_grad(name, param))
        self._grad_nodes.append(node)

    # ---- firings ---------------------------------------------------------------------------

    def _record(self, when, module, call, tensor_name, value, param=""):
        if value is None:
            return
        key = capture_key(self.step, when, module, call, tensor_name, param)
        if key in self._seen_keys:
            raise RuntimeError(f"capture key recorded twice: {key}")
        self._seen_keys.add(key)
        copy = value.detach().to(torch.float32).clone()
        self.records.append(CaptureRecord(key, when, module, call, tensor_name, copy, param))

    def _on_forward_pre(self, name, inputs):
        call = self._forward_calls[name]
        self._forward_calls[name] += 1
        self._current_call[name] = call
        self._record("forward_pre", name, call, "input", _single_tensor(inputs, f"{name} input"))

    def _on_forward(self, name, output):
        self._record("forward", name, self._current_call[name], "output", _single_tensor(output, f"{name} output"))

    def _arm_backward_pre(self, name, result):
        result = _single_tensor(result, f"{name} result")
        if not result.requires_grad:
            return
        call = self._current_call[name]
        result.register_hook(lambda grad: self._on_backward_pre(name, call, grad))

    def _on_backward_pre(self, name, call, grad_output):
        self._backward_pending[name].append(call)
        self._record("backward_pre", name, call, "grad_output", grad_output)

    def _on_backward(self, name, grad_input, grad_output):
        if not self._backward_pending[name]:
            raise RuntimeError(f"backward hook of '{name}' fired without its backward_pre")
        call = self._backward_pending[name].pop()
        self._record("backward", name, call, "grad_input", _single_tensor(grad_input, f"{name} grad_input"))
        self._record("backward", name, call, "grad_output", _single_tensor(grad_output, f"{name} grad_output"))

    def _on_grad(self, name, param):
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        self._record("grad", owner, 0, "grad", param.grad, param=name)

    # ---- results ---------------------------------------------------------------------------

    def keys(self):
        return [r.key for r in self.records]

    def captures(self):
        """OrderedDict key -> float32 tensor, in firing order."""
        return OrderedDict((r.key, r.value) for r in self.records)

    def module_calls(self):
        """Forward calls per module in this step (2 for each BasicBlock's relu, else 1)."""
        return dict(self._forward_calls)

    def counts_by_when(self):
        counts = Counter(r.when for r in self.records)
        return {when: counts.get(when, 0) for when in WHENS}

    def check_complete(self):
        """Every backward_pre must have met its backward; every call must have had a backward."""
        left = {name: stack for name, stack in self._backward_pending.items() if stack}
        if left:
            raise RuntimeError(f"backward_pre without backward for calls {left}")
        backward_calls = Counter(r.module for r in self.records if r.when == "backward_pre")
        if backward_calls != self._forward_calls:
            raise RuntimeError(f"backward calls {dict(backward_calls)} differ from forward calls "
                               f"{dict(self._forward_calls)}")
