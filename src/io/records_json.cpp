// A ProbeRecord as one stats.jsonl object: where and when the probe fired, then each result's
// fields flat, in the order the probes ran. A field that would repeat a key already written
// (`stats,clamp=-1:1,stats`, or nonfinite's nan after stats) goes instead with the rest of its
// probe's fields under `<probe>#<k>`, k being the result's 1-based position.
#include <cmath>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "hookrt/io.h"

namespace hookrt::io {

namespace {

using Json = nlohmann::ordered_json;

// The probe names, in ProbeResult's alternative order.
constexpr const char* kResultNames[] = {"stats",    "zeros", "nonfinite", "hist",
                                        "channels", "clamp", "clipnorm",  "capture"};
static_assert(std::size(kResultNames) == std::variant_size_v<ProbeResult>);

// Non-finite numbers never appear in the file: they become null, like nothing-to-describe.
Json number(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }
Json number(const std::optional<double>& value) { return value ? number(*value) : Json(nullptr); }

template <class T>
Json numbers(const std::vector<T>& values) {
  Json array = Json::array();
  for (const auto& value : values) array.push_back(number(value));
  return array;
}

// The fields one result contributes, in the format's order.
struct ResultFields {
  std::string capture_key;  // for capture: where captures.safetensors keeps the tensor

  Json operator()(const StatsResult& r) const {
    Json fields;
    fields["count"] = r.count;
    fields["min"] = number(r.min);
    fields["max"] = number(r.max);
    fields["mean"] = number(r.mean);
    fields["std"] = number(r.std);
    fields["abs_max"] = number(r.abs_max);
    fields["l1"] = number(r.l1);
    fields["l2"] = number(r.l2);
    fields["nan"] = r.nan;
    fields["posinf"] = r.posinf;
    fields["neginf"] = r.neginf;
    return fields;
  }
  Json operator()(const ZerosResult& r) const {
    return Json{{"zeros", r.zeros},
                {"zero_fraction", number(r.zero_fraction)},
                {"channels", r.channels},
                {"dead_channels", r.dead_channels}};
  }
  Json operator()(const NonFiniteResult& r) const {
    return Json{{"nan", r.nan}, {"posinf", r.posinf}, {"neginf", r.neginf}};
  }
  Json operator()(const HistResult& r) const {
    return Json{{"hist", Json{{"bins", r.bins},
                              {"lo", number(r.lo)},
                              {"hi", number(r.hi)},
                              {"counts", r.counts},
                              {"below", r.below},
                              {"above", r.above}}}};
  }
  Json operator()(const ChannelsResult& r) const {
    return Json{{"channels", Json{{"mean", numbers(r.mean)},
                                  {"std", numbers(r.std)},
                                  {"zero_fraction", numbers(r.zero_fraction)}}}};
  }
  Json operator()(const ClampResult& r) const {
    return Json{
        {"clamp", Json{{"lo", number(r.lo)}, {"hi", number(r.hi)}, {"changed", r.changed}}}};
  }
  Json operator()(const ClipNormResult& r) const {
    return Json{{"clipnorm", Json{{"max_norm", number(r.max_norm)},
                                  {"norm", number(r.norm)},
                                  {"scale", number(r.scale)}}}};
  }
  Json operator()(const CaptureResult&) const { return Json{{"capture", capture_key}}; }
};

// `name#k`. (Built by appending: `"#" + std::to_string(k)` trips a GCC 12 -Wrestrict false
// positive.)
std::string numbered(std::string name, size_t k) {
  name += '#';
  name += std::to_string(k);
  return name;
}

bool repeats_a_key(const Json& object, const Json& fields) {
  for (const auto& field : fields.items())
    if (object.contains(field.key())) return true;
  return false;
}

Json record_header(const ProbeRecord& record) {
  Json object;
  object["step"] = record.step;
  object["when"] = when_name(record.when);
  object["module"] = record.module;
  object["call"] = record.call;
  if (record.when == HookWhen::Grad) object["param"] = record.param;
  object["tensor"] = record.tensor;
  object["shape"] = record.shape;
  return object;
}

}  // namespace

Json record_to_json(const ProbeRecord& record) {
  Json object = record_header(record);
  int captures = 0;
  for (size_t k = 0; k < record.results.size(); ++k) {
    const ProbeResult& result = record.results[k];
    // The second capture of one record is stored as `key#2`, as CaptureWriter does.
    std::string capture_key = record.capture_key();
    if (std::holds_alternative<CaptureResult>(result) && ++captures > 1)
      capture_key = numbered(capture_key, static_cast<size_t>(captures));

    Json fields = std::visit(ResultFields{capture_key}, result);
    if (repeats_a_key(object, fields)) {
      object[numbered(kResultNames[result.index()], k + 1)] = fields;
    } else {
      for (auto& field : fields.items()) object[field.key()] = field.value();
    }
  }
  return object;
}

}  // namespace hookrt::io
