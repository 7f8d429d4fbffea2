// JPEG and PNG decoding into RGB8 (H, W, 3), with PIL's Image.convert("RGB") semantics.
//
// libjpeg and libpng report errors through callbacks that must not return; their defaults print
// and exit(). Here each callback records the library's message and longjmps back to the one
// function that called setjmp, which then returns false so that its caller throws a hookrt::Error
// naming the file. A longjmp skips C++ destructors, so everything that owns memory (the library
// structs, the output tensor) lives in a job object in the caller's frame, and the function that
// calls setjmp holds nothing but trivially destructible locals.
#include "data/image_decode.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "hookrt/data.h"
#include "io/file_bytes.h"

namespace hookrt::data {
namespace {

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw_bad_input(name + ": " + what);
}

// Why a header's width x height is refused before allocating, or "" when it is acceptable.
std::string size_problem(uint64_t width, uint64_t height) {
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width == 0 || height == 0) return "image size " + size + " is empty";
  if (width > kMaxImageSide || height > kMaxImageSide)
    return "image size " + size + " exceeds the limit of " + std::to_string(kMaxImageSide) +
           " pixels per side";
  if (width * height > static_cast<uint64_t>(kMaxImagePixels))
    return "image size " + size + " exceeds the limit of " + std::to_string(kMaxImagePixels) +
           " pixels";
  return "";
}

// ---- JPEG ------------------------------------------------------------------------------------

// libjpeg's error manager, extended with where to jump and the formatted message.
struct JpegErrorManager {
  jpeg_error_mgr base;  // first, so libjpeg's pointer to it is a pointer to this struct
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* manager = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  manager->base.format_message(cinfo, manager->message);
  std::longjmp(manager->jump, 1);
}

// Trace messages and most warnings are dropped. A premature end of data is only a warning to
// libjpeg (it pads the image with grey), but it means the file is truncated, which PIL refuses
// too, so it fails like an error.
void jpeg_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_fail(cinfo);
  cinfo->err->num_warnings++;
}

struct JpegJob {
  const std::string& bytes;
  jpeg_decompress_struct cinfo{};
  JpegErrorManager error{};
  std::string problem;       // a refusal of ours (size, layout), when not libjpeg's
  Tensor image;              // (H, W, 3) U8
  std::vector<uint8_t> row;  // one decoded scanline in libjpeg's output colour space
  explicit JpegJob(const std::string& data) : bytes(data) {}
  ~JpegJob() { jpeg_destroy_decompress(&cinfo); }  // safe on a struct that was never created
};

// Adobe CMYK JPEGs store inverted ink values; RGB = (255 - C)(255 - K) / 255 per channel.
uint8_t ink_to_rgb(unsigned ink, unsigned black, bool inverted) {
  if (!inverted) {
    ink = 255 - ink;
    black = 255 - black;
  }
  return static_cast<uint8_t>((ink * black + 127) / 255);
}

void jpeg_row_to_rgb(const JpegJob& job, uint8_t* out) {
  const uint8_t* in = job.row.data();
  const size_t width = job.cinfo.output_width;
  switch (job.cinfo.out_color_space) {
    case JCS_GRAYSCALE:
      for (size_t x = 0; x < width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
      break;
    case JCS_CMYK:
      for (size_t x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c)
          out[3 * x + c] = ink_to_rgb(in[4 * x + c], in[4 * x + 3], job.cinfo.saw_Adobe_marker);
      break;
    default:
      std::memcpy(out, in, width * 3);
  }
}

// Header to last scanline. Returns false when libjpeg failed (error.message) or we refused the
// image (problem). Only trivially destructible locals: see the comment at the top of the file.
bool run_jpeg(JpegJob& job) {
  jpeg_decompress_struct& cinfo = job.cinfo;
  cinfo.err = jpeg_std_error(&job.error.base);
  job.error.base.error_exit = jpeg_fail;
  job.error.base.emit_message = jpeg_message;
  if (setjmp(job.error.jump)) return false;
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<unsigned char*>(const_cast<char*>(job.bytes.data())),
               static_cast<unsigned long>(job.bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  job.problem = size_problem(cinfo.image_width, cinfo.image_height);
  if (!job.problem.empty()) return false;
  // Grey and CMYK are converted to RGB here rather than by libjpeg, which cannot do either in all
  // of its versions.
  if (cinfo.jpeg_color_space == JCS_GRAYSCALE)
    cinfo.out_color_space = JCS_GRAYSCALE;
  else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK)
    cinfo.out_color_space = JCS_CMYK;
  else
    cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const int expected = cinfo.out_color_space == JCS_GRAYSCALE ? 1
                       : cinfo.out_color_space == JCS_CMYK    ? 4
                                                              : 3;
  if (cinfo.output_components != expected || cinfo.output_width != cinfo.image_width ||
      cinfo.output_height != cinfo.image_height) {
    job.problem = "unsupported JPEG pixel layout (" + std::to_string(cinfo.output_components) +
                  " components)";
    return false;
  }
  job.row.resize(static_cast<size_t>(cinfo.output_width) * cinfo.output_components);
  job.image = Tensor::empty({cinfo.output_height, cinfo.output_width, 3}, DType::U8);
  uint8_t* pixels = job.image.data<uint8_t>();
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = job.row.data();
    uint8_t* out = pixels + static_cast<size_t>(cinfo.output_scanline) * cinfo.output_width * 3;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
      job.problem = "JPEG data ended early";
      return false;
    }
    jpeg_row_to_rgb(job, out);
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

// ---- PNG -------------------------------------------------------------------------------------

struct PngJob {
  const std::string& bytes;
  size_t offset = 0;  // next byte libpng reads
  png_structp png = nullptr;
  png_infop info = nullptr;
  char message[256] = {};  // libpng's error message
  std::string problem;     // a refusal of ours
  Tensor image;            // (H, W, 3) U8
  std::vector<png_bytep> rows;
  explicit PngJob(const std::string& data) : bytes(data) {}
  ~PngJob() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

void png_fail(png_structp png, png_const_charp message) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof(job->message), "%s", message);
  png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_bytes(png_structp png, png_bytep out, size_t length) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (length > job->bytes.size() - job->offset) png_error(png, "file ends early (truncated)");
  std::memcpy(out, job->bytes.data() + job->offset, length);
  job->offset += length;
}

