// Image decoding and torchvision's transforms (src/data): PNG and JPEG files written here with
// libpng and libjpeg decode to the pixels written (PNG exactly, JPEG at quality 100 closely), in
// every colour type; every broken file is a BadInput error naming it, and no truncation or
// mutation of a valid file crashes the decoder. The transforms are checked against values derived
// by hand and, where torchvision is installed, against torchvision's own eval pipeline.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "data/image_decode.h"
#include "data/transforms.h"
#include "hookrt/data.h"
#include "hookrt/io.h"
#include "random.h"
#include "support/errors.h"
#include "support/reference_data.h"
#include "support/run_process.h"
#include "support/temp_dir.h"

namespace hookrt::data {
namespace {

using hookrt::testing::TempDir;

// ---- Writing test images -----------------------------------------------------------------------

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A PNG of any colour type: `samples` holds the packed rows as libpng expects them (16-bit samples
// big-endian, sub-byte samples packed).
struct PngSpec {
  int width = 0, height = 0;
  int color_type = PNG_COLOR_TYPE_RGB;
  int bit_depth = 8;
  bool interlaced = false;
  std::vector<uint8_t> samples;
  std::vector<png_color> palette;
};

void write_png(const std::string& path, const PngSpec& spec) {
  FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, spec.color_type,
               spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!spec.palette.empty())
    png_set_PLTE(png, info, spec.palette.data(), static_cast<int>(spec.palette.size()));
  png_write_info(png, info);
  const size_t row_bytes = spec.samples.size() / spec.height;
  std::vector<png_bytep> rows;
  for (int y = 0; y < spec.height; ++y)
    rows.push_back(const_cast<uint8_t*>(spec.samples.data()) + y * row_bytes);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

// An RGB8 pattern where every pixel differs from its neighbours.
std::vector<uint8_t> pattern(int width, int height) {
  std::vector<uint8_t> pixels(static_cast<size_t>(width * height * 3));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        pixels[(y * width + x) * 3 + c] = static_cast<uint8_t>((x * 37 + y * 11 + c * 59) % 256);
  return pixels;
}

// JPEG bytes at quality 100 without chroma subsampling, from `components`-channel samples in
// `space` (RGB, grayscale or CMYK).
std::string encode_jpeg(int width, int height, const std::vector<uint8_t>& samples, int components,
                        J_COLOR_SPACE space) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr error{};
  cinfo.err = jpeg_std_error(&error);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = components;
  cinfo.in_color_space = space;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 100, TRUE);
  for (int c = 0; c < cinfo.num_components; ++c)
    cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(samples.data()) +
                   static_cast<size_t>(cinfo.next_scanline) * width * components;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string bytes(reinterpret_cast<char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return bytes;
}

// A smooth RGB gradient: JPEG at quality 100 keeps it within a few levels.
std::vector<uint8_t> gradient(int width, int height) {
  std::vector<uint8_t> pixels(static_cast<size_t>(width * height * 3));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      pixels[(y * width + x) * 3 + 0] = static_cast<uint8_t>(40 + 4 * x);
      pixels[(y * width + x) * 3 + 1] = static_cast<uint8_t>(200 - 3 * y);
      pixels[(y * width + x) * 3 + 2] = static_cast<uint8_t>(100 + 2 * x - y);
    }
  return pixels;
}

using hookrt::testing::bad_input_message;

void expect_pixels(const Tensor& image, int width, int height, const std::vector<uint8_t>& rgb,
                   int tolerance) {
  ASSERT_EQ(image.shape(), (Shape{height, width, 3}));
  ASSERT_EQ(image.dtype(), DType::U8);
  int worst = 0;
  for (size_t i = 0; i < rgb.size(); ++i)
    worst = std::max(worst, std::abs(int{image.data<uint8_t>()[i]} - int{rgb[i]}));
  EXPECT_LE(worst, tolerance) << "largest difference in levels from the pixels written";
}

// ---- PNG ---------------------------------------------------------------------------------------

TEST(DecodePng, RgbRoundTripsExactly) {
  TempDir dir;
  const std::vector<uint8_t> pixels = pattern(7, 5);
  write_png(dir.file("a.png"), {7, 5, PNG_COLOR_TYPE_RGB, 8, false, pixels, {}});
  expect_pixels(decode_image(dir.file("a.png")), 7, 5, pixels, 0);
}

TEST(DecodePng, InterlacedRoundTripsExactly) {
  TempDir dir;
  const std::vector<uint8_t> pixels = pattern(13, 9);
  write_png(dir.file("a.png"), {13, 9, PNG_COLOR_TYPE_RGB, 8, true, pixels, {}});
  expect_pixels(decode_image(dir.file("a.png")), 13, 9, pixels, 0);
}

TEST(DecodePng, GrayscaleIsReplicatedIntoRgb) {
  TempDir dir;
  write_png(dir.file("g.png"), {3, 1, PNG_COLOR_TYPE_GRAY, 8, false, {0, 77, 255}, {}});
  expect_pixels(decode_image(dir.file("g.png")), 3, 1, {0, 0, 0, 77, 77, 77, 255, 255, 255}, 0);
}

TEST(DecodePng, TwoBitGrayscaleIsScaledToEightBits) {
  TempDir dir;
  // Levels 0 1 2 3 packed into one byte, most significant first; PIL scales them to 0 85 170 255.
  write_png(dir.file("g2.png"), {4, 1, PNG_COLOR_TYPE_GRAY, 2, false, {0b00011011}, {}});
  expect_pixels(decode_image(dir.file("g2.png")), 4, 1,
                {0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255}, 0);
}

TEST(DecodePng, PaletteIsExpanded) {
  TempDir dir;
  const std::vector<png_color> palette = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}};
  write_png(dir.file("p.png"),
            {3, 2, PNG_COLOR_TYPE_PALETTE, 8, false, {2, 1, 0, 0, 0, 1}, palette});
  expect_pixels(decode_image(dir.file("p.png")), 3, 2,
                {1, 2, 3, 200, 100, 0, 10, 20, 30, 10, 20, 30, 10, 20, 30, 200, 100, 0}, 0);
}

