// ImageFolder: torchvision.datasets.ImageFolder's layout and order over JPEG and PNG files.
//
// torchvision lists the class folders with os.scandir, sorted by name, and the files of each class
// with sorted(os.walk(class_dir, followlinks=True)), each folder's file names sorted: files are
// ordered by (folder path, file name). Python compares strings by code point, which for UTF-8
// names is the byte order std::string compares in.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <mutex>
#include <set>
#include <system_error>

#include "data/transforms.h"
#include "hookrt/data.h"
#include "random.h"

namespace hookrt::data {
namespace {

namespace fs = std::filesystem;

struct Sample {
  std::string path;
  int64_t label = 0;
};

bool has_image_extension(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* extension : {".jpg", ".jpeg", ".png"}) {
    const std::string ext(extension);
    if (lower.size() >= ext.size() &&
        lower.compare(lower.size() - ext.size(), ext.size(), ext) == 0)
      return true;
  }
  return false;
}

// The sorted names of the folders directly under root (symlinks to folders included).
std::vector<std::string> class_folders(const fs::path& root) {
  std::error_code error;
  if (!fs::is_directory(root, error))
    throw_bad_input("image folder '" + root.string() + "' does not exist or is not a directory");
  std::vector<std::string> names;
  bool any_entry = false;
  for (const fs::directory_entry& entry : fs::directory_iterator(root, error)) {
    any_entry = true;
    if (entry.is_directory(error)) names.push_back(entry.path().filename().string());
  }
  if (error)
    throw_bad_input("image folder '" + root.string() + "' cannot be listed: " + error.message());
  if (!any_entry) throw_bad_input("image folder '" + root.string() + "' is empty");
  if (names.empty())
    throw_bad_input("image folder '" + root.string() +
                    "' has no class folders (expected root/<class>/<image files>)");
  std::sort(names.begin(), names.end());
  return names;
}

// The image files under one class folder, in os.walk's sorted order.
std::vector<std::string> class_files(const fs::path& folder) {
  std::vector<std::pair<std::string, std::string>> files;  // (folder path, file name)
  std::error_code error;
  const auto options = fs::directory_options::follow_directory_symlink;
  for (auto it = fs::recursive_directory_iterator(folder, options, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    const std::string name = it->path().filename().string();
    std::error_code ignored;
    if (!it->is_directory(ignored) && has_image_extension(name))
      files.emplace_back(it->path().parent_path().string(), name);
  }
  if (error)
    throw_bad_input("class folder '" + folder.string() + "' cannot be listed: " + error.message());
  std::sort(files.begin(), files.end());
  std::vector<std::string> paths;
  for (const auto& [parent, name] : files) paths.push_back((fs::path(parent) / name).string());
  return paths;
}

class ImageFolder final : public Dataset {
 public:
  explicit ImageFolder(const ImageFolderOptions& options) : options_(options) {
    classes_ = class_folders(options.root);
    for (size_t label = 0; label < classes_.size(); ++label) {
      const fs::path folder = fs::path(options.root) / classes_[label];
      const std::vector<std::string> paths = class_files(folder);
      if (paths.empty())
        throw_bad_input("class folder '" + folder.string() +
                        "' holds no image files (.jpg, .jpeg, .png)");
      for (const std::string& path : paths) samples_.push_back({path, static_cast<int64_t>(label)});
    }
  }

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::vector<std::string> class_names() const override { return classes_; }
  int64_t image_size() const override { return options_.size; }

  // A bad file is replaced by the next good one (index + 1, wrapping). The generator is only drawn
  // from once an image has decoded, so the replacement's augmentation does not depend on how many
  // bad files came before it.
  int64_t load(int64_t index, float* out, Pcg32& rng) const override {
    if (index < 0 || index >= size())
      throw_bad_input("image folder '" + options_.root + "': sample index " +
                      std::to_string(index) + " out of range [0, " + std::to_string(size()) + ")");
    for (int64_t tried = 0; tried < size(); ++tried) {
      const Sample& sample = samples_[(index + tried) % size()];
      Tensor image;
      try {
        image = decode_image(sample.path);
      } catch (const Error&) {
        if (!options_.skip_bad) throw;
        record_skipped(sample.path);
        continue;
      }
      if (options_.augment == Augment::Train)
        train_transform(view_of(image), options_.size, rng, out);
      else
        eval_transform(view_of(image), options_.resize, options_.size, out);
      return sample.label;
    }
    throw_bad_input("image folder '" + options_.root + "': every one of its " +
                    std::to_string(size()) + " files failed to load");
  }

  int64_t skipped() const override {
    std::lock_guard<std::mutex> lock(skipped_mutex_);
    return static_cast<int64_t>(skipped_.size());
  }
  std::vector<std::string> skipped_files() const override {
    std::lock_guard<std::mutex> lock(skipped_mutex_);
    return skipped_;
  }

 private:
  void record_skipped(const std::string& path) const {
    std::lock_guard<std::mutex> lock(skipped_mutex_);
    if (skipped_set_.insert(path).second) skipped_.push_back(path);
  }

  ImageFolderOptions options_;
  std::vector<std::string> classes_;
  std::vector<Sample> samples_;
  mutable std::mutex skipped_mutex_;
  mutable std::vector<std::string> skipped_;  // first-met order
  mutable std::set<std::string> skipped_set_;
};

}  // namespace

std::unique_ptr<Dataset> image_folder(const ImageFolderOptions& options) {
  if (options.size < 1)
    throw_bad_input("image folder: size must be at least 1, got " + std::to_string(options.size));
  if (options.augment == Augment::None && options.resize < options.size)
    throw_bad_input("image folder: resize (" + std::to_string(options.resize) +
                    ") must be at least size (" + std::to_string(options.size) +
                    ") for the center crop");
  return std::make_unique<ImageFolder>(options);
}

}  // namespace hookrt::data
