// File formats (src/io): safetensors and NPY round trips and files written by Python, every
// malformed input a BadInput error naming the file and the key, a seeded mutation fuzz of both
// parsers, the stats.jsonl and captures writers, and the half/bfloat16 conversions they rely on.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "hookrt/io.h"
#include "io/file_bytes.h"
#include "random.h"

namespace hookrt {
namespace {

namespace fs = std::filesystem;

// ---- Helpers -------------------------------------------------------------------------------

// Byte strings with embedded NULs from string literals.
template <size_t N>
std::string bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

// A fresh directory per test, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "hookrt_test_io_" + std::to_string(::getpid()) + "_" +
                       test->test_suite_name() + "_" + test->name();
    std::replace(name.begin(), name.end(), '/',
                 '_');  // parameterized tests have slashes in their names
    path_ = fs::temp_directory_path() / name;
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

// Runs `action`, requires a hookrt::Error of `kind`, and returns its message.
std::string error_message(const std::function<void()>& action,
                          ErrorKind kind = ErrorKind::BadInput) {
  try {
    action();
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind))
        << "wrong error kind for: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected hookrt::Error, nothing was thrown";
  return "";
}

void expect_contains(const std::string& message, const std::string& part) {
  EXPECT_NE(message.find(part), std::string::npos)
      << "message should name '" << part << "': " << message;
}

std::string u64_le(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(value >> (8 * i));
  return out;
}

// A safetensors file from a header text and a data buffer of `data_bytes` zero bytes.
std::string safetensors_file(const std::string& header, size_t data_bytes) {
  return u64_le(header.size()) + header + std::string(data_bytes, '\0');
}

// An NPY v1.0 file from a header dict text and `data_bytes` zero bytes.
std::string npy_file(const std::string& dict, size_t data_bytes) {
  const std::string header = dict + "\n";
  return bytes("\x93NUMPY\x01\x00") + static_cast<char>(header.size() & 0xFF) +
         static_cast<char>(header.size() >> 8) + header + std::string(data_bytes, '\0');
}

template <class T>
Tensor tensor_of(DType dtype, const Shape& shape, const std::vector<T>& values) {
  Tensor t = Tensor::empty(shape, dtype);
  EXPECT_EQ(t.nbytes(), values.size() * sizeof(T)) << "test setup: values do not fill the shape";
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), t.nbytes());
  return t;
}

void expect_same_tensor(const Tensor& actual, const Tensor& expected, const std::string& what) {
  EXPECT_EQ(dtype_name(actual.dtype()), dtype_name(expected.dtype())) << what;
  EXPECT_EQ(actual.shape(), expected.shape()) << what;
  ASSERT_EQ(actual.nbytes(), expected.nbytes()) << what;
  if (actual.nbytes()) {
    EXPECT_EQ(std::memcmp(actual.raw_data(), expected.raw_data(), actual.nbytes()), 0)
        << what << ": bytes differ";
  }
}


// ---- Fixtures written by Python ------------------------------------------------------------
// Made once with Debian's /usr/bin/python3 (numpy 1.24.2, torch 1.13):
//   numpy:  np.save(f, arr), or np.lib.format.write_array(f, arr, version=(2, 0) / (3, 0)), for
//           (np.arange(6, dtype='<f4').reshape(2, 3) * 0.5 - 1), np.array([3, -1, 0, 7], '<i8'),
//           np.array(1.5, '<f2'), np.array([0, 1, 254, 255], '|u1').reshape(2, 1, 2),
//           np.array([-2**31, 2**31 - 1], '<i4') as v2.0, np.array([pi, -0.0, inf], '<f8') as v3.0.
//   safetensors, by hand the way the safetensors library lays files out: data sorted by dtype
//           (widest first) then name, __metadata__ {"format": "pt"} first, json.dumps(header,
//           separators=(',', ':')) with the other keys sorted (so header order differs from
//           data order), padded with spaces to a multiple of 8, tensor bytes from torch:
//           bn.num_batches_tracked = tensor(5) (int64, shape []), conv.weight = [[[[0.5, -1], [2,
//           0.25]]]], brain = tensor([3, -0.125, 1e30], bfloat16), half = tensor([1, -2.5],
//           float16).

// 152 bytes
const std::string kNumpyF32x2x3 = bytes(
    "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }    "
    "                                                      \n\x00\x00\x80\xbf\x00\x00\x00\xbf"
    "\x00\x00\x00\x00\x00\x00\x00?\x00\x00\x80?\x00\x00\xc0?");
// 160 bytes
const std::string kNumpyI64Labels = bytes(
    "\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }      "
    "                                                      \n\x03\x00\x00\x00\x00\x00\x00\x00"
    "\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00"
    "\x00\x00");
// 130 bytes
const std::string kNumpyF16Scalar = bytes(
    "\x93NUMPY\x01\x00v\x00{'descr': '<f2', 'fortran_order': False, 'shape': (), }        "
    "                                                      \n\x00>");
// 132 bytes
const std::string kNumpyU8x2x1x2 = bytes(
    "\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2), } "
    "                                                      \n\x00\x01\xfe\xff");
// 136 bytes
const std::string kNumpyI32V2 = bytes(
    "\x93NUMPY\x02\x00t\x00\x00\x00{'descr': '<i4', 'fortran_order': False, 'shape': (2,),"
    " }                                                          \n\x00\x00\x00\x80\xff\xff"
    "\xff\x7f");
// 152 bytes
const std::string kNumpyF64V3 = bytes(
    "\x93NUMPY\x03\x00t\x00\x00\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3,),"
    " }                                                          \n\x18-DT\xfb!\x09@\x00\x00"
    "\x00\x00\x00\x00\x00\x80\x00\x00\x00\x00\x00\x00\xf0\x7f");
