#include "hook_dispatch.h"

#include <algorithm>
#include <iostream>
#include <utility>

namespace hookrt::detail {

std::vector<std::shared_ptr<const Hook>> HookDispatcher::active(HookWhen when, const std::string& target) const {
  auto hooks = registry_.hooks_for(when, target);
  std::erase_if(hooks, [&](const auto& hook) { return !hook->options.fires_at(step_); });
  return hooks;
}

static bool changes(const Hook& hook) {
  const auto* probes = std::get_if<ProbeList>(&hook.action);
  if (!probes) return true;  // host callbacks may write
  return std::any_of(probes->begin(), probes->end(), probe_changes_tensor);
}

bool HookDispatcher::may_change(HookWhen when, const std::string& target) const {
  auto hooks = active(when, target);
  return std::any_of(hooks.begin(), hooks.end(), [](const auto& hook) { return changes(*hook); });
}

bool HookDispatcher::probes_first(HookWhen when, const std::string& target) const {
  auto hooks = active(when, target);
  return !hooks.empty() && std::holds_alternative<ProbeList>(hooks.front()->action);
}

bool HookDispatcher::reads_forward_input(const std::string& module) const {
  if (any(HookWhen::ForwardPre, module)) return true;
  auto hooks = active(HookWhen::Forward, module);
  return std::any_of(hooks.begin(), hooks.end(),
                     [](const auto& hook) { return std::holds_alternative<PairCallback>(hook->action); });
}

void HookDispatcher::write_now(std::optional<ProducingOp>& produce, Tensor& tensor) {
  if (!produce) return;
  const ProducingOp op = std::move(*produce);
  produce.reset();
  write(op, tensor);
}

template <class Run>
ProbeRunEffects HookDispatcher::unpark_on_failure(const std::optional<ParkedRun>& parked, Run run) {
  try {
    return run();
  } catch (...) {
    if (parked) {
      queue_[parked->queued].record.results.clear();  // whatever a failed run left
      parked_ = *parked;
    }
    throw;
  }
}

void HookDispatcher::write(const ProducingOp& op, Tensor& out) {
  ProbeRunOptions options;
  options.produce = op;
  const std::optional<ParkedRun> parked = take_parked_for(options);
  if (!parked) {
    backend_.run_producing_op(op, out);
    return;
  }
  ProbeRecord unused;  // the run probes the op's input only
  const ProbeRunEffects effects =
      unpark_on_failure(parked, [&] { return backend_.run_probes(ProbeList{}, out, unused, options); });
  parked_run_done(*parked, effects.input_deferred);
}

static bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.storage() == b.storage() && a.byte_offset() == b.byte_offset() &&
         a.shape() == b.shape() && a.dtype() == b.dtype();
}

bool HookDispatcher::can_park(HookWhen when, const std::string& module) const {
  const auto hooks = active(when, module);
  if (hooks.size() != 1) return false;
  const auto* probes = std::get_if<ProbeList>(&hooks.front()->action);
  return probes && !probes->empty() && ProbedTensors::reusable(*probes);
}

void HookDispatcher::park_forward(const HookSite& site, const Tensor& output, std::set<uint64_t>& called) {
  const auto hooks = active(HookWhen::Forward, site.module);
  if (!can_park(HookWhen::Forward, site.module))
    throw Error("internal: the forward hooks of '" + site.module + "' cannot wait");
  called.insert(hooks.front()->id);
  park(std::get<ProbeList>(hooks.front()->action), HookWhen::Forward, site, output, "output");
}

void HookDispatcher::park(const ProbeList& probes, HookWhen when, const HookSite& site, const Tensor& tensor,
                          const std::string& tensor_name) {
  run_parked();
  ProbeRecord record = record_for(when, site, tensor, tensor_name);
  const int channel_axis = tensor.ndim() < 2 ? 0 : 1;
  if (const EarlierProbeRun* earlier = probed_.find(tensor, probes, channel_axis)) {
    reuse(std::move(record), *earlier);
    return;
  }
  queue_.push_back(QueuedRecord{std::move(record), std::nullopt, false, std::nullopt});
  parked_ = ParkedRun{tensor, probes, channel_axis, queue_.size() - 1};
}

std::optional<HookDispatcher::ParkedRun> HookDispatcher::take_parked_for(ProbeRunOptions& options) {
  if (!parked_ || !options.produce) return std::nullopt;
  const ProducingOp& op = *options.produce;
  const int input = same_tensor(op.a, parked_->tensor) ? 0 : same_tensor(op.b, parked_->tensor) ? 1 : -1;
  if (input < 0) return std::nullopt;
  ParkedRun parked = std::move(*parked_);
  parked_.reset();
  options.probe_input = InputProbeRun{input, parked.probes, parked.channel_axis, &queue_[parked.queued].record};
  return parked;
}

