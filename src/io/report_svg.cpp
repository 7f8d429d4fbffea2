// The report's chart building blocks (text, colour map, scales and ticks, SVG elements, step
// binning) and its central chart, the per-layer gradient-norm heatmap. report_html.cpp draws the
// other charts with these blocks and assembles the page.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <utility>

#include "hookrt/report.h"

namespace hookrt::report {
namespace chart {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string shorten(std::string_view text, size_t max_chars) {
  // Code points start at every byte that is not a UTF-8 continuation byte (10xxxxxx), so cutting
  // there never splits a character.
  auto starts_char = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; };
  const size_t chars = static_cast<size_t>(std::count_if(text.begin(), text.end(), starts_char));
  if (chars <= max_chars || max_chars == 0) return std::string(text);
  size_t seen = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (starts_char(text[i]) && seen++ == max_chars - 1)
      return std::string(text.substr(0, i)) + "\u2026";
  }
  return std::string(text);
}

std::string coord(double value) {
  if (!std::isfinite(value)) return "0";
  const double rounded = std::round(value * 10.0) / 10.0;
  if (rounded == 0.0) return "0";  // never "-0"
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", rounded);
  std::string text = buffer;
  if (text.size() > 2 && text.compare(text.size() - 2, 2, ".0") == 0) text.resize(text.size() - 2);
  return text;
}

std::string svg_open(std::string_view id, std::string_view css_class, double width, double height,
                     std::string_view label) {
  return "<svg id=\"" + escape(id) + "\" class=\"chart " + escape(css_class) + "\" viewBox=\"0 0 " +
         coord(width) + " " + coord(height) +
         "\" preserveAspectRatio=\"xMidYMin meet\" role=\"img\" aria-label=\"" + escape(label) +
         "\">";
}

std::string message_svg(std::string_view id, std::string_view css_class, std::string_view message) {
  return svg_open(id, css_class, kWidth, 70, message) + "<text class=\"empty-message\" x=\"" +
         coord(kWidth / 2) + "\" y=\"40\" text-anchor=\"middle\">" + escape(message) +
         "</text></svg>";
}

Rgb colormap(double t) {
  // Nine samples of the viridis map; perceptually even, readable in grey and by most colour-blind
  // readers. Between samples, linear interpolation in RGB is close enough for a heatmap.
  static constexpr std::array<std::array<double, 3>, 9> kStops = {{{68, 1, 84},
                                                                   {72, 40, 120},
                                                                   {62, 73, 137},
                                                                   {49, 104, 142},
                                                                   {38, 130, 142},
                                                                   {31, 158, 137},
                                                                   {53, 183, 121},
                                                                   {110, 206, 88},
                                                                   {253, 231, 37}}};
  if (!(t > 0.0)) t = 0.0;  // NaN too
  if (t > 1.0) t = 1.0;
  const double position = t * (kStops.size() - 1);
  const size_t lower = std::min(static_cast<size_t>(position), kStops.size() - 2);
  const double f = position - static_cast<double>(lower);
  auto channel = [&](int c) {
    return static_cast<uint8_t>(
        std::lround(kStops[lower][c] + f * (kStops[lower + 1][c] - kStops[lower][c])));
  };
  return Rgb{channel(0), channel(1), channel(2)};
}

std::string hex(Rgb colour) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", colour.r, colour.g, colour.b);
  return buffer;
}

std::string format_number(double value, int digits) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0.0) return "0";
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.*g", std::clamp(digits, 1, 17), value);
  return buffer;
}

std::vector<std::pair<size_t, size_t>> column_ranges(size_t count, size_t max_columns) {
  std::vector<std::pair<size_t, size_t>> ranges;
  if (count == 0 || max_columns == 0) return ranges;
  const size_t columns = std::min(count, max_columns);
  ranges.reserve(columns);
  // Bin b holds [b*count/columns, (b+1)*count/columns): sizes differ by at most one step.
  for (size_t b = 0; b < columns; ++b)
    ranges.emplace_back(b * count / columns, (b + 1) * count / columns);
  return ranges;
}

