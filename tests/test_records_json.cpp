// The stats.jsonl form of a ProbeRecord: key order, nulls for nothing-to-describe and non-finite
// numbers, repeated keys nested under `<probe>#<k>`, capture keys.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "cpu/probes.h"
#include "hookrt/io.h"

namespace hookrt {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<std::string> keys_of(const nlohmann::ordered_json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

// A forward record of layer1.0.relu's second call at step 3, with the probes run on `values`.
ProbeRecord forward_record(const ProbeList& probes, const std::vector<float>& values) {
  ProbeRecord record;
  record.step = 3;
  record.when = HookWhen::Forward;
  record.module = "layer1.0.relu";
  record.call = 1;
  record.tensor = "output";
  record.shape = {1, static_cast<int64_t>(values.size())};
  Tensor tensor = Tensor::from_vector(values, record.shape);
  cpu::run_probes(probes, tensor, record, {});
  return record;
}

ProbeRecord grad_record() {
  ProbeRecord record;
  record.step = 0;
  record.when = HookWhen::Grad;
  record.module = "";
  record.param = "conv1.weight";
  record.tensor = "grad";
  record.shape = {2};
  return record;
}

TEST(RecordJson, HeaderComesFirstInTheFormatOrder) {
  const auto json = io::record_to_json(forward_record({}, {1, 2}));
  EXPECT_EQ(keys_of(json),
            (std::vector<std::string>{"step", "when", "module", "call", "tensor", "shape"}));
  EXPECT_EQ(json["step"], 3);
  EXPECT_EQ(json["when"], "forward");
  EXPECT_EQ(json["module"], "layer1.0.relu");
  EXPECT_EQ(json["call"], 1);
  EXPECT_EQ(json["tensor"], "output");
  EXPECT_EQ(json["shape"], nlohmann::ordered_json::array({1, 2}));
}

TEST(RecordJson, GradRecordsNameTheParameterAfterCall) {
  const auto json = io::record_to_json(grad_record());
  EXPECT_EQ(keys_of(json), (std::vector<std::string>{"step", "when", "module", "call", "param",
                                                     "tensor", "shape"}));
  EXPECT_EQ(json["when"], "grad");
  EXPECT_EQ(json["param"], "conv1.weight");
}

TEST(RecordJson, ResultFieldsFollowFlatInTheOrderOfTheProbes) {
  const auto json = io::record_to_json(
      forward_record(probes::Zeros{} | probes::Stats{} | probes::Hist{2, 0, 1}, {0, 0.5f, 1, -1}));
  EXPECT_EQ(keys_of(json),
            (std::vector<std::string>{
                "step",  "when",          "module",   "call",          "tensor", "shape",
                "zeros", "zero_fraction", "channels", "dead_channels", "count",  "min",
                "max",   "mean",          "std",      "abs_max",       "l1",     "l2",
                "nan",   "posinf",        "neginf",   "hist"}));
  EXPECT_EQ(keys_of(json["hist"]),
            (std::vector<std::string>{"bins", "lo", "hi", "counts", "below", "above"}));
  EXPECT_EQ(json["hist"]["counts"], nlohmann::ordered_json::array({1, 2}));
  EXPECT_EQ(json["hist"]["below"], 1);
  EXPECT_EQ(json["zeros"], 1);
  EXPECT_EQ(json["count"], 4);
  EXPECT_EQ(json["max"], 1.0);
}

TEST(RecordJson, ObjectProbesWriteTheirFieldsInOrder) {
  const auto json = io::record_to_json(
      forward_record(probes::Channels{} | probes::Clamp{-1, 1} | probes::ClipNorm{0.5}, {3, 4}));
  EXPECT_EQ(keys_of(json["channels"]), (std::vector<std::string>{"mean", "std", "zero_fraction"}));
  EXPECT_EQ(json["channels"]["mean"], nlohmann::ordered_json::array({3.0, 4.0}));
  EXPECT_EQ(json["channels"]["std"], nlohmann::ordered_json::array({nullptr, nullptr}))
      << "one value per channel: no unbiased std";
  EXPECT_EQ(keys_of(json["clamp"]), (std::vector<std::string>{"lo", "hi", "changed"}));
  EXPECT_EQ(json["clamp"]["changed"], 2);
  EXPECT_EQ(keys_of(json["clipnorm"]), (std::vector<std::string>{"max_norm", "norm", "scale"}));
  EXPECT_DOUBLE_EQ(json["clipnorm"]["norm"].get<double>(), std::sqrt(2.0)) << "after the clamp";
}

TEST(RecordJson, NothingToDescribeAndNonFiniteNumbersAreNull) {
  const ProbeRecord record =
      forward_record(probes::Stats{} | probes::ClipNorm{1.0}, {kNaN, kInf, -kInf});
  const auto json = io::record_to_json(record);
  for (const char* key : {"min", "max", "mean", "std", "abs_max"})
    EXPECT_TRUE(json[key].is_null()) << key;
  EXPECT_EQ(json["count"], 0);
  EXPECT_EQ(json["nan"], 1);
  EXPECT_TRUE(json["clipnorm"]["norm"].is_null()) << "the norm is NaN";
  EXPECT_TRUE(json["clipnorm"]["scale"].is_null()) << "the scale is NaN";
  const std::string line = json.dump();
  EXPECT_EQ(line.find("NaN"), std::string::npos) << line;
  EXPECT_EQ(line.find("Infinity"), std::string::npos) << line;
}

TEST(RecordJson, RepeatedKeysNestUnderTheProbeAndItsPosition) {
  const auto json = io::record_to_json(
      forward_record(probes::Stats{} | probes::Clamp{-1, 1} | probes::Stats{}, {-3, 0.5f}));
  EXPECT_EQ(json["max"], 0.5) << "the first stats stays flat";
  EXPECT_EQ(json["min"], -3.0);
  ASSERT_TRUE(json.contains("stats#3")) << json.dump();
  EXPECT_EQ(json["stats#3"]["min"], -1.0) << "the later stats sees the clamped tensor";
  EXPECT_EQ(keys_of(json["stats#3"]).front(), "count");
  EXPECT_EQ(keys_of(json).back(), "stats#3");
}

TEST(RecordJson, NonFiniteAfterStatsNestsInsteadOfOverwriting) {
  const auto json = io::record_to_json(forward_record(
      probes::Stats{} | probes::NonFinite{} | probes::Zeros{} | probes::Channels{}, {kNaN, 0}));
  EXPECT_EQ(json["nonfinite#2"],
            (nlohmann::ordered_json{{"nan", 1}, {"posinf", 0}, {"neginf", 0}}));
  EXPECT_EQ(json["channels"], 2) << "zeros' channel count stays flat";
  ASSERT_TRUE(json.contains("channels#4")) << json.dump();
  EXPECT_TRUE(json["channels#4"]["channels"].contains("mean"));
}

TEST(RecordJson, CaptureNamesItsKeyInCapturesSafetensors) {
  const auto json = io::record_to_json(forward_record({probes::Capture{}}, {1}));
  EXPECT_EQ(json["capture"], "step3/forward/layer1.0.relu#1/output");

  ProbeRecord grad = grad_record();
  Tensor tensor = Tensor::from_vector(std::vector<float>{1, 2}, {2});
  cpu::run_probes(probes::Capture{} | probes::Capture{}, tensor, grad, {.channel_axis = 0});
  const auto grad_json = io::record_to_json(grad);
  EXPECT_EQ(grad_json["capture"], "step0/grad/conv1.weight/grad");
  EXPECT_EQ(grad_json["capture#2"]["capture"], "step0/grad/conv1.weight/grad#2")
      << "CaptureWriter stores a record's second capture under `key#2`";
}

TEST(RecordJson, FirstCallOfAModuleHasNoCallSuffix) {
  ProbeRecord record = forward_record({probes::Capture{}}, {1});
  record.call = 0;
  record.module = "";
  record.tensor = "input";
  record.when = HookWhen::ForwardPre;
  EXPECT_EQ(io::record_to_json(record)["capture"], "step3/forward_pre//input");
}

}  // namespace
}  // namespace hookrt
