// torchvision's ImageNet transforms on RGB8 images; see transforms.h.
//
// PIL's bilinear resize is separable: a horizontal pass into an 8-bit intermediate image, then a
// vertical pass. For each output position it centres a triangle filter on the matching input
// position; when downscaling by a factor s > 1 the triangle is stretched to a support of s input
// pixels (the antialiasing), and the weights of each window are normalized to sum to 1. The
// weights are then turned into fixed point with 22 fractional bits, and each output sample is the
// rounded, clamped integer sum. We follow the same steps so that our levels are PIL's.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "hookrt/data.h"

namespace hookrt::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's fixed point for 8-bit images
constexpr int64_t kHalf = int64_t{1} << (kPrecisionBits - 1);

// Python's round(): halves go to the even neighbour.
int64_t round_half_even(double value) {
  const double floor = std::floor(value);
  const double fraction = value - floor;
  if (fraction > 0.5) return static_cast<int64_t>(floor) + 1;
  if (fraction < 0.5) return static_cast<int64_t>(floor);
  const auto low = static_cast<int64_t>(floor);
  return low % 2 == 0 ? low : low + 1;
}

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// The fixed-point weights of one resampling pass from in_size to out_size samples: output o reads
// inputs first[o] .. first[o] + count[o] - 1 with weights[o * taps + i].
struct PassWeights {
  int64_t taps = 0;
  std::vector<int64_t> first, count;
  std::vector<int32_t> weights;
};

PassWeights bilinear_weights(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;  // the triangle reaches 1 input pixel at scale 1
  const double inverse = 1.0 / filter_scale;
  PassWeights pass;
  pass.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  pass.first.resize(out_size);
  pass.count.resize(out_size);
  pass.weights.assign(out_size * pass.taps, 0);
  std::vector<double> raw(pass.taps);
  for (int64_t o = 0; o < out_size; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    // Truncation as PIL's (int) casts; negatives are clamped to 0 either way.
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
    const int64_t count = std::min(hi - lo, pass.taps);
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i) {
      raw[i] = triangle((static_cast<double>(i + lo) - center + 0.5) * inverse);
      sum += raw[i];
    }
    for (int64_t i = 0; i < count; ++i) {
      const double weight = sum != 0.0 ? raw[i] / sum : raw[i];
      pass.weights[o * pass.taps + i] =
          static_cast<int32_t>(weight * (1 << kPrecisionBits) + 0.5);  // weights are >= 0
    }
    pass.first[o] = lo;
    pass.count[o] = count;
  }
  return pass;
}

uint8_t to_level(int64_t sum) {
  return static_cast<uint8_t>(std::clamp<int64_t>(sum >> kPrecisionBits, 0, 255));
}

// Resamples every row of `in` to `out_width` columns into `out` (H, out_width, 3).
void horizontal_pass(const RgbView& in, int64_t out_width, uint8_t* out) {
  const PassWeights pass = bilinear_weights(in.width, out_width);
  for (int64_t y = 0; y < in.height; ++y) {
    const uint8_t* row = in.pixels + y * in.stride;
    uint8_t* out_row = out + y * out_width * 3;
    for (int64_t x = 0; x < out_width; ++x) {
      const int32_t* weights = &pass.weights[x * pass.taps];
      const uint8_t* source = row + pass.first[x] * 3;
      int64_t sums[3] = {kHalf, kHalf, kHalf};
      for (int64_t i = 0; i < pass.count[x]; ++i)
        for (int c = 0; c < 3; ++c) sums[c] += int64_t{source[i * 3 + c]} * weights[i];
      for (int c = 0; c < 3; ++c) out_row[x * 3 + c] = to_level(sums[c]);
    }
  }
}

// Resamples every column of `in` to `out_height` rows into `out` (out_height, W, 3).
void vertical_pass(const RgbView& in, int64_t out_height, uint8_t* out) {
  const PassWeights pass = bilinear_weights(in.height, out_height);
  const int64_t samples = in.width * 3;
  std::vector<int64_t> sums(samples);
  for (int64_t y = 0; y < out_height; ++y) {
    std::fill(sums.begin(), sums.end(), kHalf);
    const int32_t* weights = &pass.weights[y * pass.taps];
    for (int64_t i = 0; i < pass.count[y]; ++i) {
      const uint8_t* row = in.pixels + (pass.first[y] + i) * in.stride;
      for (int64_t s = 0; s < samples; ++s) sums[s] += int64_t{row[s]} * weights[i];
    }
    uint8_t* out_row = out + y * samples;
    for (int64_t s = 0; s < samples; ++s) out_row[s] = to_level(sums[s]);
  }
}

void copy_view(const RgbView& in, uint8_t* out) {
  for (int64_t y = 0; y < in.height; ++y)
    std::copy_n(in.pixels + y * in.stride, in.width * 3, out + y * in.width * 3);
}

}  // namespace