double bin_max(const std::vector<double>& values, size_t begin, size_t end) {
  double best = kNotObserved;
  for (size_t i = begin; i < std::min(end, values.size()); ++i) {
    const double v = values[i];
    if (std::isinf(v)) return std::numeric_limits<double>::infinity();
    if (!std::isnan(v) && (std::isnan(best) || v > best)) best = v;
  }
  return best;
}

std::vector<double> linear_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double normalized = raw / magnitude;
  const double step = magnitude * (normalized < 1.5   ? 1.0
                                   : normalized < 3.0 ? 2.0
                                   : normalized < 7.0 ? 5.0
                                                      : 10.0);
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step); k * step <= hi + step * 1e-9 && ticks.size() < 50; ++k)
    ticks.push_back(k * step == 0.0 ? 0.0 : k * step);
  return ticks;
}

double Scale::operator()(double v) const {
  const double a = log ? std::log10(v) : v, l = log ? std::log10(lo) : lo,
               h = log ? std::log10(hi) : hi;
  if (!(h > l)) return (out_lo + out_hi) / 2;
  return out_lo + (a - l) / (h - l) * (out_hi - out_lo);
}

std::vector<double> log_ticks(double lo, double hi) {
  const int first = static_cast<int>(std::ceil(std::log10(lo) - 1e-9));
  const int last = static_cast<int>(std::floor(std::log10(hi) + 1e-9));
  if (last - first < 1) {
    std::vector<double> ticks = linear_ticks(lo, hi, 4);
    std::erase_if(ticks, [](double t) { return t <= 0; });
    return ticks;
  }
  const int stride = std::max(1, (last - first + 5) / 6);
  std::vector<double> ticks;
  for (int k = first; k <= last; k += stride) ticks.push_back(std::pow(10.0, k));
  return ticks;
}

std::string tick_label(double value) {
  const double exponent = std::round(std::log10(value));
  if (std::fabs(std::pow(10.0, exponent) - value) > 1e-9 * value || std::fabs(exponent) < 3)
    return format_number(value);
  return "1e" + std::to_string(static_cast<int>(exponent));
}

std::string text(double x, double y, std::string_view css_class, std::string_view anchor,
                 std::string_view content) {
  return "<text class=\"" + std::string(css_class) + "\" x=\"" + coord(x) + "\" y=\"" + coord(y) +
         "\" text-anchor=\"" + std::string(anchor) + "\">" + escape(content) + "</text>";
}

std::string line(double x1, double y1, double x2, double y2, std::string_view css_class) {
  return "<line class=\"" + std::string(css_class) + "\" x1=\"" + coord(x1) + "\" y1=\"" +
         coord(y1) + "\" x2=\"" + coord(x2) + "\" y2=\"" + coord(y2) + "\"/>";
}

std::string triangle(double x, double y, double size, std::string_view css_class,
                     std::string_view tooltip) {
  return "<path class=\"" + std::string(css_class) + "\" d=\"M" + coord(x) + " " + coord(y) + "L" +
         coord(x - size / 2) + " " + coord(y - size) + "H" + coord(x + size / 2) + "Z\"><title>" +
         escape(tooltip) + "</title></path>";
}

std::string rect(double x, double y, double width, double height, std::string_view css_class,
                 std::string_view tooltip) {
  std::string out = "<rect class=\"" + std::string(css_class) + "\" x=\"" + coord(x) + "\" y=\"" +
                    coord(y) + "\" width=\"" + coord(std::max(width, 0.0)) + "\" height=\"" +
                    coord(height) + "\"";
  if (tooltip.empty()) return out + "/>";
  return out + "><title>" + escape(tooltip) + "</title></rect>";
}

double row_height(size_t rows) { return rows <= 40 ? 16 : rows <= 80 ? 12 : 9; }

