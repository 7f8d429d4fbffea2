#pragma once
// The JPEG (libjpeg) and PNG (libpng) decoders behind hookrt::data::decode_image, on bytes in
// memory so that tests and fuzzers can feed them directly.
#include <cstdint>
#include <string>

#include "hookrt/tensor.h"

namespace hookrt::data {

// Limits checked against the header before any pixel memory is allocated.
inline constexpr int64_t kMaxImageSide = 32768;
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 28;

enum class ImageFormat { Unknown, Jpeg, Png };

// The format by magic bytes: FF D8 FF for JPEG, the 8-byte PNG signature for PNG.
ImageFormat sniff_image_format(const std::string& bytes);

// Decodes JPEG or PNG bytes into RGB8 (H, W, 3) U8; Error(BadInput) naming `name` on any failure.
Tensor decode_image_bytes(const std::string& bytes, const std::string& name);
Tensor decode_jpeg(const std::string& bytes, const std::string& name);
Tensor decode_png(const std::string& bytes, const std::string& name);

}  // namespace hookrt::data
