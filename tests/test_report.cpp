// The training report (hookrt/report.h): the HTML page's structure (one chart per id, one heatmap
// row per layer, markers, escaping, no external resources, binning, non-finite values, empty
// data), the per-layer CSV, the chart building blocks, and the page as Chromium renders it.
#include <gtest/gtest.h>

#include <png.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "hookrt/error.h"
#include "hookrt/report.h"
#include "support/cli.h"
#include "support/run_process.h"
#include "support/temp_dir.h"

namespace hookrt::report {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
const std::string kEvilName = "evil<&\">'name";
const std::string kEvilEscaped = "evil&lt;&amp;&quot;&gt;&#39;name";

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size()))
    ++n;
  return n;
}

// The text between the first `from` and the next `to` after it ("" when either is missing).
std::string between(const std::string& text, const std::string& from, const std::string& to) {
  const size_t begin = text.find(from);
  if (begin == std::string::npos) return "";
  const size_t end = text.find(to, begin + from.size());
  return end == std::string::npos ? "" : text.substr(begin, end - begin);
}

// A deterministic run: `steps` steps from 1, `layers` layers in backward order (the second one
// with a name that needs escaping), a loss that goes NaN then +inf at steps 30 and 31, one
// non-finite gradient (layer 0, step 31), five unobserved steps on layer 1, an explosion and a
// non-finite marker, a clip and a halt event.
ReportData sample_report(size_t steps = 50, size_t layers = 3) {
  ReportData data;
  data.title = "resnet18 <run> & co";
  data.run_info = {{"device", "cpu"}, {"lr", "0.1"}, {"batch", "8"}};
  data.verdict = "first explosion: layer4.1.conv2 at step 20 <b>bold</b> & co";
  for (size_t i = 0; i < steps; ++i) {
    data.steps.push_back(static_cast<int64_t>(i + 1));
    data.loss.push_back(2.3 * std::exp(-static_cast<double>(i) / 40.0) + 0.1);
    data.lr.push_back(i < steps / 2 ? 0.1 : 0.01);
  }
  if (steps > 30) {
    data.loss[29] = kNaN;
    data.loss[30] = kInf;
  }
  for (size_t r = 0; r < layers; ++r) {
    LayerRow row;
    row.layer = r == 0   ? "layer4.1.conv2"
                : r == 1 ? kEvilName
                : r == 2 ? "fc"
                         : "layer" + std::to_string(r) + ".conv";
    row.kind = r == 2 ? "Linear" : "Conv2d";
    for (size_t i = 0; i < steps; ++i) {
      const double x = static_cast<double>(i);
      row.grad_norm.push_back(std::pow(10.0, static_cast<double>(r % 5) - 2.0) *
                              (1.5 + std::sin(0.3 * x + static_cast<double>(r))) *
                              std::exp(0.02 * x));
    }
    row.act_mean = 0.1 * static_cast<double>(r) - 0.15;
    row.act_std = 0.5 + 0.1 * static_cast<double>(r);
    row.zero_fraction = 0.1 * static_cast<double>(r % 10);
    row.channels = 64;
    row.dead_channels = static_cast<int64_t>(r * 3 % 64);
    row.grad_last = row.grad_norm.empty() ? kNaN : row.grad_norm.back();
    data.layers.push_back(row);
  }
  if (layers > 0 && steps > 30) data.layers[0].grad_norm[30] = kInf;
  if (layers > 1 && steps > 15)
    for (size_t i = 10; i < 15; ++i) data.layers[1].grad_norm[i] = kNaN;
  data.markers = {{20, "layer4.1.conv2", "explosion", "grad norm 812x its median"},
                  {31, "layer4.1.conv2", "nonfinite", "inf in grad_output"}};
  data.events = {{20, "clip", "clipped layer4.1.conv2 to norm 1.0"},
                 {45, "halt", "halted: non-finite loss"}};
  data.halted = true;
  return data;
}

