// Learning-rate schedules against the formulas of PyTorch's schedulers stepped once per iteration
// (StepLR, CosineAnnealingLR, LinearLR warmup), and spikes.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "hookrt/error.h"
#include "hookrt/lr_schedule.h"

namespace hookrt {
namespace {

TEST(LrSchedule, ConstantIsTheBaseRate) {
  LrSchedule s;
  s.base_lr = 0.05;
  EXPECT_DOUBLE_EQ(s.at(0), 0.05);
  EXPECT_DOUBLE_EQ(s.at(1000), 0.05);
}

TEST(LrSchedule, StepDecaysByGammaEveryStepSizeSteps) {
  LrSchedule s;
  s.base_lr = 0.1;
  s.decay = LrDecay::Step;
  s.step_size = 3;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(2), 0.1);
  EXPECT_DOUBLE_EQ(s.at(3), 0.05);
  EXPECT_DOUBLE_EQ(s.at(5), 0.05);
  EXPECT_DOUBLE_EQ(s.at(6), 0.025);
}

TEST(LrSchedule, CosineFallsFromBaseToMinimumOverTheRun) {
  LrSchedule s;
  s.base_lr = 0.2;
  s.min_lr = 0.02;
  s.decay = LrDecay::Cosine;
  s.total_steps = 10;
  EXPECT_DOUBLE_EQ(s.at(0), 0.2);
  EXPECT_NEAR(s.at(5), 0.11, 1e-15);  // halfway: (base + min) / 2
  EXPECT_NEAR(s.at(3), 0.02 + 0.18 * (1 + std::cos(std::numbers::pi * 0.3)) / 2, 1e-15);
  EXPECT_DOUBLE_EQ(s.at(10), 0.02);
  EXPECT_DOUBLE_EQ(s.at(12), 0.02);  // past the end it stays at the minimum
}

TEST(LrSchedule, LinearWarmupRisesFromTheStartFactorThenHandsOverToTheCosine) {
  LrSchedule s;
  s.base_lr = 0.4;
  s.decay = LrDecay::Cosine;
  s.total_steps = 14;
  s.warmup_steps = 4;
  s.warmup_start_factor = 0.25;
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(2), 0.4 * 0.625);
  EXPECT_DOUBLE_EQ(s.at(4), 0.4);                // warmup done, the cosine's first step
  EXPECT_NEAR(s.at(9), 0.2, 1e-15);              // halfway through the remaining 10 steps
  EXPECT_NEAR(s.at(14), 0.0, 1e-15);
}

TEST(LrSchedule, SpikesMultiplyTheirStepsOnly) {
  LrSchedule s;
  s.base_lr = 0.01;
  s.spikes = {parse_lr_spike("5:100:2")};
  EXPECT_DOUBLE_EQ(s.at(4), 0.01);
  EXPECT_DOUBLE_EQ(s.at(5), 1.0);
  EXPECT_DOUBLE_EQ(s.at(6), 1.0);
  EXPECT_DOUBLE_EQ(s.at(7), 0.01);
  EXPECT_EQ(parse_lr_spike("3:0.5").length, 1);
}

TEST(LrSchedule, BadTextAndValuesAreBadInputNamingTheFlag) {
  for (const char* text : {"5", "a:2", "5:x", "5:2:0", "-1:2", "5:-2", "5:2:1:1", "1.5:2"}) {
    try {
      parse_lr_spike(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::BadInput);
      EXPECT_NE(std::string(error.what()).find("--lr-spike"), std::string::npos) << error.what();
    }
  }
  EXPECT_THROW(parse_lr_decay("linear"), Error);
  LrSchedule s;
  s.decay = LrDecay::Step;
  s.step_size = 0;
  EXPECT_THROW(s.validate(), Error);
  s = {};
  s.warmup_start_factor = 0;
  EXPECT_THROW(s.validate(), Error);
  s = {};
  s.min_lr = 1;
  EXPECT_THROW(s.validate(), Error);
}

}  // namespace
}  // namespace hookrt