TEST(DecodePng, AlphaIsDropped) {
  TempDir dir;
  write_png(dir.file("rgba.png"),
            {2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, false, {9, 8, 7, 0, 250, 251, 252, 128}, {}});
  expect_pixels(decode_image(dir.file("rgba.png")), 2, 1, {9, 8, 7, 250, 251, 252}, 0);
  write_png(dir.file("ga.png"), {2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, {60, 0, 61, 255}, {}});
  expect_pixels(decode_image(dir.file("ga.png")), 2, 1, {60, 60, 60, 61, 61, 61}, 0);
}

TEST(DecodePng, SixteenBitKeepsTheHighByte) {
  TempDir dir;
  // Big-endian 16-bit samples: 0x1234 -> 0x12, 0xFFEE -> 0xFF, 0x0080 -> 0x00.
  write_png(dir.file("16.png"),
            {1, 1, PNG_COLOR_TYPE_RGB, 16, false, {0x12, 0x34, 0xFF, 0xEE, 0x00, 0x80}, {}});
  expect_pixels(decode_image(dir.file("16.png")), 1, 1, {0x12, 0xFF, 0x00}, 0);
}

TEST(DecodeImage, FormatIsSniffedFromTheBytesNotTheName) {
  TempDir dir;
  const std::vector<uint8_t> pixels = pattern(4, 4);
  write_png(dir.file("really_a_png.jpg"), {4, 4, PNG_COLOR_TYPE_RGB, 8, false, pixels, {}});
  expect_pixels(decode_image(dir.file("really_a_png.jpg")), 4, 4, pixels, 0);
  write_bytes(dir.file("really_a_jpeg.png"), encode_jpeg(4, 4, gradient(4, 4), 3, JCS_RGB));
  EXPECT_EQ(decode_image(dir.file("really_a_jpeg.png")).shape(), (Shape{4, 4, 3}));
}

// ---- JPEG --------------------------------------------------------------------------------------

TEST(DecodeJpeg, QualityHundredRgbIsWithinThreeLevels) {
  TempDir dir;
  const std::vector<uint8_t> pixels = gradient(24, 16);
  write_bytes(dir.file("a.jpg"), encode_jpeg(24, 16, pixels, 3, JCS_RGB));
  // Quality 100 still rounds DCT coefficients and the YCbCr conversion: a few levels on a smooth
  // gradient, never more than 3 with libjpeg-turbo's 4:4:4 encoding.
  expect_pixels(decode_image(dir.file("a.jpg")), 24, 16, pixels, 3);
}

