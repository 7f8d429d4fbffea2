#pragma once
// The training report: what `hookrt train` leaves behind when it ends, is halted or is
// interrupted. The trainer fills a ReportData; write_html turns it into one self-contained page
// (inline SVG, no scripts, no external resources) and write_layer_csv into one CSV line per layer.
// Both writers are pure functions of the data: the same ReportData always gives the same bytes.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hookrt::report {

// The value of every statistic that was never observed (NaN).
inline constexpr double kNotObserved = std::numeric_limits<double>::quiet_NaN();

// A point of interest on the heatmap: where (layer) and when (step) a gradient exploded or went
// non-finite. Drawn over the layer's cell and in the marker strip above the heatmap.
struct Marker {
  int64_t step = 0;
  std::string layer;
  std::string kind;  // "explosion" | "nonfinite"
  std::string text;  // the tooltip: "grad norm 3.1e+05, 812x its running median"
};

// Something the training policy did or saw, listed in the events table and ticked on the loss
// chart's step axis.
struct Event {
  int64_t step = 0;
  std::string kind;  // "flag", "warn", "clip", "skip", "halt", "lr", "interrupt", ...
  std::string text;
};

// One layer: a heatmap row and a CSV line. Rows are given (and drawn) in backward order.
struct LayerRow {
  std::string layer;  // "layer4.1.conv2", "layer1.0.relu#1", "fc"
  std::string kind;   // "Conv2d", ...
  // Gradient norm per report step, aligned with ReportData::steps: NaN = not observed,
  // +inf (or -inf) = non-finite. A shorter vector leaves the later steps not observed.
  std::vector<double> grad_norm;
  // Activation statistics of the last observed forward output; NaN when not observed.
  double act_mean = kNotObserved, act_std = kNotObserved, zero_fraction = kNotObserved;
  int64_t dead_channels = -1, channels = -1;  // -1: not observed
  // Gradient summary for the CSV; NaN when not observed.
  double grad_last = kNotObserved, grad_median = kNotObserved, grad_max = kNotObserved;
  double mean_ratio = kNotObserved;  // mean gradient norm over the run's median, a drift measure
  int64_t flags = 0, nonfinite_steps = 0;
};

// Everything one report shows. Per-step vectors (loss, lr, LayerRow::grad_norm) are aligned with
// `steps`; values past its end are ignored and missing ones count as not observed, so a run cut
// short still gets its report.
struct ReportData {
  std::string title = "hookrt train";
  std::vector<std::pair<std::string, std::string>> run_info;  // "device" -> "cpu", "lr" -> ...
  std::vector<int64_t> steps;  // the steps reported (x axis), ascending
  std::vector<double> loss;    // per step; NaN/inf are drawn as a gap and a marker
  std::vector<double> lr;      // per step
  std::vector<LayerRow> layers;
  std::vector<Marker> markers;  // explosion / non-finite markers on the heatmap
  std::vector<Event> events;    // policy actions, shown as a table
  std::string verdict;          // one paragraph: "first explosion: layer3.1.conv2 at step 41 ..."
  bool interrupted = false, halted = false;
};

// The heatmap shows at most this many step columns; longer runs are binned.
inline constexpr size_t kMaxHeatmapColumns = 400;

// The page (see write_html) as a string.
std::string render_html(const ReportData& data);

// Writes a self-contained HTML page (no external resources, no scripts needed to see the plots):
// header with verdict and run info; loss curve with the learning rate as a small chart below it;
// per-layer gradient-norm heatmap, layers x steps, log-scale colour with a legend, explosion and
// non-finite markers; activation mean/std and zero fraction per layer (bar charts); dead-channel
// counts; events table. Steps beyond kMaxHeatmapColumns are binned (max per bin; a non-finite
// value wins its bin). Layer names and all text are HTML-escaped. Each chart is an <svg> with an
// id: loss-chart, grad-heatmap, activations, dead-channels. Writes to a temporary file beside
// `path` and renames it, so a reader never sees half a file; throws Error naming `path` on failure.
void write_html(const std::string& path, const ReportData& data);

// The CSV (see write_layer_csv) as a string.
std::string render_layer_csv(const ReportData& data);

// CSV, a header then one line per layer: layer,kind,grad_last,grad_median,grad_max,mean_ratio,
// flags,nonfinite_steps,act_mean,act_std,zero_fraction,dead_channels,channels. An empty field for
// NaN and -1 (not observed), `inf`/`-inf` for infinities, numbers in their shortest round-trip
// form, RFC 4180 quoting (fields with a comma, quote or line break are quoted, quotes doubled).
// Written atomically like write_html; throws Error naming `path` on failure.
void write_layer_csv(const std::string& path, const ReportData& data);

