#pragma once
// torchvision's ImageNet transforms on an 8-bit RGB image, as they run on PIL images:
//   eval:  Resize(resize) + CenterCrop(size)
//   train: RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) + RandomHorizontalFlip(0.5)
// then ToTensor() + Normalize(ImageNet mean, std) into a float (3, size, size) buffer.
// Resizing reproduces PIL's bilinear filter (antialiased: its support widens with the scale
// factor when downscaling) including its fixed-point arithmetic and 8-bit rounding after each of
// its two passes, so results match torchvision's PIL pipeline level for level.
#include <cstdint>
#include <utility>

#include "hookrt/tensor.h"
#include "random.h"

namespace hookrt::data {

// A read-only window on an RGB8 image, (H, W, 3) with rows `stride` bytes apart, so that a crop
// is a view rather than a copy.
struct RgbView {
  const uint8_t* pixels = nullptr;
  int64_t height = 0, width = 0, stride = 0;
};

// A rectangle in pixels: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// The view of an (H, W, 3) U8 host tensor; throws Error for any other tensor.
RgbView view_of(const Tensor& image);
// The part of `image` inside `box`, which must lie within it.
RgbView crop(const RgbView& image, const CropBox& box);

// PIL's Image.resize((out_width, out_height), BILINEAR) into a new (out_height, out_width, 3) U8.
Tensor resize_bilinear(const RgbView& image, int64_t out_height, int64_t out_width);

// Resize(size)'s output (height, width) for an int size: the shorter side becomes `size`, the
// longer one size * long / short, truncated.
std::pair<int64_t, int64_t> shorter_side_size(int64_t height, int64_t width, int64_t size);
// CenterCrop(size)'s box; the image must be at least size x size.
CropBox center_crop_box(int64_t height, int64_t width, int64_t size);

// RandomResizedCrop's parameters as torchvision's get_params draws them: up to 10 tries of a
// random area fraction in `scale` and log-uniform aspect ratio in `ratio`, then the center crop
// clamped to `ratio`.
struct RandomCropRange {
  double min_scale = 0.08, max_scale = 1.0;
  double min_ratio = 3.0 / 4.0, max_ratio = 4.0 / 3.0;
};
CropBox random_resized_crop_box(int64_t height, int64_t width, Pcg32& rng,
                                const RandomCropRange& range = {});

// ToTensor() + Normalize(ImageNet): out[c][y][x] = (pixel / 255 - mean[c]) / std[c], in float as
// torchvision computes it, reading column W-1-x instead of x when `flip` is set.
void to_normalized_chw(const RgbView& image, bool flip, float* out);

// The whole pipelines; `out` holds 3 * size * size floats.
void eval_transform(const RgbView& image, int64_t resize, int64_t size, float* out);
void train_transform(const RgbView& image, int64_t size, Pcg32& rng, float* out);

}  // namespace hookrt::data
