#pragma once
// File formats: safetensors (weights, captures), NPY (batches, labels), stats.jsonl (records).
// Every reader checks each length, offset and shape before use and throws Error(BadInput) naming
// the file and the offending key or offset.
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "hookrt/model.h"
#include "hookrt/records.h"
#include "hookrt/tensor.h"

namespace hookrt::io {

// Reads every tensor in file order, each in its stored dtype (F32, F64, F16, BF16, I64, I32, U8);
// the `__metadata__` strings go to `metadata` when given.
TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);
// Parses safetensors bytes; `name` is used in error messages.
TensorMap parse_safetensors(const std::string& bytes, const std::string& name,
                            std::map<std::string, std::string>* metadata = nullptr);
// Writes host tensors in the given order with optional `__metadata__` strings.
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// NPY v1/v2/v3, little-endian, C order; dtypes <f4 <f8 <i8 <i4 |u1 (and <f2).
Tensor read_npy(const std::string& path);
Tensor parse_npy(const std::string& bytes, const std::string& name);
void write_npy(const std::string& path, const Tensor& tensor);

// One stats.jsonl object: step when module call tensor shape (param for grad), then the fields of
// each observing probe. Non-finite numbers become null. An ordered_json, because nlohmann::json
// sorts keys and the order is part of the format.
nlohmann::ordered_json record_to_json(const ProbeRecord& record);

// Appends one JSON object per line; flush() makes every line written so far durable.
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  // ordered_json keeps record_to_json's key order; a nlohmann::json converts implicitly.
  void write(const nlohmann::ordered_json& object);
  void write(const ProbeRecord& record) { write(record_to_json(record)); }
  void flush();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Collects captured tensors and writes them as one captures.safetensors.
class CaptureWriter {
 public:
  explicit CaptureWriter(std::string path) : path_(std::move(path)) {}
  // Adds every CaptureResult of the record under record.capture_key(); a repeated key gets
  // `#2`, `#3`... appended (two capture probes in one hook).
  void add(const ProbeRecord& record);
  void add(const std::string& key, const Tensor& host_tensor);
  size_t size() const { return tensors_.size(); }
  // Writes everything collected so far (safe to call again after more adds).
  void write() const;

 private:
  std::string path_;
  TensorMap tensors_;
  std::map<std::string, int> key_counts_;
};

// A run's output folder of records: stats.jsonl, appended as records arrive, and
// captures.safetensors, written once (it needs all its tensors up front) by finish(), at the end
// of the run or when it stops early.
// record() may run on the executor's delivery thread while the run's own thread flushes after
// each step: every method takes the folder's lock.
class RecordFiles {
 public:
  // Creates the folder; Error(BadInput) naming `--out DIR` when it cannot.
  explicit RecordFiles(const std::string& dir);
  void record(const ProbeRecord& record);
  void flush();   // every record so far is on disk (after each step)
  void finish();  // flush, and the captures
  std::string file(const std::string& name) const;  // a path in the folder
  size_t captures() const;

 private:
  mutable std::mutex mutex_;
  std::string dir_;
  std::unique_ptr<JsonlWriter> stats_;
  std::unique_ptr<CaptureWriter> captures_;
};

}  // namespace hookrt::io
