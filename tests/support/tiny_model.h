#pragma once
// Shared fixtures for the model, hook and executor tests: a five-class ResNet18 run on a tiny batch
// (2 x 3 x 32 x 32, so layer4 sees 1 x 1 maps and a step takes a fraction of a second), seeded
// inputs, a CPU executor, and a log of the probe records a step delivers.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hookrt/executor.h"
#include "hookrt/model.h"
#include "hookrt/records.h"
#include "hookrt/tensor.h"

namespace hookrt::testing {

constexpr int64_t kTinyClasses = 5;
constexpr int64_t kTinyBatch = 2;
constexpr int64_t kTinySize = 32;

// torchvision.models.resnet18(num_classes=5) with hookrt's seeded initialisation.
Model tiny_resnet18(uint64_t seed = 0);

// A (batch, 3, size, size) F32 batch of N(0, 1) values drawn with `seed`.
Tensor tiny_input(uint64_t seed = 1, int64_t batch = kTinyBatch, int64_t size = kTinySize);
// I64 labels {1, 3} for the tiny batch.
Tensor tiny_labels();
// The half-precision step comparisons' batch: four 64x64 images drawn with `seed`, and labels of
// every class but 2. Layer4's batch norms normalise 16 values per channel there, where on the tiny
// batch they normalise two, whose gradient is rounding noise at 16 bits.
Tensor step_batch_input(uint64_t seed = 1);
Tensor step_batch_labels();

// One tiny ResNet18 shared by every test of a program (building it draws 11M normals: about a
// second), returned before each test to its initial state, with no hooks. Tests may train it,
// load into it and hook it freely.
class TinyModelTest : public ::testing::Test {
 public:
  static Model& model();
  // A deep copy of the model's initial state_dict.
  static const TensorMap& initial_state();

 protected:
  void SetUp() override;
  // Hooks often capture a test's locals: none may outlive the test.
  void TearDown() override;
};

struct TinyExecutorOptions {
  Mode mode = Mode::Eval;
  SgdOptions sgd{};
  bool input_grad = false;
  Precision precision = Precision::F32;
  std::optional<MemoryFormat> memory_format;
};
// An executor on the CPU reference backend.
std::unique_ptr<Executor> cpu_executor(Model& model, const TinyExecutorOptions& options = {});

// Every record a subscribed executor delivers, in delivery order.
class RecordLog {
 public:
  void attach(Executor& executor);
  const std::vector<ProbeRecord>& records() const { return *records_; }
  void clear() { records_->clear(); }
  // Records matching when / module / tensor (and call, when call >= 0), in delivery order.
  std::vector<ProbeRecord> find(HookWhen when, const std::string& module, const std::string& tensor,
                                int call = -1) const;
  // The only record matching; fails the test (and throws) when there is not exactly one.
  ProbeRecord only(HookWhen when, const std::string& module, const std::string& tensor,
                   int call = -1) const;

 private:
  // Shared with the subscriber, which may outlive a moved-from log.
  std::shared_ptr<std::vector<ProbeRecord>> records_ = std::make_shared<std::vector<ProbeRecord>>();
};

// The result of type R at `index` in a record (throws when the index or type is wrong).
template <class R>
const R& result_of(const ProbeRecord& record, size_t index) {
  if (index >= record.results.size() || !std::holds_alternative<R>(record.results[index]))
    throw Error("record " + record.capture_key() + " has no result of the expected type at index " +
                std::to_string(index));
  return std::get<R>(record.results[index]);
}
// The tensor of the first capture result in a record.
Tensor captured(const ProbeRecord& record);

// Runs f, expects a hookrt::Error of kind BadInput, and returns its message ("" and a test
// failure when nothing or something else is thrown).
template <class F>
std::string bad_input_message(F f) {
  try {
    f();
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::BadInput) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "expected hookrt::Error(BadInput), nothing was thrown";
  return "";
}

// Host F32 tensor contents as a vector.
std::vector<float> values_of(const Tensor& tensor);
// Largest |a - b| over elements (shapes must match).
double max_abs_diff(const Tensor& a, const Tensor& b);
// Whether two tensors have the same shape and dtype and bitwise-identical elements (in any layouts).
bool bitwise_equal(const Tensor& a, const Tensor& b);
// Largest |x| over elements.
double abs_max(const Tensor& tensor);
// The Euclidean norm of a tensor's elements, and ||got - want|| / ||want|| (shapes must match).
double norm_of(const Tensor& tensor);
double relative_error(const Tensor& got, const Tensor& want);

}  // namespace hookrt::testing