// 338 bytes
const std::string kHandMadeSafetensors = bytes(
    "(\x01\x00\x00\x00\x00\x00\x00{\"__metadata__\":{\"format\":\"pt\"},\"bn.num_batches_t"
    "racked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},\"brain\":{\"dtype\""
    ":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},\"conv.weight\":{\"dtype\":\"F32\","
    "\"shape\":[1,1,2,2],\"data_offsets\":[8,24]},\"half\":{\"dtype\":\"F16\",\"shape\":[2"
    "],\"data_offsets\":[30,34]}}   \x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00?\x00\x00\x80"
    "\xbf\x00\x00\x00@\x00\x00\x80>@@\x00\xbeJq\x00<\x00\xc1");

// float -> (half, bfloat16) bits as torch 1.13 converts them (x.to(torch.float16 / bfloat16),
// the path torch-written files take): special values, rounding ties and boundaries, then
// torch.randn(24, generator=manual_seed(0)) * 2**randint(-30, 30).
struct FloatConversion {
  uint32_t float_bits;
  uint16_t half_bits, bfloat16_bits;
};
const FloatConversion kTorchConversions[] = {
    {0x00000000, 0x0000, 0x0000}, {0x80000000, 0x8000, 0x8000}, {0x3F800000, 0x3C00, 0x3F80},
    {0xC0000000, 0xC000, 0xC000}, {0x3DCCCCCD, 0x2E66, 0x3DCD}, {0x3EAAAAAB, 0x3555, 0x3EAB},
    {0x477FE000, 0x7BFF, 0x4780}, {0x477FEFFD, 0x7BFF, 0x4780}, {0x477FF000, 0x7C00, 0x4780},
    {0x501502F9, 0x7C00, 0x5015}, {0xD01502F9, 0xFC00, 0xD015}, {0x7F800000, 0x7C00, 0x7F80},
    {0xFF800000, 0xFC00, 0xFF80}, {0x33800000, 0x0001, 0x3380}, {0x33000000, 0x0000, 0x3300},
    {0x33000001, 0x0001, 0x3300}, {0x33C00000, 0x0002, 0x33C0}, {0x38800000, 0x0400, 0x3880},
    {0x387FE000, 0x0400, 0x3880}, {0x387FC000, 0x03FF, 0x3880}, {0x3F801000, 0x3C00, 0x3F80},
    {0x3F803000, 0x3C02, 0x3F80}, {0x3F801001, 0x3C01, 0x3F80}, {0xB22BCC77, 0x8000, 0xB22C},
    {0x00000001, 0x0000, 0x0000}, {0x000116C2, 0x0000, 0x0001}, {0x3F808000, 0x3C04, 0x3F80},
    {0x3F818000, 0x3C0C, 0x3F82}, {0x7F7EFF65, 0x7C00, 0x7F7F}, {0x7F7FFFFF, 0x7C00, 0x7F80},
    {0xB87BA882, 0x83EF, 0xB87C}, {0x337FFAE5, 0x0001, 0x3380}, {0xC3901B85, 0xDC81, 0xC390},
    {0xB213808A, 0x8000, 0xB214}, {0xB7804BD6, 0x8101, 0xB780}, {0xC85E255D, 0xFC00, 0xC85E},
    {0x3FD94515, 0x3ECA, 0x3FD9}, {0x38B12783, 0x0589, 0x38B1}, {0xC521CC6D, 0xE90E, 0xC522},
    {0xCC875FC1, 0xFC00, 0xCC87}, {0x30EFAA55, 0x0000, 0x30F0}, {0xBEA17F5F, 0xB50C, 0xBEA1},
    {0x44B8C9DB, 0x65C6, 0x44B9}, {0x3E0837A1, 0x3042, 0x3E08}, {0x49AA7345, 0x7C00, 0x49AA},
    {0x30DFD77D, 0x0000, 0x30E0}, {0xB492EACF, 0x8005, 0xB493}, {0xB8E4936F, 0x8725, 0xB8E5},
    {0x3BEE8C30, 0x1F74, 0x3BEF}, {0x47A12737, 0x7C00, 0x47A1}, {0x4D00519A, 0x7C00, 0x4D00},
    {0x45DC1B3A, 0x6EE1, 0x45DC}, {0x399E38F6, 0x0CF2, 0x399E}, {0xC6D35AD0, 0xF69B, 0xC6D3},
    {0xB1D75006, 0x8000, 0xB1D7}, {0xCC143A08, 0xFC00, 0xCC14},
};

// One tensor of every dtype, including a scalar and an empty tensor, names deliberately unsorted.
TensorMap every_dtype() {
  return {
      {"z.weight",
       tensor_of<float>(DType::F32, {2, 3}, {0.5f, -1.f, 3.25f, 1e-30f, -0.f, 65504.f})},
      {"a.f64", tensor_of<double>(DType::F64, {4}, {3.141592653589793, -1e300, 5e-324, 0.0})},
      {"m.f16", tensor_of<uint16_t>(DType::F16, {3}, {0x3C00, 0x0001, 0x7C00})},
      {"b.bf16", tensor_of<uint16_t>(DType::BF16, {2, 2}, {0x3F80, 0xC049, 0x0001, 0xFF80})},
      {"bn1.num_batches_tracked", tensor_of<int64_t>(DType::I64, {}, {INT64_MIN})},
      {"i32", tensor_of<int32_t>(DType::I32, {5}, {1, -2, INT32_MAX, INT32_MIN, 0})},
      {"u8", tensor_of<uint8_t>(DType::U8, {1, 7}, {0, 1, 2, 127, 128, 254, 255})},
      {"empty", Tensor::zeros({0, 3}, DType::F32)},
  };
}

// ---- safetensors ---------------------------------------------------------------------------

