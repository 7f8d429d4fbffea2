// Training data (src/data): ImageFolder's class and file order and its bad-file handling,
// NpyDataset's checks, the synthetic shapes dataset (deterministic, learnable, normalized), and
// BatchLoader's promises: batch k is the same with any number of workers and after a resume,
// epochs reshuffle, a failing sample surfaces from next() naming its file, and the destructor
// returns while workers wait.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include <png.h>

#include "hookrt/data.h"
#include "hookrt/io.h"
#include "random.h"
#include "support/errors.h"
#include "support/temp_dir.h"

namespace hookrt::data {
namespace {

namespace fs = std::filesystem;
using hookrt::testing::TempDir;

using hookrt::testing::bad_input_message;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A solid-colour RGB PNG whose red level identifies it.
void write_solid_png(const fs::path& path, int red, int width = 6, int height = 5) {
  fs::create_directories(path.parent_path());
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = width;
  image.height = height;
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> pixels;
  for (int i = 0; i < width * height; ++i) pixels.insert(pixels.end(), {uint8_t(red), 90, 200});
  ASSERT_TRUE(png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0, nullptr))
      << path << ": " << image.message;
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// The red level of a loaded solid image, undoing Normalize and ToTensor.
int red_level(const std::vector<float>& sample) {
  return static_cast<int>(std::lround((sample[0] * kImageNetStd[0] + kImageNetMean[0]) * 255.0f));
}

// ---- ImageFolder -------------------------------------------------------------------------------

// root/Mango/m.png  root/apple/{a.PNG, b.png, notes.txt}  root/banana/{x.png, sub/y.png}
// root/zebra/{z1.png, z2.png}: the red level of each image is 10 x its position in the dataset.
struct Tree {
  TempDir dir;
  fs::path root = dir.path() / "root";
  Tree() {
    write_solid_png(root / "Mango" / "m.png", 0);
    write_solid_png(root / "apple" / "b.png", 20);
    write_solid_png(root / "apple" / "a.PNG", 10);
    write_text(root / "apple" / "notes.txt", "not an image");
    write_solid_png(root / "banana" / "x.png", 30);
    write_solid_png(root / "banana" / "sub" / "y.png", 40);
    write_solid_png(root / "zebra" / "z1.png", 50);
    write_solid_png(root / "zebra" / "z2.png", 60);
  }
  ImageFolderOptions options(Augment augment = Augment::None) const {
    return {root.string(), 4, 4, augment, false};
  }
};

TEST(ImageFolder, ClassesAndFilesFollowTorchvisionsOrder) {
  Tree tree;
  const auto dataset = image_folder(tree.options());
  // Sorted by code point, as Python sorts: upper case first. banana/x.png before banana/sub/y.png
  // because os.walk lists a folder's files before its subfolders'.
  EXPECT_EQ(dataset->class_names(),
            (std::vector<std::string>{"Mango", "apple", "banana", "zebra"}));
  EXPECT_EQ(dataset->num_classes(), 4);
  ASSERT_EQ(dataset->size(), 7);
  EXPECT_EQ(dataset->image_size(), 4);
  const int64_t labels[7] = {0, 1, 1, 2, 2, 3, 3};
  std::vector<float> sample(3 * 4 * 4);
  Pcg32 rng(0);
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_EQ(dataset->load(i, sample.data(), rng), labels[i]) << "sample " << i;
    EXPECT_EQ(red_level(sample), 10 * i) << "sample " << i << " is the wrong file";
  }
}

TEST(ImageFolder, EmptyRootIsBadInputNamingIt) {
  TempDir dir;
  fs::create_directories(dir.path() / "empty");
  const std::string root = (dir.path() / "empty").string();
  const std::string message = bad_input_message([&] {
    image_folder({root, 4, 4, Augment::None, false});
  });
  EXPECT_TRUE(contains(message, root) && contains(message, "empty")) << message;
}

TEST(ImageFolder, RootWithoutClassFoldersIsBadInputNamingIt) {
  TempDir dir;
  write_solid_png(dir.path() / "flat" / "a.png", 1);
  const std::string root = (dir.path() / "flat").string();
  const std::string message = bad_input_message([&] {
    image_folder({root, 4, 4, Augment::None, false});
  });
  EXPECT_TRUE(contains(message, root) && contains(message, "no class folders")) << message;
}

TEST(ImageFolder, ClassFolderWithoutImagesIsBadInputNamingIt) {
  Tree tree;
  write_text(tree.root / "empty_class" / "readme.txt", "no images here");
  const std::string message = bad_input_message([&] { image_folder(tree.options()); });
  EXPECT_TRUE(contains(message, (tree.root / "empty_class").string())) << message;
}

TEST(ImageFolder, BadFileIsBadInputNamingItWithoutSkipBad) {
  Tree tree;
  write_text(tree.root / "apple" / "a.PNG", "truncated garbage");
  const auto dataset = image_folder(tree.options());
  std::vector<float> sample(3 * 4 * 4);
  Pcg32 rng(0);
  const std::string message = bad_input_message([&] { dataset->load(1, sample.data(), rng); });
  EXPECT_TRUE(contains(message, (tree.root / "apple" / "a.PNG").string())) << message;
  EXPECT_EQ(dataset->skipped(), 0);
}

TEST(ImageFolder, SkipBadReplacesWithTheNextGoodSampleAndCountsDistinctFiles) {
  Tree tree;
  write_text(tree.root / "apple" / "a.PNG", "truncated garbage");  // sample 1
  write_text(tree.root / "zebra" / "z2.png", "");                  // sample 6, the last
  ImageFolderOptions options = tree.options();
  options.skip_bad = true;
  const auto dataset = image_folder(options);
  std::vector<float> sample(3 * 4 * 4);
  Pcg32 rng(0);
  EXPECT_EQ(dataset->load(1, sample.data(), rng), 1);  // replaced by sample 2 (apple/b.png)
  EXPECT_EQ(red_level(sample), 20);
  EXPECT_EQ(dataset->load(1, sample.data(), rng), 1);  // the same file again: counted once
  EXPECT_EQ(dataset->load(6, sample.data(), rng), 0);  // wraps around to sample 0 (Mango)
  EXPECT_EQ(red_level(sample), 0);
  EXPECT_EQ(dataset->skipped(), 2);
  EXPECT_EQ(dataset->skipped_files(),
            (std::vector<std::string>{(tree.root / "apple" / "a.PNG").string(),
                                      (tree.root / "zebra" / "z2.png").string()}));
}

TEST(ImageFolder, TrainTransformsAreDeterministicPerGenerator) {
  Tree tree;
  const auto dataset = image_folder(tree.options(Augment::Train));
  std::vector<float> a(3 * 4 * 4), b(a.size());
  Pcg32 rng_a(5), rng_b(5);
  dataset->load(3, a.data(), rng_a);
  dataset->load(3, b.data(), rng_b);
  EXPECT_EQ(a, b);
  for (float value : a) EXPECT_TRUE(std::isfinite(value));
}

// ---- NpyDataset --------------------------------------------------------------------------------

TEST(NpyDataset, LoadsSamplesAndInt32Labels) {
  TempDir dir;
  std::vector<float> pixels(2 * 3 * 2 * 2);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>(i) * 0.5f;
  io::write_npy(dir.file("x.npy"), Tensor::from_vector(pixels, {2, 3, 2, 2}));
  io::write_npy(dir.file("y.npy"),
                Tensor::from_vector(std::vector<int64_t>{4, 1}, {2}).to(DType::I32));
  const auto dataset = npy_dataset(dir.file("x.npy"), dir.file("y.npy"));
  EXPECT_EQ(dataset->size(), 2);
  EXPECT_EQ(dataset->num_classes(), 5);  // the largest label + 1
  EXPECT_EQ(dataset->image_size(), 2);
  std::vector<float> sample(12);
  Pcg32 rng(0);
  EXPECT_EQ(dataset->load(1, sample.data(), rng), 1);
  EXPECT_EQ(sample, std::vector<float>(pixels.begin() + 12, pixels.end()));
}

TEST(NpyDataset, EveryInconsistencyIsBadInputNamingTheFile) {
  TempDir dir;
  const std::string x = dir.file("x.npy"), y = dir.file("y.npy");
  const auto labels = [&](std::vector<int64_t> values) {
    const int64_t n = static_cast<int64_t>(values.size());
    io::write_npy(y, Tensor::from_vector(values, {n}));
  };
  const auto expect_error = [&](const std::string& file, const std::string& says, int64_t classes) {
    const std::string message = bad_input_message([&] { npy_dataset(x, y, classes); });
    EXPECT_TRUE(contains(message, file) && contains(message, says)) << message;
  };
  io::write_npy(x, Tensor::zeros({2, 3, 4, 4}, DType::F64));
  labels({0, 1});
  expect_error(x, "float32", 0);
  io::write_npy(x, Tensor::zeros({2, 1, 4, 4}));
  expect_error(x, "(N, 3, S, S)", 0);
  io::write_npy(x, Tensor::zeros({2, 3, 4, 5}));
  expect_error(x, "square", 0);
  io::write_npy(x, Tensor::zeros({2, 3, 4, 4}));
  labels({0, 1, 2});
  expect_error(y, "to match the images", 0);
  labels({0, 3});
  expect_error(y, "label 3 at index 1", 3);
  labels({-1, 0});
  expect_error(y, "label -1 at index 0", 0);
  io::write_npy(y, Tensor::zeros({2}));
  expect_error(y, "int64 or int32", 0);
}

// ---- Synthetic shapes --------------------------------------------------------------------------

std::vector<float> load_sample(const Dataset& dataset, int64_t index, uint64_t rng_seed = 0) {
  std::vector<float> sample(static_cast<size_t>(3 * dataset.image_size() * dataset.image_size()));
  Pcg32 rng(rng_seed);
  dataset.load(index, sample.data(), rng);
  return sample;
}

TEST(SyntheticShapes, SamplesArePureFunctionsOfSeedAndIndex) {
  const SyntheticShapesOptions options{
      .count = 40, .classes = 10, .size = 24, .seed = 3, .augment = Augment::None};
  const auto a = synthetic_shapes(options), b = synthetic_shapes(options);
  SyntheticShapesOptions other = options;
  other.seed = 4;
  const auto c = synthetic_shapes(other);
  for (int64_t i : {0, 7, 39}) {
    EXPECT_EQ(load_sample(*a, i), load_sample(*b, i)) << "sample " << i;
    EXPECT_NE(load_sample(*a, i), load_sample(*c, i)) << "sample " << i;
  }
  EXPECT_NE(load_sample(*a, 0), load_sample(*a, 10));  // same class, another sample
}

TEST(SyntheticShapes, TrainAugmentationIsAHorizontalFlipOnly) {
  SyntheticShapesOptions options{
      .count = 20, .classes = 10, .size = 16, .seed = 1, .augment = Augment::Train};
  const auto train = synthetic_shapes(options);
  options.augment = Augment::None;
  const auto eval = synthetic_shapes(options);
  int flipped = 0;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    const std::vector<float> plain = load_sample(*eval, 5),
                             augmented = load_sample(*train, 5, seed);
    std::vector<float> mirror(plain.size());
    for (size_t row = 0; row < plain.size() / 16; ++row)
      for (size_t x = 0; x < 16; ++x) mirror[row * 16 + x] = plain[row * 16 + 15 - x];
    EXPECT_TRUE(augmented == plain || augmented == mirror) << "rng seed " << seed;
    flipped += augmented == mirror;
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, 16);
}

