// NPY (numpy.save, https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html): the
// magic "\x93NUMPY", a major and minor version byte, the header length (u16 little-endian in
// v1.0, u32 in v2.0 and v3.0), a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces and ended by a newline, then the elements in C order.
//
// The reader accepts what numpy.load accepts for the supported dtypes (little-endian <f4 <f8 <f2
// <i8 <i4 and |u1, C order), checks every length and bound, and requires the data to be exactly
// numel * itemsize bytes. The writer writes v1.0 (v2.0 for headers over 64 KiB) byte for byte as
// numpy 1.24 does, header padded so the data starts at a multiple of 64 bytes.
#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>
#include <variant>

#include "hookrt/io.h"
#include "io/file_bytes.h"

namespace hookrt::io {
namespace {

static_assert(std::endian::native == std::endian::little,
              "NPY data here is little-endian; hookrt copies it without swapping bytes");

constexpr std::string_view kMagic("\x93NUMPY", 6);
constexpr size_t kArrayAlign = 64;           // numpy.lib.format.ARRAY_ALIGN
constexpr size_t kGrowthAxisMaxDigits = 21;  // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS

struct DescrDType {
  const char* descr;
  DType dtype;
};
constexpr DescrDType kDescrs[] = {{"<f4", DType::F32}, {"<f8", DType::F64}, {"<f2", DType::F16},
                                  {"<i8", DType::I64}, {"<i4", DType::I32}, {"|u1", DType::U8}};

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw_bad_input(name + ": NPY " + what);
}

DType dtype_from_descr(const std::string& name, const std::string& descr) {
  for (const DescrDType& entry : kDescrs)
    if (descr == entry.descr) return entry.dtype;
  if (!descr.empty() && descr[0] == '>')
    fail(name,
         "header: big-endian dtype '" + descr + "' is not supported (save little-endian data)");
  fail(name, "header: unsupported dtype '" + descr + "' (hookrt reads <f4 <f8 <f2 <i8 <i4 |u1)");
}

// ---- The header dict ---------------------------------------------------------------------------

// A value in the header dict: a string, a bool, or a tuple of non-negative integers (the shape).
using HeaderValue = std::variant<std::string, bool, Shape>;

// A strict parser for the Python dict literal numpy writes: string keys; string, True/False or
// int-tuple values; Python's whitespace and trailing commas; `L` suffixes of Python 2 integers.
class HeaderDictParser {
 public:
  HeaderDictParser(std::string_view text, size_t file_offset, const std::string& name)
      : text_(text), file_offset_(file_offset), name_(name) {}

  std::map<std::string, HeaderValue> parse() {
    std::map<std::string, HeaderValue> dict;
    skip_spaces();
    expect('{', "'{' opening the header dict");
    while (!consume('}')) {
      const size_t key_at = pos_;
      std::string key = parse_string();
      expect(':', "':' after a key");
      HeaderValue value = parse_value();
      if (!dict.emplace(key, std::move(value)).second)
        fail_at(key_at, "duplicate key '" + key + "'");
      if (!consume(',')) {
        expect('}', "',' or '}' after a value");
        break;
      }
    }
    skip_spaces();
    if (pos_ != text_.size()) fail_at(pos_, "unexpected text after the header dict");
    return dict;
  }

 private:
  [[noreturn]] void fail_at(size_t pos, const std::string& what) const {
    fail(name_, "header at byte " + std::to_string(file_offset_ + pos) + ": " + what);
  }

