#pragma once
// Trainer — `hookrt train`: SGD over a dataset with probes on every layer, the explosion localizer
// watching every step's gradients, a policy acting on what it flags, and everything written as it
// happens: stats.jsonl (every probe record), events.jsonl (flags and policy actions), checkpoints,
// and at the end (or on a halt, an interrupt or an error) layers.csv and report.html.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/checkpoint.h"
#include "hookrt/data.h"
#include "hookrt/executor.h"
#include "hookrt/explosion.h"
#include "hookrt/hook_config.h"
#include "hookrt/hook_spec.h"
#include "hookrt/lr_schedule.h"
#include "hookrt/model.h"

namespace hookrt {

// What the trainer does when the localizer flags a step. Every action is logged as an event.
enum class ExplosionPolicy {
  Warn,  // log it and train on
  Clip,  // scale each flagged parameter gradient to K x its running median (non-finite: skip)
  Skip,  // drop the step's optimizer update (halt after max_consecutive_skips in a row)
  // Under loss scaling, a step whose scaled gradients overflowed while its forward stayed finite
  // is the scaler's to handle (it skips the update and backs off, logged as a loss_scale event),
  // until max_consecutive_skips such steps in a row: gradients non-finite at any scale are then
  // flagged to the policy like any other.
  Halt,  // drop the update, write a checkpoint and the report, stop (the CLI exits 3)
};
ExplosionPolicy parse_explosion_policy(const std::string& text);  // warn | clip | skip | halt
std::string explosion_policy_name(ExplosionPolicy policy);

// One line of progress, after each step.
struct StepProgress {
  int64_t step = 0;         // steps done, counting from 1
  int64_t total_steps = 0;
  double loss = 0;
  double lr = 0;
  double images_per_second = 0;
  int64_t flagged_layers = 0;  // in this step
  int64_t epoch = 0;
};

struct TrainOptions {
  std::shared_ptr<const data::Dataset> dataset;
  data::LoaderOptions loader;  // batch, shuffle, seed, workers; start_batch is set on resume
  int64_t steps = 100;         // total steps, counting those before a resume
  SgdOptions sgd;              // lr is the schedule's base_lr
  Precision precision = Precision::F32;
  std::optional<MemoryFormat> memory_format;  // ExecutorOptions::memory_format
  std::optional<LossScalingOptions> loss_scaling;  // ExecutorOptions::loss_scaling
  LrSchedule schedule;
  LocalizerOptions localizer;
  ExplosionPolicy policy = ExplosionPolicy::Warn;
  // Skip: flagged steps in a row after which the run halts, as the explosion outlives skipping.
  int64_t max_consecutive_skips = 10;
  std::vector<HookSpec> hooks;                // --hook, in addition to the profiler's own
  std::vector<ConfiguredHook> config_hooks;   // --hook-config
  std::string out_dir;                        // required
  int64_t checkpoint_every = 0;               // steps; 0: only at the end, on halt and interrupt
  std::optional<TrainingCheckpoint> resume;   // continue from here
  std::map<std::string, std::string> settings;  // described in the report and the checkpoint
  std::function<bool()> interrupted;          // polled between steps (Ctrl-C)
  std::function<void(const StepProgress&)> on_progress;
  std::function<void(const std::string&)> on_message;  // warnings and policy actions, one line each
};

enum class TrainStatus { Completed, Halted, Interrupted };

struct TrainOutcome {
  TrainStatus status = TrainStatus::Completed;
  int64_t steps_done = 0;
  std::optional<LayerFlag> first_flag;  // the run's first flagged layer, in backward order
  std::string verdict;                  // one paragraph, as in the report
  std::string report_path, checkpoint_path;
};

// Runs the training. Errors (a bad image, a backend failure) propagate after every record, the
// events, a checkpoint-free report and the CSV have been written.
TrainOutcome train(Model& model, std::unique_ptr<Backend> backend, const TrainOptions& options);

}  // namespace hookrt
