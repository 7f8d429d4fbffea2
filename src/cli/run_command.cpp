// `hookrt run`: weights + input (+ labels) through the model for N steps with hooks from the command
// line; writes stats.jsonl and captures.safetensors to --out, prints a summary table.
#include <chrono>
#include <optional>
#include <iostream>

#include "cli/commands.h"
#include "cli/gpu_flags.h"
#include "cli/interrupt.h"
#include "cli/loss_scale_option.h"
#include "cli/memory_format_option.h"
#include "cli/number_checks.h"
#include "cli/precision_option.h"
#include "cli/summary_table.h"
#include "hookrt/checkpoint.h"
#include "hookrt/devices.h"
#include "hookrt/executor.h"
#include "hookrt/hook_spec.h"
#include "hookrt/io.h"
#include "random.h"

namespace hookrt::cli {

namespace {

struct RunArgs {
  std::string weights, input, labels, out, save_weights;
  std::string mode = "eval", device = "auto", precision = "fp32", memory_format = "auto", loss_scale = "auto";
  std::vector<std::string> hooks;
  int64_t steps = 1, batch = 2, size = 224, num_classes = 1000;
  uint64_t seed = 0;
  double lr = 0.01, momentum = 0.0, weight_decay = 0.0, dampening = 0.0;
  bool nesterov = false, input_grad = false, quiet = false, no_graphs = false;
  GpuFlags gpu;
};

Model load_model(const RunArgs& args) {
  if (args.weights.empty()) return Model::resnet18(args.num_classes, args.seed);
  // A training checkpoint loads as weights too: its optimizer entries are dropped.
  return resnet18_from_state(io::read_safetensors(args.weights), args.weights);
}

Tensor generated_input(const RunArgs& args) {
  Tensor x = Tensor::empty({args.batch, 3, args.size, args.size});
  Pcg32 rng(args.seed, 7);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.normal());
  return x;
}

Tensor generated_labels(const RunArgs& args, int64_t classes) {
  Tensor y = Tensor::empty({args.batch}, DType::I64);
  Pcg32 rng(args.seed, 11);
  for (int64_t i = 0; i < args.batch; ++i) y.data<int64_t>()[i] = rng.below(static_cast<uint32_t>(classes));
  return y;
}

Tensor load_input(const RunArgs& args) {
  if (args.input.empty()) return generated_input(args);
  Tensor x = io::read_npy(args.input);
  if (x.dtype() != DType::F32 || x.ndim() != 4 || x.size(1) != 3)
    throw_bad_input(args.input + ": expected a float32 (N, 3, H, W) batch, got " + dtype_name(x.dtype()) + " " +
                    shape_string(x.shape()));
  return x;
}

Tensor load_labels(const RunArgs& args, const Tensor& input, int64_t classes) {
  if (!args.labels.empty()) {
    Tensor y = io::read_npy(args.labels);
    if ((y.dtype() != DType::I64 && y.dtype() != DType::I32) || y.ndim() != 1 || y.size(0) != input.size(0))
      throw_bad_input(args.labels + ": expected int64 or int32 labels of shape [" + std::to_string(input.size(0)) +
                      "], got " + dtype_name(y.dtype()) + " " + shape_string(y.shape()));
    Tensor as_i64 = y.to(DType::I64);
    for (int64_t i = 0; i < as_i64.numel(); ++i) {
      const int64_t label = as_i64.data<int64_t>()[i];
      if (label < 0 || label >= classes)
        throw_bad_input(args.labels + ": label " + std::to_string(label) + " at index " + std::to_string(i) +
                        " is out of range [0, " + std::to_string(classes) + ")");
    }
    return as_i64;
  }
  // The embedded default (no --input) trains on generated labels so that backward hooks fire too.
  return args.input.empty() ? generated_labels(args, classes) : Tensor();
}

int run(const RunArgs& args) {
  ExecutorOptions options;
  options.mode = parse_mode(args.mode);
  options.precision = parse_precision(args.precision);
  options.memory_format = memory_format_choice(args.memory_format);
  options.loss_scaling = loss_scaling_choice(args.loss_scale);
  // A scaler guards an optimizer's update: an eval step has none, and its backward (for hooks) runs
  // unscaled. Asked for by name there, it would be silently ignored: say so instead.
  if (options.mode != Mode::Train && options.loss_scaling && options.loss_scaling->kind != LossScaling::Off)
    throw_bad_input("--loss-scale " + args.loss_scale + " scales a training step's backward; --mode " + args.mode +
                    " has no update to guard (use --mode train)");
  options.sgd = {args.lr, args.momentum, args.dampening, args.weight_decay, args.nesterov};
  options.input_grad = args.input_grad;
  options.replay_graphs = !args.no_graphs;
  if (args.nesterov && (args.momentum <= 0 || args.dampening != 0))
    throw_bad_input("--nesterov needs --momentum > 0 and --dampening 0 (as torch.optim.SGD)");
  const DeviceChoice device = parse_device_choice(args.device);

  Model model = load_model(args);
  const Tensor input = load_input(args);
  const Tensor labels = load_labels(args, input, model.num_classes());
  std::vector<HookHandle> handles;
  for (const std::string& text : args.hooks) handles.push_back(register_hook_spec(model, parse_hook_spec(text)));

  BackendSelection selection = select_backend(device, gpu_options(args.gpu));
  if (device == DeviceChoice::Auto) std::cerr << "hookrt: note: --device auto chose " << selection.backend->name()
                                              << " (" << selection.reason << ")\n";
  Executor executor(model, std::move(selection.backend), options);
  // Records are flushed after every step (those delivered so far: the delivery thread may still
  // hold the last step's), and everything on every way out.
  std::optional<io::RecordFiles> outputs;
  if (!args.out.empty()) outputs.emplace(args.out);
  SummaryTable table;
  executor.subscribe([&](const ProbeRecord& record) {
    if (outputs) outputs->record(record);
    table.add(record);
  });

  install_interrupt_handlers();
  StepResult last;
  int status = 0;
  try {
    for (int64_t step = 0; step < args.steps; ++step) {
      if (interrupt_requested()) {
        std::cerr << "hookrt: interrupted before step " << step << "; records so far are saved\n";
        status = 130;
        break;
      }
      const auto begin = std::chrono::steady_clock::now();
      last = executor.step(input, labels);
      if (outputs) outputs->flush();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      if (!args.quiet) {
        std::cerr << "step " << step + 1 << "/" << args.steps;
        if (last.loss) std::cerr << "  loss " << *last.loss;
        if (last.loss_scale) std::cerr << "  loss scale " << *last.loss_scale << (last.overflowed ? " (overflow: update skipped)" : "");
        std::cerr << "  " << seconds << " s  (" << input.size(0) / seconds << " images/s)\n";
      }
    }
  } catch (...) {
    // Nothing recorded is lost when a run stops early: the steps before the failure first.
    try {
      executor.flush_records();
    } catch (const std::exception& error) {
      std::cerr << "hookrt: " << error.what() << "\n";
    }
    if (outputs) outputs->finish();
    throw;
  }
  executor.flush_records();  // the last steps' records may still be on their way
  if (outputs) outputs->finish();
  if (!args.quiet) table.print(std::cout);
  if (outputs) {
    if (last.logits.defined()) io::write_npy(outputs->file("logits.npy"), last.logits);
    if (last.input_grad.defined()) io::write_npy(outputs->file("input_grad.npy"), last.input_grad);
    std::cout << "wrote " << outputs->file("stats.jsonl") << " (" << table.records() << " records)";
    if (outputs->captures()) std::cout << " and " << outputs->file("captures.safetensors") << " (" << outputs->captures() << " tensors)";
    std::cout << "\n";
  }
  if (!args.save_weights.empty()) {
    executor.sync_model();
    io::write_safetensors(args.save_weights, model.state_dict(), {{"format", "pt"}, {"arch", "resnet18"}});
  }
  return status;
}

}  // namespace

