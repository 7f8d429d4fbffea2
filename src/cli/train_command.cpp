// `hookrt train`: the gradient-explosion profiler. Trains ResNet18 on the embedded generated
// shapes, an ImageFolder tree or NPY arrays, with probes on every layer; flags exploding or
// non-finite gradients, acts on them by policy, and writes stats.jsonl, events.jsonl, layers.csv,
// report.html and a checkpoint to --out. Exit status 3 when the halt policy stops the run, 130
// when interrupted (after writing everything).
#include <iostream>

#include "cli/commands.h"
#include "cli/gpu_flags.h"
#include "cli/interrupt.h"
#include "cli/loss_scale_option.h"
#include "cli/memory_format_option.h"
#include "cli/number_checks.h"
#include "cli/precision_option.h"
#include "cli/progress.h"
#include "hookrt/checkpoint.h"
#include "hookrt/devices.h"
#include "hookrt/io.h"
#include "hookrt/trainer.h"

namespace hookrt::cli {

namespace {

struct TrainArgs {
  std::string data, data_npy, labels_npy, weights, resume, hook_config, out = "out/train";
  std::string device = "auto", schedule = "constant", policy = "warn", precision = "fp32", memory_format = "auto", loss_scale = "auto";
  std::vector<std::string> hooks, spikes;
  int64_t steps = 0, epochs = 0, batch = 16, size = 64, resize = 0, classes = 10, synthetic_count = 2048;
  int64_t step_size = 30, warmup = 0, window = 50, min_history = 10, checkpoint_every = 0, max_skips = 10;
  int workers = 2;
  uint64_t seed = 0;
  double lr = 0.05, momentum = 0.9, weight_decay = 0.0, dampening = 0.0, gamma = 0.1, min_lr = 0.0;
  double warmup_start_factor = 0.1, factor = 10.0;
  bool nesterov = false, skip_bad = false, quiet = false;
  GpuFlags gpu;
};

std::shared_ptr<const data::Dataset> make_dataset(const TrainArgs& a) {
  if (!a.data.empty() && !a.data_npy.empty()) throw_bad_input("--data and --data-npy: give one of them");
  if (!a.data_npy.empty()) {
    if (a.labels_npy.empty()) throw_bad_input("--data-npy needs --labels (int64 or int32 labels .npy)");
    return data::npy_dataset(a.data_npy, a.labels_npy);
  }
  if (!a.labels_npy.empty()) throw_bad_input("--labels goes with --data-npy");
  if (!a.data.empty())
    return data::image_folder({a.data, a.size, a.resize > 0 ? a.resize : a.size * 256 / 224, data::Augment::Train, a.skip_bad});
  return data::synthetic_shapes({a.synthetic_count, a.classes, a.size, a.seed, data::Augment::Train});
}

LrSchedule make_schedule(const TrainArgs& a, int64_t steps) {
  LrSchedule s;
  s.base_lr = a.lr;
  s.decay = parse_lr_decay(a.schedule);
  s.step_size = a.step_size;
  s.gamma = a.gamma;
  s.total_steps = steps;
  s.min_lr = a.min_lr;
  s.warmup_steps = a.warmup;
  s.warmup_start_factor = a.warmup_start_factor;
  for (const std::string& spike : a.spikes) s.spikes.push_back(parse_lr_spike(spike));
  return s;
}

Model make_model(const TrainArgs& a, const std::optional<TrainingCheckpoint>& resume, int64_t classes) {
  if (resume) return resnet18_from_state(resume->weights, a.resume);
  if (!a.weights.empty()) return resnet18_from_state(io::read_safetensors(a.weights), a.weights);
  return Model::resnet18(classes, a.seed);
}

// A resumed run must see the batches it would have seen: same data, batch size and seed.
void check_resume_settings(const TrainArgs& a, const TrainingCheckpoint& c, const std::map<std::string, std::string>& now) {
  for (const char* key : {"data", "batch", "seed"}) {
    auto then = c.settings.find(key);
    if (then != c.settings.end() && then->second != now.at(key))
      throw_bad_input("--resume " + a.resume + ": the checkpoint was trained with " + key + " = " + then->second +
                      ", this run has " + now.at(key) + "; a resumed run must use the same data, batch and seed");
  }
}

std::map<std::string, std::string> describe_run(const TrainArgs& a, const data::Dataset& d, int64_t steps) {
  const std::string data = !a.data.empty() ? a.data : !a.data_npy.empty() ? a.data_npy : "generated shapes (seed " + std::to_string(a.seed) + ")";
  return {{"data", data}, {"images", std::to_string(d.size())}, {"classes", std::to_string(d.num_classes())},
          {"image_size", std::to_string(d.image_size())}, {"batch", std::to_string(a.batch)}, {"seed", std::to_string(a.seed)},
          {"steps", std::to_string(steps)}, {"lr", std::to_string(a.lr)}, {"schedule", a.schedule},
          {"momentum", std::to_string(a.momentum)}, {"weight_decay", std::to_string(a.weight_decay)},
          {"precision", a.precision}, {"memory_format", a.memory_format}, {"loss_scale", a.loss_scale}, {"policy", a.policy}, {"explosion_factor", std::to_string(a.factor)}, {"window", std::to_string(a.window)}};
}

int train_main(const TrainArgs& a) {
  if (a.steps > 0 && a.epochs > 0) throw_bad_input("--steps and --epochs: give one of them");
  if (a.nesterov && (a.momentum <= 0 || a.dampening != 0))
    throw_bad_input("--nesterov needs --momentum > 0 and --dampening 0 (as torch.optim.SGD)");
  const ExplosionPolicy policy = parse_explosion_policy(a.policy);
  std::optional<TrainingCheckpoint> resume;
  if (!a.resume.empty()) resume = read_checkpoint(a.resume);
  if (resume && !a.weights.empty()) throw_bad_input("--resume and --weights: the checkpoint holds the weights");

  TrainOptions o;
  o.dataset = make_dataset(a);
  o.loader.batch = a.batch;
  o.loader.seed = a.seed;
  o.loader.workers = a.workers;
  // Full batches only (the loader drops the last partial one, as DataLoader(drop_last=True)).
  const int64_t per_epoch = o.dataset->size() / a.batch;
  if (per_epoch < 1)
    throw_bad_input("--batch " + std::to_string(a.batch) + " is larger than the data (" + std::to_string(o.dataset->size()) +
                    " images)");
  o.steps = a.epochs > 0 ? a.epochs * per_epoch : a.steps > 0 ? a.steps : 100;
  Model model = make_model(a, resume, o.dataset->num_classes());
  o.sgd = {a.lr, a.momentum, a.dampening, a.weight_decay, a.nesterov};
  o.precision = parse_precision(a.precision);
  o.memory_format = memory_format_choice(a.memory_format);
  o.loss_scaling = loss_scaling_choice(a.loss_scale);
  o.schedule = make_schedule(a, o.steps);
  o.localizer = {a.factor, a.window, a.min_history};
  o.policy = policy;
  o.max_consecutive_skips = a.max_skips;
  for (const std::string& text : a.hooks) o.hooks.push_back(parse_hook_spec(text));
  if (!a.hook_config.empty()) o.config_hooks = read_hook_config(a.hook_config, model);
  o.out_dir = a.out;
  o.checkpoint_every = a.checkpoint_every;
  o.settings = describe_run(a, *o.dataset, o.steps);
  if (resume) {
    check_resume_settings(a, *resume, o.settings);
    if (resume->steps_done >= o.steps)
      throw_bad_input("--resume " + a.resume + ": the checkpoint has " + std::to_string(resume->steps_done) +
                      " steps done; ask for more with --steps");
  }
  o.resume = std::move(resume);

  BackendSelection selection = select_backend(parse_device_choice(a.device), gpu_options(a.gpu));
  o.settings["device"] = selection.backend->name();
  Progress progress(!a.quiet);
  progress.message("hookrt train: " + std::to_string(o.steps) + " steps of batch " + std::to_string(a.batch) + " on " +
                   selection.backend->name() + " (" + selection.reason + "), policy " + a.policy + ", writing to " + a.out);
  o.interrupted = [] { return interrupt_requested(); };
  o.on_progress = [&](const StepProgress& p) { progress.update(p); };
  o.on_message = [&](const std::string& line) { progress.message(line); };
  install_interrupt_handlers();

  const TrainOutcome outcome = train(model, std::move(selection.backend), o);
  progress.finish();
  std::cout << outcome.verdict << "\n";
  std::cout << "report: " << outcome.report_path << "\n";
  if (!outcome.checkpoint_path.empty()) std::cout << "checkpoint: " << outcome.checkpoint_path << "\n";
  switch (outcome.status) {
    case TrainStatus::Completed: return 0;
    case TrainStatus::Halted: return 3;
    case TrainStatus::Interrupted: return 130;
  }
  return 1;
}

}  // namespace

void add_train_command(CLI::App& app, int& status) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train with probes on every layer; find where gradients explode");
  cmd->add_option("--data", a->data, "ImageFolder root (one folder of JPEG/PNG images per class); default: generated shapes");
  cmd->add_option("--data-npy", a->data_npy, "Images as .npy float32 (N,3,H,W), with --labels");
  cmd->add_option("--labels", a->labels_npy, "Labels .npy (int64/int32) for --data-npy");
  cmd->add_flag("--skip-bad-images", a->skip_bad, "Skip (and count) unreadable or corrupt images instead of stopping");
  cmd->add_option("--classes", a->classes, "Generated shapes: classes (at most 10)")->check(CLI::Range(2, 10));
  cmd->add_option("--images", a->synthetic_count, "Generated shapes: images")->check(whole_at_least(1));
  cmd->add_option("--size", a->size, "Image size (crop) fed to the model")->check(whole_at_least(1));
  cmd->add_option("--resize", a->resize, "ImageFolder: shorter side before cropping (default size*256/224)")
      ->check(whole_at_least(1));
  cmd->add_option("--weights", a->weights, "Start from these weights (.safetensors, torchvision keys)");
  cmd->add_option("--resume", a->resume, "Continue from a checkpoint written by a previous run");
  cmd->add_option("--device", a->device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_precision_option(*cmd, a->precision);
  add_memory_format_option(*cmd, a->memory_format);
  add_loss_scale_option(*cmd, a->loss_scale);
  add_gpu_flags(*cmd, a->gpu);
  cmd->add_option("--steps", a->steps, "Total steps (default 100)")->check(whole_at_least(1));
  cmd->add_option("--epochs", a->epochs, "Total epochs instead of --steps")->check(whole_at_least(1));
  cmd->add_option("--batch", a->batch, "Batch size")->check(whole_at_least(1));
  cmd->add_option("--seed", a->seed, "Seed for weights, data order and augmentation");
  cmd->add_option("--workers", a->workers, "Data loading threads")->check(CLI::Range(0, 64));
  cmd->add_option("--lr", a->lr, "SGD learning rate")->check(finite_non_negative());
  cmd->add_option("--momentum", a->momentum, "SGD momentum")->check(finite_non_negative());
  cmd->add_option("--dampening", a->dampening, "SGD dampening")->check(finite_non_negative());
  cmd->add_option("--weight-decay", a->weight_decay, "SGD weight decay")->check(finite_non_negative());
  cmd->add_flag("--nesterov", a->nesterov, "Nesterov momentum");
  cmd->add_option("--schedule", a->schedule, "constant, step or cosine")->check(CLI::IsMember({"constant", "step", "cosine"}));
  cmd->add_option("--step-size", a->step_size, "step schedule: steps between decays");
  cmd->add_option("--gamma", a->gamma, "step schedule: decay factor");
  cmd->add_option("--min-lr", a->min_lr, "cosine schedule: final learning rate");
  cmd->add_option("--warmup", a->warmup, "Linear warmup steps")->check(whole_at_least(0));
  cmd->add_option("--warmup-start-factor", a->warmup_start_factor, "Warmup's first learning-rate factor");
  cmd->add_option("--lr-spike", a->spikes, "STEP:FACTOR[:LENGTH]: multiply the learning rate (provokes an explosion)");
  cmd->add_option("--hook", a->hooks, "WHEN:SELECTOR:PROBE[,PROBE...] in addition to the profiler's probes (repeatable)");
  cmd->add_option("--hook-config", a->hook_config, "Hooks from a YAML file (sections, layers, probes, cadence)");
  cmd->add_option("--policy", a->policy, "On a flagged step: warn, clip, skip or halt")
      ->check(CLI::IsMember({"warn", "clip", "skip", "halt"}));
  cmd->add_option("--max-skips", a->max_skips, "skip policy: flagged steps in a row before the run halts (exit 3)")
      ->check(whole_at_least(1));
  cmd->add_option("--explosion-factor", a->factor, "Flag a gradient norm above K x its running median")
      ->check(finite_positive());
  cmd->add_option("--explosion-window", a->window, "Steps in the running median")->check(whole_at_least(1));
  cmd->add_option("--explosion-min-history", a->min_history, "Steps observed before a series can be flagged (default 10: early gradients move fast)")
      ->check(whole_at_least(1));
  cmd->add_option("--checkpoint-every", a->checkpoint_every, "Write a checkpoint every N steps (and always at the end)")
      ->check(whole_at_least(0));
  cmd->add_option("--out", a->out, "Output directory (default out/train)");
  cmd->add_flag("--quiet", a->quiet, "No progress or messages on stderr");
  cmd->callback([a, &status] { status = train_main(*a); });
}

}  // namespace hookrt::cli
