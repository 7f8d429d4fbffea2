// The training loop on the CPU backend: what a run writes, the explosion policies acting on a
// provoked explosion (warn, clip, skip, halt), interruption, and resuming from a checkpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "hookrt/checkpoint.h"
#include "hookrt/devices.h"
#include "hookrt/io.h"
#include "hookrt/trainer.h"
#include "support/cli.h"
#include "support/temp_dir.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TempDir;
using testing::TinyModelTest;

class Trainer : public TinyModelTest {
 protected:
  TrainOptions options(const std::string& out, int64_t steps) {
    TrainOptions o;
    o.dataset = data::synthetic_shapes({.count = 32, .classes = testing::kTinyClasses, .size = 32, .seed = 3});
    o.loader.batch = 4;
    o.loader.seed = 3;
    o.loader.workers = 1;
    o.steps = steps;
    o.sgd = {0.02, 0.9, 0.0, 0.0, false};
    o.schedule.base_lr = 0.02;
    o.localizer = {4.0, 20, 3};
    o.out_dir = out;
    o.settings = {{"data", "shapes"}, {"batch", "4"}, {"seed", "3"}};
    return o;
  }
  // A learning rate 2000x the base at `step` makes the next step's gradients explode.
  static void spike(TrainOptions& o, int64_t step) { o.schedule.spikes = {{step, 1, 2000.0}}; }
  TrainOutcome run(const TrainOptions& o) { return train(model(), select_backend(DeviceChoice::Cpu, {}).backend, o); }
};