// ---- The HTML page ----------------------------------------------------------------------------

TEST(ReportHtml, HasEveryChartOnceByIdInACompletePage) {
  const std::string html = render_html(sample_report());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  for (const char* id : {"loss-chart", "grad-heatmap", "activations", "dead-channels"})
    EXPECT_EQ(count(html, "<svg id=\"" + std::string(id) + "\""), 1u) << id;
  EXPECT_EQ(count(html, "<svg "), count(html, "</svg>"));
  EXPECT_NE(html.find("class=\"chart heatmap\""), std::string::npos);
  EXPECT_NE(html.find("class=\"status status-halted\""), std::string::npos);
}

TEST(ReportHtml, HeatmapHasOneRowGroupPerLayerAndOneCellPerObservedStep) {
  const ReportData data = sample_report(50, 7);
  const std::string html = render_html(data);
  EXPECT_EQ(count(html, "<g class=\"heatmap-row\""), data.layers.size());
  size_t observed = 0;
  for (const LayerRow& row : data.layers)
    for (const double v : row.grad_norm) observed += std::isnan(v) ? 0 : 1;
  EXPECT_EQ(count(html, "<rect class=\"cell"), observed) << "one cell per non-NaN step";
  EXPECT_NE(html.find("data-layer=\"layer4.1.conv2\""), std::string::npos);
  EXPECT_NE(html.find("<path class=\"loss-line\""), std::string::npos);
  EXPECT_NE(html.find("<path class=\"lr-line\""), std::string::npos);
}

TEST(ReportHtml, DrawsEveryMarkerInTheStripAndOnItsCell) {
  const std::string html = render_html(sample_report());
  const std::string markers = between(html, "<g class=\"markers\">", "<g class=\"axis x-axis\">");
  ASSERT_FALSE(markers.empty());
  EXPECT_EQ(count(markers, "<g class=\"marker marker-explosion\">"), 1u);
  EXPECT_EQ(count(markers, "<g class=\"marker marker-nonfinite\">"), 1u);
  EXPECT_EQ(count(markers, "class=\"marker-ring\""), 2u) << "both markers name a drawn layer";
  EXPECT_NE(markers.find("grad norm 812x its median"), std::string::npos);
  // An event tick per event, the halt as a line across the chart.
  EXPECT_EQ(count(html, "<g class=\"event-tick\">"), 2u);
  EXPECT_EQ(count(html, "class=\"stop-line\""), 1u);
}

TEST(ReportHtml, EscapesLayerNamesAndAllText) {
  const std::string html = render_html(sample_report());
  EXPECT_EQ(html.find(kEvilName), std::string::npos) << "the raw name must never appear";
  EXPECT_GE(count(html, kEvilEscaped), 3u) << "row data, label and tooltips";
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;bold&lt;/b&gt; &amp; co"), std::string::npos);
  EXPECT_NE(html.find("<title>resnet18 &lt;run&gt; &amp; co</title>"), std::string::npos);
}

TEST(ReportHtml, NeedsNoExternalResources) {
  const std::string html = render_html(sample_report());
  for (const char* forbidden : {"http", "src=", "href=", "<script", "url(", "@import", "<link"})
    EXPECT_EQ(html.find(forbidden), std::string::npos) << forbidden;
}

TEST(ReportHtml, BinsStepsBeyond400ColumnsKeepingTheMaxAndNonFinite) {
  ReportData data;
  LayerRow row;
  row.layer = "layer1.0.conv1";
  for (int i = 0; i < 1000; ++i) {
    data.steps.push_back(i + 1);
    data.loss.push_back(1.0);
    row.grad_norm.push_back(1.0);
  }
  row.grad_norm[517] = 1e6;  // index 517 is in column 207, steps 518..520
  row.grad_norm[803] = kInf;
  row.grad_norm[804] = 2.0;  // same column as the inf: the inf wins
  data.layers.push_back(row);
  const std::string html = render_html(data);
  EXPECT_EQ(count(html, "<rect class=\"cell"), kMaxHeatmapColumns);
  EXPECT_EQ(count(html, "<rect class=\"cell cell-nonfinite\""), 1u);
  EXPECT_NE(html.find("steps 518\u2013520: max 1e+06"), std::string::npos);
  EXPECT_NE(html.find("binned into 400 columns"), std::string::npos);
}