TEST(Safetensors, RoundTripKeepsEveryDtypeShapeValueAndTheWrittenOrder) {
  ScratchDir dir;
  const TensorMap written = every_dtype();
  io::write_safetensors(dir.file("w.safetensors"), written, {{"format", "pt"}});
  const TensorMap read = io::read_safetensors(dir.file("w.safetensors"));
  ASSERT_EQ(read.size(), written.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].first, written[i].first) << "tensors come back in the order written";
    expect_same_tensor(read[i].second, written[i].second, written[i].first);
  }
}

TEST(Safetensors, WriterLaysOutTheHeaderLikeThePythonLibrary) {
  ScratchDir dir;
  const std::string path = dir.file("w.safetensors");
  io::write_safetensors(
      path, {{"w", Tensor::zeros({2}, DType::F32)}, {"n", Tensor::zeros({}, DType::I64)}},
      {{"format", "pt"}});
  const std::string file = io::read_file_bytes(path);
  const std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_"
      "offsets\":[0,8]},"
      "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  EXPECT_EQ(file, u64_le(padded.size()) + padded + std::string(16, '\0'))
      << "compact JSON, metadata first, contiguous offsets, spaces up to a multiple of 8 bytes";
}

TEST(Safetensors, ReadsAFileLaidOutByThePythonLibraryInDataOffsetOrder) {
  const TensorMap read = io::parse_safetensors(kHandMadeSafetensors, "python.safetensors");
  ASSERT_EQ(read.size(), 4u);
  EXPECT_EQ(read[0].first, "bn.num_batches_tracked");
  EXPECT_EQ(read[1].first, "conv.weight");
  EXPECT_EQ(read[2].first, "brain");
  EXPECT_EQ(read[3].first, "half");
  expect_same_tensor(read[0].second, tensor_of<int64_t>(DType::I64, {}, {5}),
                     "num_batches_tracked");
  expect_same_tensor(read[1].second,
                     tensor_of<float>(DType::F32, {1, 1, 2, 2}, {0.5f, -1.f, 2.f, 0.25f}), "conv");
  // 1e30 is float 0x7149F2CA, which rounds up to bfloat16 0x714A.
  expect_same_tensor(read[2].second,
                     tensor_of<uint16_t>(DType::BF16, {3}, {0x4040, 0xBE00, 0x714A}), "bf16");
  expect_same_tensor(read[3].second, tensor_of<uint16_t>(DType::F16, {2}, {0x3C00, 0xC100}), "f16");
}

TEST(Safetensors, EmptyTensorsAtTheSameOffsetKeepHeaderOrder) {
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[2,0],"data_offsets":[0,0]}})";
  const TensorMap read = io::parse_safetensors(safetensors_file(header, 0), "empty.safetensors");
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].first, "b");
  EXPECT_EQ(read[1].first, "a");
  EXPECT_EQ(read[1].second.shape(), (Shape{2, 0}));
}

TEST(Safetensors, HeaderWithoutTensorsIsAnEmptyMap) {
  EXPECT_TRUE(io::parse_safetensors(safetensors_file("{}", 0), "m").empty());
  EXPECT_TRUE(
      io::parse_safetensors(safetensors_file(R"({"__metadata__":{"a":"b"}})", 0), "m").empty());
  EXPECT_TRUE(io::parse_safetensors(safetensors_file(R"({"__metadata__":null})", 0), "m").empty())
      << "null metadata is no metadata, as in the safetensors library";
}

TEST(Safetensors, RewritingReplacesTheFileAndLeavesNoTemporaryFiles) {
  ScratchDir dir;
  const std::string path = dir.file("w.safetensors");
  io::write_safetensors(path, every_dtype());
  io::write_safetensors(path, {{"only", Tensor::full({3}, 2.0)}});
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"w.safetensors"});
  const TensorMap read = io::read_safetensors(path);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].second.item(2), 2.0);
}

TEST(Safetensors, WritingIntoAMissingDirectoryNamesThePath) {
  ScratchDir dir;
  const std::string path = dir.file("missing/w.safetensors");
  const std::string message =
      error_message([&] { io::write_safetensors(path, every_dtype()); }, ErrorKind::Runtime);
  expect_contains(message, path);
  expect_contains(message, "No such file or directory");
}

TEST(Safetensors, WriterRejectsDuplicateAndReservedNames) {
  ScratchDir dir;
  const Tensor t = Tensor::zeros({1});
  expect_contains(error_message([&] {
                    io::write_safetensors(dir.file("d"), {{"x", t}, {"x", t}});
                  }),
                  "'x'");
  expect_contains(error_message([&] {
                    io::write_safetensors(dir.file("d"), {{"__metadata__", t}});
                  }),
                  "__metadata__");
  EXPECT_TRUE(dir.listing().empty()) << "nothing is written when the tensors are rejected";
}

TEST(Safetensors, ReadingAMissingFileIsBadInputNamingThePath) {
  ScratchDir dir;
  const std::string path = dir.file("nope.safetensors");
  const std::string message = error_message([&] { io::read_safetensors(path); });
  expect_contains(message, path);
  expect_contains(message, "No such file or directory");
}

TEST(Safetensors, ReadingADirectoryIsBadInputNamingThePath) {
  ScratchDir dir;
  const std::string path = dir.file("");
  expect_contains(error_message([&] { io::read_safetensors(path); }), "is a directory");
}

// Each malformed header: the message must name the file and the key (or the offset at fault).
struct MalformedCase {
  const char* name;
  std::string header;
  size_t data_bytes;
  std::vector<std::string> named;  // what the message must contain besides the file name
};

class MalformedSafetensors : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedSafetensors, IsBadInputNamingTheFileAndTheKey) {
  const MalformedCase& c = GetParam();
  const std::string message = error_message(
      [&] { io::parse_safetensors(safetensors_file(c.header, c.data_bytes), "bad.safetensors"); });
  expect_contains(message, "bad.safetensors");
  for (const std::string& part : c.named) expect_contains(message, part);
}

