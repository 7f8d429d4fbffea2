// `hookrt train` end to end: its outputs, exit statuses (0, 2 on bad usage or input, 3 when the
// halt policy stops it, 130 on SIGINT or SIGTERM with everything written), resuming, and bad
// images in an ImageFolder tree.
#include <gtest/gtest.h>

#include <png.h>

#include <csignal>
#include <filesystem>
#include <thread>

#include "support/cli.h"
#include "support/temp_dir.h"

namespace hookrt::testing {
namespace {

// A small, quick run: generated shapes at 32x32, 5 classes, batch 4.
std::vector<std::string> small_run(const std::string& out, int64_t steps) {
  return {"train", "--steps", std::to_string(steps), "--batch", "4", "--size", "32", "--images", "32", "--classes", "5",
          "--workers", "1", "--out", out};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<nlohmann::ordered_json> events(const std::string& dir, const std::string& kind) {
  std::vector<nlohmann::ordered_json> found;
  for (const auto& event : parse_jsonl(read_text(dir + "/events.jsonl")))
    if (event["event"] == kind) found.push_back(event);
  return found;
}

TEST(CliTrain, ARunWritesItsFilesAndSaysWhereTheReportIs) {
  TempDir dir;
  const ProcessResult r = hookrt_cli(small_run(dir.path().string(), 3));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "report: " + dir.file("report.html"))) << r.out;
  EXPECT_TRUE(contains(r.err, "3/3 steps")) << r.err;  // plain progress lines when not a terminal
  for (const char* name : {"stats.jsonl", "events.jsonl", "layers.csv", "report.html", "checkpoint.safetensors"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(name))) << name;
}

// On a terminal the progress is one bar redrawn in place; `script` gives the run a terminal.
TEST(CliTrain, OnATerminalProgressIsABarRedrawnInPlace) {
  if (!std::filesystem::exists("/usr/bin/script")) GTEST_SKIP() << "util-linux's script (to give a run a terminal) is missing";
  TempDir dir;
  std::string command;
  for (const std::string& arg : with({HOOKRT_CLI_PATH}, small_run(dir.path().string(), 3))) command += "'" + arg + "' ";
  const ProcessResult r = run_process({"/usr/bin/script", "-qfec", command, "/dev/null"}, kCliTimeout);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "\r\033[K[")) << "no in-place redraw: " << r.out;
  EXPECT_TRUE(contains(r.out, "[########################] 3/3 steps")) << r.out;
  EXPECT_TRUE(contains(r.out, "ETA")) << r.out;
}

TEST(CliTrain, TheHaltPolicyStopsWithExitThreeAfterWritingEverything) {
  TempDir dir;
  const ProcessResult r = hookrt_cli(with(small_run(dir.path().string(), 20),
                                          {"--lr", "0.02", "--lr-spike", "5:2000", "--policy", "halt", "--explosion-factor",
                                           "4", "--explosion-min-history", "3"}));
  ASSERT_EQ(r.exit_code, 3) << r.describe();
  ASSERT_EQ(events(dir.path().string(), "halt").size(), 1u) << read_text(dir.file("events.jsonl"));
  EXPECT_FALSE(events(dir.path().string(), "checkpoint").empty());
  EXPECT_TRUE(contains(read_text(dir.file("report.html")), "</html>"));
  EXPECT_TRUE(contains(r.out, "First flagged layer")) << r.out;
}

// The step of the last complete line of a JSON-lines file being written (its last line may be
// partial while the writer runs); -1 before the first.
int64_t last_complete_step(const std::string& text) {
  const size_t end = text.rfind('\n');
  if (end == std::string::npos) return -1;
  const size_t begin = text.rfind('\n', end - 1);
  const auto lines = parse_jsonl(text.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1)));
  return lines.empty() ? -1 : lines.back()["step"].get<int64_t>();
}

