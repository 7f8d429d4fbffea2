// The embedded default dataset: procedurally drawn coloured shapes on a noisy dark background.
//
// Class k pairs a shape kind with a colour family (for up to 10 classes each has its own shape and
// its own colour), so that a network can learn the classes from colour alone within a few steps
// and from shape with a little more training. Everything else varies per sample and carries no
// information about the class: background level and tint, position, size, rotation, colour jitter
// and pixel noise. Each sample is rendered at 2x2 subpixels into 8 bits and then normalized as
// ToTensor() + Normalize() would normalize a real image.
#include <algorithm>
#include <cmath>
#include <vector>

#include "data/transforms.h"
#include "hookrt/data.h"
#include "random.h"

namespace hookrt::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

enum class ShapeKind {
  Disc,
  Square,
  Triangle,
  Cross,
  Stripes,
  Rings,
  Checker,
  Annulus,
  Frame,
  Dots
};
constexpr int kShapeKinds = 10;
constexpr const char* kShapeNames[kShapeKinds] = {"disc",    "square", "triangle", "cross",
                                                  "stripes", "rings",  "checker",  "annulus",
                                                  "frame",   "dots"};

struct Colour {
  const char* name;
  double rgb[3];
};
constexpr int kColourFamilies = 10;
// Saturated, far-apart colours; the closer pairs (white/pink, green/mint) differ in shape too.
constexpr Colour kColours[kColourFamilies] = {
    {"red", {0.95, 0.10, 0.10}},    {"green", {0.10, 0.85, 0.10}},   {"blue", {0.10, 0.25, 1.00}},
    {"yellow", {1.00, 0.95, 0.10}}, {"magenta", {0.95, 0.10, 0.95}}, {"cyan", {0.10, 0.95, 0.95}},
    {"orange", {1.00, 0.50, 0.00}}, {"white", {1.00, 1.00, 1.00}},   {"pink", {1.00, 0.60, 0.75}},
    {"mint", {0.30, 1.00, 0.55}}};

// Class k's shape and colour: (k % 10, (k + k / 10) % 10) gives 100 distinct pairs, and for
// k < 10 every class its own shape and its own colour.
ShapeKind shape_of(int64_t label) { return static_cast<ShapeKind>(label % kShapeKinds); }
const Colour& colour_of(int64_t label) {
  return kColours[(label + label / kShapeKinds) % kColourFamilies];
}

bool in_band(double value, double start, double width) {
  return static_cast<int64_t>(std::floor((value - start) / width)) % 2 == 0;
}

// Whether the point (u, v), in the shape's own frame where it spans about [-1, 1], is inside it.
bool inside(ShapeKind kind, double u, double v) {
  const double r = std::hypot(u, v), box = std::max(std::fabs(u), std::fabs(v));
  switch (kind) {
    case ShapeKind::Disc:
      return r <= 1.0;
    case ShapeKind::Square:
      return box <= 0.8;
    case ShapeKind::Triangle:  // equilateral, vertices on the unit circle: edges 0.5 from centre
      for (double angle : {-kPi / 2, kPi / 6, 5 * kPi / 6})
        if (u * std::cos(angle) + v * std::sin(angle) > 0.5) return false;
      return true;
    case ShapeKind::Cross:
      return (std::fabs(u) <= 0.28 && std::fabs(v) <= 1.0) ||
             (std::fabs(v) <= 0.28 && std::fabs(u) <= 1.0);
    case ShapeKind::Stripes:
      return box <= 0.9 && in_band(u, -0.9, 0.3);
    case ShapeKind::Rings:
      return r <= 1.0 && in_band(r, 0.0, 0.25);
    case ShapeKind::Checker:
      return box <= 0.9 && in_band(u, -0.9, 0.45) == in_band(v, -0.9, 0.45);
    case ShapeKind::Annulus:
      return r >= 0.6 && r <= 1.0;
    case ShapeKind::Frame:
      return box >= 0.55 && box <= 0.85;
    case ShapeKind::Dots: {
      const double du = u - 0.6 * std::round(std::clamp(u / 0.6, -1.0, 1.0));
      const double dv = v - 0.6 * std::round(std::clamp(v / 0.6, -1.0, 1.0));
      return std::hypot(du, dv) <= 0.22;
    }
  }
  return false;
}

// What varies per sample, drawn from the sample's own generator.
struct Scene {
  double background[3];
  double colour[3];
  double cx, cy, radius, cos_angle, sin_angle;
};