// Each chart as the one <svg> element the page embeds (for other pages that want a single chart).
std::string loss_chart_svg(const ReportData& data);     // id loss-chart, with the lr strip
std::string heatmap_svg(const ReportData& data);        // id grad-heatmap, with its legend
std::string activations_svg(const ReportData& data);    // id activations: mean, std, zeros
std::string dead_channels_svg(const ReportData& data);  // id dead-channels

// ---- Chart building blocks (report_svg.cpp), shared by the writers and checked by the tests ----
namespace chart {

// `<`, `>`, `&`, `"` and `'` as character references; everything else unchanged.
std::string escape(std::string_view text);
// At most `max_chars` characters (UTF-8 code points) of text, "…" replacing the rest.
std::string shorten(std::string_view text, size_t max_chars);

// An SVG coordinate: one decimal at most ("12.5", "40"), small enough for pages of many cells.
std::string coord(double value);
// The opening tag of a chart: `<svg id=.. class="chart {css_class}" viewBox="0 0 W H" ...>`;
// the viewBox scales the chart to the page's width.
std::string svg_open(std::string_view id, std::string_view css_class, double width, double height,
                     std::string_view label);
// A complete small chart that only says `message` (no data to draw).
std::string message_svg(std::string_view id, std::string_view css_class, std::string_view message);

// A colour of the viridis-like map for t in [0, 1] (dark purple -> teal -> yellow); t is clamped.
struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};
Rgb colormap(double t);
std::string hex(Rgb colour);  // "#rrggbb"

// Numbers for people: up to `digits` significant digits, no trailing zeros ("0.001", "3.2e+05");
// "nan", "inf", "-inf" for the non-finite.
std::string format_number(double value, int digits = 3);

// The heatmap's step columns: [begin, end) index ranges covering `count` steps in order, one per
// step when count <= max_columns, else max_columns bins of nearly equal size.
std::vector<std::pair<size_t, size_t>> column_ranges(size_t count,
                                                     size_t max_columns = kMaxHeatmapColumns);

// The value one column shows for values[begin, end): +inf when any is infinite (a non-finite
// value wins its bin), else the largest non-NaN value, else NaN (nothing observed). Indices past
// the end of `values` count as NaN.
double bin_max(const std::vector<double>& values, size_t begin, size_t end);

// Tick values for an axis over [lo, hi]: about `target` round numbers (1, 2 or 5 times a power
// of ten) inside the range.
std::vector<double> linear_ticks(double lo, double hi, int target = 5);
// Powers of ten inside [lo, hi] (0 < lo), at most about six; linear ticks when the range is under
// two decades, where powers of ten alone would leave the axis almost bare.
std::vector<double> log_ticks(double lo, double hi);
// A tick's label: "1e-3", "1e5" for powers of ten far from one, else format_number.
std::string tick_label(double value);

// Maps the domain [lo, hi] onto [out_lo, out_hi] (pixels; out_lo > out_hi for a y axis), linearly
// or by log10 (then the domain and the values are positive). A one-point domain maps to the middle.
struct Scale {
  double lo = 0, hi = 1, out_lo = 0, out_hi = 1;
  bool log = false;
  double operator()(double v) const;
};

// Every chart is this many units wide; the page scales it to its width.
inline constexpr double kWidth = 1000;

// SVG elements. `css_class` and `anchor` are written as given (callers pass fixed names); text
// and tooltips are escaped.
std::string text(double x, double y, std::string_view css_class, std::string_view anchor,
                 std::string_view content);
std::string line(double x1, double y1, double x2, double y2, std::string_view css_class);
// A rectangle, with a hover tooltip unless `tooltip` is empty; a negative width draws nothing.
std::string rect(double x, double y, double width, double height, std::string_view css_class,
                 std::string_view tooltip = {});
// A downward triangle with its tip at (x, y): the marker shape of the charts.
std::string triangle(double x, double y, double size, std::string_view css_class,
                     std::string_view tooltip);

// The height of one per-layer row: smaller rows for deeper models, so a chart stays readable.
double row_height(size_t rows);
// Layer names right-aligned at x = `right`, one per row from `top`; full name and kind as tooltip.
std::string row_labels(const std::vector<const LayerRow*>& rows, double right, double top,
                       double height);

}  // namespace chart
}  // namespace hookrt::report
