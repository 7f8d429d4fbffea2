// The training report page: header (status, verdict, run info), the loss chart and the per-layer
// bar charts (the heatmap is in report_svg.cpp, with the building blocks every chart uses), the
// events table, and the style sheet. One self-contained file: inline CSS and SVG, no scripts, no
// external resources.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "hookrt/report.h"
#include "io/file_bytes.h"

namespace hookrt::report {
namespace {

using chart::coord;
using chart::escape;
using chart::format_number;
using chart::line;
using chart::rect;
using chart::text;
using chart::triangle;

constexpr size_t kMaxEventRows = 2000;  // beyond this the table says how many it left out

double value_at(const std::vector<double>& values, size_t i) {
  return i < values.size() ? values[i] : kNotObserved;
}

// Smallest and largest finite value among the first `count`; {+inf, -inf} when there is none.
std::pair<double, double> finite_range(const std::vector<double>& values, size_t count) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (size_t i = 0; i < std::min(count, values.size()); ++i) {
    if (!std::isfinite(values[i])) continue;
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  return {lo, hi};
}

// ---- Loss chart -------------------------------------------------------------------------------

struct LossLayout {
  double left = 72, right = chart::kWidth - 24;
  double loss_top = 30, loss_bottom = 270;
  double lr_top = 306, lr_bottom = 376;
  double height = 420;
};

chart::Scale step_scale(const ReportData& data, const LossLayout& layout) {
  const auto [lo, hi] = std::minmax_element(data.steps.begin(), data.steps.end());
  return chart::Scale{static_cast<double>(*lo), static_cast<double>(*hi), layout.left,
                      layout.right};
}

// A y scale over the finite values: log10 when they are positive and span two decades or more
// (a loss that explodes would otherwise flatten the rest of the curve), else linear with margins.
chart::Scale value_scale(double lo, double hi, double top, double bottom) {
  if (lo > 0 && hi / lo >= 100) return chart::Scale{lo / 1.2, hi * 1.2, bottom, top, true};
  const double pad = hi > lo ? (hi - lo) * 0.08 : std::max(std::fabs(lo) * 0.1, 1e-3);
  return chart::Scale{lo - pad, hi + pad, bottom, top, false};
}

std::string y_axis(const chart::Scale& y, double left, double right) {
  std::string out = "<g class=\"axis y-axis\">";
  for (const double tick :
       y.log ? chart::log_ticks(y.lo, y.hi) : chart::linear_ticks(y.lo, y.hi, 4)) {
    const double py = y(tick);
    out += line(left, py, right, py, "grid");
    out += text(left - 6, py + 4, "tick-label", "end",
                y.log ? chart::tick_label(tick) : format_number(tick));
  }
  return out + "</g>";
}

std::string x_axis(const chart::Scale& x, const LossLayout& layout) {
  std::string out = "<g class=\"axis x-axis\">";
  for (const double tick : chart::linear_ticks(x.lo, x.hi, 8)) {
    if (tick != std::floor(tick)) continue;  // steps are whole numbers
    const double px = x(tick);
    out += line(px, layout.loss_top, px, layout.lr_bottom, "grid grid-x");
    out += text(px, layout.lr_bottom + 16, "tick-label", "middle", format_number(tick, 15));
  }
  out +=
      text((layout.left + layout.right) / 2, layout.lr_bottom + 36, "axis-label", "middle", "step");
  return out + "</g>";
}

// The path of a series with a gap at every value it cannot draw; a point with gaps on both sides
// becomes a dot so that it stays visible.
std::string series_path(const ReportData& data, const std::vector<double>& values,
                        const chart::Scale& x, const chart::Scale& y, std::string_view css_class) {
  std::string d, dots;
  size_t run = 0;
  double last_x = 0, last_y = 0;
  auto end_run = [&] {
    if (run == 1)
      dots += "<circle class=\"" + std::string(css_class) + "-dot\" cx=\"" + coord(last_x) +
              "\" cy=\"" + coord(last_y) + "\" r=\"2\"/>";
    run = 0;
  };
  for (size_t i = 0; i < data.steps.size(); ++i) {
    const double v = value_at(values, i);
    if (!std::isfinite(v) || (y.log && v <= 0)) {
      end_run();
      continue;
    }
    last_x = x(static_cast<double>(data.steps[i]));
    last_y = y(v);
    d += run++ == 0 ? 'M' : 'L';
    d += coord(last_x);
    d += ' ';
    d += coord(last_y);
  }
  end_run();
  if (d.empty()) return dots;
  return "<path class=\"" + std::string(css_class) + "\" d=\"" + d + "\"/>" + dots;
}

// Red triangles along the top of the loss panel where the loss was NaN or infinite (one per
// pixel column: thousands of non-finite steps in a row stay one readable band).
std::string nonfinite_loss_markers(const ReportData& data, const chart::Scale& x, double top) {
  std::string out = "<g class=\"loss-nonfinite\">";
  long last_pixel = -1;
  for (size_t i = 0; i < std::min(data.steps.size(), data.loss.size()); ++i) {
    if (std::isfinite(data.loss[i])) continue;
    const double px = x(static_cast<double>(data.steps[i]));
    if (std::lround(px) == last_pixel) continue;
    last_pixel = std::lround(px);
    out +=
        triangle(px, top + 9, 9, "nonfinite-marker",
                 "step " + std::to_string(data.steps[i]) + ": loss " + format_number(data.loss[i]));
  }
  return out + "</g>";
}

// Events as short ticks at the bottom of the loss panel, one per (pixel, kind) with a count; a
// halt or an interrupt as a dashed line across both panels.
std::string event_ticks(const ReportData& data, const chart::Scale& x, const LossLayout& layout) {
  std::map<std::pair<long, std::string>, std::pair<size_t, size_t>> ticks;  // -> first, count
  for (size_t i = 0; i < data.events.size(); ++i) {
    // An event past the last reported step (a halt) sits on the chart's edge.
    const double px = std::clamp(x(static_cast<double>(data.events[i].step)), x.out_lo, x.out_hi);
    const long pixel = std::lround(px);
    ++ticks.try_emplace({pixel, data.events[i].kind}, i, 0).first->second.second;
  }
  std::string out = "<g class=\"event-ticks\">";
  for (const auto& [key, first_count] : ticks) {
    const Event& event = data.events[first_count.first];
    std::string tooltip = "step " + std::to_string(event.step) + " \u00b7 " + event.kind + ": " +
                          chart::shorten(event.text, 160);
    if (first_count.second > 1)
      tooltip += " (+" + std::to_string(first_count.second - 1) + " more)";
    const double px = static_cast<double>(key.first);
    const bool stop = event.kind == "halt" || event.kind == "interrupt";
    const double top = stop ? layout.loss_top : layout.loss_bottom - 10;
    const double bottom = stop ? layout.lr_bottom : layout.loss_bottom;
    out += "<g class=\"event-tick\">" +
           line(px, top, px, bottom, stop ? "stop-line" : "tick-mark") + "<title>" +
           escape(tooltip) + "</title></g>";
  }
  return out + "</g>";
}

std::string loss_panel(const ReportData& data, const chart::Scale& x, const LossLayout& layout) {
  const auto [lo, hi] = finite_range(data.loss, data.steps.size());
  std::string out = text(layout.left, layout.loss_top - 12, "panel-title", "start", "loss");
  if (lo > hi)
    return out +
           text((layout.left + layout.right) / 2, (layout.loss_top + layout.loss_bottom) / 2,
                "empty-message", "middle", "the loss was never finite") +
           nonfinite_loss_markers(data, x, layout.loss_top);
  const chart::Scale y = value_scale(lo, hi, layout.loss_top, layout.loss_bottom);
  std::string summary = "min " + format_number(lo, 4) + " \u00b7 max " + format_number(hi, 4);
  if (y.log) summary += " \u00b7 log scale";
  out += text(layout.right, layout.loss_top - 12, "panel-note", "end", summary);
  out += y_axis(y, layout.left, layout.right);
  out += series_path(data, data.loss, x, y, "loss-line");
  return out + nonfinite_loss_markers(data, x, layout.loss_top);
}

std::string lr_panel(const ReportData& data, const chart::Scale& x, const LossLayout& layout) {
  const auto [lo, hi] = finite_range(data.lr, data.steps.size());
  std::string out = text(layout.left, layout.lr_top - 10, "panel-title", "start", "learning rate");
  if (lo > hi)
    return out + text((layout.left + layout.right) / 2, (layout.lr_top + layout.lr_bottom) / 2 + 4,
                      "empty-message", "middle", "not recorded");
  const double pad = hi > lo ? (hi - lo) * 0.1 : std::max(std::fabs(lo) * 0.1, 1e-9);
  const chart::Scale y{lo - pad, hi + pad, layout.lr_bottom, layout.lr_top};
  std::string axis = "<g class=\"axis y-axis\">";
  for (const double tick : chart::linear_ticks(y.lo, y.hi, 2)) {
    axis += line(layout.left, y(tick), layout.right, y(tick), "grid");
    axis += text(layout.left - 6, y(tick) + 4, "tick-label", "end", format_number(tick));
  }
  return out + axis + "</g>" + series_path(data, data.lr, x, y, "lr-line");
}

// ---- Per-layer bar charts ---------------------------------------------------------------------

// Layout of the per-layer bar charts: a label column, then bars, one row per layer.
struct BarLayout {
  double left = 214, right = chart::kWidth - 20, rows_top = 34, row_height = 16;
  double rows_bottom = 0;
};

BarLayout bar_layout(size_t rows) {
  BarLayout layout;
  layout.row_height = chart::row_height(rows);
  layout.rows_bottom = layout.rows_top + layout.row_height * static_cast<double>(rows);
  return layout;
}

// One column of the activations chart: a statistic per layer as horizontal bars from zero.
struct BarPanel {
  std::string title, css;
  std::function<double(const LayerRow&)> value;
  double lo = 0, hi = 1;  // the value domain; includes zero
};

std::string bar_panel(const BarPanel& panel, const std::vector<const LayerRow*>& rows, double x0,
                      double x1, const BarLayout& layout) {
  auto x = [&](double v) { return x0 + (v - panel.lo) / (panel.hi - panel.lo) * (x1 - x0); };
  std::string out = "<g class=\"bar-panel " + panel.css + "\">";
  out += text(x0, layout.rows_top - 12, "panel-title", "start", panel.title);
  for (const double tick : chart::linear_ticks(panel.lo, panel.hi, 3)) {
    out += line(x(tick), layout.rows_top, x(tick), layout.rows_bottom,
                tick == 0 ? "zero-line" : "grid");
    out += text(x(tick), layout.rows_bottom + 15, "tick-label", "middle", format_number(tick));
  }
  const double bar_height = layout.row_height * 0.7;
  for (size_t r = 0; r < rows.size(); ++r) {
    const double v = panel.value(*rows[r]);
    const double y = layout.rows_top + layout.row_height * static_cast<double>(r);
    const std::string label = rows[r]->layer + " \u00b7 " + panel.title + " ";
    if (!std::isfinite(v)) {
      const bool missing = std::isnan(v);
      out += "<text class=\"" + std::string(missing ? "missing-label" : "nonfinite-label") +
             "\" x=\"" + coord(x(0) + 3) + "\" y=\"" + coord(y + layout.row_height * 0.76) +
             "\" font-size=\"" + coord(layout.row_height * 0.66) + "\">" +
             (missing ? "\u2013" : "non-finite") + "<title>" + escape(label) +
             (missing ? "not observed" : format_number(v)) + "</title></text>";
      continue;
    }
    const double a = x(std::min(v, 0.0)), b = x(std::max(v, 0.0));
    out += rect(a, y + (layout.row_height - bar_height) / 2, std::max(b - a, 0.8), bar_height,
                "bar " + panel.css, label + format_number(v, 4));
  }
  return out + "</g>";
}

// The domain [lo, hi] of a panel: the finite values and zero, [0, 1] when there are none.
std::pair<double, double> bar_domain(const std::vector<const LayerRow*>& rows,
                                     const std::function<double(const LayerRow&)>& value) {
  double lo = 0, hi = 0;
  for (const LayerRow* row : rows) {
    const double v = value(*row);
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (hi - lo <= 0) hi = lo + 1;
  return {lo, hi};
}

std::string status_badge(const ReportData& data) {
  if (data.halted) return "<span class=\"status status-halted\">halted</span>";
  if (data.interrupted) return "<span class=\"status status-interrupted\">interrupted</span>";
  return "<span class=\"status status-completed\">completed</span>";
}

// A class name from free text ("nonfinite", "lr"): letters, digits and '-' only.
std::string css_name(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    out += plain ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '-';
  }
  return out.empty() ? "none" : out;
}

std::string header(const ReportData& data) {
  std::string out = "<header class=\"report-header\"><h1>" + escape(data.title) +
                    status_badge(data) + "</h1><p class=\"subtitle\">";
  if (data.steps.empty()) {
    out += "no steps recorded";
  } else {
    out += std::to_string(data.steps.size()) + " steps (" + std::to_string(data.steps.front()) +
           "\u2013" + std::to_string(data.steps.back()) + ")";
  }
  out += " \u00b7 " + std::to_string(data.layers.size()) + " layers \u00b7 " +
         std::to_string(data.markers.size()) + " markers \u00b7 " +
         std::to_string(data.events.size()) + " events</p>";
  out += data.verdict.empty() ? "<div class=\"verdict verdict-empty\">No verdict recorded.</div>"
                              : "<div class=\"verdict\">" + escape(data.verdict) + "</div>";
  if (!data.run_info.empty()) {
    out += "<dl class=\"run-info\">";
    for (const auto& [key, value] : data.run_info)
      out += "<div><dt>" + escape(key) + "</dt><dd>" + escape(value) + "</dd></div>";
    out += "</dl>";
  }
  return out + "</header>";
}

std::string section(std::string_view id, std::string_view title, std::string_view caption,
                    const std::string& body) {
  return "<section class=\"card\" id=\"" + std::string(id) + "\"><h2>" + escape(title) +
         "</h2><p class=\"caption\">" + escape(caption) + "</p>" + body + "</section>";
}

std::string events_table(const ReportData& data) {
  if (data.events.empty()) return "<p class=\"empty\">No events.</p>";
  std::string out =
      "<table class=\"events\"><thead><tr><th class=\"step\">step</th><th>kind</th><th>what "
      "happened</th></tr></thead><tbody>";
  for (size_t i = 0; i < std::min(data.events.size(), kMaxEventRows); ++i) {
    const Event& event = data.events[i];
    out += "<tr><td class=\"step\">" + std::to_string(event.step) +
           "</td><td><span class=\"badge kind-" + css_name(event.kind) + "\">" +
           escape(event.kind) + "</span></td><td>" + escape(event.text) + "</td></tr>";
  }
  out += "</tbody></table>";
  if (data.events.size() > kMaxEventRows)
    out += "<p class=\"empty\">\u2026 and " + std::to_string(data.events.size() - kMaxEventRows) +
           " more events not listed.</p>";
  return out;
}

constexpr const char* kStyle = R"css(
:root{--fg:#1d2433;--muted:#5d6678;--line:#e3e6ec;--bg:#f4f5f8;--accent:#3b5bdb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:26px;font-weight:650;margin:0 0 2px;letter-spacing:-.01em}
h2{font-size:18px;font-weight:620;margin:0 0 2px}
.subtitle{color:var(--muted);margin:0 0 14px}
.status{display:inline-block;vertical-align:middle;margin-left:12px;padding:2px 11px;border-radius:999px;font-size:13px;font-weight:600}
.status-completed{background:#e4f4e8;color:#1e7b34}.status-halted{background:#fde6e6;color:#b3261e}.status-interrupted{background:#fff1d9;color:#955800}
.verdict{background:#fff;border:1px solid var(--line);border-left:4px solid var(--accent);border-radius:8px;padding:12px 16px;font-size:16px;white-space:pre-wrap}
.verdict-empty{color:var(--muted);border-left-color:var(--line)}
.run-info{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:8px 20px;margin:16px 0 0}
.run-info dt{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.run-info dd{margin:0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin-top:20px;box-shadow:0 1px 2px rgba(20,30,50,.05)}
.caption{color:var(--muted);font-size:14px;margin:0 0 10px}
.empty{color:var(--muted)}
svg.chart{display:block;width:100%;height:auto}
svg.chart text{font-size:12px;fill:#3a4356}
svg.chart .tick-label,svg.chart .axis-label,svg.chart .panel-note,svg.chart .legend-label{fill:var(--muted)}
svg.chart .panel-note{font-size:11px}
svg.chart .panel-title,svg.chart .legend-title{font-weight:600;fill:var(--fg)}
svg.chart .empty-message{font-size:15px;fill:var(--muted)}
.grid{stroke:#e9ecf1}.grid-x{stroke:#f0f2f5}.tick{stroke:#9aa3b2}.zero-line{stroke:#9aa3b2}
.loss-line{fill:none;stroke:#3b5bdb;stroke-width:1.8;stroke-linejoin:round}.loss-line-dot{fill:#3b5bdb}
.lr-line{fill:none;stroke:#0f9d8a;stroke-width:1.5}.lr-line-dot{fill:#0f9d8a}
.nonfinite-marker{fill:#d7191c}
.tick-mark{stroke:#8a63d2;stroke-width:2}.stop-line{stroke:#d7191c;stroke-width:1.5;stroke-dasharray:5 4}
.marker-explosion .marker-shape{fill:#f28e2b;stroke:#7a3d00;stroke-width:.8}
.marker-nonfinite .marker-shape{fill:#d7191c;stroke:#5c0000;stroke-width:.8}
.marker-other .marker-shape{fill:#8a63d2}
.marker-ring{fill:none;stroke-width:1.6}.marker-explosion .marker-ring{stroke:#f28e2b}.marker-nonfinite .marker-ring,.marker-other .marker-ring{stroke:#111}
svg.chart .missing-label{fill:#a3aab7}svg.chart .nonfinite-label{fill:#d7191c}
.bar-mean{fill:#4c78a8}.bar-std{fill:#54a39b}.bar-zeros{fill:#e45756}.bar-dead{fill:#e8743b}.bar-track{fill:#eef0f3}
table.events{width:100%;border-collapse:collapse;font-size:14px}
.events th,.events td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
.events th{color:var(--muted);font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.04em}
.events .step{text-align:right;width:6em;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;background:#eef0f3;color:#3a4356}
.kind-halt,.kind-interrupt,.kind-nonfinite{background:#fde6e6;color:#b3261e}
.kind-warn,.kind-flag{background:#fff1d9;color:#955800}
.kind-clip,.kind-skip{background:#eee8fb;color:#5b3cc4}.kind-lr{background:#e1f5f2;color:#0b7a6d}
footer{color:var(--muted);font-size:12px;margin-top:28px}
@media print{body{background:#fff}.card{box-shadow:none;break-inside:avoid}}
)css";

}  // namespace

std::string loss_chart_svg(const ReportData& data) {
  if (data.steps.empty())
    return chart::message_svg("loss-chart", "loss-chart", "No steps recorded: no loss to draw.");
  const LossLayout layout;
  const chart::Scale x = step_scale(data, layout);
  return chart::svg_open("loss-chart", "loss-chart", chart::kWidth, layout.height,
                         "loss and learning rate per step") +
         x_axis(x, layout) + loss_panel(data, x, layout) + lr_panel(data, x, layout) +
         event_ticks(data, x, layout) + "</svg>";
}

std::string activations_svg(const ReportData& data) {
  std::vector<const LayerRow*> rows;
  for (const LayerRow& row : data.layers)
    if (!std::isnan(row.act_mean) || !std::isnan(row.act_std) || !std::isnan(row.zero_fraction))
      rows.push_back(&row);
  if (rows.empty())
    return chart::message_svg("activations", "activations", "No activation statistics observed.");
  const BarLayout layout = bar_layout(rows.size());
  std::vector<BarPanel> panels = {
      {"mean", "bar-mean", [](const LayerRow& r) { return r.act_mean; }},
      {"std", "bar-std", [](const LayerRow& r) { return r.act_std; }},
      {"zero fraction", "bar-zeros", [](const LayerRow& r) { return r.zero_fraction; }}};
  for (BarPanel& panel : panels) std::tie(panel.lo, panel.hi) = bar_domain(rows, panel.value);
  panels[2].lo = 0;  // a fraction: always the whole [0, 1]
  panels[2].hi = 1;
  std::string out =
      chart::svg_open("activations", "activations", chart::kWidth, layout.rows_bottom + 28,
                      "activation mean, std and zero fraction per layer");
  out += chart::row_labels(rows, layout.left - 8, layout.rows_top, layout.row_height);
  const double gap = 28, width = (layout.right - layout.left - 2 * gap) / 3;
  for (size_t p = 0; p < panels.size(); ++p) {
    const double x0 = layout.left + static_cast<double>(p) * (width + gap);
    out += bar_panel(panels[p], rows, x0, x0 + width, layout);
  }
  return out + "</svg>";
}

std::string dead_channels_svg(const ReportData& data) {
  std::vector<const LayerRow*> rows;
  for (const LayerRow& row : data.layers)
    if (row.channels > 0 && row.dead_channels >= 0) rows.push_back(&row);
  if (rows.empty())
    return chart::message_svg("dead-channels", "dead-channels",
                              "No channel counts observed: dead channels need a zeros probe.");
  BarLayout layout = bar_layout(rows.size());
  layout.right = layout.left + 560;  // room on the right for "12 / 64 dead"
  std::string out = chart::svg_open("dead-channels", "dead-channels", chart::kWidth,
                                    layout.rows_bottom + 12, "dead channels per layer");
  out += text(layout.left, layout.rows_top - 12, "panel-title", "start",
              "dead channels (every value in the batch \u2264 0) of all channels");
  out += chart::row_labels(rows, layout.left - 8, layout.rows_top, layout.row_height);
  const double width = layout.right - layout.left, bar_height = layout.row_height * 0.7;
  for (size_t r = 0; r < rows.size(); ++r) {
    const LayerRow& row = *rows[r];
    const double y = layout.rows_top + layout.row_height * static_cast<double>(r) +
                     (layout.row_height - bar_height) / 2;
    const double fraction =
        std::min(1.0, static_cast<double>(row.dead_channels) / static_cast<double>(row.channels));
    const std::string label =
        std::to_string(row.dead_channels) + " / " + std::to_string(row.channels) + " dead";
    out += rect(layout.left, y, width, bar_height, "bar-track");
    if (fraction > 0)
      out += rect(layout.left, y, width * fraction, bar_height, "bar bar-dead",
                  row.layer + " \u00b7 " + label + " (" + format_number(100 * fraction, 3) + "%)");
    out += "<text class=\"count-label\" x=\"" + coord(layout.right + 10) + "\" y=\"" +
           coord(y + bar_height * 0.85) + "\" font-size=\"" + coord(layout.row_height * 0.72) +
           "\">" + escape(label) + "</text>";
  }
  return out + "</svg>";
}

std::string render_html(const ReportData& data) {
  std::string page =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>" +
      escape(data.title) + "</title><style>" + kStyle + "</style></head><body><main>";
  page += header(data);
  page += section("loss", "Loss",
                  "Loss per step, learning rate below. Gaps and red triangles mark non-finite "
                  "losses; purple ticks are policy events and dashed red lines a halt or an "
                  "interrupt (hover for details).",
                  loss_chart_svg(data));
  page += section("gradients", "Gradient norm per layer",
                  "One row per layer in backward order, one column per step; colour is the L2 "
                  "norm of the layer's gradient on a log scale. Triangles above the rows and "
                  "rings mark explosions (orange) and non-finite gradients (red).",
                  heatmap_svg(data));
  page +=
      section("activations-section", "Activations",
              "Statistics of each layer's last observed forward output.", activations_svg(data));
  page += section("dead-channels-section", "Dead channels",
                  "Channels whose every value in the batch was at most zero, at the last "
                  "observation.",
                  dead_channels_svg(data));
  page += section("events", "Events", "What the training policy saw and did, in order.",
                  events_table(data));
  page +=
      "<footer>Written by hookrt. Every chart is inline SVG: hover a cell, bar or marker for "
      "its value.</footer></main></body></html>\n";
  return page;
}

void write_html(const std::string& path, const ReportData& data) {
  const std::string page = render_html(data);
  io::write_file_atomically(path, {{page.data(), page.size()}});
}

}  // namespace hookrt::report
