// NpyDataset: preprocessed samples from two NPY files, as `hookrt run --input --labels` reads them.
// Both files are read whole and checked once; load() is then a copy.
#include <algorithm>
#include <cstring>

#include "hookrt/data.h"
#include "hookrt/io.h"
#include "random.h"

namespace hookrt::data {
namespace {

Tensor read_images(const std::string& path) {
  Tensor images = io::read_npy(path);
  if (images.dtype() != DType::F32)
    throw_bad_input(path + ": images must be float32 (<f4), got " + dtype_name(images.dtype()));
  if (images.ndim() != 4 || images.size(1) != 3)
    throw_bad_input(path + ": images must have shape (N, 3, S, S), got " +
                    shape_string(images.shape()));
  if (images.size(2) != images.size(3) || images.size(2) == 0)
    throw_bad_input(path + ": images must be square and non-empty (N, 3, S, S), got " +
                    shape_string(images.shape()));
  if (images.size(0) == 0) throw_bad_input(path + ": holds no images (N = 0)");
  return images;
}

// Labels as int64, whichever of int64 and int32 the file holds.
std::vector<int64_t> read_labels(const std::string& path, int64_t count) {
  const Tensor labels = io::read_npy(path);
  if (labels.dtype() != DType::I64 && labels.dtype() != DType::I32)
    throw_bad_input(path + ": labels must be int64 or int32, got " + dtype_name(labels.dtype()));
  if (labels.ndim() != 1 || labels.size(0) != count)
    throw_bad_input(path + ": labels must have shape (" + std::to_string(count) +
                    ") to match the images, got " + shape_string(labels.shape()));
  std::vector<int64_t> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    values[i] =
        labels.dtype() == DType::I64 ? labels.data<int64_t>()[i] : labels.data<int32_t>()[i];
  return values;
}

class NpyDataset final : public Dataset {
 public:
  NpyDataset(Tensor images, std::vector<int64_t> labels, int64_t num_classes)
      : images_(std::move(images)), labels_(std::move(labels)), num_classes_(num_classes) {}

  int64_t size() const override { return images_.size(0); }
  int64_t num_classes() const override { return num_classes_; }
  int64_t image_size() const override { return images_.size(2); }
  std::vector<std::string> class_names() const override {
    std::vector<std::string> names;
    for (int64_t k = 0; k < num_classes_; ++k) names.push_back(std::to_string(k));
    return names;
  }

  int64_t load(int64_t index, float* out,
               Pcg32& /*rng: the samples are already transformed*/) const override {
    if (index < 0 || index >= size())
      throw_bad_input("npy dataset: sample index " + std::to_string(index) + " out of range [0, " +
                      std::to_string(size()) + ")");
    const int64_t sample = 3 * image_size() * image_size();
    std::memcpy(out, images_.data<float>() + index * sample, sample * sizeof(float));
    return labels_[index];
  }

 private:
  Tensor images_;  // (N, 3, S, S) F32
  std::vector<int64_t> labels_;
  int64_t num_classes_;
};

}  // namespace

std::unique_ptr<Dataset> npy_dataset(const std::string& images_npy, const std::string& labels_npy,
                                     int64_t num_classes) {
  if (num_classes < 0)
    throw_bad_input("npy dataset: num_classes must be >= 0, got " + std::to_string(num_classes));
  Tensor images = read_images(images_npy);
  std::vector<int64_t> labels = read_labels(labels_npy, images.size(0));
  const int64_t classes =
      num_classes > 0 ? num_classes : *std::max_element(labels.begin(), labels.end()) + 1;
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw_bad_input(labels_npy + ": label " + std::to_string(labels[i]) + " at index " +
                      std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")");
  return std::make_unique<NpyDataset>(std::move(images), std::move(labels), classes);
}

}  // namespace hookrt::data