bool HookDispatcher::parked_on(const Tensor& tensor) const { return parked_ && same_tensor(parked_->tensor, tensor); }

void HookDispatcher::run_parked() {
  if (!parked_) return;
  const ParkedRun parked = std::move(*parked_);
  parked_.reset();  // a run that fails is not tried again
  ProbeRunOptions options;
  options.channel_axis = parked.channel_axis;
  Tensor tensor = parked.tensor;
  const ProbeRunEffects effects = backend_.run_probes(parked.probes, tensor, queue_[parked.queued].record, options);
  parked_run_done(parked, effects.deferred);
}

void HookDispatcher::parked_run_done(const ParkedRun& parked, std::optional<uint64_t> ticket) {
  QueuedRecord& queued = queue_[parked.queued];
  queued.ticket = ticket;
  probed_.remember(parked.tensor, parked.probes, parked.channel_axis, EarlierProbeRun{queued.record.results, ticket});
  deliver_ready();
}

void HookDispatcher::deliver_ready() {
  while (!parked_ && !queue_.empty() && !queue_.front().ticket && !queue_.front().results_of) {
    QueuedRecord queued = std::move(queue_.front());
    queue_.pop_front();
    if (queued.halt) queue_.clear();  // the step stops at this record: later firings never happened
    deliver(queued.record, queued.halt);
  }
}

void HookDispatcher::tensor_written(const Tensor& tensor) {
  if (parked_ && parked_->tensor.storage() == tensor.storage()) run_parked();
  probed_.forget(tensor);
}

ProbeRecord HookDispatcher::record_for(HookWhen when, const HookSite& site, const Tensor& tensor,
                                      const std::string& tensor_name) const {
  ProbeRecord record;
  record.step = step_;
  record.when = when;
  record.module = site.module;
  record.call = site.call;
  record.param = site.param;
  record.tensor = tensor_name;
  record.shape = tensor.shape();
  return record;
}

HookEvent HookDispatcher::event(HookWhen when, const HookSite& site) const {
  HookEvent e;
  e.step = step_;
  e.when = when;
  e.module = site.module;
  e.kind = site.kind;
  e.call = site.call;
  e.param = site.param;
  return e;
}

void HookDispatcher::run_probe_hook(const ProbeList& probes, HookWhen when, const HookSite& site, Tensor& tensor,
                                    const std::string& tensor_name, std::vector<GradTransform>* transforms,
                                    std::optional<ProducingOp>& produce) {
  // Another run on the parked tensor: the parked one runs first, in its record's order, and may
  // stand in for this one.
  if (parked_ && same_tensor(parked_->tensor, tensor)) run_parked();
  ProbeRecord record = record_for(when, site, tensor, tensor_name);
  ProbeRunOptions options;
  // Parameter gradients have their channels first (out_channels of a conv weight).
  options.channel_axis = (when == HookWhen::Grad || tensor.ndim() < 2) ? 0 : 1;
  options.want_grad_transforms = transforms != nullptr;
  options.produce = std::exchange(produce, std::nullopt);
  const std::optional<ParkedRun> parked = take_parked_for(options);
  const bool reusable = ProbedTensors::reusable(probes);
  if (reusable && !options.produce)  // a tensor still to be written has had no run yet
    if (const EarlierProbeRun* earlier = probed_.find(tensor, probes, options.channel_axis)) {
      reuse(std::move(record), *earlier);
      return;
    }
  may_halt_ = may_halt_ || std::any_of(probes.begin(), probes.end(), probe_may_halt);
  ProbeRunEffects effects =
      unpark_on_failure(parked, [&] { return backend_.run_probes(probes, tensor, record, options); });
  if (parked) parked_run_done(*parked, effects.input_deferred);  // its record comes before this one
  if (effects.changed) probed_.forget(tensor);
  if (reusable) probed_.remember(tensor, probes, options.channel_axis, EarlierProbeRun{record.results, effects.deferred});
  if (transforms)
    for (GradTransform& t : effects.grad_transforms) transforms->push_back(std::move(t));
  queue_or_deliver(QueuedRecord{std::move(record), effects.deferred, effects.halt, std::nullopt});
}