void interrupt_mid_run(int signal_number) {
  TempDir dir;
  ChildProcess child(with({HOOKRT_CLI_PATH}, small_run(dir.path().string(), 100000)));
  // Wait until a few steps are on disk, then interrupt.
  const auto deadline = std::chrono::steady_clock::now() + kCliTimeout;
  while (last_complete_step(read_text(dir.file("stats.jsonl"))) < 2) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no progress";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  child.send_signal(signal_number);
  const ProcessResult r = child.wait(kCliTimeout);
  ASSERT_EQ(r.exit_code, 130) << r.describe();
  const auto records = parse_jsonl(read_text(dir.file("stats.jsonl")));  // every line whole
  const int64_t last_step = records.back()["step"].get<int64_t>();
  ASSERT_EQ(events(dir.path().string(), "interrupt").size(), 1u);
  EXPECT_EQ(events(dir.path().string(), "interrupt")[0]["step"].get<int64_t>(), last_step + 1);
  EXPECT_TRUE(contains(read_text(dir.file("report.html")), "</html>"));
  EXPECT_TRUE(std::filesystem::exists(dir.file("checkpoint.safetensors")));
}

TEST(CliTrain, SigintFlushesWritesTheReportAndExits130) { interrupt_mid_run(SIGINT); }
TEST(CliTrain, SigtermFlushesWritesTheReportAndExits130) { interrupt_mid_run(SIGTERM); }

