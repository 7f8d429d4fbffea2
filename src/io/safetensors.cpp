// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
// N, N bytes of JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// optional "__metadata__": {str: str}}, then the data buffer the offsets point into.
//
// The reader checks what the reference library checks, so it accepts exactly the files
// safetensors.torch.load_file accepts (fields other than dtype/shape/data_offsets are ignored, as
// there): header length within the file and at most 100 MB, a JSON object without duplicate
// keys, known dtypes, shapes of non-negative integers, byte lengths equal to numel * dtype size,
// and tensors that tile the buffer exactly (no overlap, no hole, no trailing bytes).
// Tensors come back in file order: sorted by data offset (ties, between empty tensors, keep
// header order), which for files this writer or the Python library wrote is their write order.
#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>

#include "hookrt/io.h"
#include "io/file_bytes.h"

namespace hookrt::io {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; hookrt copies it without swapping bytes");

constexpr uint64_t kLengthPrefixBytes = 8;
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference library's limit
constexpr int kMaxHeaderNesting = 2;               // root object > entry object > shape array
const char* const kMetadataKey = "__metadata__";

using nlohmann::json;

struct Entry {
  std::string key;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // offsets into the data buffer
  size_t header_position = 0;   // index among the header's keys, for ties between empty tensors
};

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw_bad_input(name + ": safetensors " + what);
}

[[noreturn]] void fail_tensor(const std::string& name, const std::string& key,
                              const std::string& what) {
  fail(name, "tensor '" + key + "': " + what);
}

// A short rendering of a JSON value for error messages.
std::string brief(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

std::optional<DType> dtype_from_name(const std::string& text) {
  for (DType dtype :
       {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::U8})
    if (dtype_name(dtype) == text) return dtype;
  return std::nullopt;
}

uint64_t read_u64_le(const char* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::string u64_le(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[static_cast<size_t>(i)] = static_cast<char>((value >> (8 * i)) & 0xFFu);
  return bytes;
}

// ---- Reading ---------------------------------------------------------------------------------

struct Header {
  json object;
  std::vector<std::string> key_order;  // top-level keys as they appear in the file
};

// nlohmann keeps the last of duplicate keys silently and sorts keys; a parse callback sees the
// keys in file order, so it catches duplicates at every level and records the header order.
Header parse_header_json(std::string_view text, const std::string& name) {
  Header header;
  std::vector<std::set<std::string>> open_objects;
  // Names the top-level key whose value is being parsed, for messages about nested problems.
  auto where = [&](int depth) {
    return depth > 1 && !header.key_order.empty() ? "header: '" + header.key_order.back() + "': "
                                                  : std::string("header: ");
  };
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth > kMaxHeaderNesting)
          fail(name, where(depth) + "values nested deeper than a safetensors header allows");
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second)
          fail(name, where(depth) + "duplicate key '" + key + "'");
        if (depth == 1) header.key_order.push_back(key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    header.object = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    fail(name, "header (bytes 8.." + std::to_string(8 + text.size()) +
                   ") is not valid JSON: " + e.what());
  }
  if (!header.object.is_object())
    fail(name, "header is not a JSON object but " + brief(header.object));
  return header;
}

// nlohmann parses every integer literal without a minus sign as unsigned; -1, 1.5 and 1e3 are not.
bool is_non_negative_integer(const json& value) { return value.is_number_unsigned(); }

const json& required_field(const std::string& name, const std::string& key, const json& entry,
                           const char* field) {
  auto it = entry.find(field);
  if (it == entry.end()) fail_tensor(name, key, std::string("missing \"") + field + "\"");
  return *it;
}

