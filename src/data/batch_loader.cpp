// BatchLoader: batches filled by worker threads, delivered in order, reproducible to the sample.
//
// Global batch k belongs to epoch k / B (B = batches per epoch) and holds positions
// (k % B) * batch ... of that epoch's sample order: a permutation drawn from (seed, epoch), or the
// identity without shuffling. The sample at position p of epoch e is loaded with a generator
// seeded from (seed, e, p). Nothing else feeds a batch, so its content is the same whichever
// worker loads which sample, and a loader started at start_batch = k produces what a full run
// produces from batch k on.
//
// Work is handed out one sample at a time, in (batch, slot) order, under one mutex; a worker may
// claim a sample of batch k only while k < (the batch the consumer waits for) + prefetch, which
// bounds the memory held ahead. A failed sample stops all further claims; the consumer still
// receives every batch before the failed one (all of their samples were claimed earlier, since
// claims go in order) and then the failure of the lowest failed slot, once no sample of that batch
// is still being loaded, so which error it sees does not depend on scheduling either.
#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "hookrt/data.h"
#include "random.h"

namespace hookrt::data {
namespace {

uint64_t mix(uint64_t value) {  // splitmix64's finalizer: nearby inputs give unrelated seeds
  value += 0x9E3779B97F4A7C15ULL;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ULL;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBULL;
  return value ^ (value >> 31);
}

constexpr uint64_t kOrderStream = 0x6f72646572ULL;   // "order": permutations
constexpr uint64_t kSampleStream = 0x73616d706cULL;  // "sampl": per-sample augmentation

// A batch being filled.
struct Pending {
  Batch batch;
  int64_t unfinished = 0;  // samples not yet loaded, claimed or not
  int64_t in_flight = 0;   // samples claimed and still loading
  int64_t failed_slot = -1;
  std::exception_ptr failure;  // of failed_slot
};

// One sample to load, with everything it needs copied out of the shared state.
struct Task {
  std::shared_ptr<Pending> pending;
  int64_t slot = 0;
  int64_t sample = 0;  // dataset index
  uint64_t rng_seed = 0;
  float* out = nullptr;
};

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t position) {
  return mix(mix(mix(seed ^ kSampleStream) + static_cast<uint64_t>(epoch)) +
             static_cast<uint64_t>(position));
}

std::vector<int64_t> shuffled_order(int64_t size, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) order[i] = i;
  Pcg32 rng(mix(mix(seed ^ kOrderStream) + static_cast<uint64_t>(epoch)));
  for (int64_t i = size - 1; i > 0; --i)  // Fisher-Yates
    std::swap(order[i], order[rng.below(static_cast<uint32_t>(i + 1))]);
  return order;
}

}  // namespace

struct BatchLoader::State {
  const Dataset* dataset = nullptr;
  LoaderOptions options;
  int64_t batches_per_epoch = 0;
  int64_t sample_numel = 0;  // 3 * S * S

  std::mutex mutex;
  std::condition_variable work_ready;   // workers: a claim became possible, or stop
  std::condition_variable batch_ready;  // consumer: a sample finished or failed
  bool stop = false;
  bool failed = false;      // some sample failed: no more claims
  int64_t next_batch = 0;   // what next() returns next
  int64_t claim_batch = 0;  // the next sample to claim is (claim_batch, claim_slot)
  int64_t claim_slot = 0;
  std::map<int64_t, std::shared_ptr<Pending>> pending;
  std::map<int64_t, std::vector<int64_t>> orders;  // epoch -> sample order (with shuffle)
  std::vector<std::thread> threads;

  bool can_claim() const { return !failed && claim_batch < next_batch + options.prefetch; }

  int64_t samples_in(int64_t batch) const {
    const int64_t first = (batch % batches_per_epoch) * options.batch;
    return std::min(options.batch, dataset->size() - first);
  }

  Tensor allocate_images(const Shape& shape) const {
    Tensor images = options.allocate ? options.allocate(shape) : Tensor::empty(shape, DType::F32);
    if (!images.defined() || images.dtype() != DType::F32 || images.device() != Device::CPU ||
        images.shape() != shape)
      throw Error("BatchLoader: options.allocate must return an F32 host tensor of shape " +
                  shape_string(shape));
    return images;
  }

  std::shared_ptr<Pending> start_batch(int64_t k) {
    auto batch = std::make_shared<Pending>();
    const int64_t n = samples_in(k), side = dataset->image_size();
    const int64_t epoch = k / batches_per_epoch;
    batch->unfinished = n;
    batch->batch.index = k;
    batch->batch.epoch = epoch;
    try {
      batch->batch.images = allocate_images({n, 3, side, side});
      batch->batch.labels = Tensor::empty({n}, DType::I64);
    } catch (...) {
      record_failure(*batch, 0, std::current_exception());
    }
    if (options.shuffle && !orders.count(epoch)) {
      orders.erase(orders.begin(), orders.lower_bound(epoch));  // claims never go back
      orders[epoch] = shuffled_order(dataset->size(), options.seed, epoch);
    }
    return batch;
  }

