#include "hookrt/trainer.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>

#include "hookrt/error.h"
#include "hookrt/executor.h"
#include "hookrt/io.h"
#include "hookrt/report.h"
#include "train/training_history.h"

namespace hookrt {

ExplosionPolicy parse_explosion_policy(const std::string& text) {
  if (text == "warn") return ExplosionPolicy::Warn;
  if (text == "clip") return ExplosionPolicy::Clip;
  if (text == "skip") return ExplosionPolicy::Skip;
  if (text == "halt") return ExplosionPolicy::Halt;
  throw_bad_input("unknown explosion policy '" + text + "' (expected warn, clip, skip or halt)");
}

std::string explosion_policy_name(ExplosionPolicy policy) {
  switch (policy) {
    case ExplosionPolicy::Warn: return "warn";
    case ExplosionPolicy::Clip: return "clip";
    case ExplosionPolicy::Skip: return "skip";
    case ExplosionPolicy::Halt: return "halt";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;

// The probes the localizer and the report read, on every module and parameter, every step.
void register_profiler_hooks(Model& model, std::vector<HookHandle>& handles) {
  handles.push_back(model.register_forward_pre_hook("*", ProbeList{probes::NonFinite{}}));
  handles.push_back(model.register_forward_hook("*", probes::Stats{} | probes::Zeros{}));
  handles.push_back(model.register_full_backward_hook("*", ProbeList{probes::Stats{}}));
  handles.push_back(model.register_grad_hook("*", ProbeList{probes::Stats{}}));
}

std::string format_norm(double value) {
  std::ostringstream text;
  text.precision(4);
  text << value;
  return text.str();
}

std::string describe(const LayerFlag& flag) {
  std::string text = flag.layer + " (" + flag.tensor + ")";
  if (flag.reason == FlagReason::NonFinite) return text + " turned non-finite";
  text += " norm " + format_norm(flag.norm);
  if (flag.median && *flag.median > 0)
    text += ", " + format_norm(flag.norm / *flag.median) + "x its running median " + format_norm(*flag.median);
  return text;
}

std::string describe(const NonFiniteOrigin& origin) {
  std::string text = origin.producer.empty() ? "non-finite loss"
                                             : "non-finite values produced by " + origin.producer + " in " + origin.phase;
  if (!origin.propagators.empty()) {
    text += ", passed on by " + origin.propagators.front();
    if (origin.propagators.size() > 1) text += " and " + std::to_string(origin.propagators.size() - 1) + " more";
  }
  return text;
}

ordered_json flag_event(const LayerFlag& flag, bool first) {
  ordered_json event{{"step", flag.step}, {"event", "flag"}, {"layer", flag.layer}, {"tensor", flag.tensor},
                     {"reason", flag_reason_name(flag.reason)}};
  event["norm"] = std::isfinite(flag.norm) ? ordered_json(flag.norm) : ordered_json(nullptr);
  event["median"] = flag.median ? ordered_json(*flag.median) : ordered_json(nullptr);
  event["backward_index"] = flag.backward_index;
  event["first"] = first;
  return event;
}

// Everything the run writes, flushed after every step and on every way out: the records, and
// events.jsonl beside them.
class TrainOutputs {
 public:
  explicit TrainOutputs(const std::string& dir) : records_(checked(dir)), events_(records_.file("events.jsonl")) {}
  void record(const ProbeRecord& record) { records_.record(record); }
  void event(const ordered_json& event) { events_.write(event); }
  void flush() {
    records_.flush();
    events_.flush();
  }
  void finish() {
    events_.flush();
    records_.finish();
  }
  std::string file(const std::string& name) const { return records_.file(name); }

 private:
  static const std::string& checked(const std::string& dir) {
    if (dir.empty()) throw_bad_input("train: --out is required");
    return dir;
  }
  io::RecordFiles records_;
  io::JsonlWriter events_;
};

class TrainingRun {
 public:
  TrainingRun(Model& model, std::unique_ptr<Backend> backend, const TrainOptions& options)
      : model_(model), options_(options), outputs_(options.out_dir), history_(model), localizer_(options.localizer),
        executor_(model, std::move(backend), executor_options(options)) {
    register_profiler_hooks(model_, handles_);
    for (const HookSpec& spec : options_.hooks) handles_.push_back(register_hook_spec(model_, spec));
    for (HookHandle& handle : register_configured_hooks(model_, options_.config_hooks)) handles_.push_back(std::move(handle));
    for (HookHandle& handle : handles_) handle.scoped();  // the model outlives the run, its hooks do not
    executor_.subscribe([this](const ProbeRecord& record) {
      outputs_.record(record);
      localizer_.observe(record);
      history_.observe(record);
    });
    executor_.set_update_gate([this](int64_t step, ParameterGradients& grads) { return gate(step, grads); });
    if (options_.resume) resume_from(*options_.resume);
  }

  TrainOutcome run();

 private:
  static ExecutorOptions executor_options(const TrainOptions& options) {
    ExecutorOptions executor;
    executor.mode = Mode::Train;
    executor.sgd = options.sgd;
    executor.precision = options.precision;
    executor.memory_format = options.memory_format;
    executor.loss_scaling = options.loss_scaling;
    return executor;
  }
  // A checkpoint's loss scale is kept where this run scales its loss too; a run that does not
  // scale, or a checkpoint written without scaling, starts from what this run's options say.
  void resume_from(const TrainingCheckpoint& checkpoint) {
    executor_.load_optimizer_state(checkpoint.momentum, checkpoint.steps_done);
    if (checkpoint.loss_scaler && executor_.loss_scaler_state()) executor_.load_loss_scaler_state(*checkpoint.loss_scaler);
  }
  UpdateAction gate(int64_t step, ParameterGradients& grads);
  bool scaler_handles_overflow(const StepVerdict& verdict, ParameterGradients& grads);
  void log_overflow(const StepResult& result);
  UpdateAction act_on(const StepVerdict& verdict, ParameterGradients& grads);
  void clip(const StepVerdict& verdict, ParameterGradients& grads);
  // An event in events.jsonl and the report; note() also tells the user.
  void log_event(int64_t step, const std::string& kind, const std::string& text, ordered_json fields = ordered_json::object());
  void note(int64_t step, const std::string& kind, const std::string& text, ordered_json fields = ordered_json::object());
  void train_one(int64_t step, data::BatchLoader& loader);
  void write_checkpoint(const std::string& name);
  void finish(TrainOutcome& outcome);
  std::string verdict() const;

  Model& model_;
  const TrainOptions& options_;
  TrainOutputs outputs_;
  detail::TrainingHistory history_;
  ExplosionLocalizer localizer_;
  Executor executor_;
  std::vector<HookHandle> handles_;
  std::optional<LayerFlag> first_flag_;
  std::optional<std::pair<int64_t, NonFiniteOrigin>> first_origin_;
  int64_t flagged_this_step_ = 0;
  int64_t consecutive_skips_ = 0;
  int64_t consecutive_overflows_ = 0;  // loss-scaled steps whose gradients overflowed, in a row
  bool halt_ = false;
  std::string checkpoint_path_;
};

void TrainingRun::log_event(int64_t step, const std::string& kind, const std::string& text, ordered_json fields) {
  ordered_json event{{"step", step}, {"event", kind}, {"message", text}};
  for (auto& [key, value] : fields.items()) event[key] = value;
  outputs_.event(event);
  history_.add_event(step, kind, text);
}

void TrainingRun::note(int64_t step, const std::string& kind, const std::string& text, ordered_json fields) {
  log_event(step, kind, text, std::move(fields));
  if (options_.on_message) options_.on_message("step " + std::to_string(step) + ": " + kind + ": " + text);
}

// Runs after every record of the step arrived and before the optimizer.
UpdateAction TrainingRun::gate(int64_t step, ParameterGradients& grads) {
  const StepVerdict verdict = localizer_.finish_step(step);
  if (scaler_handles_overflow(verdict, grads)) return UpdateAction::Apply;  // the scaler skips it on the device
  flagged_this_step_ = static_cast<int64_t>(verdict.flags.size());
  if (!verdict.flagged()) {
    consecutive_skips_ = 0;
    return UpdateAction::Apply;
  }
  history_.add_flags(verdict);
  for (const LayerFlag& flag : verdict.flags) outputs_.event(flag_event(flag, &flag == verdict.first()));
  if (verdict.first() && !first_flag_) first_flag_ = *verdict.first();
  if (verdict.origin) {
    if (!first_origin_) first_origin_ = {{step, *verdict.origin}};
    outputs_.event(ordered_json{{"step", step}, {"event", "nonfinite"}, {"phase", verdict.origin->phase},
                                {"producer", verdict.origin->producer}, {"propagators", verdict.origin->propagators}});
  }
  return act_on(verdict, grads);
}

// GradScaler's overflows are expected: the scale starts high on purpose and backs off until the
// scaled gradients fit F16. Such a step (forward and loss finite, backward not) is logged by
// train_one, not flagged, while overflows in a row stay under max_consecutive_skips.
bool TrainingRun::scaler_handles_overflow(const StepVerdict& verdict, ParameterGradients& grads) {
  if (!grads.overflowed()) {
    consecutive_overflows_ = 0;
    return false;
  }
  const bool backward_only = !verdict.origin || verdict.origin->phase == "backward";
  return backward_only && ++consecutive_overflows_ <= options_.max_consecutive_skips;
}

UpdateAction TrainingRun::act_on(const StepVerdict& verdict, ParameterGradients& grads) {
  const int64_t step = verdict.step;
  const std::string where = verdict.first() ? describe(*verdict.first()) : describe(*verdict.origin);
  const std::string count = std::to_string(verdict.flags.size()) + " flagged";
  switch (options_.policy) {
    case ExplosionPolicy::Warn:
      note(step, "warn", "first in backward order: " + where + " (" + count + ")");
      return UpdateAction::Apply;
    case ExplosionPolicy::Clip:
      if (verdict.origin) {
        note(step, "skip", "non-finite gradients cannot be clipped; update dropped (" + describe(*verdict.origin) + ")");
        return UpdateAction::Skip;
      }
      clip(verdict, grads);
      return UpdateAction::Apply;
    case ExplosionPolicy::Skip:
      // Dropping updates cannot repair weights an earlier update already damaged: an explosion
      // that outlasts max_consecutive_skips steps would freeze training, so the run stops instead.
      if (++consecutive_skips_ > options_.max_consecutive_skips) {
        note(step, "halt", "still flagged after " + std::to_string(options_.max_consecutive_skips) +
                               " skipped updates in a row: " + where + "; stopping");
        halt_ = true;
        return UpdateAction::Skip;
      }
      note(step, "skip", "update dropped: " + where + " (" + count + ")");
      return UpdateAction::Skip;
    case ExplosionPolicy::Halt:
      note(step, "halt", "stopping: " + where + " (" + count + "); the update is dropped");
      halt_ = true;
      return UpdateAction::Skip;
  }
  return UpdateAction::Apply;
}

// Per-layer clipnorm: each flagged parameter gradient is scaled to K x its running median. One
// event per parameter, one line for the user per step.
void TrainingRun::clip(const StepVerdict& verdict, ParameterGradients& grads) {
  int64_t clipped = 0;
  const LayerFlag* largest = nullptr;
  for (const LayerFlag& flag : verdict.flags) {
    if (flag.tensor != "grad" || flag.reason != FlagReason::Explosion) continue;
    const std::optional<double> limit = localizer_.clip_threshold(flag.layer, flag.tensor);
    if (!limit || !(flag.norm > *limit)) continue;
    grads.scale(flag.layer, *limit / flag.norm);
    ++clipped;
    if (!largest || flag.norm > largest->norm) largest = &flag;
    log_event(verdict.step, "clip", flag.layer + " gradient norm " + format_norm(flag.norm) + " clipped to " + format_norm(*limit),
              {{"param", flag.layer}, {"norm", flag.norm}, {"max_norm", *limit}});
  }
  const std::string first = verdict.first() ? describe(*verdict.first()) : std::string("-");
  if (clipped == 0) {
    note(verdict.step, "warn", "flagged, but no parameter gradient is above its clip threshold; first: " + first);
    return;
  }
  if (options_.on_message)
    options_.on_message("step " + std::to_string(verdict.step) + ": clip: " + std::to_string(clipped) +
                        " parameter gradient(s) clipped, the largest " + largest->layer + " (" + format_norm(largest->norm) +
                        "); first flagged: " + first);
}

void TrainingRun::train_one(int64_t step, data::BatchLoader& loader) {
  const double lr = options_.schedule.at(step);
  executor_.set_learning_rate(lr);
  const auto begin = Clock::now();
  data::Batch batch = loader.next();
  flagged_this_step_ = 0;
  const StepResult result = executor_.step(batch.images, batch.labels);
  if (result.overflowed) log_overflow(result);
  const double loss = result.loss.value_or(std::numeric_limits<double>::quiet_NaN());
  history_.end_step(step, loss, lr, localizer_);
  outputs_.flush();
  if (options_.on_progress) {
    const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
    options_.on_progress({step + 1, options_.steps, loss, lr, batch.images.size(0) / std::max(seconds, 1e-9),
                          flagged_this_step_, batch.epoch});
  }
}

void TrainingRun::log_overflow(const StepResult& result) {
  const double scale = result.loss_scale.value_or(0);
  const double next = executor_.loss_scaler_state().value_or(LossScalerState{}).scale;
  log_event(result.step, "loss_scale",
            "gradients overflowed at loss scale " + format_norm(scale) + ": update skipped, scale now " + format_norm(next),
            {{"scale", scale}, {"next_scale", next}});
}

void TrainingRun::write_checkpoint(const std::string& name) {
  executor_.sync_model();
  checkpoint_path_ = outputs_.file(name);
  std::map<std::string, std::string> settings = options_.settings;
  hookrt::write_checkpoint(checkpoint_path_, model_, executor_.optimizer_state(), executor_.steps_done(), settings,
                           executor_.loss_scaler_state());
  outputs_.event(ordered_json{{"step", executor_.steps_done()}, {"event", "checkpoint"}, {"path", checkpoint_path_}});
}

std::string TrainingRun::verdict() const {
  std::string text;
  if (first_flag_)
    text = "First flagged layer in backward order: " + describe(*first_flag_) + " at step " + std::to_string(first_flag_->step) + ".";
  if (first_origin_)
    text += (text.empty() ? "" : " ") + std::string("First non-finite step ") + std::to_string(first_origin_->first) + ": " +
            describe(first_origin_->second) + ".";
  return text.empty() ? "No layer was flagged in " + std::to_string(history_.steps()) + " steps." : text;
}

void TrainingRun::finish(TrainOutcome& outcome) {
  if (const int64_t skipped = options_.dataset->skipped(); skipped > 0) {
    ordered_json fields{{"count", skipped}, {"files", options_.dataset->skipped_files()}};
    note(executor_.steps_done(), "skipped_images", std::to_string(skipped) + " unreadable image(s) skipped", fields);
  }
  outputs_.finish();
  report::ReportData data = history_.report(localizer_);
  data.run_info.assign(options_.settings.begin(), options_.settings.end());
  data.verdict = verdict();
  data.halted = outcome.status == TrainStatus::Halted;
  data.interrupted = outcome.status == TrainStatus::Interrupted;
  report::write_layer_csv(outputs_.file("layers.csv"), data);
  outcome.report_path = outputs_.file("report.html");
  report::write_html(outcome.report_path, data);
  outcome.verdict = data.verdict;
  outcome.first_flag = first_flag_;
  outcome.steps_done = executor_.steps_done();
  outcome.checkpoint_path = checkpoint_path_;
}

TrainOutcome TrainingRun::run() {
  TrainOutcome outcome;
  const int64_t start = options_.resume ? options_.resume->steps_done : 0;
  data::LoaderOptions loader_options = options_.loader;
  loader_options.start_batch = start;
  // Batches land in memory the backend uploads from fastest (page-locked on a GPU).
  if (!loader_options.allocate)
    loader_options.allocate = [&backend = executor_.backend()](const Shape& shape) { return backend.empty_host(shape); };
  try {
    data::BatchLoader loader(options_.dataset, loader_options);
    for (int64_t step = start; step < options_.steps && !halt_; ++step) {
      if (options_.interrupted && options_.interrupted()) {
        outcome.status = TrainStatus::Interrupted;
        note(step, "interrupt", "interrupted before step " + std::to_string(step) + "; everything recorded is saved");
        break;
      }
      train_one(step, loader);
      const bool last = step + 1 == options_.steps;
      if (options_.checkpoint_every > 0 && (step + 1) % options_.checkpoint_every == 0 && !last && !halt_)
        write_checkpoint("checkpoint.safetensors");
    }
  } catch (...) {
    try {
      finish(outcome);  // nothing recorded is lost when a run stops on an error
    } catch (...) {
    }
    throw;
  }
  if (halt_) outcome.status = TrainStatus::Halted;
  write_checkpoint("checkpoint.safetensors");
  finish(outcome);
  return outcome;
}

}  // namespace

TrainOutcome train(Model& model, std::unique_ptr<Backend> backend, const TrainOptions& options) {
  if (!options.dataset) throw_bad_input("train: no dataset");
  if (options.dataset->num_classes() > model.num_classes())
    throw_bad_input("train: the data has " + std::to_string(options.dataset->num_classes()) + " classes but the model's fc has " +
                    std::to_string(model.num_classes()) + " outputs");
  options.schedule.validate();
  TrainingRun run(model, std::move(backend), options);
  return run.run();
}

}  // namespace hookrt
