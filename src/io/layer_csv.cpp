// The per-layer CSV of the training report: one line per layer with its gradient summary and
// activation statistics, for spreadsheets and pandas. Empty fields mean "not observed".
#include <charconv>
#include <cmath>

#include "hookrt/report.h"
#include "io/file_bytes.h"

namespace hookrt::report {
namespace {

constexpr const char* kHeader =
    "layer,kind,grad_last,grad_median,grad_max,mean_ratio,flags,nonfinite_steps,act_mean,act_std,"
    "zero_fraction,dead_channels,channels\n";

// RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled.
std::string quoted(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (const char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The shortest text that reads back as the same double; empty for NaN (not observed). Infinities
// as `inf`/`-inf`, which pandas and Python's float() read.
std::string number(double value) {
  if (std::isnan(value)) return "";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string count(int64_t value) { return value < 0 ? "" : std::to_string(value); }

}  // namespace

std::string render_layer_csv(const ReportData& data) {
  std::string out = kHeader;
  for (const LayerRow& row : data.layers) {
    out += quoted(row.layer) + ',' + quoted(row.kind) + ',' + number(row.grad_last) + ',' +
           number(row.grad_median) + ',' + number(row.grad_max) + ',' + number(row.mean_ratio) +
           ',' + std::to_string(row.flags) + ',' + std::to_string(row.nonfinite_steps) + ',' +
           number(row.act_mean) + ',' + number(row.act_std) + ',' + number(row.zero_fraction) +
           ',' + count(row.dead_channels) + ',' + count(row.channels) + '\n';
  }
  return out;
}

void write_layer_csv(const std::string& path, const ReportData& data) {
  const std::string text = render_layer_csv(data);
  io::write_file_atomically(path, {{text.data(), text.size()}});
}

}  // namespace hookrt::report