std::string entry(const std::string& key, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + key + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

// A vector and ValuesIn rather than a 30-argument Values(...), which is slow to compile.
std::vector<MalformedCase> malformed_safetensors_cases() {
  return {
      MalformedCase{"not_json", "{\"w\": nope}", 0, {"not valid JSON"}},
      MalformedCase{"not_an_object", "[1, 2]", 0, {"not a JSON object"}},
      MalformedCase{"invalid_utf8", "{\"w\xff\": 1}", 0, {"not valid JSON"}},
      MalformedCase{"entry_not_object", "{\"w\": 5}", 0, {"'w'", "not an object"}},
      MalformedCase{"unknown_dtype",
                    "{" + entry("w", "\"F8_E4M3\"", "[1]", "[0,1]") + "}",
                    1,
                    {"'w'", "F8_E4M3"}},
      MalformedCase{
          "dtype_not_string", "{" + entry("w", "4", "[1]", "[0,4]") + "}", 4, {"'w'", "dtype"}},
      MalformedCase{
          "missing_dtype", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4, {"'w'", "dtype"}},
      MalformedCase{
          "missing_shape", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4, {"'w'", "shape"}},
      MalformedCase{
          "missing_offsets", R"({"w":{"dtype":"F32","shape":[1]}})", 4, {"'w'", "data_offsets"}},
      MalformedCase{
          "shape_not_list", "{" + entry("w", "\"F32\"", "1", "[0,4]") + "}", 4, {"'w'", "shape"}},
      MalformedCase{"shape_negative",
                    "{" + entry("w", "\"F32\"", "[-1]", "[0,4]") + "}",
                    4,
                    {"'w'", "shape"}},
      MalformedCase{"shape_fraction",
                    "{" + entry("w", "\"F32\"", "[1.5]", "[0,4]") + "}",
                    4,
                    {"'w'", "shape"}},
      MalformedCase{"shape_nested",
                    "{" + entry("w", "\"F32\"", "[[1]]", "[0,4]") + "}",
                    4,
                    {"'w'", "nested"}},
      MalformedCase{"shape_too_large",
                    "{" + entry("w", "\"F32\"", "[9223372036854775808]", "[0,4]") + "}",
                    4,
                    {"'w'", "shape"}},
      MalformedCase{"element_count_overflow",
                    "{" + entry("w", "\"F32\"", "[4294967296,4294967296,4]", "[0,4]") + "}",
                    4,
                    {"'w'", "overflows"}},
      MalformedCase{"offsets_one_number",
                    "{" + entry("w", "\"F32\"", "[1]", "[4]") + "}",
                    4,
                    {"'w'", "data_offsets"}},
      MalformedCase{"offsets_three_numbers",
                    "{" + entry("w", "\"F32\"", "[1]", "[0,4,8]") + "}",
                    8,
                    {"'w'", "data_offsets"}},
      MalformedCase{"offsets_negative",
                    "{" + entry("w", "\"F32\"", "[1]", "[-4,0]") + "}",
                    4,
                    {"'w'", "data_offsets"}},
      MalformedCase{"offsets_strings",
                    "{" + entry("w", "\"F32\"", "[1]", "[\"0\",\"4\"]") + "}",
                    4,
                    {"'w'", "data_offsets"}},
      MalformedCase{"begin_after_end",
                    "{" + entry("w", "\"F32\"", "[0]", "[8,4]") + "}",
                    8,
                    {"'w'", "[8,4]", "begin > end"}},
      MalformedCase{"end_beyond_buffer",
                    "{" + entry("w", "\"F32\"", "[100]", "[0,400]") + "}",
                    4,
                    {"'w'", "[0,400]", "beyond the data buffer of 4 bytes"}},
      MalformedCase{"length_mismatch",
                    "{" + entry("w", "\"F32\"", "[2]", "[0,4]") + "}",
                    4,
                    {"'w'", "[0,4]", "needs 8"}},
      MalformedCase{"overlap",
                    "{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                        entry("b", "\"F32\"", "[2]", "[4,12]") + "}",
                    12,
                    {"'b'", "overlap tensor 'a'"}},
      MalformedCase{"hole",
                    "{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "," +
                        entry("b", "\"F32\"", "[1]", "[8,12]") + "}",
                    12,
                    {"'b'", "hole of 4 bytes at data offset 4"}},
      MalformedCase{"hole_at_start",
                    "{" + entry("a", "\"F32\"", "[1]", "[4,8]") + "}",
                    8,
                    {"'a'", "data offset 0"}},
      MalformedCase{"trailing_bytes",
                    "{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "}",
                    8,
                    {"'a'", "4 bytes after the last tensor"}},
      MalformedCase{"duplicate_key",
                    "{" + entry("w", "\"F32\"", "[1]", "[0,4]") + "," +
                        entry("w", "\"F32\"", "[1]", "[4,8]") + "}",
                    8,
                    {"duplicate key 'w'"}},
      MalformedCase{"duplicate_field",
                    R"({"w":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})",
                    4,
                    {"'w'", "duplicate key 'dtype'"}},
      MalformedCase{"metadata_not_object", R"({"__metadata__":["pt"]})", 0, {"__metadata__"}},
      MalformedCase{"metadata_not_strings",
                    R"({"__metadata__":{"format":1}})",
                    0,
                    {"__metadata__", "'format'"}}};
}