  void skip_spaces() {
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  bool consume(char c) {
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c, const char* what) {
    if (!consume(c)) fail_at(pos_, std::string("expected ") + what);
  }

  bool consume_word(std::string_view word) {
    skip_spaces();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  std::string parse_string() {
    skip_spaces();
    const char quote = pos_ < text_.size() ? text_[pos_] : '\0';
    if (quote != '\'' && quote != '"') fail_at(pos_, "expected a quoted string");
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail_at(pos_, "unterminated string");
    std::string value(text_.substr(pos_ + 1, end - pos_ - 1));
    if (value.find('\\') != std::string::npos)
      fail_at(pos_, "escape sequences are not supported in the header");
    pos_ = end + 1;
    return value;
  }

  HeaderValue parse_value() {
    skip_spaces();
    if (consume_word("True")) return true;
    if (consume_word("False")) return false;
    if (pos_ < text_.size() && text_[pos_] == '(') return parse_tuple();
    if (pos_ < text_.size() && (text_[pos_] == '\'' || text_[pos_] == '"')) return parse_string();
    fail_at(pos_, "expected a string, True, False or a tuple of integers");
  }

  // `()`, `(5,)`, `(2, 3)`, `(2, 3,)`; `(5)` is the integer 5 in Python, not a shape.
  Shape parse_tuple() {
    const size_t tuple_at = pos_;
    expect('(', "'('");
    Shape shape;
    bool trailing_comma = false;
    while (!consume(')')) {
      shape.push_back(parse_dimension());
      trailing_comma = consume(',');
      if (!trailing_comma) {
        expect(')', "',' or ')' in the shape tuple");
        break;
      }
    }
    if (shape.size() == 1 && !trailing_comma)
      fail_at(tuple_at, "shape '(n)' is an integer, not a tuple; write '(n,)'");
    return shape;
  }

  int64_t parse_dimension() {
    skip_spaces();
    const size_t start = pos_;
    int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (__builtin_mul_overflow(value, 10, &value) ||
          __builtin_add_overflow(value, text_[pos_] - '0', &value))
        fail_at(start, "shape dimension does not fit in 64 bits");
      ++pos_;
    }
    if (pos_ == start) fail_at(start, "shape dimensions must be non-negative integers");
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 long
    return value;
  }

  std::string_view text_;
  size_t file_offset_;
  const std::string& name_;
  size_t pos_ = 0;
};

struct NpyHeader {
  DType dtype = DType::F32;
  Shape shape;
};

template <class T>
const T& header_field(const std::string& name, const std::map<std::string, HeaderValue>& dict,
                      const char* key, const char* expected) {
  auto it = dict.find(key);
  if (it == dict.end()) fail(name, std::string("header: missing key '") + key + "'");
  if (!std::holds_alternative<T>(it->second))
    fail(name, std::string("header: '") + key + "' must be " + expected);
  return std::get<T>(it->second);
}

NpyHeader interpret_header(const std::string& name,
                           const std::map<std::string, HeaderValue>& dict) {
  for (const auto& [key, value] : dict)
    if (key != "descr" && key != "fortran_order" && key != "shape")
      fail(name, "header: unexpected key '" + key + "' (numpy writes descr, fortran_order, shape)");
  NpyHeader header;
  header.dtype =
      dtype_from_descr(name, header_field<std::string>(name, dict, "descr", "a dtype string"));
  if (header_field<bool>(name, dict, "fortran_order", "True or False"))
    fail(
        name,
        "header: 'fortran_order': True (column-major) is not supported; save a C-contiguous array");
  header.shape = header_field<Shape>(name, dict, "shape", "a tuple of integers");
  return header;
}

// numel * itemsize, or nullopt when it does not fit in 64 bits.
std::optional<uint64_t> data_bytes(const Shape& shape, DType dtype) {
  uint64_t bytes = dtype_size(dtype);
  int64_t numel = 1;
  for (int64_t dim : shape)
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes) ||
        __builtin_mul_overflow(numel, dim, &numel))
      return std::nullopt;
  return bytes;
}

uint32_t read_le(const std::string& bytes, size_t at, size_t width) {
  uint32_t value = 0;
  for (size_t i = width; i-- > 0;) value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  return value;
}

// ---- Writing ---------------------------------------------------------------------------------

const char* descr_of(const std::string& path, DType dtype) {
  for (const DescrDType& entry : kDescrs)
    if (entry.dtype == dtype) return entry.descr;
  throw Error("write_npy '" + path + "': NPY has no " + dtype_name(dtype) +
              " dtype; convert with to(DType::F32)");
}

