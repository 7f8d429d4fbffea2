#pragma once
// RecordingCpuBackend — the CPU reference backend with step recording, behaving on the host as the
// GPU backend does with CUDA graphs, so that whole-step graph replay can be tested without a GPU.
//
// Outside a recording every call goes straight to the CPU backend and probe results come back at
// once. Between begin_step_recording() and end_step_recording() nothing runs: each op is kept as
// a closure over its tensors (shared storage plays the part of fixed device addresses), outputs
// the op would allocate are allocated up front, probe runs are deferred under tickets, and
// whatever would wait for the device (to_host, from_host, synchronize) throws. Replaying the
// returned StepGraph runs the closures in order on the same tensors; the probe runs it makes are
// pending for the next seal_deferred_probe_results(), under the tickets they had while recording.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hookrt/backend.h"

namespace hookrt::testing {

// Knobs for the executor's paths that tests must reach.
struct RecordingOptions {
  bool refuse_recording = false;  // begin_step_recording() returns false, as a backend without graphs
  int fail_at_recorded_op = 0;     // the N-th op of a recording (1-based) throws Error; 0: never
  int fail_at_replay = 0;          // the N-th replay (1-based) throws Error before running anything
  bool fail_at_end = false;        // end_step_recording() throws Error (as a graph that will not instantiate)
};

class RecordingCpuBackend final : public Backend {
 public:
  explicit RecordingCpuBackend(RecordingOptions options = {});
  ~RecordingCpuBackend() override;

  Device device() const override { return Device::CPU; }
  std::string name() const override { return "recording-cpu"; }

  // ---- memory ----
  Tensor empty(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::Contiguous) override;
  Tensor zeros(const Shape& shape, DType dtype, MemoryFormat format = MemoryFormat::Contiguous) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void convert(const Tensor& src, Tensor& dst) override;
  Tensor to_host(const Tensor& tensor) override;
  Tensor from_host(const Tensor& host) override;
  void synchronize() override;

  // ---- elementwise ----
  void fill(Tensor& tensor, double value) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void accumulate(Tensor& dst, const Tensor& src) override;
  void multiply_(Tensor& tensor, const Tensor& factor) override;

  // ---- ops ----
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y,
                      const Conv2dGeometry& g) override;
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                            const Conv2dGeometry& g) override;
  void conv2d_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw,
                              const Conv2dGeometry& g) override;
  void batchnorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                         Tensor& running_mean, Tensor& running_var, Tensor& y, Tensor& save_mean,
                         Tensor& save_invstd, const BatchNormOptions& o) override;
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                          const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx,
                          Tensor& dweight, Tensor& dbias, const BatchNormOptions& o) override;
  bool splits_batchnorm(DType dtype) const override;
  void batchnorm_forward_coefficients(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                                      Tensor& running_var, Tensor& save_mean, Tensor& save_invstd,
                                      Tensor& coefficients, const BatchNormOptions& o) override;
  void batchnorm_apply(const Tensor& x, const Tensor& coefficients, Tensor& y) override;
  void batchnorm_backward_coefficients(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                       const Tensor& save_mean, const Tensor& save_invstd, Tensor& dweight,
                                       Tensor& dbias, Tensor& coefficients, const BatchNormOptions& o) override;
  void batchnorm_dx(const Tensor& dy, const Tensor& x, const Tensor& coefficients, Tensor& dx) override;
  void relu_forward(const Tensor& x, Tensor& y) override;
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor& indices,
                         const Pool2dGeometry& g) override;
  void maxpool2d_backward(const Tensor& dy, const Tensor& indices, Tensor& dx,
                          const Pool2dGeometry& g) override;
  void adaptive_avgpool_forward(const Tensor& x, Tensor& y) override;
  void adaptive_avgpool_backward(const Tensor& dy, Tensor& dx) override;
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override;
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw,
                       Tensor& db) override;
  using Backend::cross_entropy_forward;
  void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& probs,
                             Tensor& loss) override;
  void cross_entropy_backward(const Tensor& probs, const Tensor& labels, Tensor& dlogits) override;
  void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer, bool first_step,
                  const SgdOptions& o, const Tensor& skip_if) override;
  void unscale_gradient_(Tensor& grad, const Tensor& scale, Tensor& found_inf) override;
  void update_loss_scale(Tensor& scale, Tensor& growth_tracker, const Tensor& found_inf,
                         const LossScaleOptions& o) override;

  // ---- probes ----
  ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                             const ProbeRunOptions& options) override;
  std::unique_ptr<DeferredProbeBatch> seal_deferred_probe_results() override;

  // ---- recording ----
  bool begin_step_recording() override;
  std::unique_ptr<StepGraph> end_step_recording() override;
  void abandon_step_recording() noexcept override;

  // ---- what happened, for assertions ----
  bool recording() const { return recording_; }
  int recordings_begun() const { return recordings_begun_; }  // begin calls that returned true
  int begin_calls() const { return begin_calls_; }            // every begin call, refused ones too
  int recordings_ended() const { return recordings_ended_; }
  int replays() const;  // over every graph this backend made
  // Ops (elementwise, layer, loss, optimizer, probe runs; not memory traffic) run outside a
  // recording: a replayed step should run none of its work that way.
  int64_t eager_ops() const { return eager_ops_; }
  int64_t ops_recorded() const {
    return ops_recorded_;
  }  // over every recording, abandoned ones too

 private:
  struct Shared;  // the CPU backend and what replays leave behind, shared with the graphs
  class Graph;
  using Op = std::function<void(Shared&)>;

  Backend& cpu();
  // Counts an op about to run eagerly.
  void eager();
  // Appends an op to the recording, or throws where the failure knob says so.
  void record(const char* op, Op run);
  // Throws: `op` would wait for the device, which a recording cannot do.
  void refuse_while_recording(const char* op) const;
  // Allocates `t` as the CPU backend would when undefined (outputs of recorded ops).
  void allocate_if_undefined(Tensor& t, const Shape& shape, DType dtype);

  RecordingOptions options_;
  std::shared_ptr<Shared> shared_;
  bool recording_ = false;
  std::vector<Op> ops_;  // the current recording
  uint64_t next_ticket_ = 1;
  int recordings_begun_ = 0;
  int begin_calls_ = 0;
  int recordings_ended_ = 0;
  int64_t eager_ops_ = 0;
  int64_t ops_recorded_ = 0;
};

}  // namespace hookrt::testing