INSTANTIATE_TEST_SUITE_P(Cases, MalformedSafetensors,
                         ::testing::ValuesIn(malformed_safetensors_cases()),
                         [](const ::testing::TestParamInfo<MalformedCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(Safetensors, FileShorterThanTheLengthPrefixIsBadInput) {
  expect_contains(
      error_message([] { io::parse_safetensors(std::string("\x02\x00\x00", 3), "short.st"); }),
      "short.st: safetensors file is 3 bytes");
}

TEST(Safetensors, HeaderLengthPastTheEndOfTheFileIsBadInput) {
  const std::string file = u64_le(100) + "{}";
  expect_contains(error_message([&] { io::parse_safetensors(file, "f.st"); }),
                  "header length 100 (bytes 0..8) runs past");
}

TEST(Safetensors, HeaderLengthOverTheLibraryLimitIsBadInput) {
  const std::string file = u64_le(100'000'001) + "{}";
  expect_contains(error_message([&] { io::parse_safetensors(file, "f.st"); }), "100 MB");
  const std::string huge = u64_le(UINT64_MAX) + "{}";
  expect_contains(error_message([&] { io::parse_safetensors(huge, "f.st"); }), "f.st");
}

// ---- NPY -----------------------------------------------------------------------------------

TEST(Npy, RoundTripKeepsEveryDtypeAndShape) {
  ScratchDir dir;
  const std::vector<Tensor> tensors = {
      tensor_of<float>(DType::F32, {2, 3}, {0.5f, -1.f, 3.25f, 1e-30f, -0.f, 65504.f}),
      tensor_of<double>(DType::F64, {4}, {3.141592653589793, -1e300, 5e-324, 0.0}),
      tensor_of<uint16_t>(DType::F16, {}, {0x7BFF}),
      tensor_of<int64_t>(DType::I64, {0}, {}),
      tensor_of<int32_t>(DType::I32, {3, 1, 2}, {1, -2, INT32_MAX, INT32_MIN, 0, 7}),
      tensor_of<uint8_t>(DType::U8, {5}, {0, 1, 128, 254, 255}),
  };
  for (const Tensor& t : tensors) {
    const std::string path = dir.file(dtype_name(t.dtype()) + ".npy");
    io::write_npy(path, t);
    expect_same_tensor(io::read_npy(path), t, path);
  }
}

TEST(Npy, ReadsFilesWrittenByNumpy) {
  expect_same_tensor(io::parse_npy(kNumpyF32x2x3, "f32.npy"),
                     tensor_of<float>(DType::F32, {2, 3}, {-1.f, -0.5f, 0.f, 0.5f, 1.f, 1.5f}),
                     "<f4 (2, 3)");
  expect_same_tensor(io::parse_npy(kNumpyI64Labels, "labels.npy"),
                     tensor_of<int64_t>(DType::I64, {4}, {3, -1, 0, 7}), "<i8 (4,)");
  expect_same_tensor(io::parse_npy(kNumpyF16Scalar, "half.npy"),
                     tensor_of<uint16_t>(DType::F16, {}, {0x3E00}), "<f2 ()");
  expect_same_tensor(io::parse_npy(kNumpyU8x2x1x2, "u8.npy"),
                     tensor_of<uint8_t>(DType::U8, {2, 1, 2}, {0, 1, 254, 255}), "|u1 (2, 1, 2)");
  expect_same_tensor(io::parse_npy(kNumpyI32V2, "v2.npy"),
                     tensor_of<int32_t>(DType::I32, {2}, {INT32_MIN, INT32_MAX}),
                     "<i4 version 2.0");
  expect_same_tensor(io::parse_npy(kNumpyF64V3, "v3.npy"),
                     tensor_of<double>(DType::F64, {3}, {3.141592653589793, -0.0, INFINITY}),
                     "<f8 version 3.0");
}

TEST(Npy, WriterOutputIsByteIdenticalToNumpySave) {
  ScratchDir dir;
  for (const std::string* numpy_bytes :
       {&kNumpyF32x2x3, &kNumpyI64Labels, &kNumpyF16Scalar, &kNumpyU8x2x1x2}) {
    const std::string path = dir.file("copy.npy");
    io::write_npy(path, io::parse_npy(*numpy_bytes, "numpy.npy"));
    EXPECT_EQ(io::read_file_bytes(path), *numpy_bytes)
        << "header padding, growth space and alignment as numpy 1.24";
  }
}

TEST(Npy, WriterRejectsBFloat16NamingThePath) {
  ScratchDir dir;
  const std::string path = dir.file("b.npy");
  const std::string message = error_message(
      [&] { io::write_npy(path, Tensor::zeros({2}, DType::BF16)); }, ErrorKind::Runtime);
  expect_contains(message, path);
  expect_contains(message, "BF16");
}

TEST(Npy, ReadingAMissingFileIsBadInputNamingThePath) {
  ScratchDir dir;
  const std::string path = dir.file("x.npy");
  expect_contains(error_message([&] { io::read_npy(path); }), path);
}

struct MalformedNpyCase {
  const char* name;
  std::string file;
  std::vector<std::string> named;  // what the message must contain besides the file name
};

class MalformedNpy : public ::testing::TestWithParam<MalformedNpyCase> {};

TEST_P(MalformedNpy, IsBadInputNamingTheFileAndTheProblem) {
  const MalformedNpyCase& c = GetParam();
  const std::string message = error_message([&] { io::parse_npy(c.file, "bad.npy"); });
  expect_contains(message, "bad.npy");
  for (const std::string& part : c.named) expect_contains(message, part);
}

std::string dict(const std::string& descr, const std::string& fortran, const std::string& shape) {
  return "{'descr': " + descr + ", 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

std::string with_byte(std::string file, size_t at, char value) {
  file[at] = value;
  return file;
}

std::vector<MalformedNpyCase> malformed_npy_cases() {
  return {
      MalformedNpyCase{"too_short", bytes("\x93NUMPY\x01"), {"7 bytes"}},
      MalformedNpyCase{"bad_magic", with_byte(kNumpyF32x2x3, 1, 'n'), {"magic"}},
      MalformedNpyCase{"version_4", with_byte(kNumpyF32x2x3, 6, 4), {"version 4.0"}},
      MalformedNpyCase{"version_1_1", with_byte(kNumpyF32x2x3, 7, 1), {"version 1.1"}},
      MalformedNpyCase{"v2_length_cut", bytes("\x93NUMPY\x02\x00t\x00"), {"header length"}},
      MalformedNpyCase{
          "header_past_end", with_byte(kNumpyF32x2x3, 9, 1), {"header length 374", "runs past"}},
      MalformedNpyCase{"data_truncated",
                       kNumpyF32x2x3.substr(0, kNumpyF32x2x3.size() - 1),
                       {"23 bytes", "needs 24"}},
      MalformedNpyCase{"data_extra", kNumpyF32x2x3 + "!", {"25 bytes", "needs 24"}},
      MalformedNpyCase{
          "fortran_order", npy_file(dict("'<f4'", "True", "(2, 3)"), 24), {"fortran_order"}},
      MalformedNpyCase{
          "big_endian", npy_file(dict("'>f4'", "False", "(1,)"), 4), {"'>f4'", "big-endian"}},
      MalformedNpyCase{"bool_dtype", npy_file(dict("'|b1'", "False", "(1,)"), 1), {"'|b1'"}},
      MalformedNpyCase{
          "structured_dtype", npy_file(dict("[('a', '<f4')]", "False", "(1,)"), 4), {"byte 20"}},
      MalformedNpyCase{"descr_not_string", npy_file(dict("True", "False", "(1,)"), 4), {"'descr'"}},
      MalformedNpyCase{
          "fortran_not_bool", npy_file(dict("'<f4'", "'no'", "(1,)"), 4), {"'fortran_order'"}},
      MalformedNpyCase{
          "shape_not_tuple", npy_file(dict("'<f4'", "False", "'(1,)'"), 4), {"'shape'"}},
      MalformedNpyCase{
          "shape_int_in_parens", npy_file(dict("'<f4'", "False", "(5)"), 20), {"'(n,)'"}},
      MalformedNpyCase{
          "shape_negative", npy_file(dict("'<f4'", "False", "(-1,)"), 4), {"non-negative"}},
      MalformedNpyCase{"shape_fraction", npy_file(dict("'<f4'", "False", "(1.5,)"), 4), {"','"}},
      MalformedNpyCase{"dimension_overflow",
                       npy_file(dict("'<f4'", "False", "(99999999999999999999,)"), 4),
                       {"64 bits"}},
      MalformedNpyCase{"element_count_overflow",
                       npy_file(dict("'<f4'", "False", "(4294967296, 4294967296, 4)"), 4),
                       {"overflows"}},
      MalformedNpyCase{
          "missing_shape", npy_file("{'descr': '<f4', 'fortran_order': False}", 4), {"'shape'"}},
      MalformedNpyCase{
          "unknown_key",
          npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': True}", 4),
          {"'x'"}},
      MalformedNpyCase{
          "duplicate_key",
          npy_file("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4),
          {"duplicate key 'descr'"}},
      MalformedNpyCase{"not_a_dict", npy_file("('<f4', False, (1,))", 4), {"'{'"}},
      MalformedNpyCase{"text_after_dict",
                       npy_file(dict("'<f4'", "False", "(1,)") + " x", 4),
                       {"after the header"}},
      MalformedNpyCase{"unterminated_string", npy_file("{'descr': '<f4", 4), {"unterminated"}}};
}

INSTANTIATE_TEST_SUITE_P(Cases, MalformedNpy, ::testing::ValuesIn(malformed_npy_cases()),
                         [](const ::testing::TestParamInfo<MalformedNpyCase>& info) {
                           return std::string(info.param.name);
                         });

// ---- half and bfloat16 -----------------------------------------------------------------------

TEST(HalfConversion, DecodesKnownBitPatterns) {
  const std::pair<uint16_t, float> table[] = {
      {0x0000, 0.f},      {0x8000, -0.f},     {0x0001, 0x1p-24f},  {0x03FF, 0x3FFp-24f},
      {0x0400, 0x1p-14f}, {0x3C00, 1.f},      {0xC000, -2.f},      {0x3555, 0x1.554p-2f},
      {0x7BFF, 65504.f},  {0x7C00, INFINITY}, {0xFC00, -INFINITY}, {0x8001, -0x1p-24f},
  };
  for (const auto& [bits, value] : table) {
    const float decoded = half_to_float(bits);
    EXPECT_EQ(std::bit_cast<uint32_t>(decoded), std::bit_cast<uint32_t>(value))
        << "half 0x" << std::hex << bits << " decodes exactly";
  }
  EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(half_to_float(0x7C01))) << "signalling NaN stays NaN";
  EXPECT_TRUE(std::signbit(half_to_float(0xFE00))) << "NaN keeps its sign";
}

TEST(HalfConversion, EncodingMatchesTorchOnBoundariesTiesAndRandomValues) {
  for (const FloatConversion& c : kTorchConversions)
    EXPECT_EQ(float_to_half(std::bit_cast<float>(c.float_bits)), c.half_bits)
        << "float 0x" << std::hex << c.float_bits << " as torch.float16";
}

TEST(HalfConversion, EveryHalfValueSurvivesARoundTripThroughFloat) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const uint16_t half = static_cast<uint16_t>(bits);
    const float value = half_to_float(half);
    if ((half & 0x7C00) == 0x7C00 && (half & 0x3FF)) {
      ASSERT_TRUE(std::isnan(value)) << std::hex << bits;
      ASSERT_TRUE(std::isnan(half_to_float(float_to_half(value))))
          << "NaN stays NaN: " << std::hex << bits;
    } else {
      ASSERT_EQ(float_to_half(value), half) << "half 0x" << std::hex << bits << " round trip";
    }
  }
}

// Every float halfway between two adjacent halves rounds to the one with an even mantissa, and
// the floats one ulp either side round to the nearer one (round to nearest even, as IEEE and
// torch).
TEST(HalfConversion, EveryMidpointRoundsToEvenAndItsNeighboursToNearest) {
  for (uint16_t low = 0; low < 0x7C00; ++low) {
    const uint16_t high = static_cast<uint16_t>(low + 1);
    const double midpoint_value =
        (static_cast<double>(half_to_float(low)) +
         (high == 0x7C00 ? 65536.0 : static_cast<double>(half_to_float(high)))) /
        2;
    const float midpoint = static_cast<float>(midpoint_value);
    ASSERT_EQ(static_cast<double>(midpoint), midpoint_value) << "halfway points are floats";
    const uint16_t even = (low & 1) ? high : low;
    for (uint16_t sign : {uint16_t{0}, uint16_t{0x8000}}) {
      const float s = sign ? -1.f : 1.f;
      ASSERT_EQ(float_to_half(s * midpoint), even | sign) << "tie above half 0x" << std::hex << low;
      ASSERT_EQ(float_to_half(s * std::nextafter(midpoint, 0.f)), low | sign)
          << "below tie 0x" << std::hex << low;
      ASSERT_EQ(float_to_half(s * std::nextafter(midpoint, INFINITY)), high | sign)
          << "above tie 0x" << std::hex << low;
    }
  }
}

TEST(BFloat16Conversion, EncodingMatchesTorchOnBoundariesTiesAndRandomValues) {
  for (const FloatConversion& c : kTorchConversions)
    EXPECT_EQ(float_to_bfloat16(std::bit_cast<float>(c.float_bits)), c.bfloat16_bits)
        << "float 0x" << std::hex << c.float_bits << " as torch.bfloat16";
}

TEST(BFloat16Conversion, DecodingIsTheHighHalfOfTheFloat) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits)
    ASSERT_EQ(std::bit_cast<uint32_t>(bfloat16_to_float(static_cast<uint16_t>(bits))) >> 16, bits)
        << std::hex << bits;
}

