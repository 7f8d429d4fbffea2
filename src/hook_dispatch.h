#pragma once
// HookDispatcher — fires a model's hooks at one site (module call or parameter) during a step:
// probes run on the backend and their records go to subscribers; host callbacks see host tensors
// (copied out and back on a device backend: the slow path, as in PyTorch).
// Records reach subscribers in firing order. A backend that defers probe results (the GPU's) has
// its records held in a queue until the step ends (record_delivery.h): then either
// flush_records() finishes them at once (a nonfinite=halt found there delivers the records up to
// the halting one and throws, as if the step had stopped at that point: before the optimizer;
// BatchNorms after that point have updated their running statistics, since the forward ran on),
// or hand_over() gives them to the delivery thread.
#include <cstdint>
#include <deque>
#include <optional>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/hooks.h"
#include "hookrt/model.h"
#include "hookrt/records.h"
#include "probed_tensors.h"
#include "record_delivery.h"

namespace hookrt::detail {

struct HookSite {
  std::string module;  // module path; for grad events the owning module
  ModuleKind kind{};
  int call = 0;
  std::string param;   // grad events
};

class HookDispatcher {
 public:
  HookDispatcher(Backend& backend, const HookRegistry& registry, RecordSink sink, int64_t step)
      : backend_(backend), registry_(registry), sink_(std::move(sink)), step_(step) {}

  // Hooks of `when` that fire at `target` (module path or parameter key) in this step.
  std::vector<std::shared_ptr<const Hook>> active(HookWhen when, const std::string& target) const;
  bool any(HookWhen when, const std::string& target) const { return !active(when, target).empty(); }
  // Whether any active hook may change the tensor (changing probes or host callbacks).
  bool may_change(HookWhen when, const std::string& target) const;
  // Whether the first active hook is a probe hook: a tensor still to be written can then be
  // handed to its probe run (ProbeRunOptions::produce) rather than written first.
  bool probes_first(HookWhen when, const std::string& target) const;
  // Whether an active hook sees the module's input in forward: a forward_pre hook, or a forward
  // callback that takes (input, output).
  bool reads_forward_input(const std::string& module) const;

  // forward_pre (input), backward_pre (grad_output), grad (grad): hooks act on `tensor` in place.
  // `transforms`, when given, receives the gradient transforms of changing probes (forward tensors).
  void fire(HookWhen when, const HookSite& site, const std::string& target, Tensor& tensor,
            const std::string& tensor_name, std::vector<GradTransform>* transforms);

  // forward: probes act on output; pair callbacks get (input, output). Ids of hooks that ran are
  // added to `called` so that always_call hooks are not run twice when something throws.
  // `produce`, when set, is the op that still has to write the output: the first probe run is
  // given it, and it runs on its own before anything else would see the output.
  void fire_forward(const HookSite& site, const Tensor& input, Tensor& output,
                    std::vector<GradTransform>* transforms, std::set<uint64_t>& called,
                    std::optional<ProducingOp> produce = std::nullopt);
  // Whether the hooks of `when` on `module` may wait for the op that reads their tensor next
  // (park_forward, fire_backward's park_grad_input): there is one, a probe hook that only
  // observes (ProbedTensors::reusable).
  bool can_park(HookWhen when, const std::string& module) const;
  // Fires the forward hook of `module` (can_park) on `output`, which a producing op reads next (a
  // batch norm's output, read by the ReLU after it), without reading it yet: its record takes its
  // place in the queue now, and its probes run in the op's own read of the tensor (write, or the
  // probe run that writes the op's output), or else on their own at run_parked, or when another
  // probe run fires on the tensor. One run is parked at a time: parking another runs the first.
  // Where the op reads a copy after all (a changing hook's on its way), the run waits for that.
  void park_forward(const HookSite& site, const Tensor& output, std::set<uint64_t>& called);
  // Runs the parked run on its own, if there is one: before anything but its op may read or write
  // its tensor, or before its record must be delivered.
  void run_parked();
  // Whether a run is parked waiting for `tensor`'s reader.
  bool parked_on(const Tensor& tensor) const;
  // Writes `out` with `op`, probing the parked tensor in the same run where `op` reads it.
  void write(const ProducingOp& op, Tensor& out);

  // After a forward that threw: runs always_call forward hooks not yet called, with no output.
  void fire_always_call(const HookSite& site, const Tensor& input, const std::set<uint64_t>& called) noexcept;