// Nearest-centroid classification: centroids from the first `per_class` samples of each class
// (index % classes is the label), accuracy on the next `per_class`. Also reports the distance of
// the two closest centroids and the RMS distance of the training samples to their centroid.
struct Separation {
  double closest = 1e300, spread = 0, accuracy = 0;
};

Separation separation(const std::vector<std::vector<double>>& features, int64_t classes) {
  const int64_t train = static_cast<int64_t>(features.size()) / 2,
                dims = static_cast<int64_t>(features[0].size());
  const auto distance = [&](const std::vector<double>& a, const std::vector<double>& b) {
    double sum = 0;
    for (int64_t d = 0; d < dims; ++d) sum += (a[d] - b[d]) * (a[d] - b[d]);
    return std::sqrt(sum);
  };
  std::vector<std::vector<double>> centroid(classes, std::vector<double>(dims, 0.0));
  for (int64_t i = 0; i < train; ++i)
    for (int64_t d = 0; d < dims; ++d) centroid[i % classes][d] += features[i][d] * classes / train;
  Separation result;
  for (int64_t i = 0; i < train; ++i)
    result.spread += std::pow(distance(features[i], centroid[i % classes]), 2);
  result.spread = std::sqrt(result.spread / static_cast<double>(train));
  for (int64_t a = 0; a < classes; ++a)
    for (int64_t b = a + 1; b < classes; ++b)
      result.closest = std::min(result.closest, distance(centroid[a], centroid[b]));
  int64_t correct = 0;
  for (int64_t i = train; i < 2 * train; ++i) {
    int64_t best = 0;
    for (int64_t k = 1; k < classes; ++k)
      if (distance(features[i], centroid[k]) < distance(features[i], centroid[best])) best = k;
    correct += best == i % classes;
  }
  result.accuracy = static_cast<double>(correct) / static_cast<double>(train);
  return result;
}