std::vector<nlohmann::ordered_json> events_of(const std::string& dir, const std::string& kind) {
  std::vector<nlohmann::ordered_json> found;
  for (const auto& event : testing::parse_jsonl(testing::read_text(dir + "/events.jsonl")))
    if (event["event"] == kind) found.push_back(event);
  return found;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST_F(Trainer, AQuietRunWritesEveryOutputAndFlagsNothing) {
  TempDir dir;
  const TrainOutcome outcome = run(options(dir.path().string(), 4));
  EXPECT_EQ(outcome.status, TrainStatus::Completed);
  EXPECT_EQ(outcome.steps_done, 4);
  EXPECT_FALSE(outcome.first_flag.has_value());
  for (const char* name : {"stats.jsonl", "events.jsonl", "layers.csv", "report.html", "checkpoint.safetensors"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(name))) << name;
  const auto records = testing::parse_jsonl(testing::read_text(dir.file("stats.jsonl")));
  EXPECT_GT(records.size(), 4u * 200u);  // the profiler's probes on every module and parameter
  EXPECT_EQ(records.back()["step"], 3);
  EXPECT_TRUE(events_of(dir.path().string(), "flag").empty());
  EXPECT_EQ(read_checkpoint(dir.file("checkpoint.safetensors")).steps_done, 4);
}

TEST_F(Trainer, WarnNamesTheFirstFlaggedLayerAndTrainsOn) {
  TempDir dir;
  TrainOptions o = options(dir.path().string(), 8);
  spike(o, 5);
  const TrainOutcome outcome = run(o);
  EXPECT_EQ(outcome.status, TrainStatus::Completed);
  ASSERT_TRUE(outcome.first_flag.has_value());
  EXPECT_EQ(outcome.first_flag->step, 6);  // the step after the spiked update
  const auto flags = events_of(dir.path().string(), "flag");
  ASSERT_FALSE(flags.empty());
  EXPECT_EQ(flags.front()["first"], true);
  EXPECT_EQ(flags.front()["layer"], outcome.first_flag->layer);
  EXPECT_FALSE(events_of(dir.path().string(), "warn").empty());
  EXPECT_NE(outcome.verdict.find(outcome.first_flag->layer), std::string::npos) << outcome.verdict;
  EXPECT_NE(testing::read_text(dir.file("report.html")).find("explosion"), std::string::npos);
}

TEST_F(Trainer, SkipDropsTheFlaggedUpdate) {
  TempDir dir;
  TrainOptions o = options(dir.path().string(), 8);
  spike(o, 5);
  o.policy = ExplosionPolicy::Skip;
  run(o);
  const auto skips = events_of(dir.path().string(), "skip");
  ASSERT_FALSE(skips.empty());
  EXPECT_EQ(skips.front()["step"], 6);
}

// A spike big enough to leave the weights damaged keeps every later step flagged: skipping them
// all would freeze training, so the run halts after max_consecutive_skips.
TEST_F(Trainer, SkipHaltsWhenTheExplosionOutlastsTheSkipLimit) {
  TempDir dir;
  TrainOptions o = options(dir.path().string(), 20);
  o.schedule.spikes = {{5, 1, 1e6}};
  o.policy = ExplosionPolicy::Skip;
  o.max_consecutive_skips = 2;
  const TrainOutcome outcome = run(o);
  EXPECT_EQ(outcome.status, TrainStatus::Halted);
  EXPECT_EQ(events_of(dir.path().string(), "skip").size(), 2u);
  ASSERT_EQ(events_of(dir.path().string(), "halt").size(), 1u);
  EXPECT_EQ(events_of(dir.path().string(), "halt")[0]["step"], 8);
}

TEST_F(Trainer, ClipScalesFlaggedParameterGradientsToTheirThreshold) {
  TempDir dir;
  TrainOptions o = options(dir.path().string(), 8);
  spike(o, 5);
  o.policy = ExplosionPolicy::Clip;
  run(o);
  const auto clips = events_of(dir.path().string(), "clip");
  ASSERT_FALSE(clips.empty());
  for (const auto& clip : clips) EXPECT_LT(clip["max_norm"].get<double>(), clip["norm"].get<double>());
}

// A spike that overflows the weights makes the forward non-finite: the run names the module that
// produced the first Inf/NaN from a finite input, and clip, which cannot clip NaN, drops the
// update so that the weights stay finite.
TEST_F(Trainer, NonFiniteValuesAreTracedToTheirProducerAndNeverReachTheWeightsUnderClip) {
  TempDir dir;
  TrainOptions o = options(dir.path().string(), 10);
  o.schedule.spikes = {{5, 3, 1e30}};
  o.policy = ExplosionPolicy::Clip;
  const TrainOutcome outcome = run(o);
  const auto origins = events_of(dir.path().string(), "nonfinite");
  ASSERT_FALSE(origins.empty()) << testing::read_text(dir.file("events.jsonl"));
  EXPECT_EQ(origins.front()["phase"], "forward");
  const std::string producer = origins.front()["producer"];
  EXPECT_TRUE(model().has_module(producer)) << producer;
  EXPECT_NE(outcome.verdict.find("produced by " + producer), std::string::npos) << outcome.verdict;
  EXPECT_FALSE(events_of(dir.path().string(), "skip").empty());
  for (const auto& [key, tensor] : read_checkpoint(dir.file("checkpoint.safetensors")).weights) {
    if (tensor.dtype() != DType::F32) continue;
    for (int64_t i = 0; i < tensor.numel(); ++i) ASSERT_TRUE(std::isfinite(tensor.data<float>()[i])) << key;
  }
}

TEST_F(Trainer, HaltWritesACheckpointBeforeTheExplosiveUpdateAndStops) {
  TempDir dir;
  TrainOptions o = options(dir.path().string(), 12);
  spike(o, 5);
  o.policy = ExplosionPolicy::Halt;
  const TrainOutcome outcome = run(o);
  EXPECT_EQ(outcome.status, TrainStatus::Halted);
  EXPECT_EQ(outcome.steps_done, 7);  // steps 0..6; step 6 was flagged and not applied
  EXPECT_EQ(read_checkpoint(dir.file("checkpoint.safetensors")).steps_done, 7);
  EXPECT_EQ(events_of(dir.path().string(), "halt").size(), 1u);
  EXPECT_NE(testing::read_text(dir.file("report.html")).find("halt"), std::string::npos);
}

TEST_F(Trainer, AnInterruptStopsBetweenStepsWithEverythingWritten) {
  TempDir dir;
  TrainOptions o = options(dir.path().string(), 50);
  int polls = 0;
  o.interrupted = [&] { return ++polls > 3; };
  const TrainOutcome outcome = run(o);
  EXPECT_EQ(outcome.status, TrainStatus::Interrupted);
  EXPECT_EQ(outcome.steps_done, 3);
  EXPECT_EQ(events_of(dir.path().string(), "interrupt").size(), 1u);
  EXPECT_EQ(read_checkpoint(dir.file("checkpoint.safetensors")).steps_done, 3);
  EXPECT_TRUE(std::filesystem::exists(dir.file("report.html")));
}

// Six steps in one run equal three, a checkpoint, and three more resumed from it: same batches,
// same learning rates, same momentum.
TEST_F(Trainer, AResumedRunContinuesExactly) {
  TempDir whole, first, second;
  TrainOptions o = options(whole.path().string(), 6);
  o.schedule.decay = LrDecay::Cosine;
  o.schedule.total_steps = 6;
  run(o);
  const TrainingCheckpoint end = read_checkpoint(whole.file("checkpoint.safetensors"));

  model().load_state_dict(initial_state());
  TrainOptions part = o;
  part.out_dir = first.path().string();
  part.steps = 3;
  run(part);
  // The same total as the whole run, so the cosine has the same length.
  TrainOptions rest = o;
  rest.out_dir = second.path().string();
  rest.resume = read_checkpoint(first.file("checkpoint.safetensors"));
  Model resumed = resnet18_from_state(rest.resume->weights, "first");
  train(resumed, select_backend(DeviceChoice::Cpu, {}).backend, rest);
  const TrainingCheckpoint again = read_checkpoint(second.file("checkpoint.safetensors"));
  EXPECT_EQ(again.steps_done, 6);
  ASSERT_EQ(again.weights.size(), end.weights.size());
  for (size_t i = 0; i < end.weights.size(); ++i)
    EXPECT_TRUE(same_bits(again.weights[i].second, end.weights[i].second)) << end.weights[i].first;
  for (size_t i = 0; i < end.momentum.size(); ++i)
    EXPECT_TRUE(same_bits(again.momentum[i].second, end.momentum[i].second)) << end.momentum[i].first;
}

}  // namespace
}  // namespace hookrt
