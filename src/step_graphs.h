#pragma once
// Step graphs — a whole step (forward, loss, backward, probes, optimizer) recorded once as one
// graph and replayed for later steps of the same kind, as torch.cuda.graphs does for a training
// step: the host then queues one launch per step instead of hundreds of kernels, probe launches
// included, so a hooked step costs the host what an unhooked one does.
//
// A recorded step runs the same kernels on the same buffers each time. So the executor keeps the
// step's input, labels, logits and loss in tensors of its own, made before recording: it refills
// the first two before each replay and reads the others after. What the host did while the step
// was recorded is kept to be done again on each replay: the probe records (their results come
// from the device, the step number is the current one) and the batch counters of batch norm.
//
// A step is recorded only where nothing in it needs the host mid-step (graph_blocker), and only
// when an eager step of the same signature came just before it: that warm-up sizes every buffer
// the backend keeps across steps and lets cuDNN choose its algorithms, since neither may happen
// while recording.
//
// The optimizer is recorded too, unless something must see the step's records before it: an
// update gate (train's explosion policies) or a nonfinite=halt probe. Then the graph ends with
// the gradients copied into tensors of the executor's, the records are delivered as soon as the
// replay's results land, and the gate and the SGD update run op by op after it, as in an eager
// step; the learning rate may then change from step to step without a new recording.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/executor.h"
#include "hookrt/hooks.h"
#include "hookrt/tensor.h"
#include "record_delivery.h"

namespace hookrt::detail {

// What makes two steps the same work for the device: a graph recorded on one replays the other.
struct StepSignature {
  Shape input_shape;
  bool backward = false;
  Mode mode = Mode::Eval;
  bool input_grad = false;
  bool optimizer_recorded = false;  // sgd and momentum_started count only then
  SgdOptions sgd;
  bool momentum_started = false;
  std::vector<uint64_t> hooks;  // ids of the hooks that fire in the step, by event
  bool operator==(const StepSignature& other) const;
};

// `gated`: an update gate decides this step's update.
StepSignature step_signature(const Shape& input_shape, bool backward, const ExecutorOptions& options, bool gated,
                             bool momentum_started, const HookRegistry& hooks, int64_t step);

// Why steps under these hooks and options cannot be recorded; empty when they can.
std::string graph_blocker(const HookRegistry& hooks, int64_t step, const ExecutorOptions& options);

// A step recorded as a graph, and what replaying it needs besides the graph.
struct RecordedStep {
  StepSignature signature;
  std::unique_ptr<StepGraph> graph;
  Tensor input, labels;   // refilled before each replay
  Tensor logits, loss;    // written by each replay
  Tensor input_grad;      // written by each replay, when the executor computes it
  // This step's parameter gradients, by key, where the optimizer runs after the replay.
  std::map<std::string, Tensor> grads;
  bool may_halt = false;  // a nonfinite=halt probe runs in it
  // The step's records in firing order, their results still to come from the device.
  std::deque<QueuedRecord> records;
  // num_batches_tracked and its like: host counters the step moved, and by how much.
  std::vector<std::pair<std::string, int64_t>> counter_steps;
};

// The records of one replay of `recorded`, numbered as step `step`.
std::deque<QueuedRecord> records_of_replay(const RecordedStep& recorded, int64_t step);

}  // namespace hookrt::detail