TEST(DecodeJpeg, GrayscaleIsReplicatedIntoRgb) {
  TempDir dir;
  std::vector<uint8_t> gray(16 * 8), rgb;
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(60 + (i % 16) * 5);
  for (uint8_t g : gray) rgb.insert(rgb.end(), {g, g, g});
  write_bytes(dir.file("g.jpg"), encode_jpeg(16, 8, gray, 1, JCS_GRAYSCALE));
  expect_pixels(decode_image(dir.file("g.jpg")), 16, 8, rgb, 2);
}

TEST(DecodeJpeg, AdobeCmykIsConvertedToRgb) {
  TempDir dir;
  // libjpeg writes an Adobe marker with CMYK, whose samples are stored inverted (255 - ink), so
  // stored (c, m, y, k) is RGB (c * k / 255, m * k / 255, y * k / 255).
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < 8 * 8; ++i) cmyk.insert(cmyk.end(), {200, 100, 50, 255});
  for (int i = 0; i < 8 * 8; ++i) cmyk.insert(cmyk.end(), {200, 100, 50, 128});
  write_bytes(dir.file("cmyk.jpg"), encode_jpeg(8, 16, cmyk, 4, JCS_CMYK));
  std::vector<uint8_t> rgb;
  for (int i = 0; i < 8 * 8; ++i) rgb.insert(rgb.end(), {200, 100, 50});
  for (int i = 0; i < 8 * 8; ++i) rgb.insert(rgb.end(), {100, 50, 25});
  expect_pixels(decode_image(dir.file("cmyk.jpg")), 8, 16, rgb, 2);
}

// ---- Broken files ------------------------------------------------------------------------------

// Big-endian u32 and the PNG chunk CRC (CRC-32 over type and data), to forge headers.
std::string be32(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
          static_cast<char>(value >> 8), static_cast<char>(value)};
}

uint32_t crc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// A PNG signature and IHDR chunk of the given size, with a valid CRC, and nothing after it.
std::string png_header(uint32_t width, uint32_t height) {
  const std::string body = "IHDR" + be32(width) + be32(height) + std::string("\x08\x02\0\0\0", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + body + be32(crc32(body));
}

// The JPEG with its frame header's height and width replaced.
std::string jpeg_with_size(std::string jpeg, int width, int height) {
  const size_t sof = jpeg.find("\xFF\xC0");
  EXPECT_NE(sof, std::string::npos) << "test setup: no baseline frame header";
  jpeg[sof + 5] = static_cast<char>(height >> 8);
  jpeg[sof + 6] = static_cast<char>(height & 0xFF);
  jpeg[sof + 7] = static_cast<char>(width >> 8);
  jpeg[sof + 8] = static_cast<char>(width & 0xFF);
  return jpeg;
}

struct BrokenFile {
  std::string name, bytes, says;  // the message names the file and says this
};

TEST(DecodeImage, EveryBrokenFileIsBadInputNamingIt) {
  TempDir dir;
  write_png(dir.file("good.png"), {8, 8, PNG_COLOR_TYPE_RGB, 8, false, pattern(8, 8), {}});
  const std::string png = read_bytes(dir.file("good.png"));
  const std::string jpeg = encode_jpeg(8, 8, gradient(8, 8), 3, JCS_RGB);
  std::string wrong_magic = png;
  wrong_magic[1] = 'Q';
  const std::vector<BrokenFile> files = {
      {"empty.png", "", "empty file"},
      {"garbage.jpg", "this is not an image at all", "not a JPEG or PNG"},
      {"wrong_magic.png", wrong_magic, "not a JPEG or PNG"},
      {"gif.png", "GIF89a\x01\0\x01\0", "GIF images are not supported"},
      {"truncated.png", png.substr(0, png.size() / 2), "truncated"},
      {"truncated.jpg", jpeg.substr(0, jpeg.size() / 2), "Premature end of JPEG file"},
      {"header_only.png", png_header(8, 8), "truncated"},
      {"zero_width.png", png_header(0, 8), "PNG"},
      {"zero_height.jpg", jpeg_with_size(jpeg, 8, 0), "JPEG"},
      {"huge.png", png_header(40000, 10), "exceeds the limit of 32768 pixels per side"},
      {"huge_area.png", png_header(20000, 20000), "exceeds the limit of 268435456 pixels"},
      {"huge.jpg", jpeg_with_size(jpeg, 40000, 8), "exceeds the limit of 32768 pixels per side"},
  };
  for (const BrokenFile& file : files) {
    const std::string path = dir.file(file.name);
    write_bytes(path, file.bytes);
    const std::string message = bad_input_message([&] { decode_image(path); });
    EXPECT_NE(message.find(path), std::string::npos) << "should name the file: " << message;
    EXPECT_NE(message.find(file.says), std::string::npos)
        << file.name << ": should say '" << file.says << "': " << message;
  }
}

TEST(DecodeImage, MissingFileIsBadInputNamingIt) {
  TempDir dir;
  const std::string path = dir.file("absent.png");
  EXPECT_NE(bad_input_message([&] { decode_image(path); }).find(path), std::string::npos);
}

// Every prefix and a few thousand seeded mutations of a valid file must decode or throw
// hookrt::Error: never crash, hang or throw anything else (the sanitizer build runs this).
void fuzz(const std::string& valid, const std::string& name) {
  for (size_t length = 0; length < valid.size(); ++length) {
    try {
      decode_image_bytes(valid.substr(0, length), name);
    } catch (const Error&) {
    }
  }
  Pcg32 rng(0xdecade);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes = valid;
    const int edits = 1 + static_cast<int>(rng.below(4));
    for (int e = 0; e < edits; ++e)
      bytes[rng.below(static_cast<uint32_t>(bytes.size()))] = static_cast<char>(rng.below(256));
    try {
      decode_image_bytes(bytes, name);
    } catch (const Error&) {
    }
  }
}

