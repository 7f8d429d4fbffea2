#include "support/tiny_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "random.h"

namespace hookrt::testing {

Model tiny_resnet18(uint64_t seed) { return Model::resnet18(kTinyClasses, seed); }

Tensor tiny_input(uint64_t seed, int64_t batch, int64_t size) {
  Pcg32 rng(seed);
  Tensor t = Tensor::empty({batch, 3, size, size});
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.normal());
  return t;
}

Tensor tiny_labels() { return Tensor::from_vector(std::vector<int64_t>{1, 3}, {kTinyBatch}); }

Tensor step_batch_input(uint64_t seed) { return tiny_input(seed, 4, 64); }

Tensor step_batch_labels() { return Tensor::from_vector(std::vector<int64_t>{1, 3, 0, 4}, {4}); }

namespace {
struct SharedModel {
  Model model = tiny_resnet18(0);
  TensorMap initial;
  SharedModel() {
    for (const auto& [key, tensor] : model.state_dict()) initial.emplace_back(key, tensor.clone());
  }
};
SharedModel& shared_model() {
  static SharedModel shared;
  return shared;
}
}  // namespace

void TinyModelTest::SetUp() {
  model().hooks().clear();
  model().load_state_dict(initial_state(), "initial state");
}

void TinyModelTest::TearDown() { model().hooks().clear(); }

Model& TinyModelTest::model() { return shared_model().model; }
const TensorMap& TinyModelTest::initial_state() { return shared_model().initial; }

std::unique_ptr<Executor> cpu_executor(Model& model, const TinyExecutorOptions& options) {
  ExecutorOptions o;
  o.mode = options.mode;
  o.sgd = options.sgd;
  o.input_grad = options.input_grad;
  o.precision = options.precision;
  o.memory_format = options.memory_format;
  return std::make_unique<Executor>(model, make_cpu_backend(), o);
}

void RecordLog::attach(Executor& executor) {
  executor.subscribe(
      [records = records_](const ProbeRecord& record) { records->push_back(record); });
}

std::vector<ProbeRecord> RecordLog::find(HookWhen when, const std::string& module,
                                         const std::string& tensor, int call) const {
  std::vector<ProbeRecord> found;
  for (const ProbeRecord& r : *records_)
    if (r.when == when && r.module == module && r.tensor == tensor && (call < 0 || r.call == call))
      found.push_back(r);
  return found;
}

ProbeRecord RecordLog::only(HookWhen when, const std::string& module, const std::string& tensor,
                            int call) const {
  std::vector<ProbeRecord> found = find(when, module, tensor, call);
  if (found.size() != 1) {
    ADD_FAILURE() << "expected exactly one " << when_name(when) << " record of " << tensor
                  << " at '" << module << "' (call " << call << "), found " << found.size();
    throw Error("no unique record");
  }
  return found.front();
}

Tensor captured(const ProbeRecord& record) {
  for (const ProbeResult& result : record.results)
    if (const auto* capture = std::get_if<CaptureResult>(&result)) return capture->tensor;
  throw Error("record " + record.capture_key() + " holds no capture");
}

std::vector<float> values_of(const Tensor& tensor) {
  const float* p = tensor.data<float>();
  return std::vector<float>(p, p + tensor.numel());
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    throw Error("max_abs_diff: shapes " + shape_string(a.shape()) + " and " +
                shape_string(b.shape()) + " differ");
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, std::fabs(a.item(i) - b.item(i)));
  return worst;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();  // element by element, whatever the layouts
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

double abs_max(const Tensor& tensor) {
  double worst = 0;
  for (int64_t i = 0; i < tensor.numel(); ++i) worst = std::max(worst, std::fabs(tensor.item(i)));
  return worst;
}

double norm_of(const Tensor& tensor) {
  double sum = 0;
  for (int64_t i = 0; i < tensor.numel(); ++i) sum += tensor.item(i) * tensor.item(i);
  return std::sqrt(sum);
}

double relative_error(const Tensor& got, const Tensor& want) {
  double diff = 0;
  for (int64_t i = 0; i < want.numel(); ++i) diff += (got.item(i) - want.item(i)) * (got.item(i) - want.item(i));
  return std::sqrt(diff) / std::max(norm_of(want), 1e-300);
}

}  // namespace hookrt::testing