std::string row_labels(const std::vector<const LayerRow*>& rows, double right, double top,
                       double height) {
  std::string out = "<g class=\"row-labels\" font-size=\"" + coord(height * 0.72) + "\">";
  for (size_t r = 0; r < rows.size(); ++r) {
    const double y = top + height * (static_cast<double>(r) + 0.76);
    out += "<text class=\"row-label\" x=\"" + coord(right) + "\" y=\"" + coord(y) +
           "\" text-anchor=\"end\">" + escape(shorten(rows[r]->layer, 32)) + "<title>" +
           escape(rows[r]->layer) + " (" + escape(rows[r]->kind) + ")</title></text>";
  }
  return out + "</g>";
}

}  // namespace chart

namespace {

using chart::coord;
using chart::escape;
using chart::format_number;
using chart::line;
using chart::text;
using chart::triangle;

// Colours that stand apart from the viridis ramp: non-finite cells, unobserved steps.
constexpr const char* kNonFiniteColour = "#d7191c";
constexpr const char* kMissingColour = "#eceef2";

// Where things go: row labels left of `left`, the marker strip above `rows_top`, one row per
// layer, then the step axis and the legend.
struct HeatmapLayout {
  double left = 214, right = chart::kWidth - 20;
  double rows_top = 44, row_height = 16;
  double rows_bottom = 0, height = 0;
  double cell_width = 0;
};

HeatmapLayout heatmap_layout(size_t rows, size_t columns) {
  HeatmapLayout layout;
  layout.row_height = chart::row_height(rows);
  layout.rows_bottom = layout.rows_top + layout.row_height * static_cast<double>(rows);
  layout.height = layout.rows_bottom + 112;
  layout.cell_width = (layout.right - layout.left) / static_cast<double>(columns);
  return layout;
}

// The colour domain: log10 of the smallest and largest positive finite cell value, widened to
// one decade when every value is the same.
std::pair<double, double> log_domain(const std::vector<std::vector<double>>& cells) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& row : cells)
    for (const double v : row)
      if (std::isfinite(v) && v > 0) {
        lo = std::min(lo, std::log10(v));
        hi = std::max(hi, std::log10(v));
      }
  if (lo > hi) return {-1, 1};
  if (hi - lo < 1e-9) return {lo - 0.5, hi + 0.5};
  return {lo, hi};
}

std::string step_span(const ReportData& data, std::pair<size_t, size_t> range) {
  const int64_t first = data.steps[range.first], last = data.steps[range.second - 1];
  return first == last ? "step " + std::to_string(first)
                       : "steps " + std::to_string(first) + "\u2013" + std::to_string(last);
}

// One layer's row: a background in the not-observed colour, then a cell per observed column
// with its value (the bin's max when binned) as the tooltip.
std::string heatmap_row(const ReportData& data, size_t r, const std::vector<double>& cells,
                        const std::vector<std::pair<size_t, size_t>>& ranges,
                        std::pair<double, double> domain, const HeatmapLayout& layout) {
  const LayerRow& row = data.layers[r];
  const double y = layout.rows_top + layout.row_height * static_cast<double>(r);
  const bool binned = ranges.size() < data.steps.size();
  std::string out = "<g class=\"heatmap-row\" data-layer=\"" + escape(row.layer) + "\">";
  out += "<rect class=\"row-bg\" x=\"" + coord(layout.left) + "\" y=\"" + coord(y) + "\" width=\"" +
         coord(layout.right - layout.left) + "\" height=\"" + coord(layout.row_height) +
         "\" fill=\"" + kMissingColour + "\"/>";
  for (size_t c = 0; c < cells.size(); ++c) {
    const double v = cells[c];
    if (std::isnan(v)) continue;  // not observed: the row's background shows
    const bool nonfinite = std::isinf(v);
    const double t = v > 0 ? (std::log10(v) - domain.first) / (domain.second - domain.first) : 0;
    const std::string fill = nonfinite ? kNonFiniteColour : chart::hex(chart::colormap(t));
    std::string tooltip = row.layer + " \u00b7 " + step_span(data, ranges[c]) + ": " +
                          (binned ? "max " : "") + (nonfinite ? "non-finite" : format_number(v, 4));
    out += "<rect class=\"cell" + std::string(nonfinite ? " cell-nonfinite" : "") + "\" x=\"" +
           coord(layout.left + layout.cell_width * static_cast<double>(c)) + "\" y=\"" + coord(y) +
           "\" width=\"" + coord(layout.cell_width + 0.1) + "\" height=\"" +
           coord(layout.row_height) + "\" fill=\"" + fill + "\"><title>" + escape(tooltip) +
           "</title></rect>";
  }
  return out + "</g>";
}