TEST(ReportHtml, DrawsNonFiniteLossAsAGapWithMarkers) {
  const std::string html = render_html(sample_report());
  const std::string path = between(html, "<path class=\"loss-line\" d=\"", "\"/>");
  ASSERT_FALSE(path.empty());
  EXPECT_EQ(count(path, "M"), 2u) << "the NaN and inf at steps 30-31 split the line in two";
  EXPECT_EQ(count(html, "class=\"nonfinite-marker\""), 2u);
  EXPECT_EQ(count(html, "<rect class=\"cell cell-nonfinite\""), 1u);
  for (const char* leak : {"=\"nan", "=\"-nan", "=\"inf", "=\"-inf"})
    EXPECT_EQ(html.find(leak), std::string::npos) << leak << " must not reach a coordinate";
}

TEST(ReportHtml, SaysSoWhenTheLossWasNeverFinite) {
  ReportData data = sample_report(10, 2);
  for (double& loss : data.loss) loss = kNaN;
  const std::string html = render_html(data);
  EXPECT_NE(html.find("the loss was never finite"), std::string::npos);
  EXPECT_EQ(html.find("<path class=\"loss-line\""), std::string::npos);
}

TEST(ReportHtml, RendersAValidPageForEmptyData) {
  const std::string html = render_html(ReportData{});
  for (const char* id : {"loss-chart", "grad-heatmap", "activations", "dead-channels"})
    EXPECT_EQ(count(html, "<svg id=\"" + std::string(id) + "\""), 1u) << id;
  EXPECT_EQ(count(html, "<svg "), count(html, "</svg>"));
  EXPECT_NE(html.find("No steps recorded"), std::string::npos);
  EXPECT_NE(html.find("No layers observed"), std::string::npos);
  EXPECT_NE(html.find("No events."), std::string::npos);
  EXPECT_NE(html.find("status-completed"), std::string::npos);
  // Layers but no steps, and steps with shorter per-step vectors, render too.
  ReportData layers_only;
  layers_only.layers.push_back(LayerRow{.layer = "fc", .kind = "Linear"});
  EXPECT_NE(render_html(layers_only).find("No steps recorded"), std::string::npos);
  ReportData short_vectors = sample_report(20, 2);
  short_vectors.loss.resize(5);
  short_vectors.layers[0].grad_norm.resize(3);
  EXPECT_EQ(count(render_html(short_vectors), "<g class=\"heatmap-row\""), 2u);
}

TEST(ReportHtml, EventsTableListsEventsInOrderUpToItsLimit) {
  ReportData data;
  for (int i = 0; i < 2500; ++i) data.events.push_back({i, "Clip!", "clip " + std::to_string(i)});
  const std::string html = render_html(data);
  EXPECT_EQ(count(html, "<tr><td class=\"step\">"), 2000u);
  EXPECT_LT(html.find(">clip 0<"), html.find(">clip 1<"));
  EXPECT_NE(html.find("and 500 more events not listed"), std::string::npos);
  EXPECT_NE(html.find("class=\"badge kind-clip-\""), std::string::npos) << "kind as a class name";
}

TEST(ReportHtml, WriteHtmlReplacesTheFileAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("report.html");
  testing::write_text(path, "old");
  const ReportData data = sample_report();
  write_html(path, data);
  EXPECT_EQ(testing::read_text(path), render_html(data));
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) files += entry.is_regular_file();
  EXPECT_EQ(files, 1u) << "no temporary file left beside the report";
}