TEST(BFloat16Conversion, EveryMidpointRoundsToEvenAndItsNeighboursToNearest) {
  for (uint32_t low = 0; low < 0x7F80; ++low) {
    const uint32_t midpoint = (low << 16) | 0x8000u;
    const uint16_t even = static_cast<uint16_t>((low & 1) ? low + 1 : low);
    ASSERT_EQ(float_to_bfloat16(std::bit_cast<float>(midpoint)), even)
        << "tie above bfloat16 0x" << std::hex << low;
    ASSERT_EQ(float_to_bfloat16(std::bit_cast<float>(midpoint - 1)), low)
        << "below tie 0x" << std::hex << low;
    ASSERT_EQ(float_to_bfloat16(std::bit_cast<float>(midpoint + 1)), low + 1)
        << "above tie 0x" << std::hex << low;
    ASSERT_EQ(float_to_bfloat16(std::bit_cast<float>(midpoint | 0x80000000u)), even | 0x8000u)
        << "negative tie";
  }
}

TEST(BFloat16Conversion, NonFiniteValuesStayNonFinite) {
  EXPECT_EQ(float_to_bfloat16(INFINITY), 0x7F80);
  EXPECT_EQ(float_to_bfloat16(-INFINITY), 0xFF80);
  for (uint32_t nan_bits : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FFFFFFFu})
    EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(std::bit_cast<float>(nan_bits)))))
        << "NaN 0x" << std::hex << nan_bits << " must not round to infinity";
}

