#pragma once
// Training data for `hookrt train`: datasets that write normalized (3, S, S) float samples, the
// image decoder behind them, and BatchLoader, which fills batches on background threads so that
// batch k is the same on every run, with any number of workers, and after a resume.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hookrt/tensor.h"

namespace hookrt {
class Pcg32;  // src/random.h: the seedable generator behind every random augmentation
}

namespace hookrt::data {

// ImageNet's per-channel statistics, which every dataset here normalizes with (as torchvision's
// Normalize(mean, std) after ToTensor()).
inline constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

// A source of labelled samples. One sample's pixels go straight into the batch (C, H, W floats,
// normalized), so no dataset keeps decoded images around.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual std::vector<std::string> class_names() const = 0;
  virtual int64_t image_size() const = 0;  // H == W of what load() writes
  // Writes sample `index` (0 <= index < size()) into out[3*S*S] and returns its label. `rng`
  // drives random augmentation (train transforms); it is seeded by the loader per (seed, epoch,
  // position), so a sample's pixels never depend on thread scheduling. Thread-safe: const, with no
  // shared state except the record of skipped files, which is synchronized.
  virtual int64_t load(int64_t index, float* out, Pcg32& rng) const = 0;
  virtual int64_t skipped() const { return 0; }  // distinct bad files skipped so far
  // The distinct bad files skipped so far, in the order they were first met.
  virtual std::vector<std::string> skipped_files() const { return {}; }
};

// Which of torchvision's ImageNet transforms a dataset applies.
enum class Augment {
  None,   // eval: Resize(resize) + CenterCrop(size)
  Train,  // RandomResizedCrop(size) + RandomHorizontalFlip()
};

// The embedded default dataset: `count` procedurally drawn images of `classes` classes at
// `size`x`size`. Class k is a shape kind (disc, square, triangle, cross, stripes, rings, ...)
// in a colour family; each sample gets its own position, scale, rotation, colour jitter and
// background noise, a pure function of (seed, index). The classes are kept visually very distinct
// so that a ResNet18 learns them within a few dozen SGD steps. Labels are index % classes.
// Normalized like ImageNet images; Augment::Train adds a random horizontal flip only.
struct SyntheticShapesOptions {
  int64_t count = 2048;
  int64_t classes = 10;  // 1 to 100
  int64_t size = 64;     // 8 to 1024
  uint64_t seed = 0;
  Augment augment = Augment::Train;
};
std::unique_ptr<Dataset> synthetic_shapes(const SyntheticShapesOptions& options);

// torchvision.datasets.ImageFolder: root/<class>/**/<file>, classes sorted by name, files sorted
// as os.walk lists them, extensions .jpg .jpeg .png in any case. An empty root, a root without
// class folders or a class folder without images is Error(BadInput) naming the folder. A file that
// fails to load is Error(BadInput) naming it, or, with skip_bad, is replaced by the next good
// sample (index + 1, wrapping) and recorded in skipped_files().
struct ImageFolderOptions {
  std::string root;
  int64_t size = 224;    // the square that load() writes
  int64_t resize = 256;  // Augment::None: the shorter side before the center crop (>= size)
  Augment augment = Augment::Train;
  bool skip_bad = false;
};
std::unique_ptr<Dataset> image_folder(const ImageFolderOptions& options);

// Preprocessed samples: images .npy float32 (N, 3, S, S), labels .npy int64 or int32 (N), as
// `hookrt run` reads them; load() copies them unchanged. Labels must lie in [0, num_classes);
// num_classes 0 means the largest label + 1. Errors name the file.
std::unique_ptr<Dataset> npy_dataset(const std::string& images_npy, const std::string& labels_npy,
                                     int64_t num_classes = 0);

// Decodes a JPEG or PNG file (told apart by its magic bytes, not its name) into an RGB8 (H, W, 3)
// U8 host tensor, as PIL's Image.open(path).convert("RGB") does: grayscale is replicated,
// palettes expanded, alpha dropped, 16-bit samples cut to 8, CMYK JPEGs converted. Anything
// corrupt, truncated, unsupported or absurdly large is Error(BadInput) naming the file.
Tensor decode_image(const std::string& path);

struct LoaderOptions {
  int64_t batch = 32;
  bool shuffle = true;    // a new permutation per epoch, from (seed, epoch)
  bool drop_last = true;  // as DataLoader(drop_last=True): every batch has `batch` samples
  uint64_t seed = 0;
  int workers = 2;          // background decode threads; 0 loads in next() on the caller's thread
  int prefetch = 2;         // batches being filled or ready at once, counting the one next()
                            // waits for (at least 1)
  int64_t start_batch = 0;  // global batch index to start at (resume): identical batches follow
  // Allocates the F32 host tensor a batch's images are written into (e.g. pinned memory for a GPU
  // backend); default Tensor::empty.
  std::function<Tensor(const Shape&)> allocate;
};

struct Batch {
  Tensor images;      // (N, 3, S, S) F32 host
  Tensor labels;      // (N) I64 host
  int64_t index = 0;  // global batch index (0, 1, ...) across epochs
  int64_t epoch = 0;
};

// Background loader: worker threads fill batches ahead of the consumer, in order (the samples of
// one batch are shared out among the workers, so even one large batch keeps them all busy).
// Batch k's content is a pure function of (dataset, options.seed, k): the same on every run, with
// any number of workers, and after a resume at start_batch = k. The first error (a bad file
// without skip_bad) is rethrown from next() on the consumer thread, naming the file, when the
// consumer reaches the batch that failed; the batches before it are delivered first. The
// destructor stops and joins the workers promptly, even while they wait. Options out of range
// are Error(BadInput) naming the option.
class BatchLoader {
 public:
  BatchLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  Batch next();  // blocks until the next batch is ready
  int64_t batches_per_epoch() const;
  const Dataset& dataset() const { return *dataset_; }

 private:
  struct State;  // the shared queue of work and finished batches (batch_loader.cpp)

  std::shared_ptr<const Dataset> dataset_;
  std::unique_ptr<State> state_;
};

}  // namespace hookrt::data