// The mean colour of the pixels that differ clearly from the background (the top-left pixel,
// which no shape reaches), in normalized units.
std::vector<double> foreground_colour(const std::vector<float>& sample, int64_t size) {
  const int64_t plane = size * size;
  std::vector<double> sum(3, 0.0);
  int64_t count = 0;
  for (int64_t i = 0; i < plane; ++i) {
    double distance = 0;
    for (int c = 0; c < 3; ++c) distance += std::pow(sample[c * plane + i] - sample[c * plane], 2);
    if (std::sqrt(distance) < 1.0) continue;  // about a quarter of the 8-bit range
    for (int c = 0; c < 3; ++c) sum[c] += sample[c * plane + i];
    ++count;
  }
  for (double& value : sum) value /= static_cast<double>(std::max<int64_t>(count, 1));
  return sum;
}

TEST(SyntheticShapes, ClassesAreFarApartRelativeToTheirSpread) {
  const int64_t classes = 10, per_class = 12, size = 32;
  const auto dataset = synthetic_shapes({.count = classes * per_class * 2,
                                         .classes = classes,
                                         .size = size,
                                         .seed = 9,
                                         .augment = Augment::None});
  const std::vector<std::string> names = dataset->class_names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), static_cast<size_t>(classes));
  std::vector<std::vector<double>> pixels, colours;
  for (int64_t i = 0; i < dataset->size(); ++i) {
    const std::vector<float> sample = load_sample(*dataset, i);
    pixels.emplace_back(sample.begin(), sample.end());
    colours.push_back(foreground_colour(sample, size));
  }
  // Whole images: position, size, rotation and background vary within a class, so class means are
  // blurred blobs, yet the nearest one is right far more often than chance (10%).
  const Separation raw = separation(pixels, classes);
  EXPECT_GE(raw.accuracy, 0.7) << "pixel-space nearest class mean";
  // The shape's colour sets every class apart: its centroids lie several spreads apart.
  const Separation colour = separation(colours, classes);
  EXPECT_GT(colour.closest, 3.0 * colour.spread) << "closest colour centroids vs RMS spread";
  EXPECT_GE(colour.accuracy, 0.95) << "foreground-colour nearest centroid";
}