TEST(DecodeImage, TruncationsAndMutationsNeverCrash) {
  TempDir dir;
  write_png(dir.file("a.png"), {12, 10, PNG_COLOR_TYPE_RGB, 8, false, pattern(12, 10), {}});
  fuzz(read_bytes(dir.file("a.png")), "fuzz.png");
  write_png(
      dir.file("p.png"),
      {9, 7, PNG_COLOR_TYPE_PALETTE, 8, true, std::vector<uint8_t>(63, 1), {{1, 2, 3}, {4, 5, 6}}});
  fuzz(read_bytes(dir.file("p.png")), "fuzz_palette.png");
  fuzz(encode_jpeg(16, 16, gradient(16, 16), 3, JCS_RGB), "fuzz.jpg");
}

// ---- Transforms --------------------------------------------------------------------------------

// An (H, W, 3) U8 tensor whose pixels are value(x, y, c).
Tensor image_of(int64_t width, int64_t height,
                const std::function<int(int64_t, int64_t, int)>& value) {
  Tensor image = Tensor::empty({height, width, 3}, DType::U8);
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        image.data<uint8_t>()[(y * width + x) * 3 + c] = static_cast<uint8_t>(value(x, y, c));
  return image;
}

int level(const Tensor& image, int64_t x, int64_t y, int c) {
  return image.data<uint8_t>()[(y * image.size(1) + x) * 3 + c];
}

TEST(Transforms, ResizeKeepsAConstantImageConstant) {
  const Tensor image = image_of(37, 23, [](int64_t, int64_t, int c) {
    return c == 0 ? 10 : c == 1 ? 200 : 255;
  });
  for (const auto& [height, width] : {std::pair<int64_t, int64_t>{7, 11}, {50, 41}, {23, 5}}) {
    const Tensor resized = resize_bilinear(view_of(image), height, width);
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c)
          ASSERT_EQ(level(resized, x, y, c), level(image, 0, 0, c))
              << "at " << x << "," << y << " resized to " << width << "x" << height;
  }
}

TEST(Transforms, DownscaledRampMatchesTheWidenedTriangleFilter) {
  // Row levels 10 30 ... 150 halved in width. At scale 2 the triangle spans 2 input pixels each
  // side of the output centre 2o + 1, so interior outputs weigh pixels 2o-1 .. 2o+2 by
  // 1/8 3/8 3/8 1/8: the ramp at 2o + 0.5, 20 + 40o. At the edges the window is cut and
  // renormalized: (3*10 + 3*30 + 50) / 7 = 24.3 and (110 + 3*130 + 3*150) / 7 = 135.7.
  const Tensor ramp =
      image_of(8, 3, [](int64_t x, int64_t, int) { return static_cast<int>(10 + 20 * x); });
  const Tensor half = resize_bilinear(view_of(ramp), 3, 4);
  const int expected[4] = {24, 60, 100, 136};
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 0; x < 4; ++x) EXPECT_EQ(level(half, x, y, 1), expected[x]) << "column " << x;
}