TEST(CliTrain, AResumedRunContinuesFromItsCheckpoint) {
  TempDir first, second;
  ASSERT_EQ(hookrt_cli(small_run(first.path().string(), 2)).exit_code, 0);
  const ProcessResult r =
      hookrt_cli(with(small_run(second.path().string(), 4), {"--resume", first.file("checkpoint.safetensors")}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto records = parse_jsonl(read_text(second.file("stats.jsonl")));
  EXPECT_EQ(records.front()["step"], 2);
  EXPECT_EQ(records.back()["step"], 3);
  // A different batch size cannot continue the same run.
  std::vector<std::string> other = small_run(second.path().string(), 6);
  other[4] = "8";
  const ProcessResult bad = hookrt_cli(with(other, {"--resume", second.file("checkpoint.safetensors")}));
  EXPECT_EQ(bad.exit_code, 2) << bad.describe();
  EXPECT_TRUE(contains(bad.err, "batch")) << bad.err;
}

// fp16 training scales its loss: a scale too large for F16 overflows every step, which the scaler
// skips and logs (not a flag) until --max-skips overflows in a row, when the policy gets them; the
// checkpoint keeps the scale a resumed run goes on with.
TEST(CliTrain, Fp16OverflowsAreTheLossScalersAndItsScaleIsCheckpointed) {
  TempDir first, second;
  const ProcessResult r = hookrt_cli(
      with(small_run(first.path().string(), 4), {"--precision", "fp16", "--loss-scale", "1e30", "--max-skips", "2", "--quiet"}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto overflows = events(first.path().string(), "loss_scale");
  ASSERT_EQ(overflows.size(), 4u) << read_text(first.file("events.jsonl"));
  EXPECT_EQ(overflows[0]["step"], 0);
  EXPECT_EQ(overflows[0]["next_scale"], overflows[0]["scale"]) << "a static scale stays";
  const auto warnings = events(first.path().string(), "warn");
  ASSERT_FALSE(warnings.empty()) << "overflows past --max-skips are flagged";
  EXPECT_EQ(warnings.front()["step"], 2) << "the first two are the scaler's";
  const std::string header = read_text(first.file("checkpoint.safetensors")).substr(0, 4096);
  EXPECT_TRUE(contains(header, "hookrt.grad_scaler.scale")) << header;

  const ProcessResult dynamic = hookrt_cli(with(small_run(second.path().string(), 3), {"--precision", "fp16", "--quiet"}));
  ASSERT_EQ(dynamic.exit_code, 0) << dynamic.describe();
  EXPECT_TRUE(contains(read_text(second.file("checkpoint.safetensors")).substr(0, 4096), "hookrt.grad_scaler.growth_tracker"));
}

// Epochs count full batches of the data; a hook config adds its records to the profiler's.
TEST(CliTrain, EpochsAndAHookConfig) {
  TempDir dir;
  write_text(dir.file("hooks.yaml"), R"(
fc_histogram:
  layers: {layer_names: [fc]}
  hookrt:
    Hist: {when: forward, probes: ['hist=8:-4:4'], freq: 2}
)");
  const ProcessResult r = hookrt_cli({"train", "--epochs", "2", "--batch", "8", "--size", "32", "--images", "24", "--classes",
                                      "5", "--workers", "1", "--hook-config", dir.file("hooks.yaml"), "--out",
                                      dir.file("out"), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto records = parse_jsonl(read_text(dir.file("out/stats.jsonl")));
  EXPECT_EQ(records.back()["step"], 5);  // 2 epochs x 3 batches of 8
  std::vector<int64_t> hist_steps;
  for (const auto& record : records)
    if (record.contains("hist")) hist_steps.push_back(record["step"].get<int64_t>());
  EXPECT_EQ(hist_steps, (std::vector<int64_t>{0, 2, 4}));
}

TEST(CliTrain, BadUsageAndInputExitTwoNamingWhatIsWrong) {
  TempDir dir;
  const std::string out = dir.path().string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {with(small_run(out, 2), {"--policy", "explode"}), "--policy"},
      {with(small_run(out, 2), {"--data", dir.file("missing")}), "missing"},
      {with(small_run(out, 2), {"--hook-config", dir.file("none.yaml")}), "none.yaml"},
      {with(small_run(out, 2), {"--hook", "forward:nothing.here:stats"}), "nothing.here"},
      {with(small_run(out, 2), {"--lr-spike", "x"}), "--lr-spike"},
      {with(small_run(out, 2), {"--epochs", "1"}), "--epochs"},
      {{"train", "--batch", "64", "--images", "32", "--out", out}, "--batch"},
  };
  for (const auto& [args, part] : cases) {
    const ProcessResult r = hookrt_cli(args);
    EXPECT_EQ(r.exit_code, 2) << part << ": " << r.describe();
    EXPECT_TRUE(contains(r.err, part)) << part << ": " << r.err;
  }
}

// A 16x16 RGB PNG of one colour.
void write_png(const std::string& path, uint8_t r, uint8_t g, uint8_t b) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  png_set_IHDR(png, info, 16, 16, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<uint8_t> row(16 * 3);
  for (int x = 0; x < 16; ++x) row[3 * x] = r, row[3 * x + 1] = g, row[3 * x + 2] = b;
  for (int y = 0; y < 16; ++y) png_write_row(png, row.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

TEST(CliTrain, ABadImageStopsTheRunByNameUnlessAskedToSkipIt) {
  TempDir dir;
  const std::filesystem::path root = dir.path() / "images";
  for (const char* cls : {"cat", "dog"}) {
    std::filesystem::create_directories(root / cls);
    for (int i = 0; i < 4; ++i) write_png((root / cls / ("img" + std::to_string(i) + ".png")).string(), 40 * i, 200, 10);
  }
  write_text((root / "dog" / "broken.jpg").string(), "not a jpeg at all");
  const std::vector<std::string> args = {"train", "--data", root.string(), "--size", "16", "--batch", "3", "--steps", "4",
                                         "--workers", "1", "--out", (dir.path() / "out").string()};
  const ProcessResult stops = hookrt_cli(args);
  EXPECT_EQ(stops.exit_code, 2) << stops.describe();
  EXPECT_TRUE(contains(stops.err, "broken.jpg")) << stops.err;
  // A run stopped by an error still leaves its records and the report of the steps it made.
  EXPECT_TRUE(contains(read_text((dir.path() / "out" / "report.html").string()), "</html>"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "out" / "stats.jsonl"));
  const ProcessResult skips = hookrt_cli(with(args, {"--skip-bad-images"}));
  ASSERT_EQ(skips.exit_code, 0) << skips.describe();
  const auto skipped = events((dir.path() / "out").string(), "skipped_images");
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0]["count"], 1);
}

}  // namespace
}  // namespace hookrt::testing