TEST(SyntheticShapes, ValuesAreNormalizedEightBitLevels) {
  const auto dataset = synthetic_shapes(
      {.count = 10, .classes = 10, .size = 16, .seed = 0, .augment = Augment::None});
  for (int64_t i = 0; i < 10; ++i) {
    const std::vector<float> sample = load_sample(*dataset, i);
    for (size_t j = 0; j < sample.size(); ++j) {
      const int c = static_cast<int>(j / 256);
      const double level = (sample[j] * kImageNetStd[c] + kImageNetMean[c]) * 255.0;
      ASSERT_TRUE(level > -0.01 && level < 255.01 && std::fabs(level - std::round(level)) < 1e-3)
          << "sample " << i << " value " << sample[j] << " is no normalized 8-bit level";
    }
  }
}

TEST(SyntheticShapes, OptionsOutOfRangeAreBadInput) {
  EXPECT_TRUE(contains(bad_input_message([] { synthetic_shapes({.count = 0}); }), "count"));
  EXPECT_TRUE(contains(bad_input_message([] { synthetic_shapes({.classes = 101}); }), "classes"));
  EXPECT_TRUE(contains(bad_input_message([] { synthetic_shapes({.size = 4}); }), "size"));
}

// ---- BatchLoader -------------------------------------------------------------------------------