  // backward: changing probes act on grad_input only; observing probes report grad_input (when
  // defined) and grad_output as separate records; pair callbacks get (grad_input, grad_output).
  // `produce_grad_input` is fire_forward's `produce` for grad_input. park_grad_input: a ReLU's
  // backward reads grad_input next (a convolution's or max pool's after a ReLU), so a hook that
  // can_park waits for it there, as park_forward's.
  void fire_backward(const HookSite& site, Tensor& grad_input, Tensor& grad_output,
                     std::optional<ProducingOp> produce_grad_input = std::nullopt, bool park_grad_input = false);

  // Collects deferred probe results and delivers every queued record in firing order. Throws
  // Error(Halted) after delivering the record whose nonfinite=halt probe fired.
  void flush_records();
  // For error paths: delivers what can be delivered and never throws (a halt is ignored, other
  // failures are reported on stderr).
  void flush_records_noexcept() noexcept;
  // A tensor the step is about to write in place (a gradient accumulated into): earlier probe
  // results on it no longer describe it (see probed_tensors.h).
  void tensor_written(const Tensor& tensor);
  // Whether a probe that ran in this step may stop it (nonfinite=halt): its records must then be
  // finished before the optimizer runs, not handed over.
  bool may_halt() const { return may_halt_; }
  // The queued records and the backend's sealed batch of their deferred results, for delivery
  // later; the queue is empty afterwards.
  HandedOverStep hand_over();
  // The queued records without sealing their deferred results: a recorded step's, whose results
  // come from each replay of it (step_graphs.h). The queue is empty afterwards.
  std::deque<QueuedRecord> take_queued_records();

 private:
  void deliver(const ProbeRecord& record, bool halt);
  // Queues or delivers `record` with the results of an earlier run of the same probes on the
  // same tensor.
  void reuse(ProbeRecord record, const EarlierProbeRun& earlier);
  // Delivers at once a record whose results are known and that no queued record precedes;
  // queues it otherwise (a halting one flushes the queue, which throws).
  void queue_or_deliver(QueuedRecord queued);

  // A forward probe run waiting for the producing op that reads its tensor (park_forward).
  struct ParkedRun {
    Tensor tensor;
    ProbeList probes;
    int channel_axis = 1;
    size_t queued = 0;  // its record's index in queue_ (nothing leaves the queue while it waits)
  };
  // The parked run, handed to `options` (which holds the op) as its probe_input, if the op reads
  // its tensor; it is no longer parked then.
  std::optional<ParkedRun> take_parked_for(ProbeRunOptions& options);
  // run(), a backend run that took `parked` (if set): where it throws, the run is parked again,
  // its record as it was, for run_parked to retry or for the step's end to report.
  template <class Run>
  ProbeRunEffects unpark_on_failure(const std::optional<ParkedRun>& parked, Run run);
  // After the parked run ran: its ticket to its record, its results remembered for repeats, and
  // the records it held back delivered if they are all known.
  void parked_run_done(const ParkedRun& parked, std::optional<uint64_t> ticket);
  // Delivers the queue's leading records whose results are known.
  void deliver_ready();
  ProbeRecord record_for(HookWhen when, const HookSite& site, const Tensor& tensor, const std::string& tensor_name) const;

  // Queues the record of `probes` on `tensor` and parks their run (see park_forward).
  void park(const ProbeList& probes, HookWhen when, const HookSite& site, const Tensor& tensor,
            const std::string& tensor_name);

  // `produce` (see fire_forward) is handed to the run and left empty.
  void run_probe_hook(const ProbeList& probes, HookWhen when, const HookSite& site, Tensor& tensor,
                      const std::string& tensor_name, std::vector<GradTransform>* transforms,
                      std::optional<ProducingOp>& produce);
  // Writes `tensor` with `produce` if that is still to be done, and leaves it empty.
  void write_now(std::optional<ProducingOp>& produce, Tensor& tensor);
  void call_on_host(Tensor& a, Tensor* b, const std::function<void(Tensor&, Tensor&)>& fn);
  // Whether a host callback can be handed `t` itself (an NCHW host tensor, or undefined), rather
  // than an NCHW host copy of it.
  bool seen_in_place(const Tensor& t) const;
  // `t` as a host callback reads it: itself where seen in place, else its NCHW host copy.
  Tensor host_view(const Tensor& t);
  void write_back(const Tensor& host, Tensor& t);
  HookEvent event(HookWhen when, const HookSite& site) const;

  Backend& backend_;
  const HookRegistry& registry_;
  RecordSink sink_;
  int64_t step_;
  std::deque<QueuedRecord> queue_;
  bool may_halt_ = false;
  ProbedTensors probed_;
  std::optional<ParkedRun> parked_;
};

}  // namespace hookrt::detail