TEST(ReportHtml, WriteFailureIsAnErrorNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("missing-folder/report.html");
  try {
    write_html(path, sample_report());
    FAIL() << "writing into a missing folder must fail";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
}

// ---- The CSV ----------------------------------------------------------------------------------

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

TEST(ReportCsv, HasTheHeaderAndOneLinePerLayerInOrder) {
  ReportData data;
  LayerRow row{.layer = "layer4.1.conv2", .kind = "Conv2d"};
  row.act_mean = 0.25;
  row.act_std = 1.5;
  row.zero_fraction = 0.5;
  row.dead_channels = 3;
  row.channels = 512;
  row.grad_last = 0.1;
  row.grad_median = 2e-7;
  row.grad_max = 1234.5;
  row.mean_ratio = 3;
  row.flags = 2;
  row.nonfinite_steps = 1;
  data.layers = {row, LayerRow{.layer = "fc", .kind = "Linear"}};
  const auto lines = lines_of(render_layer_csv(data));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            "layer,kind,grad_last,grad_median,grad_max,mean_ratio,flags,nonfinite_steps,act_mean,"
            "act_std,zero_fraction,dead_channels,channels");
  EXPECT_EQ(lines[1], "layer4.1.conv2,Conv2d,0.1,2e-07,1234.5,3,2,1,0.25,1.5,0.5,3,512");
  EXPECT_EQ(lines[2], "fc,Linear,,,,,0,0,,,,,") << "NaN and -1 are empty fields";
}

TEST(ReportCsv, QuotesFieldsAsRfc4180) {
  ReportData data;
  data.layers = {LayerRow{.layer = "a,b \"c\"", .kind = "two\nlines"},
                 LayerRow{.layer = kEvilName, .kind = "plain"}};
  const std::string csv = render_layer_csv(data);
  EXPECT_NE(csv.find("\n\"a,b \"\"c\"\"\",\"two\nlines\",,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\n\"evil<&\"\">'name\",plain,"), std::string::npos) << csv;
}

TEST(ReportCsv, WritesInfinitiesAndShortestRoundTripNumbers) {
  ReportData data;
  LayerRow row{.layer = "x", .kind = "ReLU"};
  row.grad_last = kInf;
  row.grad_median = -kInf;
  row.grad_max = 0.1 + 0.2;  // 0.30000000000000004: all 17 digits are needed to read it back
  data.layers = {row};
  const auto lines = lines_of(render_layer_csv(data));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "x,ReLU,inf,-inf,0.30000000000000004,,0,0,,,,,");
}

TEST(ReportCsv, WriteLayerCsvWritesTheFileOrNamesThePath) {
  TempDir dir;
  const ReportData data = sample_report();
  write_layer_csv(dir.file("layers.csv"), data);
  EXPECT_EQ(testing::read_text(dir.file("layers.csv")), render_layer_csv(data));
  const std::string bad = dir.file("no/such/layers.csv");
  try {
    write_layer_csv(bad, data);
    FAIL() << "writing into a missing folder must fail";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(bad), std::string::npos) << error.what();
  }
}

// ---- Building blocks --------------------------------------------------------------------------

TEST(ReportChart, ColumnRangesCoverEveryStepInOrder) {
  EXPECT_TRUE(chart::column_ranges(0).empty());
  const auto small = chart::column_ranges(7);
  ASSERT_EQ(small.size(), 7u);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(small[i], std::make_pair(i, i + 1));
  const auto large = chart::column_ranges(1000);
  ASSERT_EQ(large.size(), 400u);
  size_t next = 0;
  for (const auto& [begin, end] : large) {
    EXPECT_EQ(begin, next);
    EXPECT_TRUE(end - begin == 2 || end - begin == 3) << begin << ".." << end;
    next = end;
  }
  EXPECT_EQ(next, 1000u);
}