TEST(Transforms, UpscaledRampInterpolatesBetweenPixelCentres) {
  // Doubling: output o samples input position (o + 0.5) / 2 - 0.5, clamped at the edges, so the
  // ramp 10 30 50 70 becomes 10 15 25 35 45 55 65 70.
  const Tensor ramp =
      image_of(4, 2, [](int64_t x, int64_t, int) { return static_cast<int>(10 + 20 * x); });
  const Tensor twice = resize_bilinear(view_of(ramp), 2, 8);
  const int expected[8] = {10, 15, 25, 35, 45, 55, 65, 70};
  for (int64_t x = 0; x < 8; ++x) EXPECT_EQ(level(twice, x, 1, 2), expected[x]) << "column " << x;
  // And vertically, the same numbers.
  const Tensor column =
      image_of(1, 4, [](int64_t, int64_t y, int) { return static_cast<int>(10 + 20 * y); });
  const Tensor tall = resize_bilinear(view_of(column), 8, 1);
  for (int64_t y = 0; y < 8; ++y) EXPECT_EQ(level(tall, 0, y, 0), expected[y]) << "row " << y;
}

TEST(Transforms, ShorterSideSizeTruncatesTheLongerSide) {
  EXPECT_EQ(shorter_side_size(375, 500, 256), (std::pair<int64_t, int64_t>{256, 341}));  // 341.33
  EXPECT_EQ(shorter_side_size(500, 375, 256), (std::pair<int64_t, int64_t>{341, 256}));
  EXPECT_EQ(shorter_side_size(100, 100, 256), (std::pair<int64_t, int64_t>{256, 256}));
  EXPECT_EQ(shorter_side_size(3, 1000, 2), (std::pair<int64_t, int64_t>{2, 666}));
}

TEST(Transforms, CenterCropPicksTheCentreRoundingHalvesToEven) {
  // torchvision: top = round((H - size) / 2), Python's round: 1.5 -> 2, 2.5 -> 2.
  const CropBox a = center_crop_box(10, 7, 4);
  EXPECT_EQ(a.top, 3);
  EXPECT_EQ(a.left, 2);
  const CropBox b = center_crop_box(9, 9, 4);
  EXPECT_EQ(b.top, 2);
  EXPECT_EQ(b.left, 2);
  const Tensor image =
      image_of(7, 10, [](int64_t x, int64_t y, int) { return static_cast<int>(y * 10 + x); });
  const RgbView window = crop(view_of(image), a);
  EXPECT_EQ(window.pixels[0], 32);                          // row 3, column 2
  EXPECT_EQ(window.pixels[3 * window.stride + 3 * 3], 65);  // row 6, column 5
}

TEST(Transforms, NormalizationOfKnownPixels) {
  const Tensor image = image_of(2, 1, [](int64_t x, int64_t, int c) {
    return x == 0 ? 0 : c == 1 ? 128 : 255;
  });
  float out[6];
  to_normalized_chw(view_of(image), false, out);
  const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
  const double second[3] = {1.0, 128.0 / 255.0, 1.0};
  for (int c = 0; c < 3; ++c) {
    // float32 arithmetic as torchvision's: within a few float ulps of the exact value.
    EXPECT_NEAR(out[c * 2 + 0], (0.0 - mean[c]) / std[c], 1e-6) << "channel " << c;
    EXPECT_NEAR(out[c * 2 + 1], (second[c] - mean[c]) / std[c], 1e-6) << "channel " << c;
  }
}

TEST(Transforms, FlipReversesColumns) {
  const Tensor image = image_of(
      3, 2, [](int64_t x, int64_t y, int c) { return static_cast<int>(x * 50 + y * 7 + c); });
  float plain[18], flipped[18];
  to_normalized_chw(view_of(image), false, plain);
  to_normalized_chw(view_of(image), true, flipped);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x)
        EXPECT_EQ(flipped[c * 6 + y * 3 + x], plain[c * 6 + y * 3 + (2 - x)]);
}

TEST(Transforms, RandomResizedCropStaysInBoundsAndIsDeterministic) {
  for (const auto& [height, width] :
       {std::pair<int64_t, int64_t>{224, 224}, {37, 500}, {500, 37}, {1, 1}}) {
    for (uint64_t seed = 0; seed < 200; ++seed) {
      Pcg32 rng(seed), again(seed);
      const CropBox box = random_resized_crop_box(height, width, rng);
      const CropBox same = random_resized_crop_box(height, width, again);
      EXPECT_TRUE(box.top >= 0 && box.left >= 0 && box.height >= 1 && box.width >= 1 &&
                  box.top + box.height <= height && box.left + box.width <= width)
          << height << "x" << width << " seed " << seed;
      EXPECT_TRUE(box.top == same.top && box.left == same.left && box.height == same.height &&
                  box.width == same.width);
    }
  }
}