Shape parse_shape(const std::string& name, const std::string& key, const json& value) {
  if (!value.is_array())
    fail_tensor(name, key, "shape must be a list of non-negative integers, got " + brief(value));
  Shape shape;
  for (const json& dim : value) {
    if (!is_non_negative_integer(dim) || dim.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      fail_tensor(name, key, "shape must be a list of non-negative integers, got " + brief(value));
    shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
  }
  return shape;
}

// numel * dtype size, or nullopt when it does not fit in 64 bits.
std::optional<uint64_t> byte_length(const Shape& shape, DType dtype) {
  uint64_t bytes = dtype_size(dtype);
  for (int64_t dim : shape)
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
  // Shapes whose element count overflows int64 cannot be tensors even when a 0 dim empties them.
  int64_t numel = 1;
  for (int64_t dim : shape)
    if (__builtin_mul_overflow(numel, dim, &numel)) return std::nullopt;
  return bytes;
}

Entry parse_entry(const std::string& name, const std::string& key, const json& value,
                  uint64_t buffer_bytes) {
  if (!value.is_object()) fail_tensor(name, key, "entry is not an object but " + brief(value));
  Entry entry;
  entry.key = key;
  const json& dtype = required_field(name, key, value, "dtype");
  const std::optional<DType> parsed_dtype =
      dtype.is_string() ? dtype_from_name(dtype.get<std::string>()) : std::nullopt;
  if (!parsed_dtype)
    fail_tensor(
        name, key,
        "unsupported dtype " + brief(dtype) + " (hookrt reads F32 F64 F16 BF16 I64 I32 U8)");
  entry.dtype = *parsed_dtype;
  entry.shape = parse_shape(name, key, required_field(name, key, value, "shape"));
  const json& offsets = required_field(name, key, value, "data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !is_non_negative_integer(offsets[0]) ||
      !is_non_negative_integer(offsets[1]))
    fail_tensor(
        name, key,
        "data_offsets must be two non-negative integers [begin, end], got " + brief(offsets));
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  const std::string where = "data_offsets " + brief(offsets);
  if (entry.begin > entry.end) fail_tensor(name, key, where + " has begin > end");
  if (entry.end > buffer_bytes)
    fail_tensor(
        name, key,
        where + " ends beyond the data buffer of " + std::to_string(buffer_bytes) + " bytes");
  const std::optional<uint64_t> expected = byte_length(entry.shape, entry.dtype);
  if (!expected)
    fail_tensor(name, key, "element count of shape " + brief(value.at("shape")) + " overflows");
  if (*expected != entry.end - entry.begin)
    fail_tensor(name, key,
                where + " hold " + std::to_string(entry.end - entry.begin) + " bytes but " +
                    dtype_name(entry.dtype) + " " + shape_string(entry.shape) + " needs " +
                    std::to_string(*expected));
  return entry;
}

void check_metadata(const std::string& name, const json& metadata) {
  if (metadata.is_null()) return;  // the reference library reads null as "no metadata"
  if (!metadata.is_object())
    fail(name, "__metadata__ must be an object of strings, got " + brief(metadata));
  for (const auto& [key, value] : metadata.items())
    if (!value.is_string())
      fail(name, "__metadata__ '" + key + "' must be a string, got " + brief(value));
}

// Sorts the entries into file order and requires them to tile the buffer [0, buffer_bytes).
void check_layout(const std::string& name, std::vector<Entry>& entries, uint64_t buffer_bytes) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.header_position) <
           std::tie(b.begin, b.end, b.header_position);
  });
  uint64_t expected_begin = 0;
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    if (entry.begin < expected_begin)
      fail_tensor(name, entry.key,
                  "data_offsets [" + std::to_string(entry.begin) + ", " +
                      std::to_string(entry.end) + "] overlap tensor '" + previous->key + "'");
    if (entry.begin > expected_begin)
      fail_tensor(name, entry.key,
                  "data_offsets begin at " + std::to_string(entry.begin) + ", leaving a hole of " +
                      std::to_string(entry.begin - expected_begin) + " bytes at data offset " +
                      std::to_string(expected_begin));
    expected_begin = entry.end;
    previous = &entry;
  }
  if (expected_begin != buffer_bytes)
    fail(name, "data buffer has " + std::to_string(buffer_bytes - expected_begin) +
                   " bytes after the last tensor" +
                   (previous ? " '" + previous->key + "'" : std::string()) + " (at data offset " +
                   std::to_string(expected_begin) + ")");
}