TEST(ReportChart, BinMaxLetsNonFiniteWinAndNaNMeanNothingObserved) {
  EXPECT_EQ(chart::bin_max({1, kNaN, 3, 2}, 0, 4), 3);
  EXPECT_TRUE(std::isnan(chart::bin_max({kNaN, kNaN}, 0, 2)));
  EXPECT_EQ(chart::bin_max({1, kInf, kNaN}, 0, 3), kInf);
  EXPECT_EQ(chart::bin_max({-kInf, 2}, 0, 2), kInf) << "any infinity is non-finite";
  EXPECT_EQ(chart::bin_max({5, 1, 2}, 1, 3), 2) << "only the bin's own range";
  EXPECT_TRUE(std::isnan(chart::bin_max({1}, 3, 5))) << "past the end: not observed";
}

TEST(ReportChart, ColormapRunsFromDarkPurpleToYellowAndClamps) {
  EXPECT_EQ(chart::colormap(0), (chart::Rgb{68, 1, 84}));
  EXPECT_EQ(chart::colormap(1), (chart::Rgb{253, 231, 37}));
  EXPECT_EQ(chart::colormap(-3), chart::colormap(0));
  EXPECT_EQ(chart::colormap(7), chart::colormap(1));
  EXPECT_EQ(chart::colormap(kNaN), chart::colormap(0));
  EXPECT_EQ(chart::hex(chart::colormap(1)), "#fde725");
  // Brightness rises along the map, so low and high norms read apart in grey too.
  double previous = -1;
  for (int i = 0; i <= 20; ++i) {
    const chart::Rgb c = chart::colormap(i / 20.0);
    const double luma = 0.299 * c.r + 0.587 * c.g + 0.114 * c.b;
    EXPECT_GT(luma, previous) << "t=" << i / 20.0;
    previous = luma;
  }
}

TEST(ReportChart, TextHelpersEscapeShortenAndFormat) {
  EXPECT_EQ(chart::escape(kEvilName), kEvilEscaped);
  EXPECT_EQ(chart::shorten("layer4.1.conv2", 32), "layer4.1.conv2");
  EXPECT_EQ(chart::shorten("abcdef", 4), "abc\u2026");
  EXPECT_EQ(chart::shorten("\u00e9\u00e9\u00e9\u00e9\u00e9", 3), "\u00e9\u00e9\u2026")
      << "never cuts inside a UTF-8 character";
  EXPECT_EQ(chart::format_number(0.001), "0.001");
  EXPECT_EQ(chart::format_number(320000), "3.2e+05");
  EXPECT_EQ(chart::format_number(-0.0), "0");
  EXPECT_EQ(chart::format_number(kNaN), "nan");
  EXPECT_EQ(chart::format_number(-kInf), "-inf");
  EXPECT_EQ(chart::coord(12.04), "12");
  EXPECT_EQ(chart::coord(-0.01), "0");
  EXPECT_EQ(chart::coord(3.25), "3.3");
}

TEST(ReportChart, LinearTicksAreRoundNumbersInsideTheRange) {
  const auto unit = chart::linear_ticks(0, 1, 5);
  ASSERT_EQ(unit.size(), 6u);
  for (size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * i, 1e-12);
  EXPECT_EQ(chart::linear_ticks(3, 3), std::vector<double>{3});
  const auto ticks = chart::linear_ticks(1, 1000, 8);
  ASSERT_FALSE(ticks.empty());
  EXPECT_GE(ticks.front(), 1);
  EXPECT_LE(ticks.back(), 1000);
  EXPECT_TRUE(chart::linear_ticks(0, kInf).empty());
}

// ---- The page in a browser --------------------------------------------------------------------