RgbView view_of(const Tensor& image) {
  HOOKRT_CHECK(
      image.defined() && image.device() == Device::CPU && image.dtype() == DType::U8 &&
          image.ndim() == 3 && image.size(2) == 3,
      "an RGB image must be a (H, W, 3) U8 host tensor, got " + shape_string(image.shape()));
  return {image.data<uint8_t>(), image.size(0), image.size(1), image.size(1) * 3};
}

RgbView crop(const RgbView& image, const CropBox& box) {
  HOOKRT_CHECK(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
                   box.top + box.height <= image.height && box.left + box.width <= image.width,
               "crop box outside the image");
  return {image.pixels + box.top * image.stride + box.left * 3, box.height, box.width,
          image.stride};
}

Tensor resize_bilinear(const RgbView& image, int64_t out_height, int64_t out_width) {
  HOOKRT_CHECK(image.height > 0 && image.width > 0 && out_height > 0 && out_width > 0,
               "resize of an empty image or to an empty size");
  Tensor out = Tensor::empty({out_height, out_width, 3}, DType::U8);
  uint8_t* pixels = out.data<uint8_t>();
  const bool horizontal = out_width != image.width, vertical = out_height != image.height;
  if (horizontal && vertical) {
    std::vector<uint8_t> between(static_cast<size_t>(image.height * out_width * 3));
    horizontal_pass(image, out_width, between.data());
    vertical_pass({between.data(), image.height, out_width, out_width * 3}, out_height, pixels);
  } else if (horizontal) {
    horizontal_pass(image, out_width, pixels);
  } else if (vertical) {
    vertical_pass(image, out_height, pixels);
  } else {
    copy_view(image, pixels);  // PIL returns a copy when the size is unchanged
  }
  return out;
}

std::pair<int64_t, int64_t> shorter_side_size(int64_t height, int64_t width, int64_t size) {
  const int64_t shorter = std::min(height, width), longer = std::max(height, width);
  // Python's int(size * long / short): a true division, then truncation.
  const auto new_longer =
      static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  if (width <= height) return {new_longer, size};
  return {size, new_longer};
}

CropBox center_crop_box(int64_t height, int64_t width, int64_t size) {
  HOOKRT_CHECK(height >= size && width >= size, "center crop larger than the image");
  return {round_half_even(static_cast<double>(height - size) / 2.0),
          round_half_even(static_cast<double>(width - size) / 2.0), size, size};
}

CropBox random_resized_crop_box(int64_t height, int64_t width, Pcg32& rng,
                                const RandomCropRange& range) {
  const double area = static_cast<double>(height * width);
  const double log_min = std::log(range.min_ratio), log_max = std::log(range.max_ratio);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(range.min_scale, range.max_scale);
    const double aspect = std::exp(rng.uniform(log_min, log_max));
    const int64_t w = round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t top = rng.below(static_cast<uint32_t>(height - h + 1));
      const int64_t left = rng.below(static_cast<uint32_t>(width - w + 1));
      return {top, left, h, w};
    }
  }
  // The fallback: the whole image, cut to the nearest allowed aspect ratio, centred.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < range.min_ratio)
    h = round_half_even(static_cast<double>(w) / range.min_ratio);
  else if (in_ratio > range.max_ratio)
    w = round_half_even(static_cast<double>(h) * range.max_ratio);
  return {(height - h) / 2, (width - w) / 2, h, w};
}

void to_normalized_chw(const RgbView& image, bool flip, float* out) {
  const int64_t plane = image.height * image.width;
  for (int64_t y = 0; y < image.height; ++y) {
    const uint8_t* row = image.pixels + y * image.stride;
    for (int64_t x = 0; x < image.width; ++x) {
      const uint8_t* pixel = row + (flip ? image.width - 1 - x : x) * 3;
      for (int c = 0; c < 3; ++c)
        out[c * plane + y * image.width + x] =
            (static_cast<float>(pixel[c]) / 255.0f - kImageNetMean[c]) / kImageNetStd[c];
    }
  }
}

void eval_transform(const RgbView& image, int64_t resize, int64_t size, float* out) {
  HOOKRT_CHECK(resize >= size && size > 0, "Resize(" + std::to_string(resize) +
                                               ") smaller than CenterCrop(" + std::to_string(size) +
                                               ")");
  const auto [height, width] = shorter_side_size(image.height, image.width, resize);
  const Tensor resized = resize_bilinear(image, height, width);
  to_normalized_chw(crop(view_of(resized), center_crop_box(height, width, size)), false, out);
}

void train_transform(const RgbView& image, int64_t size, Pcg32& rng, float* out) {
  const CropBox box = random_resized_crop_box(image.height, image.width, rng);
  const Tensor resized = resize_bilinear(crop(image, box), size, size);
  const bool flip = rng.uniform() < 0.5;
  to_normalized_chw(view_of(resized), flip, out);
}

}  // namespace hookrt::data
