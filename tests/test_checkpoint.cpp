// Training checkpoints: what they hold, that they load as plain weights, that malformed ones are
// refused by name, and that an executor resumed from one continues bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "hookrt/checkpoint.h"
#include "hookrt/error.h"
#include "hookrt/executor.h"
#include "hookrt/io.h"
#include "support/temp_dir.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TempDir;
using testing::TinyModelTest;

class Checkpoint : public TinyModelTest {};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

const SgdOptions kSgd{0.05, 0.9, 0.0, 1e-4, true};

TEST_F(Checkpoint, HoldsWeightsMomentumStepsAndSettingsAndLoadsAsPlainWeights) {
  TempDir dir;
  Model& model = TinyModelTest::model();
  auto executor = testing::cpu_executor(model, {Mode::Train, kSgd});
  executor->step(testing::tiny_input(), testing::tiny_labels());
  executor->sync_model();
  const TensorMap momentum = executor->optimizer_state();
  ASSERT_EQ(momentum.size(), model.parameter_names().size());
  write_checkpoint(dir.file("c.safetensors"), model, momentum, executor->steps_done(), {{"seed", "7"}});

  const TrainingCheckpoint c = read_checkpoint(dir.file("c.safetensors"));
  EXPECT_EQ(c.steps_done, 1);
  EXPECT_EQ(c.settings.at("seed"), "7");
  ASSERT_EQ(c.weights.size(), model.state_keys().size());
  for (const auto& [key, tensor] : c.weights) EXPECT_TRUE(same_bits(tensor, model.tensor(key))) << key;
  ASSERT_EQ(c.momentum.size(), momentum.size());
  for (size_t i = 0; i < momentum.size(); ++i) EXPECT_TRUE(same_bits(c.momentum[i].second, momentum[i].second));

  // As weights: the optimizer entries are dropped, and the model loads strictly.
  Model again = resnet18_from_state(io::read_safetensors(dir.file("c.safetensors")), "c.safetensors");
  for (const std::string& key : model.state_keys()) EXPECT_TRUE(same_bits(again.tensor(key), model.tensor(key))) << key;
}

// GradScaler's state round-trips exactly (an F32 scale in 17 digits); half of it, or a scale that
// is no scale, is refused by key.
TEST_F(Checkpoint, KeepsTheLossScalerStateAndRefusesHalfOfIt) {
  TempDir dir;
  Model& model = TinyModelTest::model();
  const LossScalerState state{0x1p-3 * 3, 17};
  write_checkpoint(dir.file("s.safetensors"), model, {}, 5, {}, state);
  const TrainingCheckpoint c = read_checkpoint(dir.file("s.safetensors"));
  ASSERT_TRUE(c.loss_scaler.has_value());
  EXPECT_EQ(c.loss_scaler->scale, state.scale);
  EXPECT_EQ(c.loss_scaler->growth_tracker, 17);
  write_checkpoint(dir.file("none.safetensors"), model, {}, 5, {});
  EXPECT_FALSE(read_checkpoint(dir.file("none.safetensors")).loss_scaler.has_value());

  const std::vector<std::map<std::string, std::string>> bad = {
      {{"hookrt.steps_done", "1"}, {"hookrt.grad_scaler.scale", "1024"}},
      {{"hookrt.steps_done", "1"}, {"hookrt.grad_scaler.scale", "-2"}, {"hookrt.grad_scaler.growth_tracker", "0"}},
      {{"hookrt.steps_done", "1"}, {"hookrt.grad_scaler.scale", "8"}, {"hookrt.grad_scaler.growth_tracker", "x"}}};
  for (const auto& metadata : bad) {
    io::write_safetensors(dir.file("bad.safetensors"), model.state_dict(), metadata);
    try {
      read_checkpoint(dir.file("bad.safetensors"));
      FAIL() << "read a malformed scaler state";
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::BadInput);
      EXPECT_NE(std::string(error.what()).find("hookrt.grad_scaler"), std::string::npos) << error.what();
    }
  }
}

TEST_F(Checkpoint, PlainWeightsAndMalformedMetadataAreRefusedByName) {
  TempDir dir;
  io::write_safetensors(dir.file("w.safetensors"), TinyModelTest::model().state_dict());
  try {
    read_checkpoint(dir.file("w.safetensors"));
    FAIL() << "plain weights read as a checkpoint";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(error.what()).find("w.safetensors"), std::string::npos) << error.what();
  }
  io::write_safetensors(dir.file("bad.safetensors"), TinyModelTest::model().state_dict(), {{"hookrt.steps_done", "-3"}});
  EXPECT_THROW(read_checkpoint(dir.file("bad.safetensors")), Error);
  TensorMap odd = TinyModelTest::model().state_dict();
  odd.emplace_back("optimizer.something_else", Tensor::zeros({1}));
  io::write_safetensors(dir.file("odd.safetensors"), odd, {{"hookrt.steps_done", "1"}});
  EXPECT_THROW(read_checkpoint(dir.file("odd.safetensors")), Error);
}

TEST_F(Checkpoint, MomentumForAnUnknownOrMisshapedParameterIsRefused) {
  auto executor = testing::cpu_executor(TinyModelTest::model(), {Mode::Train, kSgd});
  EXPECT_THROW(executor->load_optimizer_state({{"no.such.weight", Tensor::zeros({1})}}, 1), Error);
  EXPECT_THROW(executor->load_optimizer_state({{"fc.bias", Tensor::zeros({3})}}, 1), Error);
  EXPECT_THROW(executor->load_optimizer_state({}, -1), Error);
}

// Four steps in one go equal two steps, a checkpoint, and two more in a fresh model and executor.
TEST_F(Checkpoint, AResumedExecutorContinuesBitForBit) {
  TempDir dir;
  const Tensor x = testing::tiny_input(), y = testing::tiny_labels();
  Model& model = TinyModelTest::model();
  {
    auto executor = testing::cpu_executor(model, {Mode::Train, kSgd});
    for (int i = 0; i < 2; ++i) executor->step(x, y);
    executor->sync_model();
    write_checkpoint(dir.file("half.safetensors"), model, executor->optimizer_state(), executor->steps_done(), {});
    for (int i = 0; i < 2; ++i) executor->step(x, y);
    executor->sync_model();
  }
  const TrainingCheckpoint half = read_checkpoint(dir.file("half.safetensors"));
  Model resumed = resnet18_from_state(half.weights, "half");
  auto executor = testing::cpu_executor(resumed, {Mode::Train, kSgd});
  executor->load_optimizer_state(half.momentum, half.steps_done);
  EXPECT_EQ(executor->steps_done(), 2);
  for (int i = 0; i < 2; ++i) executor->step(x, y);
  executor->sync_model();
  for (const std::string& key : model.state_keys()) EXPECT_TRUE(same_bits(resumed.tensor(key), model.tensor(key))) << key;
}

}  // namespace
}  // namespace hookrt