// Asks libpng for 8-bit RGB whatever the file holds: palettes expanded, grey replicated, 16-bit
// cut to its high byte and alpha (and tRNS transparency) dropped, as PIL's convert("RGB") does.
void request_rgb8(png_structp png, int color_type, int bit_depth) {
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (bit_depth == 16) png_set_strip_16(png);
  if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA)
    png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
}

// Signature to IEND. Returns false when libpng failed (message) or we refused the image
// (problem). Only trivially destructible locals: see the comment at the top of the file.
bool run_png(PngJob& job) {
  png_structp png = job.png;
  png_infop info = job.info;
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, &job, png_read_bytes);
  // Our own size check below names the limits; libpng's default (1e6 per side) would speak first.
  png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info),
                    height = png_get_image_height(png, info);
  job.problem = size_problem(width, height);
  if (!job.problem.empty()) return false;
  request_rgb8(png, png_get_color_type(png, info), png_get_bit_depth(png, info));
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
      png_get_rowbytes(png, info) != static_cast<size_t>(width) * 3) {
    job.problem = "unsupported PNG pixel layout";
    return false;
  }
  job.image = Tensor::empty({height, width, 3}, DType::U8);
  job.rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y)
    job.rows[y] = job.image.data<uint8_t>() + static_cast<size_t>(y) * width * 3;
  png_read_image(png, job.rows.data());
  png_read_end(png, nullptr);
  return true;
}

// The size check on the IHDR chunk, which the format puts first, straight from the bytes: libpng
// reads on to the first image data chunk before it reports the header, and a file refused for
// its size should say so rather than whatever is wrong further on. "" when acceptable or when
// the header is incomplete (libpng then says what is wrong).
std::string png_header_problem(const std::string& bytes) {
  if (bytes.size() < 24 || bytes.compare(12, 4, "IHDR") != 0) return "";
  const auto be32 = [&](size_t at) {
    uint32_t value = 0;
    for (size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
    return value;
  };
  return size_problem(be32(16), be32(20));
}

std::string hex_prefix(const std::string& bytes) {
  std::string out;
  char buffer[4];
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) {
    std::snprintf(buffer, sizeof(buffer), "%s%02X", i ? " " : "", static_cast<uint8_t>(bytes[i]));
    out += buffer;
  }
  return out;
}

// Names formats we recognise but do not read, for a clearer message than "unknown".
std::string other_format(const std::string& bytes) {
  if (bytes.compare(0, 4, "GIF8") == 0) return "GIF";
  if (bytes.compare(0, 2, "BM") == 0) return "BMP";
  if (bytes.size() >= 12 && bytes.compare(0, 4, "RIFF") == 0 && bytes.compare(8, 4, "WEBP") == 0)
    return "WebP";
  if (bytes.compare(0, 4, "II*\0", 4) == 0 || bytes.compare(0, 4, "MM\0*", 4) == 0) return "TIFF";
  return "";
}

}  // namespace

ImageFormat sniff_image_format(const std::string& bytes) {
  static const char kPng[] = "\x89PNG\r\n\x1a\n";
  if (bytes.size() >= 8 && bytes.compare(0, 8, kPng, 8) == 0) return ImageFormat::Png;
  if (bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
      static_cast<uint8_t>(bytes[1]) == 0xD8 && static_cast<uint8_t>(bytes[2]) == 0xFF)
    return ImageFormat::Jpeg;
  return ImageFormat::Unknown;
}

Tensor decode_jpeg(const std::string& bytes, const std::string& name) {
  JpegJob job(bytes);
  if (run_jpeg(job)) return job.image;
  if (!job.problem.empty()) fail(name, "JPEG: " + job.problem);
  fail(name, "corrupt or unsupported JPEG (libjpeg: " + std::string(job.error.message) + ")");
}

Tensor decode_png(const std::string& bytes, const std::string& name) {
  const std::string problem = png_header_problem(bytes);
  if (!problem.empty()) fail(name, "PNG: " + problem);
  PngJob job(bytes);
  job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_fail, png_ignore_warning);
  if (job.png) job.info = png_create_info_struct(job.png);
  if (!job.png || !job.info) throw Error(name + ": libpng could not allocate its reader");
  if (run_png(job)) return job.image;
  if (!job.problem.empty()) fail(name, "PNG: " + job.problem);
  fail(name, "corrupt or unsupported PNG (libpng: " + std::string(job.message) + ")");
}

Tensor decode_image_bytes(const std::string& bytes, const std::string& name) {
  if (bytes.empty()) fail(name, "empty file, not an image");
  switch (sniff_image_format(bytes)) {
    case ImageFormat::Jpeg:
      return decode_jpeg(bytes, name);
    case ImageFormat::Png:
      return decode_png(bytes, name);
    case ImageFormat::Unknown:
      break;
  }
  const std::string other = other_format(bytes);
  if (!other.empty()) fail(name, other + " images are not supported (hookrt reads JPEG and PNG)");
  fail(name, "not a JPEG or PNG file (it starts with bytes " + hex_prefix(bytes) + ")");
}

Tensor decode_image(const std::string& path) {
  return decode_image_bytes(io::read_file_bytes(path), path);
}

}  // namespace hookrt::data
