// Backend's non-virtual conveniences (see hookrt/backend.h).
#include "hookrt/backend.h"

#include <string>

#include "hookrt/error.h"

namespace hookrt {

double Backend::cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) {
  Tensor loss;
  cross_entropy_forward(logits, labels, probs, loss);
  return to_host(loss).item(0);
}

Tensor Backend::converted(const Tensor& t, DType dtype, MemoryFormat format) {
  if (t.dtype() == dtype && t.is_contiguous(format)) return t.to_memory_format(format);  // relabelled, not copied
  Tensor out = empty(t.shape(), dtype, format);
  convert(t, out);
  return out;
}

void Backend::run_producing_op(const ProducingOp& op, Tensor& out) {
  switch (op.kind) {
    case ProducingOp::Kind::ReluForward: relu_forward(op.a, out); return;
    case ProducingOp::Kind::ReluBackward: relu_backward(op.a, op.b, out); return;
    case ProducingOp::Kind::AddReluForward:
      add(op.a, op.b, out);
      relu_forward(out, out);
      return;
  }
  throw Error("internal: unknown producing op");
}

ProbeRunEffects Backend::run_input_probes_apart(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                                               const ProbeRunOptions& options) {
  if (!options.probe_input) return run_probes(probes, tensor, record, options);
  const InputProbeRun& run = *options.probe_input;
  if (!options.produce || run.record == nullptr || run.input < 0 || run.input > 1)
    throw Error("internal: probes on a producing op's input need the op, an input (0 or 1) and a record");
  Tensor input = run.input == 0 ? options.produce->a : options.produce->b;
  if (!input.defined())
    throw Error("internal: probes on input " + std::to_string(run.input) + " of a producing op that has none");
  ProbeRunOptions input_options;
  input_options.channel_axis = run.channel_axis;
  const ProbeRunEffects input_effects = run_probes(run.probes, input, *run.record, input_options);
  ProbeRunOptions rest = options;
  rest.probe_input.reset();
  ProbeRunEffects effects = run_probes(probes, tensor, record, rest);
  effects.input_deferred = input_effects.deferred;
  return effects;
}

std::unique_ptr<StepGraph> Backend::end_step_recording() {
  throw Error("internal: backend " + name() + " records no steps, so there is no recording to end");
}

}  // namespace hookrt