Tensor copy_tensor(const Entry& entry, const char* buffer) {
  // A copy per tensor: offsets in the file need not be aligned for the dtype.
  Tensor tensor = Tensor::empty(entry.shape, entry.dtype);
  if (entry.end > entry.begin)
    std::memcpy(tensor.raw_data(), buffer + entry.begin, entry.end - entry.begin);
  return tensor;
}

// ---- Writing ---------------------------------------------------------------------------------

void check_writable(const std::string& path, const TensorMap& tensors) {
  std::set<std::string> seen;
  for (const auto& [key, tensor] : tensors) {
    if (key == kMetadataKey)
      throw_bad_input("write_safetensors '" + path + "': '__metadata__' is not a tensor name");
    if (!seen.insert(key).second)
      throw_bad_input("write_safetensors '" + path + "': duplicate tensor '" + key + "'");
    if (!tensor.defined())
      throw Error("write_safetensors '" + path + "': tensor '" + key + "' is undefined");
    if (tensor.device() != Device::CPU)
      throw Error("write_safetensors '" + path + "': tensor '" + key + "' is on " +
                  device_name(tensor.device()) + "; copy it to the host first");
  }
}

// The header as the Python library writes it: compact JSON, __metadata__ first, entries in the
// given order with contiguous offsets, padded with spaces to a multiple of 8 bytes.
std::string header_json(const std::string& path, const TensorMap& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& [key, tensor] : tensors) {
    const uint64_t end = offset + tensor.nbytes();
    header[key] = {{"dtype", dtype_name(tensor.dtype())},
                   {"shape", tensor.shape()},
                   {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    throw_bad_input("write_safetensors '" + path +
                    "': a tensor name or metadata string is not UTF-8: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

TensorMap parse_safetensors(const std::string& bytes, const std::string& name,
                            std::map<std::string, std::string>* metadata) {
  if (bytes.size() < kLengthPrefixBytes)
    fail(name, "file is " + std::to_string(bytes.size()) +
                   " bytes, shorter than the 8-byte header length");
  const uint64_t header_bytes = read_u64_le(bytes.data());
  if (header_bytes > kMaxHeaderBytes)
    fail(name, "header length " + std::to_string(header_bytes) +
                   " (bytes 0..8) exceeds the 100 MB limit");
  if (header_bytes > bytes.size() - kLengthPrefixBytes)
    fail(name, "header length " + std::to_string(header_bytes) +
                   " (bytes 0..8) runs past the end of the " + std::to_string(bytes.size()) +
                   "-byte file");
  const Header header =
      parse_header_json(std::string_view(bytes).substr(kLengthPrefixBytes, header_bytes), name);
  const uint64_t buffer_begin = kLengthPrefixBytes + header_bytes;
  const uint64_t buffer_bytes = bytes.size() - buffer_begin;

  std::vector<Entry> entries;
  for (size_t position = 0; position < header.key_order.size(); ++position) {
    const std::string& key = header.key_order[position];
    if (key == kMetadataKey) {
      const json& strings = header.object.at(key);
      check_metadata(name, strings);
      if (metadata && strings.is_object())
        for (const auto& [field, value] : strings.items()) (*metadata)[field] = value.get<std::string>();
      continue;
    }
    entries.push_back(parse_entry(name, key, header.object.at(key), buffer_bytes));
    entries.back().header_position = position;
  }
  check_layout(name, entries, buffer_bytes);

  TensorMap tensors;
  tensors.reserve(entries.size());
  for (const Entry& entry : entries)
    tensors.emplace_back(entry.key, copy_tensor(entry, bytes.data() + buffer_begin));
  return tensors;
}

TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  return parse_safetensors(read_file_bytes(path), path, metadata);
}

void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  check_writable(path, tensors);
  const std::string header = header_json(path, tensors, metadata);
  const std::string length = u64_le(header.size());
  std::vector<ByteChunk> chunks{{length.data(), length.size()}, {header.data(), header.size()}};
  for (const auto& [key, tensor] : tensors)
    if (tensor.nbytes() > 0) chunks.push_back({tensor.raw_data(), tensor.nbytes()});
  write_file_atomically(path, chunks);
}

}  // namespace hookrt::io