  // Claims the next sample; the caller holds the mutex and has checked can_claim(). Returns false
  // when the batch could not even be allocated (recorded as its failure).
  bool claim(Task& task) {
    const int64_t k = claim_batch, epoch = k / batches_per_epoch;
    std::shared_ptr<Pending>& batch = pending[k];
    if (!batch) batch = start_batch(k);
    if (batch->failure) return false;
    const int64_t position = (k % batches_per_epoch) * options.batch + claim_slot;
    task.pending = batch;
    task.slot = claim_slot;
    task.sample = options.shuffle ? orders.at(epoch)[position] : position;
    task.rng_seed = sample_seed(options.seed, epoch, position);
    task.out = batch->batch.images.data<float>() + claim_slot * sample_numel;
    ++batch->in_flight;
    if (++claim_slot == samples_in(k)) {
      ++claim_batch;
      claim_slot = 0;
    }
    return true;
  }

  // Keeps the failure of the lowest slot, and stops all further claims.
  void record_failure(Pending& batch, int64_t slot, std::exception_ptr error) {
    if (batch.failed_slot < 0 || slot < batch.failed_slot) {
      batch.failed_slot = slot;
      batch.failure = error;
    }
    failed = true;
  }

  // Loads one claimed sample, without the mutex, then reports back under it.
  void run(const Task& task) {
    std::exception_ptr error;
    try {
      Pcg32 rng(task.rng_seed);
      const int64_t label = dataset->load(task.sample, task.out, rng);
      if (label < 0 || label >= dataset->num_classes())
        throw Error("BatchLoader: the dataset gave sample " + std::to_string(task.sample) +
                    " the label " + std::to_string(label) + ", outside [0, " +
                    std::to_string(dataset->num_classes()) + ")");
      task.pending->batch.labels.data<int64_t>()[task.slot] = label;
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      Pending& batch = *task.pending;
      --batch.in_flight;
      if (error)
        record_failure(batch, task.slot, error);
      else
        --batch.unfinished;
    }
    batch_ready.notify_all();
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mutex);
    while (true) {
      work_ready.wait(lock, [this] { return stop || can_claim(); });
      if (stop) return;
      Task task;
      if (!claim(task)) {
        batch_ready.notify_all();
        continue;
      }
      lock.unlock();
      run(task);
      lock.lock();
    }
  }

  // Without workers, next() loads its batch itself, one sample after another.
  void load_on_caller(int64_t k) {
    while (true) {
      Task task;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (claim_batch != k || !can_claim() || !claim(task)) return;
      }
      run(task);
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    work_ready.notify_all();
    for (std::thread& thread : threads)
      if (thread.joinable()) thread.join();
    threads.clear();
  }
};

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), state_(std::make_unique<State>()) {
  if (!dataset_) throw_bad_input("BatchLoader: no dataset");
  const int64_t size = dataset_->size();
  if (options.batch < 1)
    throw_bad_input("BatchLoader: batch must be at least 1, got " + std::to_string(options.batch));
  if (options.workers < 0 || options.workers > 256)
    throw_bad_input("BatchLoader: workers must be in [0, 256], got " +
                    std::to_string(options.workers));
  if (options.prefetch < 1)
    throw_bad_input("BatchLoader: prefetch must be at least 1, got " +
                    std::to_string(options.prefetch));
  if (options.start_batch < 0)
    throw_bad_input("BatchLoader: start_batch must be >= 0, got " +
                    std::to_string(options.start_batch));
  State& state = *state_;
  state.dataset = dataset_.get();
  state.batches_per_epoch =
      options.drop_last ? size / options.batch : (size + options.batch - 1) / options.batch;
  if (state.batches_per_epoch < 1)
    throw_bad_input("BatchLoader: the dataset has " + std::to_string(size) +
                    " samples, fewer than one batch of " + std::to_string(options.batch) +
                    " (drop_last)");
  state.sample_numel = 3 * dataset_->image_size() * dataset_->image_size();
  state.next_batch = state.claim_batch = options.start_batch;
  state.options = std::move(options);
  try {
    for (int i = 0; i < state.options.workers; ++i)
      state.threads.emplace_back([&state] { state.worker_loop(); });
  } catch (...) {
    state.stop_workers();  // the threads that did start
    throw;
  }
}

BatchLoader::~BatchLoader() { state_->stop_workers(); }

int64_t BatchLoader::batches_per_epoch() const { return state_->batches_per_epoch; }

Batch BatchLoader::next() {
  State& state = *state_;
  const int64_t k = state.next_batch;
  if (state.options.workers == 0) state.load_on_caller(k);
  std::unique_lock<std::mutex> lock(state.mutex);
  const auto done = [&] {
    const auto it = state.pending.find(k);
    if (it == state.pending.end()) return false;
    const Pending& batch = *it->second;
    return batch.unfinished == 0 || (batch.failure && batch.in_flight == 0);
  };
  state.batch_ready.wait(lock, done);
  const std::shared_ptr<Pending> batch = state.pending.at(k);
  // A failed batch stays where it is: the loader cannot go past it, and says so on every call.
  if (batch->failure) std::rethrow_exception(batch->failure);
  state.pending.erase(k);
  ++state.next_batch;
  lock.unlock();
  state.work_ready.notify_all();
  return std::move(batch->batch);
}

}  // namespace hookrt::data
