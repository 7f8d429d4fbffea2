#include "cli/summary_table.h"

#include <cmath>
#include <cstdio>
#include <variant>

namespace hookrt::cli {

void SummaryTable::add(const ProbeRecord& record) {
  ++total_;
  std::string site = record.when == HookWhen::Grad ? record.param : (record.module.empty() ? "(root)" : record.module);
  if (record.when != HookWhen::Grad && record.call > 0) {
    site += '#';  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "#" + std::string
    site += std::to_string(record.call);
  }
  const std::string key = when_name(record.when) + "|" + site + "|" + record.tensor;
  auto [it, inserted] = index_.emplace(key, rows_.size());
  if (inserted) rows_.push_back(Row{when_name(record.when), site, record.tensor, shape_string(record.shape), {}, 0});
  Row& row = rows_[it->second];
  row.results = record.results;
  ++row.firings;
}

static std::string number(const std::optional<double>& value) {
  if (!value) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", *value);
  return buffer;
}

static std::string cell(const std::string& text, size_t width) {
  if (text.size() >= width) return text.substr(0, width - 1) + " ";
  return text + std::string(width - text.size(), ' ');
}

// The row's figures, from whichever observing probes it has.
struct Figures {
  std::optional<double> mean, std, min, max, l2, zero_fraction;
  int64_t nonfinite = 0;
  std::string other;
};

static Figures figures_of(const std::vector<ProbeResult>& results) {
  Figures f;
  for (const ProbeResult& result : results) {
    if (const auto* s = std::get_if<StatsResult>(&result)) {
      f.mean = s->mean, f.std = s->std, f.min = s->min, f.max = s->max, f.l2 = s->l2;
      f.nonfinite = s->nan + s->posinf + s->neginf;
    } else if (const auto* z = std::get_if<ZerosResult>(&result)) {
      f.zero_fraction = z->zero_fraction;
    } else if (const auto* n = std::get_if<NonFiniteResult>(&result)) {
      f.nonfinite = n->nan + n->posinf + n->neginf;
    } else if (const auto* c = std::get_if<ClampResult>(&result)) {
      f.other += "clamped " + std::to_string(c->changed) + " ";
    } else if (const auto* c = std::get_if<ClipNormResult>(&result)) {
      f.other += "norm " + number(c->norm) + " scale " + number(c->scale) + " ";
    } else if (std::holds_alternative<CaptureResult>(result)) {
      f.other += "captured ";
    } else if (std::holds_alternative<HistResult>(result)) {
      f.other += "hist ";
    } else if (std::holds_alternative<ChannelsResult>(result)) {
      f.other += "channels ";
    }
  }
  return f;
}

void SummaryTable::print(std::ostream& out) const {
  if (rows_.empty()) {
    out << "no probe records\n";
    return;
  }
  out << cell("event", 13) << cell("module / parameter", 32) << cell("tensor", 12) << cell("shape", 20)
      << cell("mean", 11) << cell("std", 11) << cell("min", 11) << cell("max", 11) << cell("l2", 11)
      << cell("zero%", 8) << cell("nonfin", 7) << "other\n";
  for (const Row& row : rows_) {
    const Figures f = figures_of(row.results);
    const std::optional<double> zero_pct =
        f.zero_fraction ? std::optional<double>(*f.zero_fraction * 100.0) : std::nullopt;
    out << cell(row.event, 13) << cell(row.site, 32) << cell(row.tensor, 12) << cell(row.shape, 20)
        << cell(number(f.mean), 11) << cell(number(f.std), 11) << cell(number(f.min), 11) << cell(number(f.max), 11)
        << cell(number(f.l2), 11) << cell(number(zero_pct), 8) << cell(std::to_string(f.nonfinite), 7) << f.other
        << "\n";
  }
  out << rows_.size() << " hooked sites, " << total_ << " records (the table shows each site's latest)\n";
}

}  // namespace hookrt::cli
