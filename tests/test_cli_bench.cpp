// `hookrt bench`: both variants timed and printed in the PyTorch baseline's line format, the
// ratio, and the JSON figures; launches per step, which the CPU backend does not count. And the GPU
// flags that `bench` shares with `run` and `train`, which the CPU accepts and ignores.
#include <gtest/gtest.h>

#include <csignal>
#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/cli.h"
#include "support/temp_dir.h"

namespace hookrt::testing {
namespace {

TEST(CliBench, TimesBothVariantsAndWritesTheFigures) {
  TempDir dir;
  const ProcessResult r = hookrt_cli({"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "2",
                                      "--warmup", "0", "--json", dir.file("bench.json")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* variant : {"unhooked", "hooked"})
    EXPECT_TRUE(std::regex_search(r.out, std::regex(std::string("hookrt ") + variant + R"( +[0-9.]+ ms/step +[0-9]+ images/s)")))
        << variant << ": " << r.out;
  EXPECT_TRUE(contains(r.out, "hooked/unhooked")) << r.out;
  const auto figures = nlohmann::json::parse(read_text(dir.file("bench.json")));
  EXPECT_EQ(figures["backend"], "cpu");
  EXPECT_EQ(figures["batch"], 2);
  EXPECT_GT(figures["unhooked_ms"].get<double>(), 0);
  EXPECT_GT(figures["hooked_ms"].get<double>(), 0);
  EXPECT_NEAR(figures["hooked_ratio"].get<double>(), figures["hooked_ms"].get<double>() / figures["unhooked_ms"].get<double>(), 1e-12);
}

TEST(CliBench, OnTheCpuLaunchesAreNotCountedAndTheReasonSaysSo) {
  TempDir dir;
  const ProcessResult r = hookrt_cli({"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "1",
                                      "--warmup", "0", "--json", dir.file("bench.json")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* variant : {"unhooked", "hooked"})
    EXPECT_TRUE(std::regex_search(r.out, std::regex(std::string("\nhookrt ") + variant +
                                                    R"( launches/step: not counted \(.*CPU.*\)\n)")))
        << variant << ": " << r.out;
  const auto figures = nlohmann::ordered_json::parse(read_text(dir.file("bench.json")));
  for (const char* key : {"unhooked_launches", "hooked_launches", "unhooked_device_time", "hooked_device_time",
                          "launches_not_counted"})
    ASSERT_TRUE(figures.contains(key)) << key << ": " << figures.dump(1);
  for (const char* key : {"unhooked_launches", "hooked_launches", "unhooked_device_time", "hooked_device_time"})
    EXPECT_TRUE(figures.at(key).is_null()) << key << ": " << figures.dump(1);
  EXPECT_FALSE(contains(r.out, "device time/step")) << "no device times to print: " << r.out;
  EXPECT_TRUE(contains(figures.at("launches_not_counted").get<std::string>(), "CPU")) << figures.dump(1);
  // The timing fields stay first and in their order: benchmarks/device_figures.py reads them.
  std::vector<std::string> keys;
  for (const auto& item : figures.items()) keys.push_back(item.key());
  keys.resize(7);
  EXPECT_EQ(keys, (std::vector<std::string>{"backend", "batch", "size", "steps", "unhooked_ms", "hooked_ms",
                                            "hooked_ratio"}));
}

TEST(CliBench, SaysHowItsTimedStepsRanAndWhyNotAsGraphs) {
  TempDir dir;
  const ProcessResult r = hookrt_cli({"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "1",
                                      "--warmup", "0", "--no-graphs", "--json", dir.file("bench.json")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* variant : {"unhooked", "hooked"})
    EXPECT_TRUE(contains(r.out, std::string("hookrt ") + variant + " steps: op by op (graph replay is turned off)"))
        << variant << ": " << r.out;
  const auto figures = nlohmann::json::parse(read_text(dir.file("bench.json")));
  EXPECT_EQ(figures["unhooked_steps"], "eager");
  EXPECT_EQ(figures["hooked_steps"], "eager");
  EXPECT_EQ(figures["hooked_eager_because"], "graph replay is turned off");
}

TEST(CliBench, WritesTheSettingsItRanWith) {
  TempDir dir;
  for (const bool off : {false, true}) {
    std::vector<std::string> args = {"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "1",
                                     "--warmup", "0", "--json", dir.file("bench.json")};
    if (off)
      args.insert(args.end(), {"--no-tf32", "--no-graphs", "--no-epilogue-probes", "--heuristic-conv", "--deterministic",
                               "--own-batchnorm", "--memory-format", "channels_last"});
    const ProcessResult r = hookrt_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const auto settings = nlohmann::json::parse(read_text(dir.file("bench.json"))).at("settings");
    EXPECT_EQ(settings.at("tf32"), !off);
    EXPECT_EQ(settings.at("graphs"), !off);
    EXPECT_EQ(settings.at("epilogue_probes"), !off);
    EXPECT_EQ(settings.at("conv_algorithms"), off ? "heuristic" : "measured");
    EXPECT_EQ(settings.at("deterministic"), off);
    EXPECT_EQ(settings.at("f32_batchnorm"), off ? "hookrt" : "cudnn");
    EXPECT_EQ(settings.at("layout"), off ? "NHWC" : "NCHW") << "auto is NCHW at fp32, and on the CPU";
  }
}

// A parity check runs the same command on the GPU with `--no-tf32 --heuristic-conv
// --deterministic` and on the CPU; the CPU run must take the same flags.
TEST(CliGpuFlags, RunAndTrainOnTheCpuAcceptThem) {
  const std::vector<std::string> flags = {"--no-tf32", "--heuristic-conv", "--deterministic", "--own-batchnorm"};
  std::vector<std::string> run = {"run", "--device", "cpu", "--num-classes", "5", "--batch", "1", "--size", "32",
                                  "--steps", "1", "--quiet"};
  run.insert(run.end(), flags.begin(), flags.end());
  const ProcessResult r = hookrt_cli(run);
  EXPECT_EQ(r.exit_code, 0) << r.describe();

  TempDir out;
  std::vector<std::string> train = {"train", "--device", "cpu", "--steps", "1", "--batch", "2", "--size", "32",
                                    "--images", "2", "--classes", "2", "--workers", "0", "--out",
                                    out.path().string(), "--quiet"};
  train.insert(train.end(), flags.begin(), flags.end());
  const ProcessResult t = hookrt_cli(train);
  EXPECT_EQ(t.exit_code, 0) << t.describe();
}

// The figures file as another process sees it now (written whole through a rename), or null
// before its first write.
nlohmann::json figures_now(const std::string& path) {
  const std::string text = read_text(path);
  return text.empty() ? nlohmann::json() : nlohmann::json::parse(text);
}

// The JSON is written before the first step and again as each figure is measured, so a bench
// stopped part way (Ctrl-C, or the device check's time limit sending SIGTERM) keeps what it timed.
TEST(CliBench, StoppedBetweenVariantsItKeepsTheFigureItTimedAndExits130) {
  TempDir dir;
  const std::string json = dir.file("bench.json");
  ChildProcess child({HOOKRT_CLI_PATH, "bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "60",
                      "--warmup", "0", "--json", json});
  const auto deadline = std::chrono::steady_clock::now() + kCliTimeout;
  nlohmann::json figures;
  while ((figures = figures_now(json)).is_null() || !figures.contains("unhooked_ms")) {
    if (!figures.is_null()) EXPECT_TRUE(figures.contains("settings")) << "written from the start: " << figures.dump(1);
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no unhooked figure; " << child.wait(std::chrono::milliseconds(1)).describe();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(figures.contains("hooked_ms")) << "the hooked variant's 60 steps should take seconds: " << figures.dump(1);
  child.send_signal(SIGTERM);
  const ProcessResult r = child.wait(kCliTimeout);
  ASSERT_EQ(r.exit_code, 130) << r.describe();
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(hookrt unhooked +[0-9.]+ ms/step)"))) << r.out;
  EXPECT_TRUE(contains(r.err, "interrupted while timing the hooked variant")) << r.err;
  figures = figures_now(json);
  EXPECT_GT(figures.at("unhooked_ms").get<double>(), 0) << figures.dump(1);
  EXPECT_EQ(figures.at("unhooked_steps"), "eager");
  for (const char* key : {"hooked_ms", "hooked_ratio", "hooked_steps", "unhooked_launches"})
    EXPECT_FALSE(figures.contains(key)) << key << " was never measured: " << figures.dump(1);
  EXPECT_EQ(figures.at("stopped"), "interrupted while timing the hooked variant");
  EXPECT_EQ(figures.at("settings").at("precision"), "fp32");
}

// PyTorch's baseline says how many of its fp16 steps GradScaler skipped (skipped steps are
// cheaper); the bench says the same of its own. A static scale of 1e30 overflows F16's gradients
// in every step; without loss scaling there is nothing to say.
TEST(CliBench, UnderLossScalingItCountsTheStepsSkippedOnOverflow) {
  TempDir dir;
  const ProcessResult r = hookrt_cli({"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "2",
                                      "--warmup", "0", "--precision", "fp16", "--loss-scale", "1e30", "--json",
                                      dir.file("bench.json")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* variant : {"unhooked", "hooked"})
    EXPECT_TRUE(contains(r.out, std::string("hookrt ") + variant + " steps: op by op (the cpu backend does not record "
                                "steps); 2 of 2 skipped on overflow"))
        << variant << ": " << r.out;
  const auto figures = nlohmann::json::parse(read_text(dir.file("bench.json")));
  EXPECT_EQ(figures.at("unhooked_skipped_steps"), 2);
  EXPECT_EQ(figures.at("hooked_skipped_steps"), 2);

  const ProcessResult unscaled = hookrt_cli({"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "1",
                                             "--warmup", "0", "--json", dir.file("bench.json")});
  ASSERT_EQ(unscaled.exit_code, 0) << unscaled.describe();
  EXPECT_FALSE(contains(unscaled.out, "skipped on overflow")) << unscaled.out;
  EXPECT_FALSE(nlohmann::json::parse(read_text(dir.file("bench.json"))).contains("unhooked_skipped_steps"));
}

// A stream (/dev/stdout) takes the figures once, at the end: rewriting it would append a second
// document. A symlink stays one, its target rewritten.
TEST(CliBench, FiguresGoOnceToAStreamAndThroughASymlinkToItsTarget) {
  TempDir dir;
  const ProcessResult r = hookrt_cli({"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "1",
                                      "--warmup", "0", "--json", "/dev/stdout"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const size_t first = r.out.find("\"hooked_ratio\"");
  ASSERT_NE(first, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"hooked_ratio\"", first + 1), std::string::npos) << "written once: " << r.out;
  EXPECT_EQ(r.out.find("\"backend\""), r.out.rfind("\"backend\"")) << "no document for each figure: " << r.out;

  const std::string target = dir.file("figures.json"), link = dir.file("link.json");
  write_text(target, "");
  std::filesystem::create_symlink(target, link);
  const ProcessResult s = hookrt_cli({"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "1",
                                      "--warmup", "0", "--json", link});
  ASSERT_EQ(s.exit_code, 0) << s.describe();
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_GT(nlohmann::json::parse(read_text(target)).at("hooked_ms").get<double>(), 0);
}

// A variant that fails (here a training batch of one image, which a batch norm over 1x1 planes
// refuses, as PyTorch does) exits as its error says and leaves the figures file saying why.
TEST(CliBench, AFailingVariantLeavesAFiguresFileThatSaysWhy) {
  TempDir dir;
  const ProcessResult r = hookrt_cli({"bench", "--device", "cpu", "--batch", "1", "--size", "32", "--steps", "1",
                                      "--warmup", "0", "--json", dir.file("bench.json")});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  const auto figures = nlohmann::json::parse(read_text(dir.file("bench.json")));
  const std::string stopped = figures.at("stopped");
  EXPECT_TRUE(stopped.starts_with("the unhooked variant failed: ")) << stopped;
  EXPECT_TRUE(contains(stopped, "layer4.0.bn1")) << stopped;
  EXPECT_FALSE(figures.contains("unhooked_ms"));
  EXPECT_EQ(figures.at("settings").at("precision"), "fp32");
}

TEST(CliBench, AFiguresFileThatCannotBeWrittenIsBadInputBeforeAnyStep) {
  TempDir dir;
  const ProcessResult r = hookrt_cli({"bench", "--device", "cpu", "--batch", "2", "--size", "32", "--steps", "1",
                                      "--warmup", "0", "--json", dir.file("missing/bench.json")});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "--json")) << r.err;
  EXPECT_TRUE(contains(r.err, "missing/bench.json")) << r.err;
  EXPECT_FALSE(contains(r.out, "ms/step")) << "nothing is timed for a file that cannot hold it: " << r.out;
}

TEST(CliBench, BadArgumentsExitTwo) {
  EXPECT_EQ(hookrt_cli({"bench", "--steps", "0"}).exit_code, 2);
  EXPECT_EQ(hookrt_cli({"bench", "--device", "tpu"}).exit_code, 2);
}

}  // namespace
}  // namespace hookrt::testing