// The column that shows the step nearest to `step`.
size_t column_of(const ReportData& data, const std::vector<std::pair<size_t, size_t>>& ranges,
                 int64_t step) {
  auto it = std::lower_bound(data.steps.begin(), data.steps.end(), step);
  if (it == data.steps.end() || (it != data.steps.begin() && *it - step > step - *(it - 1))) --it;
  const size_t index = static_cast<size_t>(it - data.steps.begin());
  auto column = std::upper_bound(ranges.begin(), ranges.end(), index,
                                 [](size_t i, const auto& range) { return i < range.first; });
  return static_cast<size_t>(column - ranges.begin()) - 1;
}

// Each marker: a triangle in the strip above its column, and a ring around its cell when its
// layer has a row.
std::string heatmap_markers(const ReportData& data,
                            const std::vector<std::pair<size_t, size_t>>& ranges,
                            const HeatmapLayout& layout) {
  std::map<std::string, size_t> row_of;
  for (size_t r = 0; r < data.layers.size(); ++r) row_of.try_emplace(data.layers[r].layer, r);
  std::string out = "<g class=\"markers\">";
  for (const Marker& marker : data.markers) {
    const std::string css = marker.kind == "explosion"   ? "marker marker-explosion"
                            : marker.kind == "nonfinite" ? "marker marker-nonfinite"
                                                         : "marker marker-other";
    const size_t c = column_of(data, ranges, marker.step);
    const double x = layout.left + layout.cell_width * static_cast<double>(c);
    const std::string tooltip = marker.layer + " \u00b7 step " + std::to_string(marker.step) +
                                " \u00b7 " + marker.kind + (marker.text.empty() ? "" : ": ") +
                                marker.text;
    out += "<g class=\"" + css + "\">" +
           triangle(x + layout.cell_width / 2, layout.rows_top - 3, 10, "marker-shape", tooltip);
    if (auto it = row_of.find(marker.layer); it != row_of.end()) {
      const double w = std::max(layout.cell_width, 7.0);  // visible even on thin columns
      const double y = layout.rows_top + layout.row_height * static_cast<double>(it->second);
      out += chart::rect(x + layout.cell_width / 2 - w / 2 - 1, y - 1, w + 2, layout.row_height + 2,
                         "marker-ring", tooltip);
    }
    out += "</g>";
  }
  return out + "</g>";
}

std::string heatmap_x_axis(const ReportData& data,
                           const std::vector<std::pair<size_t, size_t>>& ranges,
                           const HeatmapLayout& layout) {
  std::string out = "<g class=\"axis x-axis\">";
  const auto ticks = chart::linear_ticks(static_cast<double>(data.steps.front()),
                                         static_cast<double>(data.steps.back()), 8);
  for (const double tick : ticks) {
    if (tick != std::floor(tick)) continue;
    const size_t c = column_of(data, ranges, static_cast<int64_t>(tick));
    const double x = layout.left + layout.cell_width * (static_cast<double>(c) + 0.5);
    out += line(x, layout.rows_bottom, x, layout.rows_bottom + 4, "tick");
    out += text(x, layout.rows_bottom + 17, "tick-label", "middle", format_number(tick, 15));
  }
  out += text((layout.left + layout.right) / 2, layout.rows_bottom + 36, "axis-label", "middle",
              "step");
  return out + "</g>";
}