Scene draw_scene(int64_t label, int64_t size, Pcg32& rng) {
  Scene scene{};
  const double level = rng.uniform(0.10, 0.30);
  for (double& channel : scene.background) channel = level + rng.uniform(-0.03, 0.03);
  for (int c = 0; c < 3; ++c)
    scene.colour[c] = std::clamp(colour_of(label).rgb[c] + rng.uniform(-0.08, 0.08), 0.0, 1.0);
  scene.cx = rng.uniform(0.38, 0.62) * static_cast<double>(size);
  scene.cy = rng.uniform(0.38, 0.62) * static_cast<double>(size);
  scene.radius = rng.uniform(0.26, 0.36) * static_cast<double>(size);
  const double angle = rng.uniform(0.0, 2 * kPi);
  scene.cos_angle = std::cos(angle);
  scene.sin_angle = std::sin(angle);
  return scene;
}

// The fraction of pixel (x, y) that the shape covers, from 2x2 subpixel samples.
double coverage(ShapeKind kind, const Scene& scene, int64_t x, int64_t y) {
  int hits = 0;
  for (double sy : {0.25, 0.75})
    for (double sx : {0.25, 0.75}) {
      const double dx = (static_cast<double>(x) + sx - scene.cx) / scene.radius;
      const double dy = (static_cast<double>(y) + sy - scene.cy) / scene.radius;
      hits += inside(kind, scene.cos_angle * dx + scene.sin_angle * dy,
                     -scene.sin_angle * dx + scene.cos_angle * dy);
    }
  return hits / 4.0;
}

// Renders sample `index` as RGB8 (size, size, 3) into `pixels`.
void render(int64_t label, int64_t size, Pcg32& rng, uint8_t* pixels) {
  const Scene scene = draw_scene(label, size, rng);
  const ShapeKind kind = shape_of(label);
  for (int64_t y = 0; y < size; ++y)
    for (int64_t x = 0; x < size; ++x) {
      const double cover = coverage(kind, scene, x, y);
      for (int c = 0; c < 3; ++c) {
        const double value = scene.background[c] + cover * (scene.colour[c] - scene.background[c]) +
                             rng.uniform(-0.05, 0.05);
        pixels[(y * size + x) * 3 + c] =
            static_cast<uint8_t>(std::lround(std::clamp(value, 0.0, 1.0) * 255.0));
      }
    }
}

uint64_t mix(uint64_t value) {  // splitmix64's finalizer: nearby seeds give unrelated streams
  value += 0x9E3779B97F4A7C15ULL;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ULL;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBULL;
  return value ^ (value >> 31);
}

class SyntheticShapes final : public Dataset {
 public:
  explicit SyntheticShapes(const SyntheticShapesOptions& options) : options_(options) {}

  int64_t size() const override { return options_.count; }
  int64_t num_classes() const override { return options_.classes; }
  int64_t image_size() const override { return options_.size; }

  std::vector<std::string> class_names() const override {
    std::vector<std::string> names;
    for (int64_t k = 0; k < options_.classes; ++k)
      names.push_back(std::string(colour_of(k).name) + "_" +
                      kShapeNames[static_cast<int>(shape_of(k))]);
    return names;
  }

  int64_t load(int64_t index, float* out, Pcg32& rng) const override {
    if (index < 0 || index >= options_.count)
      throw_bad_input("synthetic shapes: sample index " + std::to_string(index) +
                      " out of range [0, " + std::to_string(options_.count) + ")");
    const int64_t label = index % options_.classes;
    Pcg32 scene_rng(mix(options_.seed ^ mix(static_cast<uint64_t>(index))));
    std::vector<uint8_t> pixels(static_cast<size_t>(options_.size * options_.size * 3));
    render(label, options_.size, scene_rng, pixels.data());
    const bool flip = options_.augment == Augment::Train && rng.uniform() < 0.5;
    to_normalized_chw({pixels.data(), options_.size, options_.size, options_.size * 3}, flip, out);
    return label;
  }

 private:
  SyntheticShapesOptions options_;
};

}  // namespace

std::unique_ptr<Dataset> synthetic_shapes(const SyntheticShapesOptions& options) {
  if (options.count < 1)
    throw_bad_input("synthetic shapes: count must be at least 1, got " +
                    std::to_string(options.count));
  if (options.classes < 1 || options.classes > kShapeKinds * kColourFamilies)
    throw_bad_input("synthetic shapes: classes must be in [1, " +
                    std::to_string(kShapeKinds * kColourFamilies) + "], got " +
                    std::to_string(options.classes));
  if (options.size < 8 || options.size > 1024)
    throw_bad_input("synthetic shapes: size must be in [8, 1024], got " +
                    std::to_string(options.size));
  return std::make_unique<SyntheticShapes>(options);
}

}  // namespace hookrt::data