// Sample i is 12 floats: i everywhere but the second, a draw from the loader's generator (which
// shows the per-sample seeding); its label is i % 5. Loading `fail_at` throws, naming a file.
class CountingDataset final : public Dataset {
 public:
  explicit CountingDataset(int64_t size, int64_t fail_at = -1) : size_(size), fail_at_(fail_at) {}
  int64_t size() const override { return size_; }
  int64_t num_classes() const override { return 5; }
  std::vector<std::string> class_names() const override { return {"a", "b", "c", "d", "e"}; }
  int64_t image_size() const override { return 2; }
  int64_t load(int64_t index, float* out, Pcg32& rng) const override {
    ++loads;
    if (index == fail_at_) throw_bad_input("broken_" + std::to_string(index) + ".png: corrupt PNG");
    for (int i = 0; i < 12; ++i) out[i] = static_cast<float>(index);
    out[1] = static_cast<float>(rng.uniform());
    return index % 5;
  }
  mutable std::atomic<int64_t> loads{0};

 private:
  int64_t size_, fail_at_;
};

LoaderOptions loader_options(int workers, int64_t start_batch = 0) {
  LoaderOptions options;
  options.batch = 8;
  options.seed = 42;
  options.workers = workers;
  options.start_batch = start_batch;
  return options;
}

std::vector<Batch> take(const std::shared_ptr<const Dataset>& dataset, LoaderOptions options,
                        int count) {
  BatchLoader loader(dataset, std::move(options));
  std::vector<Batch> batches;
  for (int i = 0; i < count; ++i) batches.push_back(loader.next());
  return batches;
}

std::vector<float> floats(const Tensor& t) {
  return {t.data<float>(), t.data<float>() + t.numel()};
}
std::vector<int64_t> ints(const Tensor& t) {
  return {t.data<int64_t>(), t.data<int64_t>() + t.numel()};
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b,
                         const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].index, b[i].index) << what;
    EXPECT_EQ(a[i].epoch, b[i].epoch) << what;
    EXPECT_EQ(floats(a[i].images), floats(b[i].images)) << what << ": batch " << a[i].index;
    EXPECT_EQ(ints(a[i].labels), ints(b[i].labels)) << what << ": batch " << a[i].index;
  }
}

// The dataset index of each sample of a batch (the value CountingDataset writes).
std::vector<int64_t> indices(const Batch& batch) {
  std::vector<int64_t> out;
  for (int64_t j = 0; j < batch.images.size(0); ++j)
    out.push_back(static_cast<int64_t>(batch.images.data<float>()[j * 12]));
  return out;
}

TEST(BatchLoader, BatchesAreTheSameWithAnyNumberOfWorkers) {
  const auto dataset = std::make_shared<CountingDataset>(50);  // 6 full batches per epoch
  const std::vector<Batch> one = take(dataset, loader_options(1), 15);
  expect_same_batches(take(dataset, loader_options(3), 15), one, "3 workers vs 1");
  expect_same_batches(take(dataset, loader_options(0), 15), one, "on the caller vs 1 worker");
  for (size_t k = 0; k < one.size(); ++k) {
    EXPECT_EQ(one[k].index, static_cast<int64_t>(k));
    EXPECT_EQ(one[k].epoch, static_cast<int64_t>(k / 6));
    EXPECT_EQ(one[k].images.shape(), (Shape{8, 3, 2, 2}));
    const std::vector<int64_t> idx = indices(one[k]), labels = ints(one[k].labels);
    for (size_t j = 0; j < idx.size(); ++j) EXPECT_EQ(labels[j], idx[j] % 5);
  }
}

TEST(BatchLoader, ResumeAtStartBatchRepeatsTheTailOfAFullRun) {
  const auto dataset = std::make_shared<CountingDataset>(50);
  const std::vector<Batch> full = take(dataset, loader_options(2), 16);
  const std::vector<Batch> resumed = take(dataset, loader_options(2, 7), 9);
  expect_same_batches(resumed, std::vector<Batch>(full.begin() + 7, full.end()), "resumed at 7");
}