// The colour bar (log10 of the gradient norm) with its decades, and swatches for the rest.
std::string heatmap_legend(std::pair<double, double> domain, const HeatmapLayout& layout) {
  const double top = layout.rows_bottom + 58, left = layout.left, width = 320, height = 12;
  std::string out = "<g class=\"legend\">";
  out += text(left, top - 6, "legend-title", "start", "gradient norm (log scale)");
  constexpr int kSteps = 64;
  for (int i = 0; i < kSteps; ++i) {
    out += "<rect x=\"" + coord(left + width * i / kSteps) + "\" y=\"" + coord(top) +
           "\" width=\"" + coord(width / kSteps + 0.2) + "\" height=\"" + coord(height) +
           "\" fill=\"" + chart::hex(chart::colormap((i + 0.5) / kSteps)) + "\"/>";
  }
  const chart::Scale x{std::pow(10.0, domain.first), std::pow(10.0, domain.second), left,
                       left + width, true};
  for (const double tick : chart::log_ticks(x.lo, x.hi)) {
    out += line(x(tick), top + height, x(tick), top + height + 4, "tick");
    out += text(x(tick), top + height + 16, "tick-label", "middle", chart::tick_label(tick));
  }
  auto swatch = [&](double sx, std::string_view fill, std::string_view label) {
    return "<rect x=\"" + coord(sx) + "\" y=\"" + coord(top) +
           "\" width=\"12\" height=\"12\" fill=\"" + std::string(fill) + "\" stroke=\"#c8ccd4\"/>" +
           text(sx + 17, top + 10, "legend-label", "start", label);
  };
  out += swatch(left + width + 40, kNonFiniteColour, "non-finite");
  out += swatch(left + width + 140, kMissingColour, "not observed");
  out += "<g class=\"marker marker-explosion\">" +
         triangle(left + width + 266, top + 11, 10, "marker-shape", "explosion marker") + "</g>" +
         text(left + width + 277, top + 10, "legend-label", "start", "explosion");
  out += "<g class=\"marker marker-nonfinite\">" +
         triangle(left + width + 366, top + 11, 10, "marker-shape", "non-finite marker") + "</g>" +
         text(left + width + 377, top + 10, "legend-label", "start", "non-finite");
  return out + "</g>";
}

}  // namespace

std::string heatmap_svg(const ReportData& data) {
  if (data.layers.empty())
    return chart::message_svg("grad-heatmap", "heatmap", "No layers observed: no gradient norms.");
  if (data.steps.empty())
    return chart::message_svg("grad-heatmap", "heatmap", "No steps recorded: no gradient norms.");
  const auto ranges = chart::column_ranges(data.steps.size());
  std::vector<std::vector<double>> cells(data.layers.size());
  for (size_t r = 0; r < data.layers.size(); ++r)
    for (const auto& [begin, end] : ranges)
      cells[r].push_back(chart::bin_max(data.layers[r].grad_norm, begin, end));
  const auto domain = log_domain(cells);
  const HeatmapLayout layout = heatmap_layout(data.layers.size(), ranges.size());

  std::string note = std::to_string(data.layers.size()) + " layers \u00d7 " +
                     std::to_string(data.steps.size()) + " steps";
  if (ranges.size() < data.steps.size())
    note += ", binned into " + std::to_string(ranges.size()) + " columns (max per column)";
  std::string out = chart::svg_open("grad-heatmap", "heatmap", chart::kWidth, layout.height,
                                    "gradient norm per layer and step");
  out += text(layout.right, 14, "panel-note", "end", note);
  out += text(layout.left - 8, layout.rows_top - 6, "panel-note", "end", "markers");
  out += "<g class=\"cells\" shape-rendering=\"crispEdges\">";
  for (size_t r = 0; r < data.layers.size(); ++r)
    out += heatmap_row(data, r, cells[r], ranges, domain, layout);
  std::vector<const LayerRow*> rows;
  for (const LayerRow& row : data.layers) rows.push_back(&row);
  out += "</g>" + chart::row_labels(rows, layout.left - 8, layout.rows_top, layout.row_height);
  out += heatmap_markers(data, ranges, layout);
  out += heatmap_x_axis(data, ranges, layout) + heatmap_legend(domain, layout);
  return out + "</svg>";
}

}  // namespace hookrt::report