TEST(Transforms, RandomResizedCropFallsBackToTheCentreOfAWideImage) {
  // 10 x 1000: no area of at least 8% fits 10 rows at an aspect ratio <= 4/3, so all 10 tries
  // fail and torchvision takes the whole height at the widest ratio: 10 x round(13.33), centred.
  Pcg32 rng(7);
  const CropBox box = random_resized_crop_box(10, 1000, rng);
  EXPECT_EQ(box.top, 0);
  EXPECT_EQ(box.height, 10);
  EXPECT_EQ(box.width, 13);
  EXPECT_EQ(box.left, (1000 - 13) / 2);
}

TEST(Transforms, TrainTransformIsAPureFunctionOfTheSeed) {
  const Tensor image = image_of(60, 45, [](int64_t x, int64_t y, int c) {
    return static_cast<int>((x * 3 + y * 5 + c * 40) % 256);
  });
  std::vector<float> a(3 * 16 * 16), b(a.size()), c(a.size());
  Pcg32 rng_a(11), rng_b(11), rng_c(12);
  train_transform(view_of(image), 16, rng_a, a.data());
  train_transform(view_of(image), 16, rng_b, b.data());
  train_transform(view_of(image), 16, rng_c, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// torchvision's eval pipeline on PIL images, run by the interpreter that has torchvision; exit
// status 77 when it is missing.
constexpr const char* kTorchvisionScript = R"(
import sys
try:
    import numpy as np
    from PIL import Image
    from torchvision import transforms
except ImportError as e:
    print(e)
    sys.exit(77)
pipeline = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
for i in range(1, len(sys.argv), 2):
    np.save(sys.argv[i + 1], pipeline(Image.open(sys.argv[i]).convert('RGB')).numpy())
)";

TEST(Transforms, EvalMatchesTorchvisionOnPilImages) {
  TempDir dir;
  // A downscale (400 x 310 -> 330 x 256) and an upscale (150 x 200 -> 256 x 341), with edges,
  // gradients and noise so that every filter tap matters.
  Pcg32 noise(3);
  const std::vector<std::pair<int, int>> sizes = {{400, 310}, {150, 200}};
  std::vector<std::string> args = {hookrt::testing::torch_python(), dir.file("eval.py")};
  std::vector<Tensor> images;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const auto [width, height] = sizes[i];
    images.push_back(image_of(width, height, [&](int64_t x, int64_t y, int c) {
      const int base = ((x / 17 + y / 13) % 2) * 120 + static_cast<int>((x + 2 * y + 50 * c) % 90);
      return std::min(255, base + static_cast<int>(noise.below(40)));
    }));
    const std::string png = dir.file("image" + std::to_string(i) + ".png");
    write_png(png, {width,
                    height,
                    PNG_COLOR_TYPE_RGB,
                    8,
                    false,
                    std::vector<uint8_t>(images[i].data<uint8_t>(),
                                         images[i].data<uint8_t>() + images[i].numel()),
                    {}});
    args.insert(args.end(), {png, dir.file("out" + std::to_string(i) + ".npy")});
  }
  std::ofstream(dir.file("eval.py")) << kTorchvisionScript;
  const auto run = hookrt::testing::run_process(args);
  if (run.exit_code == 77) GTEST_SKIP() << "torchvision is not installed: " << run.out;
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  for (size_t i = 0; i < images.size(); ++i) {
    const Tensor expected = io::read_npy(dir.file("out" + std::to_string(i) + ".npy"));
    ASSERT_EQ(expected.shape(), (Shape{3, 224, 224}));
    std::vector<float> ours(3 * 224 * 224);
    eval_transform(view_of(images[i]), 256, 224, ours.data());
    // Our resize repeats PIL's fixed-point filter and 8-bit rounding after each pass, and our
    // normalization torchvision's float32 operations, so the results agree to the bit but for a
    // possible last-ulp difference in the float division; 1e-5 leaves room for that and is far
    // below one 8-bit level (1 / 255 / 0.229 = 0.017).
    double worst = 0;
    for (size_t j = 0; j < ours.size(); ++j)
      worst = std::max(worst, std::fabs(double{ours[j]} - expected.data<float>()[j]));
    EXPECT_LE(worst, 1e-5) << "image " << sizes[i].first << "x" << sizes[i].second;
  }
}

}  // namespace
}  // namespace hookrt::data