TEST(BatchLoader, EachEpochIsANewPermutation) {
  const auto dataset = std::make_shared<CountingDataset>(48);  // 6 batches, no remainder
  const std::vector<Batch> batches = take(dataset, loader_options(2), 12);
  std::vector<int64_t> epoch0, epoch1;
  for (int k = 0; k < 12; ++k) {
    const std::vector<int64_t> idx = indices(batches[k]);
    (k < 6 ? epoch0 : epoch1).insert((k < 6 ? epoch0 : epoch1).end(), idx.begin(), idx.end());
  }
  EXPECT_NE(epoch0, epoch1);
  std::vector<int64_t> all(48);
  for (int64_t i = 0; i < 48; ++i) all[i] = i;
  for (std::vector<int64_t>* epoch : {&epoch0, &epoch1}) {
    std::vector<int64_t> sorted = *epoch;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, all) << "an epoch holds every sample once";
  }
}

TEST(BatchLoader, WithoutShuffleAndDropLastTheLastBatchIsShort) {
  const auto dataset = std::make_shared<CountingDataset>(19);
  LoaderOptions options = loader_options(2);
  options.shuffle = false;
  options.drop_last = false;
  BatchLoader loader(dataset, options);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  EXPECT_EQ(indices(loader.next()), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  loader.next();
  const Batch last = loader.next();
  EXPECT_EQ(indices(last), (std::vector<int64_t>{16, 17, 18}));
  EXPECT_EQ(last.labels.shape(), (Shape{3}));
  EXPECT_EQ(indices(loader.next())[0], 0);  // epoch 1 starts over
}

TEST(BatchLoader, AFailingSampleIsRethrownFromNextAtItsBatch) {
  const auto dataset = std::make_shared<CountingDataset>(40, 13);  // sample 13: batch 1
  LoaderOptions options = loader_options(3);
  options.shuffle = false;
  BatchLoader loader(dataset, options);
  EXPECT_EQ(loader.next().index, 0);  // the batch before the failure arrives whole
  for (int attempt = 0; attempt < 2; ++attempt) {
    const std::string message = bad_input_message([&] { loader.next(); });
    EXPECT_TRUE(contains(message, "broken_13.png")) << message;
  }
}

TEST(BatchLoader, DestructorReturnsWhileWorkersWait) {
  const auto dataset = std::make_shared<CountingDataset>(1000);
  {
    LoaderOptions options = loader_options(4);
    options.prefetch = 1;
    BatchLoader loader(dataset, options);
    loader.next();
    // The workers fill batch 1 and then wait for the consumer, which never comes back.
    while (dataset->loads < 16) std::this_thread::yield();
  }
  EXPECT_EQ(dataset->loads, 16) << "with prefetch 1, no worker runs past the next batch";
}

TEST(BatchLoader, AllocateProvidesTheImageTensor) {
  const auto dataset = std::make_shared<CountingDataset>(16);
  std::atomic<int> calls{0};
  LoaderOptions options = loader_options(2);
  options.allocate = [&](const Shape& shape) {
    ++calls;
    return Tensor::empty(shape);
  };
  take(dataset, options, 3);
  EXPECT_GE(calls, 3);
  options.allocate = [](const Shape&) { return Tensor::empty({1}); };
  BatchLoader loader(dataset, options);
  EXPECT_THROW(loader.next(), Error);
}

TEST(BatchLoader, OptionsOutOfRangeAreBadInputNamingThem) {
  const auto dataset = std::make_shared<CountingDataset>(5);
  LoaderOptions options = loader_options(1);
  EXPECT_TRUE(contains(bad_input_message([&] { BatchLoader(dataset, options); }),
                       "fewer than one batch of 8"));
  options.batch = 0;
  EXPECT_TRUE(contains(bad_input_message([&] { BatchLoader(dataset, options); }), "batch"));
  options = loader_options(-1);
  options.batch = 2;
  EXPECT_TRUE(contains(bad_input_message([&] { BatchLoader(dataset, options); }), "workers"));
  options = loader_options(1);
  options.batch = 2;
  options.prefetch = 0;
  EXPECT_TRUE(contains(bad_input_message([&] { BatchLoader(dataset, options); }), "prefetch"));
}

TEST(BatchLoader, SyntheticShapesBatchesAreReproducible) {
  const std::shared_ptr<const Dataset> dataset = synthetic_shapes(
      {.count = 64, .classes = 10, .size = 16, .seed = 2, .augment = Augment::Train});
  LoaderOptions options = loader_options(2);
  options.batch = 16;
  const std::vector<Batch> a = take(dataset, options, 5);
  options.workers = 1;
  expect_same_batches(take(dataset, options, 5), a, "synthetic, 1 vs 2 workers");
}

}  // namespace
}  // namespace hookrt::data