void add_run_command(CLI::App& app, int& status) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Run the model on a batch with hooks");
  cmd->add_option("--weights", args->weights, "resnet18 weights (.safetensors, torchvision keys); default: generated");
  cmd->add_option("--input", args->input, "Input batch (.npy float32 N,3,H,W); default: generated");
  cmd->add_option("--labels", args->labels, "Labels (.npy int64/int32, N): enables backward");
  cmd->add_option("--mode", args->mode, "eval or train")->check(CLI::IsMember({"eval", "train"}));
  cmd->add_option("--device", args->device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_precision_option(*cmd, args->precision);
  add_memory_format_option(*cmd, args->memory_format);
  add_loss_scale_option(*cmd, args->loss_scale);
  add_gpu_flags(*cmd, args->gpu);
  cmd->add_flag("--no-graphs", args->no_graphs,
                "GPU: run each step op by op rather than replaying it as one CUDA graph (steps with host callbacks always do)");
  cmd->add_option("--hook", args->hooks, "WHEN:SELECTOR:PROBE[,PROBE...] (repeatable)");
  cmd->add_option("--steps", args->steps, "Steps to run on the batch")->check(whole_at_least(1));
  cmd->add_option("--lr", args->lr, "SGD learning rate")->check(finite_non_negative());
  cmd->add_option("--momentum", args->momentum, "SGD momentum")->check(finite_non_negative());
  cmd->add_option("--dampening", args->dampening, "SGD dampening")->check(finite_non_negative());
  cmd->add_option("--weight-decay", args->weight_decay, "SGD weight decay")->check(finite_non_negative());
  cmd->add_flag("--nesterov", args->nesterov, "Nesterov momentum");
  cmd->add_flag("--input-grad", args->input_grad, "Also compute the input's gradient (saliency)");
  cmd->add_option("--out", args->out, "Directory for stats.jsonl, captures.safetensors, logits.npy");
  cmd->add_option("--save-weights", args->save_weights, "Write the final weights (.safetensors)");
  cmd->add_option("--batch", args->batch, "Generated input: batch size")->check(whole_at_least(1));
  cmd->add_option("--size", args->size, "Generated input: image size")->check(whole_at_least(1));
  cmd->add_option("--num-classes", args->num_classes, "Generated weights: classes")->check(whole_at_least(1));
  cmd->add_option("--seed", args->seed, "Seed for generated weights and input");
  cmd->add_flag("--quiet", args->quiet, "No progress lines or table");
  cmd->callback([args, &status] { status = run(*args); });
}

}  // namespace hookrt::cli
