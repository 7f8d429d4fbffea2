#include "support/reference_data.h"

#include <sys/wait.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "hookrt/error.h"
#include "hookrt/io.h"

namespace hookrt::testing {

std::string torch_python() {
  const char* chosen = std::getenv("HOOKRT_TORCH_PYTHON");
  return chosen && *chosen ? chosen : "/usr/bin/python3";
}

namespace {

struct CommandResult {
  int exit_status = -1;
  std::string output;  // stdout and stderr together
};

CommandResult run_command(const std::string& command) {
  CommandResult result;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw Error("cannot start `" + command + "`");
  char buffer[4096];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, got);
  const int status = ::pclose(pipe);
  result.exit_status = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
  return result;
}

// A shell word: the text in single quotes, its own single quotes spelled '\''.
std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// The shortest decimal that reads back as `value` ("0.1", not "0.10000000000000001").
std::string number(double value) {
  char text[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

// Called when the script failed: if torch itself is missing, say which packages to install
// rather than show an ImportError. (Not checked up front: importing torch takes seconds.)
void require_torch() {
  const CommandResult probe =
      run_command(torch_python() + " -c 'import torch, torchvision, numpy'");
  if (probe.exit_status == 0) return;
  throw Error(
      std::string("the PyTorch parity test needs torch, torchvision and numpy for ") +
      torch_python() +
      ": install them (Debian: apt-get install python3-torch python3-torchvision python3-numpy). " +
      torch_python() + " said:\n" + probe.output);
}

std::string script_command(const std::string& script, const std::string& dir,
                           const ReferenceOptions& o) {
  return torch_python() + " " + shell_quote(script) + " --out " + shell_quote(dir) +
         " --seed " + std::to_string(o.seed) + " --batch " + std::to_string(o.batch) + " --size " +
         std::to_string(o.size) + " --num-classes " + std::to_string(o.num_classes) + " --mode " +
         mode_name(o.mode) + " --lr " + number(o.sgd.lr) + " --momentum " + number(o.sgd.momentum) +
         " --weight-decay " + number(o.sgd.weight_decay) +
         (o.sgd.nesterov ? " --nesterov" : " --no-nesterov") + " --device " + shell_quote(o.torch_device);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not JSON: " + e.what());
  }
}

std::optional<double> optional_number(const nlohmann::json& line, const char* field) {
  const auto& value = line.at(field);
  if (value.is_null()) return std::nullopt;
  return value.get<double>();
}

StatsResult stats_from_json(const nlohmann::json& line) {
  StatsResult stats;
  stats.count = line.at("count").get<int64_t>();
  stats.min = optional_number(line, "min");
  stats.max = optional_number(line, "max");
  stats.mean = optional_number(line, "mean");
  stats.std = optional_number(line, "std");
  stats.abs_max = optional_number(line, "abs_max");
  stats.l1 = line.at("l1").get<double>();
  stats.l2 = line.at("l2").get<double>();
  stats.nan = line.at("nan").get<int64_t>();
  stats.posinf = line.at("posinf").get<int64_t>();
  stats.neginf = line.at("neginf").get<int64_t>();
  return stats;
}

void read_stats_jsonl(const std::string& path, ReferenceStep& step) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  std::string text;
  for (int line_number = 1; std::getline(in, text); ++line_number) {
    try {
      const nlohmann::json line = nlohmann::json::parse(text);
      const std::string key = line.at("key").get<std::string>();
      step.stats[key] = stats_from_json(line);
      step.stats_shapes[key] = line.at("shape").get<Shape>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(path + ":" + std::to_string(line_number) + ": " + e.what());
    }
  }
}

std::optional<SgdOptions> sgd_from_meta(const nlohmann::json& meta) {
  const auto& sgd = meta.at("sgd");
  if (sgd.is_null()) return std::nullopt;
  return SgdOptions{.lr = sgd.at("lr").get<double>(),
                    .momentum = sgd.at("momentum").get<double>(),
                    .dampening = sgd.at("dampening").get<double>(),
                    .weight_decay = sgd.at("weight_decay").get<double>(),
                    .nesterov = sgd.at("nesterov").get<bool>()};
}

ReferenceStep read_step(const std::filesystem::path& dir, Mode mode) {
  const std::string name = mode_name(mode);
  const std::string meta_path = (dir / (name + "_meta.json")).string();
  ReferenceStep step;
  step.mode = mode;
  for (auto& [key, tensor] :
       io::read_safetensors((dir / (name + "_captures.safetensors")).string()))
    step.tensors.emplace(key, tensor);
  try {
    step.meta = read_json(meta_path);
    step.capture_keys = step.meta.at("keys").get<std::vector<std::string>>();
    step.grad_input_absent_for =
        step.meta.at("grad_input_absent_for").get<std::vector<std::string>>();
    step.sgd = sgd_from_meta(step.meta);
  } catch (const nlohmann::json::exception& e) {
    throw Error(meta_path + ": " + e.what());
  }
  read_stats_jsonl((dir / (name + "_stats.jsonl")).string(), step);
  for (const std::string& key : step.capture_keys)
    if (!step.tensors.count(key) || !step.stats.count(key))
      throw Error(meta_path + ": capture key '" + key + "' has no tensor or no stats line");
  return step;
}

// What the parity test reads besides the captures: the outputs, and the state after a train step.
void check_step_tensors(const ReferenceData& data, const std::string& dir) {
  std::vector<std::string> expected = {"loss", "logits"};
  if (data.options.mode == Mode::Train)
    for (const auto& [key, tensor] : data.weights) expected.push_back("after/" + key);
  for (const std::string& key : expected)
    if (!data.step.tensors.count(key))
      throw Error(dir + "/" + mode_name(data.options.mode) + "_captures.safetensors: no tensor '" +
                  key + "'");
}

}  // namespace

ReferenceData make_reference_data(const std::string& script, const std::string& dir,
                                  const ReferenceOptions& options) {
  ReferenceData data;
  data.options = options;
  data.command = script_command(script, dir, options);
  const auto started = std::chrono::steady_clock::now();
  const CommandResult made = run_command(data.command);
  data.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (made.exit_status != 0) {
    require_torch();
    throw Error("`" + data.command + "` failed (exit status " + std::to_string(made.exit_status) +
                "):\n" + made.output);
  }
  const std::filesystem::path root(dir);
  data.weights = io::read_safetensors((root / "weights.safetensors").string());
  data.input = io::read_npy((root / "input.npy").string());
  data.labels = io::read_npy((root / "labels.npy").string());
  data.step = read_step(root, options.mode);
  check_step_tensors(data, dir);
  return data;
}

}  // namespace hookrt::testing