// Python's repr of a shape tuple: (), (5,), (2, 3).
std::string shape_repr(const Shape& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

// The preamble and header numpy.lib.format._write_array_header writes for a C-order array.
std::string npy_preamble(const std::string& path, const Tensor& tensor) {
  std::string dict = std::string("{'descr': '") + descr_of(path, tensor.dtype()) +
                     "', 'fortran_order': False, 'shape': " + shape_repr(tensor.shape()) + ", }";
  if (!tensor.shape().empty())  // spare room so the first dimension can grow in place
    dict.append(kGrowthAxisMaxDigits -
                    std::min(kGrowthAxisMaxDigits, std::to_string(tensor.shape()[0]).size()),
                ' ');
  // Like numpy: version 1.0 unless its 16-bit header length overflows.
  auto padding_for = [&](size_t prefix) {
    return kArrayAlign - (prefix + dict.size() + 1) % kArrayAlign;
  };
  const bool v1 = dict.size() + 1 + padding_for(10) <= 65535;
  const size_t prefix = v1 ? 10 : 12;
  const size_t padding = padding_for(prefix);
  const size_t header_length = dict.size() + 1 + padding;
  std::string preamble(kMagic);
  preamble += static_cast<char>(v1 ? 1 : 2);
  preamble += '\0';
  for (size_t i = 0; i < prefix - 8; ++i)
    preamble += static_cast<char>((header_length >> (8 * i)) & 0xFFu);
  return preamble + dict + std::string(padding, ' ') + '\n';
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 10)
    fail(name, "file is " + std::to_string(bytes.size()) + " bytes, too short for an NPY preamble");
  if (std::string_view(bytes).substr(0, kMagic.size()) != kMagic)
    fail(name, "magic string missing (not an NPY file)");
  const int major = static_cast<unsigned char>(bytes[6]),
            minor = static_cast<unsigned char>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    fail(name, "version " + std::to_string(major) + "." + std::to_string(minor) +
                   " is not supported (1.0, 2.0, 3.0)");
  const size_t length_width = major == 1 ? 2 : 4;
  const size_t header_begin = 8 + length_width;
  if (bytes.size() < header_begin)
    fail(name,
         "file ends inside the header length (bytes 8.." + std::to_string(header_begin) + ")");
  const size_t header_length = read_le(bytes, 8, length_width);
  if (header_length > bytes.size() - header_begin)
    fail(name, "header length " + std::to_string(header_length) + " (bytes 8.." +
                   std::to_string(header_begin) + ") runs past the end of the " +
                   std::to_string(bytes.size()) + "-byte file");

  const std::string_view header_text = std::string_view(bytes).substr(header_begin, header_length);
  const NpyHeader header =
      interpret_header(name, HeaderDictParser(header_text, header_begin, name).parse());
  const size_t data_begin = header_begin + header_length;
  const std::optional<uint64_t> expected = data_bytes(header.shape, header.dtype);
  if (!expected)
    fail(name, "header: element count of shape " + shape_repr(header.shape) + " overflows");
  if (*expected != bytes.size() - data_begin)
    fail(name, "data at byte " + std::to_string(data_begin) + " is " +
                   std::to_string(bytes.size() - data_begin) + " bytes but " +
                   dtype_name(header.dtype) + " " + shape_string(header.shape) + " needs " +
                   std::to_string(*expected));

  Tensor tensor = Tensor::empty(header.shape, header.dtype);
  if (*expected > 0) std::memcpy(tensor.raw_data(), bytes.data() + data_begin, *expected);
  return tensor;
}

Tensor read_npy(const std::string& path) { return parse_npy(read_file_bytes(path), path); }

void write_npy(const std::string& path, const Tensor& tensor) {
  if (!tensor.defined()) throw Error("write_npy '" + path + "': the tensor is undefined");
  if (tensor.device() != Device::CPU)
    throw Error("write_npy '" + path + "': the tensor is on " + device_name(tensor.device()) +
                "; copy it to the host first");
  const std::string preamble = npy_preamble(path, tensor);
  std::vector<ByteChunk> chunks{{preamble.data(), preamble.size()}};
  if (tensor.nbytes() > 0) chunks.push_back({tensor.raw_data(), tensor.nbytes()});
  write_file_atomically(path, chunks);
}

}  // namespace hookrt::io