// A deferred repeat waits in the queue with the earlier record, whose results it takes.
void HookDispatcher::reuse(ProbeRecord record, const EarlierProbeRun& earlier) {
  if (!earlier.ticket) record.results = earlier.results;
  queue_or_deliver(QueuedRecord{std::move(record), std::nullopt, false, earlier.ticket});
}

void HookDispatcher::queue_or_deliver(QueuedRecord queued) {
  if (queued.ticket || queued.results_of || !queue_.empty()) {
    const bool halt = queued.halt;
    queue_.push_back(std::move(queued));
    if (halt) flush_records();  // delivers up to this record, then throws
    return;
  }
  deliver(queued.record, queued.halt);
}

void HookDispatcher::deliver(const ProbeRecord& record, bool halt) {
  if (!record.results.empty()) sink_(record);
  if (halt) throw Error(halt_message(record), ErrorKind::Halted);
}

void HookDispatcher::flush_records() {
  run_parked();
  probed_.forget();  // remembered tickets refer to the queue
  if (queue_.empty()) return;
  std::deque<QueuedRecord> queue = std::move(queue_);
  queue_.clear();
  attach_deferred_results(queue, backend_.collect_deferred_probe_results());
  for (const QueuedRecord& queued : queue) deliver(queued.record, queued.halt);
}

HandedOverStep HookDispatcher::hand_over() {
  run_parked();  // before sealing: its results travel with the others
  HandedOverStep step;
  step.step = step_;
  step.batch = backend_.seal_deferred_probe_results();
  step.records = take_queued_records();
  return step;
}

std::deque<QueuedRecord> HookDispatcher::take_queued_records() {
  run_parked();
  probed_.forget();  // remembered tickets refer to the queue
  std::deque<QueuedRecord> records = std::move(queue_);
  queue_.clear();
  return records;
}

void HookDispatcher::flush_records_noexcept() noexcept {
  // The parked run first, on its own: if it fails, its record is left empty, and the records
  // queued behind it still go.
  for (void (HookDispatcher::*part)() : {&HookDispatcher::run_parked, &HookDispatcher::flush_records}) {
    try {
      (this->*part)();
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::Halted)
        std::cerr << "hookrt: probe records of step " << step_ << " could not be delivered: " << error.what() << "\n";
    } catch (const std::exception& error) {
      std::cerr << "hookrt: probe records of step " << step_ << " could not be delivered: " << error.what() << "\n";
    }
  }
  queue_.clear();
}

bool HookDispatcher::seen_in_place(const Tensor& t) const {
  return !t.defined() || (backend_.device() == Device::CPU && t.is_contiguous());
}

Tensor HookDispatcher::host_view(const Tensor& t) { return seen_in_place(t) ? t : backend_.to_host(t); }

// What the callback wrote into `host`, t's NCHW host copy, goes back into `t`, in t's layout.
void HookDispatcher::write_back(const Tensor& host, Tensor& t) {
  if (t.is_contiguous()) return backend_.copy(host, t);
  backend_.convert(backend_.device() == Device::CPU ? host : backend_.from_host(host), t);
}

void HookDispatcher::call_on_host(Tensor& a, Tensor* b, const std::function<void(Tensor&, Tensor&)>& fn) {
  // Host callbacks are the PyTorch way: synchronous, on host memory, NCHW. A device backend copies
  // out and back, which synchronizes the stream (and rules graph capture out); a channels-last
  // tensor is moved into NCHW order and back. An NCHW host tensor is handed over itself.
  Tensor none, ha, hb;
  Tensor& seen_a = seen_in_place(a) ? a : (ha = backend_.to_host(a));
  Tensor& seen_b = !b ? none : seen_in_place(*b) ? *b : (hb = backend_.to_host(*b));
  fn(seen_a, seen_b);
  if (&seen_a == &ha) write_back(ha, a);
  if (b && &seen_b == &hb) write_back(hb, *b);
}

void HookDispatcher::fire(HookWhen when, const HookSite& site, const std::string& target, Tensor& tensor,
                          const std::string& tensor_name, std::vector<GradTransform>* transforms) {
  for (const auto& hook : active(when, target)) {
    if (const auto* probes = std::get_if<ProbeList>(&hook->action)) {
      std::optional<ProducingOp> written;
      run_probe_hook(*probes, when, site, tensor, tensor_name, transforms, written);
    } else if (const auto* callback = std::get_if<TensorCallback>(&hook->action)) {
      run_parked();  // the callback may write any tensor it can reach
      const HookEvent e = event(when, site);
      call_on_host(tensor, nullptr, [&](Tensor& t, Tensor&) { (*callback)(e, t); });
      probed_.forget();  // it may have written the tensor
    } else {
      throw Error("internal: a two-tensor callback registered on " + when_name(when));
    }
  }
}

