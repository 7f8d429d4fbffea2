#pragma once
// DelegatingBackend — a Backend that hands every call to another one (the CPU backend unless
// given), for tests that watch or alter a few calls (deferring probe runs, counting what reaches
// the backend) and leave the rest as they are.
#include <memory>
#include <string>

#include "hookrt/backend.h"

namespace hookrt::testing {

class DelegatingBackend : public Backend {
 public:
  explicit DelegatingBackend(std::unique_ptr<Backend> inner = make_cpu_backend()) : inner_(std::move(inner)) {}

  Device device() const override { return inner_->device(); }
  std::string name() const override { return "delegating-" + inner_->name(); }
  Tensor empty(const Shape& s, DType d, MemoryFormat f) override { return inner_->empty(s, d, f); }
  Tensor zeros(const Shape& s, DType d, MemoryFormat f) override { return inner_->zeros(s, d, f); }
  void copy(const Tensor& src, Tensor& dst) override { inner_->copy(src, dst); }
  void convert(const Tensor& src, Tensor& dst) override { inner_->convert(src, dst); }
  Tensor to_host(const Tensor& t) override { return inner_->to_host(t); }
  Tensor from_host(const Tensor& t) override { return inner_->from_host(t); }
  Tensor empty_host(const Shape& s, DType d) override { return inner_->empty_host(s, d); }
  void synchronize() override { inner_->synchronize(); }
  void fill(Tensor& t, double v) override { inner_->fill(t, v); }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override { inner_->add(a, b, out); }
  void accumulate(Tensor& dst, const Tensor& src) override { inner_->accumulate(dst, src); }
  void multiply_(Tensor& t, const Tensor& f) override { inner_->multiply_(t, f); }
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    inner_->conv2d_forward(x, w, y, g);
  }
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) override {
    inner_->conv2d_backward_data(dy, w, dx, g);
  }
  void conv2d_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g) override {
    inner_->conv2d_backward_filter(x, dy, dw, g);
  }
  void batchnorm_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& rm, Tensor& rv, Tensor& y,
                         Tensor& sm, Tensor& si, const BatchNormOptions& o) override {
    inner_->batchnorm_forward(x, w, b, rm, rv, y, sm, si, o);
  }
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& sm, const Tensor& si,
                          Tensor& dx, Tensor& dw, Tensor& db, const BatchNormOptions& o) override {
    inner_->batchnorm_backward(dy, x, w, sm, si, dx, dw, db, o);
  }
  bool splits_batchnorm(DType d) const override { return inner_->splits_batchnorm(d); }
  void batchnorm_forward_coefficients(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& rm, Tensor& rv,
                                      Tensor& sm, Tensor& si, Tensor& k, const BatchNormOptions& o) override {
    inner_->batchnorm_forward_coefficients(x, w, b, rm, rv, sm, si, k, o);
  }
  void batchnorm_apply(const Tensor& x, const Tensor& k, Tensor& y) override { inner_->batchnorm_apply(x, k, y); }
  void batchnorm_backward_coefficients(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& sm,
                                       const Tensor& si, Tensor& dw, Tensor& db, Tensor& k,
                                       const BatchNormOptions& o) override {
    inner_->batchnorm_backward_coefficients(dy, x, w, sm, si, dw, db, k, o);
  }
  void batchnorm_dx(const Tensor& dy, const Tensor& x, const Tensor& k, Tensor& dx) override {
    inner_->batchnorm_dx(dy, x, k, dx);
  }
  void batchnorm_relu_backward_coefficients(const Tensor& relu_dy, const Tensor& x, const Tensor& forward,
                                            const Tensor& w, const Tensor& sm, const Tensor& si, Tensor& dw,
                                            Tensor& db, Tensor& k, const BatchNormOptions& o) override {
    inner_->batchnorm_relu_backward_coefficients(relu_dy, x, forward, w, sm, si, dw, db, k, o);
  }
  void relu_forward(const Tensor& x, Tensor& y) override { inner_->relu_forward(x, y); }
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override { inner_->relu_backward(y, dy, dx); }
  void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor& i, const Pool2dGeometry& g) override {
    inner_->maxpool2d_forward(x, y, i, g);
  }
  void maxpool2d_backward(const Tensor& dy, const Tensor& i, Tensor& dx, const Pool2dGeometry& g) override {
    inner_->maxpool2d_backward(dy, i, dx, g);
  }
  void adaptive_avgpool_forward(const Tensor& x, Tensor& y) override { inner_->adaptive_avgpool_forward(x, y); }
  void adaptive_avgpool_backward(const Tensor& dy, Tensor& dx) override { inner_->adaptive_avgpool_backward(dy, dx); }
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    inner_->linear_forward(x, w, b, y);
  }
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw,
                       Tensor& db) override {
    inner_->linear_backward(x, w, dy, dx, dw, db);
  }
  using Backend::cross_entropy_forward;
  void cross_entropy_forward(const Tensor& l, const Tensor& y, Tensor& p, Tensor& loss) override {
    inner_->cross_entropy_forward(l, y, p, loss);
  }
  void cross_entropy_backward(const Tensor& p, const Tensor& y, Tensor& d) override {
    inner_->cross_entropy_backward(p, y, d);
  }
  void sgd_update(Tensor& p, const Tensor& g, Tensor& m, bool first, const SgdOptions& o,
                  const Tensor& skip_if) override {
    inner_->sgd_update(p, g, m, first, o, skip_if);
  }
  void unscale_gradient_(Tensor& grad, const Tensor& scale, Tensor& found_inf) override {
    inner_->unscale_gradient_(grad, scale, found_inf);
  }
  void unscale_gradients_(const std::vector<Tensor*>& grads, const Tensor& scale, Tensor& found_inf) override {
    inner_->unscale_gradients_(grads, scale, found_inf);
  }
  void update_loss_scale(Tensor& scale, Tensor& tracker, const Tensor& found_inf,
                         const LossScaleOptions& o) override {
    inner_->update_loss_scale(scale, tracker, found_inf, o);
  }
  // The inner backend writes options.produce's tensor with its own op, not through this one.
  ProbeRunEffects run_probes(const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                             const ProbeRunOptions& options) override {
    return inner_->run_probes(probes, tensor, record, options);
  }
  std::unique_ptr<DeferredProbeBatch> seal_deferred_probe_results() override {
    return inner_->seal_deferred_probe_results();
  }

 protected:
  Backend& inner() { return *inner_; }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace hookrt::testing