// ---- stats.jsonl and captures.safetensors ----------------------------------------------------

TEST(JsonlWriter, WritesOneCompactObjectPerLineKeepingKeyOrder) {
  ScratchDir dir;
  const std::string path = dir.file("stats.jsonl");
  io::JsonlWriter writer(path);
  nlohmann::ordered_json first;
  first["step"] = 0;
  first["when"] = "forward";
  first["mean"] = nullptr;
  writer.write(first);
  writer.write(nlohmann::json{{"b", 1}, {"a", "x"}});
  writer.flush();
  EXPECT_EQ(io::read_file_bytes(path),
            "{\"step\":0,\"when\":\"forward\",\"mean\":null}\n{\"a\":\"x\",\"b\":1}\n")
      << "flush() makes the lines visible before the writer closes";
}

TEST(JsonlWriter, OpeningAnUnwritablePathNamesIt) {
  ScratchDir dir;
  const std::string path = dir.file("missing/stats.jsonl");
  const std::string message =
      error_message([&] { io::JsonlWriter writer(path); }, ErrorKind::Runtime);
  expect_contains(message, path);
  expect_contains(message, "No such file or directory");
}

ProbeRecord capture_record(int64_t step, int captures) {
  ProbeRecord record;
  record.step = step;
  record.when = HookWhen::Forward;
  record.module = "layer1.0.conv1";
  record.tensor = "output";
  record.shape = {1, 2};
  record.results.push_back(StatsResult{});
  for (int i = 0; i < captures; ++i)
    record.results.push_back(
        CaptureResult{Tensor::full({1, 2}, static_cast<double>(i + 10 * step))});
  return record;
}

TEST(CaptureWriter, StoresEachCaptureUnderTheRecordKeyWithSuffixesForRepeats) {
  ScratchDir dir;
  const std::string path = dir.file("captures.safetensors");
  io::CaptureWriter writer(path);
  writer.add(capture_record(0, 2));
  writer.add(capture_record(1, 1));
  ASSERT_EQ(writer.size(), 3u);
  writer.write();
  const TensorMap read = io::read_safetensors(path);
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(read[0].first, "step0/forward/layer1.0.conv1/output");
  EXPECT_EQ(read[1].first, "step0/forward/layer1.0.conv1/output#2");
  EXPECT_EQ(read[2].first, "step1/forward/layer1.0.conv1/output");
  EXPECT_EQ(read[1].second.item(0), 1.0) << "the second capture probe's tensor";
  EXPECT_EQ(read[2].second.item(1), 10.0);
  expect_contains(io::read_file_bytes(path), R"("__metadata__":{"format":"pt"})");
}