void HookDispatcher::fire_forward(const HookSite& site, const Tensor& input, Tensor& output,
                                  std::vector<GradTransform>* transforms, std::set<uint64_t>& called,
                                  std::optional<ProducingOp> produce) {
  for (const auto& hook : active(HookWhen::Forward, site.module)) {
    called.insert(hook->id);
    if (const auto* probes = std::get_if<ProbeList>(&hook->action)) {
      run_probe_hook(*probes, HookWhen::Forward, site, output, "output", transforms, produce);
      continue;
    }
    write_now(produce, output);
    run_parked();  // the callback may write any tensor it can reach
    if (const auto* callback = std::get_if<TensorCallback>(&hook->action)) {
      const HookEvent e = event(HookWhen::Forward, site);
      call_on_host(output, nullptr, [&](Tensor& out, Tensor&) { (*callback)(e, out); });
    } else {
      const auto& pair = std::get<PairCallback>(hook->action);
      const HookEvent e = event(HookWhen::Forward, site);
      // The input is passed read-only in spirit: writes to it are not copied back.
      Tensor host_in = host_view(input);
      call_on_host(output, nullptr, [&](Tensor& out, Tensor&) { pair(e, host_in, out); });
    }
    probed_.forget();  // a callback may write
  }
  write_now(produce, output);  // no hook fired after all: the output is still the module's
}

void HookDispatcher::fire_always_call(const HookSite& site, const Tensor& input,
                                      const std::set<uint64_t>& called) noexcept {
  for (const auto& hook : active(HookWhen::Forward, site.module)) {
    if (!hook->options.always_call || called.count(hook->id)) continue;
    // Like PyTorch, an exception from an always_call hook while unwinding is reported, not raised.
    try {
      const HookEvent e = event(HookWhen::Forward, site);
      Tensor no_output;
      if (const auto* callback = std::get_if<TensorCallback>(&hook->action)) {
        (*callback)(e, no_output);
      } else if (const auto* pair = std::get_if<PairCallback>(&hook->action)) {
        Tensor in = host_view(input);
        (*pair)(e, in, no_output);
      }
      // Probe hooks have no output to describe after a failed forward.
    } catch (const std::exception& error) {
      std::cerr << "hookrt: always_call forward hook on '" << site.module << "' raised while unwinding: "
                << error.what() << "\n";
    }
  }
}

static ProbeList observing_only(const ProbeList& probes) {
  ProbeList out;
  for (const Probe& p : probes)
    if (!probe_changes_tensor(p)) out.push_back(p);
  return out;
}

void HookDispatcher::fire_backward(const HookSite& site, Tensor& grad_input, Tensor& grad_output,
                                   std::optional<ProducingOp> produce_grad_input, bool park_grad_input) {
  park_grad_input = park_grad_input && grad_input.defined() && !produce_grad_input &&
                    can_park(HookWhen::Backward, site.module);
  for (const auto& hook : active(HookWhen::Backward, site.module)) {
    if (const auto* probes = std::get_if<ProbeList>(&hook->action)) {
      if (park_grad_input)
        park(*probes, HookWhen::Backward, site, grad_input, "grad_input");
      else if (grad_input.defined())
        run_probe_hook(*probes, HookWhen::Backward, site, grad_input, "grad_input", nullptr, produce_grad_input);
      // grad_output has already been used by the module's backward: only observing probes see it.
      ProbeList observers = observing_only(*probes);
      std::optional<ProducingOp> written;
      if (!observers.empty())
        run_probe_hook(observers, HookWhen::Backward, site, grad_output, "grad_output", nullptr, written);
      continue;
    }
    write_now(produce_grad_input, grad_input);
    run_parked();  // the callback may write any tensor it can reach
    if (const auto* pair = std::get_if<PairCallback>(&hook->action)) {
      const HookEvent e = event(HookWhen::Backward, site);
      call_on_host(grad_input, &grad_output, [&](Tensor& gi, Tensor& go) { (*pair)(e, gi, go); });
    } else {
      const auto& callback = std::get<TensorCallback>(hook->action);
      const HookEvent e = event(HookWhen::Backward, site);
      call_on_host(grad_input, nullptr, [&](Tensor& gi, Tensor&) { callback(e, gi); });
    }
    probed_.forget();  // a callback may write
  }
  write_now(produce_grad_input, grad_input);  // no hook read it after all
}

}  // namespace hookrt::detail