// /usr/bin/chromium, else the first `chromium` or `chromium-browser` on PATH; "" when none.
std::string find_chromium() {
  if (::access("/usr/bin/chromium", X_OK) == 0) return "/usr/bin/chromium";
  const char* path = std::getenv("PATH");
  std::istringstream folders(path ? path : "");
  for (std::string folder; std::getline(folders, folder, ':');)
    for (const char* name : {"chromium", "chromium-browser"}) {
      const std::string candidate = folder + "/" + name;
      if (!folder.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  return "";
}

struct Pixels {
  size_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // (height, width, 3)
};

Pixels read_png(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str()))
    throw std::runtime_error("cannot read PNG '" + path + "': " + image.message);
  image.format = PNG_FORMAT_RGB;
  Pixels pixels;
  pixels.width = image.width;
  pixels.height = image.height;
  pixels.rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, pixels.rgb.data(), 0, nullptr))
    throw std::runtime_error("cannot decode PNG '" + path + "': " + image.message);
  return pixels;
}

std::vector<std::string> chromium_args(const std::string& chromium, const TempDir& profile) {
  return {chromium,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--hide-scrollbars",
          "--no-first-run",
          "--user-data-dir=" + profile.file("profile")};
}

// Headless Chromium is slow to start on a loaded machine; this only guards against a hang.
constexpr std::chrono::seconds kBrowserTimeout{120};

TEST(ReportBrowser, ChromiumRendersTheChartsAsPixels) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium not installed (/usr/bin/chromium or on PATH)";
  TempDir dir;
  const std::string page = dir.file("report.html");
  write_html(page, sample_report(120, 20));
  const std::string screenshot = dir.file("report.png");
  auto args = chromium_args(chromium, dir);
  args.push_back("--screenshot=" + screenshot);
  args.push_back("--window-size=1200,2000");
  args.push_back("file://" + page);
  const testing::ProcessResult run = testing::run_process(args, kBrowserTimeout);
  ASSERT_TRUE(!run.timed_out && fs::exists(screenshot)) << run.describe();

  const Pixels pixels = read_png(screenshot);
  ASSERT_EQ(pixels.width, 1200u);
  ASSERT_EQ(pixels.height, 2000u);
  std::set<uint32_t> colours;
  size_t ink = 0;
  for (size_t i = 0; i + 2 < pixels.rgb.size(); i += 3) {
    const uint8_t r = pixels.rgb[i], g = pixels.rgb[i + 1], b = pixels.rgb[i + 2];
    colours.insert(uint32_t{r} << 16 | uint32_t{g} << 8 | b);
    ink += (r < 235 || g < 235 || b < 235) ? 1 : 0;
  }
  // A heatmap of 20 x 120 viridis cells alone gives hundreds of colours; a blank or
  // unstyled page gives a handful.
  EXPECT_GE(colours.size(), 200u);
  EXPECT_GE(ink, pixels.width * pixels.height / 20) << "at least 5% of the page is drawn";
}

TEST(ReportBrowser, ChromiumSeesTheSvgElements) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium not installed (/usr/bin/chromium or on PATH)";
  TempDir dir;
  const std::string page = dir.file("report.html");
  write_html(page, sample_report());
  auto args = chromium_args(chromium, dir);
  args.push_back("--dump-dom");
  args.push_back("file://" + page);
  const testing::ProcessResult run = testing::run_process(args, kBrowserTimeout);
  ASSERT_FALSE(run.timed_out) << run.describe();
  const std::string& dom = run.out;
  for (const char* id : {"loss-chart", "grad-heatmap", "activations", "dead-channels"})
    EXPECT_NE(dom.find("<svg id=\"" + std::string(id) + "\""), std::string::npos) << id;
  EXPECT_NE(dom.find("<rect class=\"cell\""), std::string::npos);
  EXPECT_NE(dom.find("<path class=\"loss-line\""), std::string::npos);
  EXPECT_EQ(count(dom, "<g class=\"heatmap-row\""), 3u);
  // Serialized text keeps the name as text: `<`, `>`, `&` as references, quotes as they are.
  EXPECT_NE(dom.find("evil&lt;&amp;\"&gt;'name"), std::string::npos);
}

}  // namespace
}  // namespace hookrt::report