TEST(CaptureWriter, SuffixedKeysNeverCollideWithKeysGivenExplicitly) {
  ScratchDir dir;
  io::CaptureWriter writer(dir.file("c.safetensors"));
  const Tensor t = Tensor::zeros({1});
  for (const char* key : {"k", "k#2", "k", "k#2", "k"}) writer.add(key, t);
  writer.write();
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : io::read_safetensors(dir.file("c.safetensors")))
    keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"k", "k#2", "k#3", "k#2#2", "k#4"}));
}

TEST(CaptureWriter, WritingAgainAfterMoreAddsRewritesEverything) {
  ScratchDir dir;
  io::CaptureWriter writer(dir.file("c.safetensors"));
  writer.add("a", Tensor::zeros({2}));
  writer.write();
  writer.add("b", Tensor::zeros({3}));
  writer.write();
  EXPECT_EQ(io::read_safetensors(dir.file("c.safetensors")).size(), 2u);
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"c.safetensors"});
}

TEST(CaptureWriter, UndefinedTensorIsAnErrorNamingTheKey) {
  io::CaptureWriter writer("unused.safetensors");
  expect_contains(error_message([&] { writer.add("step0/backward/conv1/grad_input", Tensor()); },
                                ErrorKind::Runtime),
                  "step0/backward/conv1/grad_input");
}

// ---- Mutation fuzz -------------------------------------------------------------------------
// Seeded random edits of valid files: the parsers must either succeed or throw hookrt::Error —
// never crash, read out of bounds (this suite runs under ASan/UBSan in CI) or throw anything else.
// Half the mutants edit raw bytes (lengths, magic, framing); the other half edit only the header
// text and then fix its length field, so that they reach the checks behind the framing.

// Where a format keeps its header length: a little-endian field of `width` bytes at `at`.
struct Framing {
  size_t at, width;
  size_t header_begin() const { return at + width; }
};

Framing safetensors_framing(const std::string&) { return {0, 8}; }
Framing npy_framing(const std::string& file) {
  return {8, file.size() > 6 && file[6] == 1 ? 2u : 4u};
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) { return n ? static_cast<size_t>(rng_.next_u32()) % n : 0; }

  // One to three edits anywhere in `bytes`.
  void edit(std::string& bytes) {
    const int edits = 1 + static_cast<int>(below(3));
    for (int e = 0; e < edits && !bytes.empty(); ++e) {
      switch (below(5)) {
        case 0:  // flip bits of a byte
          bytes[below(bytes.size())] ^= static_cast<char>(1 + below(255));
          break;
        case 1: {  // rewrite or lengthen a number: shapes and offsets
          const size_t at = bytes.find_first_of("0123456789", below(bytes.size()));
          if (at == std::string::npos) break;
          bytes[at] = "0123456789"[below(10)];
          bytes.insert(at, below(2) ? std::string(below(12), "0123456789"[below(10)]) : "");
          break;
        }
        case 2:  // truncate
          bytes.resize(below(bytes.size()));
          break;
        case 3:  // delete a span
          bytes.erase(below(bytes.size()), below(16));
          break;
        default: {  // duplicate a span
          const size_t from = below(bytes.size());
          bytes.insert(below(bytes.size()), bytes.substr(from, below(16)));
          break;
        }
      }
    }
  }

  std::string mutate(const std::string& file, Framing framing) {
    std::string mutant = file;
    if (below(2) || file.size() < framing.header_begin()) {
      edit(mutant);
      return mutant;
    }
    uint64_t length = 0;
    for (size_t i = framing.width; i-- > 0;)
      length = (length << 8) | static_cast<unsigned char>(file[framing.at + i]);
    std::string header = file.substr(framing.header_begin(), length);
    std::string data = file.substr(std::min(file.size(), framing.header_begin() + length));
    edit(header);
    if (below(4) == 0) edit(data);
    for (size_t i = 0; i < framing.width; ++i)
      mutant[framing.at + i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    return mutant.substr(0, framing.header_begin()) + header + data;
  }

 private:
  Pcg32 rng_;
};

template <class Parse>
void fuzz(const std::vector<std::string>& seeds, Framing (*framing)(const std::string&),
          uint64_t seed, Parse parse) {
  Mutator mutator(seed);
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::string& original = seeds[static_cast<size_t>(i) % seeds.size()];
    const std::string file = mutator.mutate(original, framing(original));
    try {
      parse(file);
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "mutant " << i << " threw a non-hookrt exception: " << e.what();
    }
  }
  EXPECT_GT(rejected, 1000) << "most mutants are broken files";
  EXPECT_GT(parsed, 10) << "some mutants stay valid (a changed data byte, a renamed key)";
}

TEST(ParserFuzz, MutatedSafetensorsEitherParseOrThrowHookrtError) {
  ScratchDir dir;
  io::write_safetensors(dir.file("seed.safetensors"), every_dtype(), {{"format", "pt"}});
  const std::vector<std::string> seeds = {io::read_file_bytes(dir.file("seed.safetensors")),
                                          kHandMadeSafetensors};
  fuzz(seeds, safetensors_framing, 0x5afe, [](const std::string& file) {
    const TensorMap tensors = io::parse_safetensors(file, "fuzz.safetensors");
    size_t total = 0;
    for (const auto& [key, tensor] : tensors) total += tensor.nbytes();
    ASSERT_LE(total, file.size()) << "tensors come from the file's bytes";
  });
}

TEST(ParserFuzz, MutatedNpyEitherParseOrThrowHookrtError) {
  const std::vector<std::string> seeds = {kNumpyF32x2x3, kNumpyI64Labels, kNumpyF16Scalar,
                                          kNumpyI32V2, kNumpyF64V3};
  fuzz(seeds, npy_framing, 0x4e9, [](const std::string& file) {
    const Tensor tensor = io::parse_npy(file, "fuzz.npy");
    ASSERT_LE(tensor.nbytes(), file.size()) << "the tensor comes from the file's bytes";
  });
}

}  // namespace
}  // namespace hookrt
