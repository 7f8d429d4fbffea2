// CudnnConvolutions (see cudnn_conv.h).
#include "cudnn_conv.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <type_traits>

#include "add.cuh"
#include "convert.cuh"
#include "resources.h"
#include "status.h"

namespace hookrt::cuda {
namespace {

std::string describe(const ConvDims& d) {
  return memory_format_name(d.format) + " " + dtype_name(d.dtype) + " input [" + std::to_string(d.n) + ", " +
         std::to_string(d.c) + ", " + std::to_string(d.h) + ", " + std::to_string(d.w) + "], filter [" +
         std::to_string(d.k) + ", " + std::to_string(d.c) + ", " + std::to_string(d.r) + ", " + std::to_string(d.s) +
         "], stride " + std::to_string(d.geometry.stride) + ", padding " + std::to_string(d.geometry.padding);
}

constexpr int kCandidates = 16;  // more than cuDNN has algorithms of any one kind

struct Descriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
  cudnnMathType_t math;  // the dtype's (math_for); conv holds the math of the call at hand
};

// The math mode the next call on the descriptor runs with: cuDNN runs an algorithm as the
// descriptor says, whatever math it was timed or ranked with, so each call sets its choice's.
void use_math(const Descriptors& p, cudnnMathType_t math) {
  HOOKRT_CUDA_CHECK(cudnnSetConvolutionMathType(p.conv.get(), math));
}

// One call's buffers as cuDNN's Find takes them: two inputs, and the output it may overwrite
// while timing (the call itself overwrites it right after).
struct Operands {
  const void* a;
  const void* b;
  void* out;
};

// Each direction's cuDNN calls, behind the same names, so that one chooser serves all three.
struct ForwardCalls {
  using Algo = cudnnConvolutionFwdAlgo_t;
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr const char* kName = "forward";
  static void rank(cudnnHandle_t h, const Descriptors& p, Perf* out, int* returned) {
    HOOKRT_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                             kCandidates, returned, out));
  }
  static void measure(cudnnHandle_t h, const Descriptors& p, const Operands& o, Perf* out, int* returned,
                      void* scratch, size_t bytes) {  // o: x, w -> y
    HOOKRT_CUDA_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, p.x.get(), o.a, p.w.get(), o.b, p.conv.get(),
                                                             p.y.get(), o.out, kCandidates, returned, out, scratch,
                                                             bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Descriptors& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), algo, bytes);
  }
};

struct BackwardDataCalls {
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr const char* kName = "backward-data";
  static void rank(cudnnHandle_t h, const Descriptors& p, Perf* out, int* returned) {
    HOOKRT_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(),
                                                                  kCandidates, returned, out));
  }
  static void measure(cudnnHandle_t h, const Descriptors& p, const Operands& o, Perf* out, int* returned,
                      void* scratch, size_t bytes) {  // o: w, dy -> dx
    HOOKRT_CUDA_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w.get(), o.a, p.y.get(), o.b, p.conv.get(),
                                                                  p.x.get(), o.out, kCandidates, returned, out,
                                                                  scratch, bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Descriptors& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(), algo,
                                                        bytes);
  }
};

struct BackwardFilterCalls {
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr const char* kName = "backward-filter";
  static void rank(cudnnHandle_t h, const Descriptors& p, Perf* out, int* returned) {
    HOOKRT_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(),
                                                                    kCandidates, returned, out));
  }
  static void measure(cudnnHandle_t h, const Descriptors& p, const Operands& o, Perf* out, int* returned,
                      void* scratch, size_t bytes) {  // o: x, dy -> dw
    HOOKRT_CUDA_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p.x.get(), o.a, p.y.get(), o.b, p.conv.get(),
                                                                    p.w.get(), o.out, kCandidates, returned, out,
                                                                    scratch, bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Descriptors& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(), algo,
                                                          bytes);
  }
};

// An algorithm, the math mode it runs with and the workspace it needs.
template <class Algo>
struct Chosen {
  Algo algo;
  cudnnMathType_t math;
  size_t bytes;
};

// The workspace `algo` needs with the descriptor's current math, or nothing where cuDNN says the
// algorithm cannot run these descriptors (a ranked or timed candidate may still say so): the
// candidate is passed over, as PyTorch passes it over, rather than failing the choice. What cuDNN
// said goes to `refused`, for the error should no candidate be usable.
template <class Calls>
std::optional<size_t> workspace_of(cudnnHandle_t h, const Descriptors& p, typename Calls::Algo algo,
                                   std::string& refused) {
  size_t bytes = 0;
  const cudnnStatus_t status = Calls::workspace(h, p, algo, &bytes);
  if (status == CUDNN_STATUS_SUCCESS) return bytes;
  refused = std::string("; cuDNN could not size algorithm ") + std::to_string(static_cast<int>(algo)) +
            "'s workspace: " + cudnnGetErrorString(status);
  return std::nullopt;
}

// What cuDNN said of the candidates: ranked by its heuristics, or sorted by measured time.
template <class Calls>
struct Candidates {
  typename Calls::Perf results[kCandidates];
  int count = 0;
};

// A result may name another math mode than the dtype's (cuDNN times an algorithm without tensor
// cores in default math, say). It is run with the math it names where the dtype's math includes
// that one: plain FMA within TF32-allowed math (F32); default or FMA math within tensor-op math
// (BF16 and F16). Never one that converts its operands to a narrower type.
bool math_allowed(cudnnMathType_t named, cudnnMathType_t dtype_math) {
  if (named == dtype_math) return true;
  if (dtype_math == CUDNN_DEFAULT_MATH) return named == CUDNN_FMA_MATH;
  if (dtype_math == CUDNN_TENSOR_OP_MATH) return named == CUDNN_DEFAULT_MATH || named == CUDNN_FMA_MATH;
  return false;
}

// The descriptor's math for a dtype: BF16 and F16 on tensor cores; F32 with TF32 allowed or in
// full F32.
cudnnMathType_t math_for(DType dtype, bool allow_tf32) {
  if (dtype == DType::BF16 || dtype == DType::F16) return CUDNN_TENSOR_OP_MATH;
  return allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// Which candidates first_usable takes: measured ones only where they were timed with an allowed
// math mode; ranked ones whatever math cuDNN names (one it does not allow runs with the dtype's).
enum class MathRule { TimedWithAllowedMath, Any };

// The first candidate that runs, fits in `limit` (its workspace asked of cuDNN with the math it
// is to run with), and is deterministic where the options ask it. It runs with the math cuDNN
// timed or ranked it with where the dtype's math allows that one, as PyTorch runs cuDNN's choice.
// Leaves the descriptor's math set to some candidate's: every call sets its own (use_math).
template <class Calls>
std::optional<Chosen<typename Calls::Algo>> first_usable(cudnnHandle_t h, const Descriptors& p,
                                                         const Candidates<Calls>& c,
                                                         const ConvolutionOptions& options, MathRule rule,
                                                         std::string& refused) {
  const size_t limit = options.workspace_limit_bytes;
  for (int i = 0; i < c.count; ++i) {
    const auto& result = c.results[i];
    if (result.status != CUDNN_STATUS_SUCCESS) continue;
    if (options.deterministic && result.determinism != CUDNN_DETERMINISTIC) continue;
    const bool allowed = math_allowed(result.mathType, p.math);
    if (rule == MathRule::TimedWithAllowedMath && !allowed) continue;
    const cudnnMathType_t math = allowed ? result.mathType : p.math;
    use_math(p, math);
    const std::optional<size_t> bytes = workspace_of<Calls>(h, p, result.algo, refused);
    if (bytes && *bytes <= limit) return Chosen<typename Calls::Algo>{result.algo, math, *bytes};
  }
  return std::nullopt;
}

// The workspace the search gets: the largest any ranked candidate needs within the limit, so
// that every algorithm allowed to run later can be timed.
template <class Calls>
size_t search_workspace(cudnnHandle_t h, const Descriptors& p, const Candidates<Calls>& ranked, size_t limit,
                        std::string& refused) {
  size_t most = 0;
  for (int i = 0; i < ranked.count; ++i) {
    if (ranked.results[i].status != CUDNN_STATUS_SUCCESS) continue;
    const std::optional<size_t> bytes = workspace_of<Calls>(h, p, ranked.results[i].algo, refused);
    if (bytes && *bytes <= limit) most = std::max(most, *bytes);
  }
  return most;
}

// Called with the reason when measuring gave nothing usable and the heuristic choice stands.
using FallbackNote = std::function<void(const std::string& why)>;

template <class Calls>
Chosen<typename Calls::Algo> choose(cudnnHandle_t h, const Descriptors& p, const ConvDims& d,
                                    const ConvolutionOptions& options, Workspace& workspace, const Operands& operands,
                                    const FallbackNote& note) {
  use_math(p, p.math);  // ranked and timed as the dtype allows: another direction's choice may be set
  Candidates<Calls> ranked;
  Calls::rank(h, p, ranked.results, &ranked.count);
  const size_t limit = options.workspace_limit_bytes;
  std::string refused;  // the last workspace cuDNN could not size
  if (options.algorithms == ConvAlgorithmChoice::Measured) {
    try {
      const size_t bytes = search_workspace(h, p, ranked, limit, refused);
      void* scratch = workspace.reserve(bytes);
      Candidates<Calls> timed;
      Calls::measure(h, p, operands, timed.results, &timed.count, scratch, bytes);
      if (auto fastest = first_usable(h, p, timed, options, MathRule::TimedWithAllowedMath, refused))
        return *fastest;
      note(std::string("no measured ") + (options.deterministic ? "deterministic " : "") +
           "algorithm ran within the workspace limit with the convolution's math");
    } catch (const Error& error) {
      note(error.what());
    }
  }
  if (auto best = first_usable(h, p, ranked, options, MathRule::Any, refused)) return *best;
  throw Error(std::string("cuDNN offers no ") + (options.deterministic ? "deterministic " : "") + Calls::kName +
              " convolution algorithm for " + describe(d) + " within the workspace limit of " +
              std::to_string(limit) + " bytes" + refused);
}

// ---- batches past cuDNN's element count ----

int64_t input_image_elements(const ConvDims& d) { return int64_t{d.c} * d.h * d.w; }
int64_t output_image_elements(const ConvDims& d) { return int64_t{d.k} * d.p() * d.q(); }

// cuDNN's legacy API counts a tensor's elements in 32-bit ints, so a batch whose input or output
// holds more than `max_elements` runs as calls over slices of it, each within the limit (as
// PyTorch's cuDNN path splits one): as few slices as the limit allows, of equal size but the
// last. The images of one call: the whole batch where it fits. One image past the limit cannot
// be split and is an error.
int64_t images_per_call(const ConvDims& d, int64_t max_elements) {
  const int64_t per_image = std::max(input_image_elements(d), output_image_elements(d));
  if (d.n * per_image <= max_elements) return std::max(d.n, 1);
  if (per_image > max_elements)
    throw Error("convolution: one image of " + describe(d) + " has " + std::to_string(per_image) +
                " elements in its input or output, more than the " + std::to_string(max_elements) +
                " a cuDNN call takes");
  const int64_t most = max_elements / per_image;
  const int64_t count = (d.n + most - 1) / most;
  return (d.n + count - 1) / count;
}

// The call over images [first, first + images) of the batch, or fewer where the batch ends.
ConvDims slice_of(const ConvDims& d, int64_t first, int64_t images) {
  ConvDims slice = d;
  slice.n = static_cast<int>(std::min(images, d.n - first));
  return slice;
}

// Image `first` of a packed batch of images of `image_elements` each: N is outermost in NCHW and
// NHWC alike.
template <class Pointer>
Pointer image_at(Pointer batch, int64_t first, int64_t image_elements, DType dtype) {
  using Byte = std::conditional_t<std::is_const_v<std::remove_pointer_t<Pointer>>, const char, char>;
  return static_cast<Byte*>(batch) + first * image_elements * static_cast<int64_t>(dtype_size(dtype));
}

}  // namespace

struct CudnnConvolutions::Plan {
  Descriptors desc;
  std::optional<Chosen<ForwardCalls::Algo>> forward;
  std::optional<Chosen<BackwardDataCalls::Algo>> backward_data;
  std::optional<Chosen<BackwardFilterCalls::Algo>> backward_filter;
};

CudnnConvolutions::CudnnConvolutions(cudnnHandle_t handle, cudaStream_t stream, DeviceMemoryPool& pool,
                                     Workspace& workspace, const ConvolutionOptions& options)
    : handle_(handle),
      stream_(stream),
      workspace_(workspace),
      options_(options),
      slice_sums_(pool, "the F32 sums of a sliced backward-filter") {}

CudnnConvolutions::~CudnnConvolutions() = default;

CudnnConvolutions::Plan& CudnnConvolutions::plan(const ConvDims& d) {
  auto found = plans_.find(d.key());
  if (found != plans_.end()) return *found->second;
  const cudnnDataType_t type = cudnn_data_type(d.dtype);
  const cudnnMathType_t math = math_for(d.dtype, options_.allow_tf32);
  Descriptors desc{TensorDescriptor::packed(d.format, d.n, d.c, d.h, d.w, type),
                   TensorDescriptor::packed(d.format, d.n, d.k, d.p(), d.q(), type),
                   FilterDescriptor::packed(d.format, d.k, d.c, d.r, d.s, type),
                   ConvolutionDescriptor::create(d.geometry, math), math};
  auto made = std::make_unique<Plan>(Plan{std::move(desc), std::nullopt, std::nullopt, std::nullopt});
  return *plans_.emplace(d.key(), std::move(made)).first->second;
}

// Measuring that gives nothing usable is not an error (the heuristic choice runs), but it is
// worth one line, once per backend: the run may then be slower than PyTorch's with
// cudnn.benchmark.
std::function<void(const std::string&)> CudnnConvolutions::note_for(const char* direction, const ConvDims& d) {
  return [this, direction, d](const std::string& why) {
    if (noted_fallback_) return;
    noted_fallback_ = true;
    std::cerr << "hookrt: cuDNN's heuristic " << direction << " algorithm is used for " << describe(d)
              << " (and any other convolution where measuring fails): " << why << "\n";
  };
}

void CudnnConvolutions::forward(const void* x, const void* w, void* y, const ConvDims& d) {
  const int64_t per_call = images_per_call(d, options_.max_call_elements);
  for (int64_t first = 0; first < d.n; first += per_call)
    forward_call(image_at(x, first, input_image_elements(d), d.dtype), w,
                 image_at(y, first, output_image_elements(d), d.dtype), slice_of(d, first, per_call));
}

void CudnnConvolutions::backward_data(const void* dy, const void* w, void* dx, const ConvDims& d) {
  const int64_t per_call = images_per_call(d, options_.max_call_elements);
  for (int64_t first = 0; first < d.n; first += per_call)
    backward_data_call(image_at(dy, first, output_image_elements(d), d.dtype), w,
                       image_at(dx, first, input_image_elements(d), d.dtype), slice_of(d, first, per_call));
}

// An empty batch gives a zero dw, written here: cuDNN is not called on an empty tensor, as
// PyTorch does not call it. Over slices of the batch, dw is the sum of each slice's: F32 adds them
// in dw itself (cuDNN's beta of 1); BF16 and F16 add them in F32 and round once, as PyTorch's
// accumulator does, rather than rounding each partial sum to 8 or 11 bits.
void CudnnConvolutions::backward_filter(const void* x, const void* dy, void* dw, const ConvDims& d) {
  const int64_t n = int64_t{d.k} * d.c * d.r * d.s;
  if (d.n == 0) {
    HOOKRT_CUDA_CHECK(cudaMemsetAsync(dw, 0, static_cast<size_t>(n) * dtype_size(d.dtype), stream_));
    return;
  }
  const int64_t per_call = images_per_call(d, options_.max_call_elements);
  if (per_call >= d.n) return backward_filter_call(x, dy, dw, d, 0.0f);
  const auto x_at = [&](int64_t first) { return image_at(x, first, input_image_elements(d), d.dtype); };
  const auto dy_at = [&](int64_t first) { return image_at(dy, first, output_image_elements(d), d.dtype); };
  // Every slice shape's algorithm first: measuring one overwrites dw, which holds the sum so far.
  for (int64_t first = 0; first < d.n; first += per_call)
    backward_filter_algorithm(x_at(first), dy_at(first), dw, slice_of(d, first, per_call));
  if (d.dtype == DType::F32) {
    for (int64_t first = 0; first < d.n; first += per_call)
      backward_filter_call(x_at(first), dy_at(first), dw, slice_of(d, first, per_call), first == 0 ? 0.0f : 1.0f);
    return;
  }
  auto* sums = static_cast<float*>(slice_sums_.reserve(2 * static_cast<size_t>(n) * sizeof(float)));
  float* slice_dw = sums + n;
  for (int64_t first = 0; first < d.n; first += per_call) {
    backward_filter_call(x_at(first), dy_at(first), dw, slice_of(d, first, per_call), 0.0f);
    convert(dw, d.dtype, first == 0 ? sums : slice_dw, DType::F32, n, stream_);
    if (first > 0) accumulate(sums, slice_dw, DType::F32, n, stream_);
  }
  convert(sums, DType::F32, dw, d.dtype, n, stream_);
}

void CudnnConvolutions::forward_call(const void* x, const void* w, void* y, const ConvDims& d) {
  Plan& p = plan(d);
  if (!p.forward) p.forward = choose<ForwardCalls>(handle_, p.desc, d, options_, workspace_, Operands{x, w, y}, note_for("forward", d));
  void* scratch = workspace_.reserve(p.forward->bytes);
  use_math(p.desc, p.forward->math);
  const float one = 1.0f, zero = 0.0f;
  HOOKRT_CUDA_CHECK(cudnnConvolutionForward(handle_, &one, p.desc.x.get(), x, p.desc.w.get(), w, p.desc.conv.get(),
                                            p.forward->algo, scratch, p.forward->bytes, &zero, p.desc.y.get(), y));
}

void CudnnConvolutions::backward_data_call(const void* dy, const void* w, void* dx, const ConvDims& d) {
  Plan& p = plan(d);
  if (!p.backward_data) p.backward_data =
        choose<BackwardDataCalls>(handle_, p.desc, d, options_, workspace_, Operands{w, dy, dx}, note_for("backward-data", d));
  void* scratch = workspace_.reserve(p.backward_data->bytes);
  use_math(p.desc, p.backward_data->math);
  const float one = 1.0f, zero = 0.0f;
  HOOKRT_CUDA_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.desc.w.get(), w, p.desc.y.get(), dy,
                                                 p.desc.conv.get(), p.backward_data->algo, scratch,
                                                 p.backward_data->bytes, &zero, p.desc.x.get(), dx));
}

CudnnConvolutions::Plan& CudnnConvolutions::backward_filter_algorithm(const void* x, const void* dy, void* dw,
                                                                      const ConvDims& d) {
  Plan& p = plan(d);
  if (!p.backward_filter) p.backward_filter = choose<BackwardFilterCalls>(handle_, p.desc, d, options_, workspace_, Operands{x, dy, dw},
                                                    note_for("backward-filter", d));
  return p;
}

// dw = x ⋆ dy + beta · dw.
void CudnnConvolutions::backward_filter_call(const void* x, const void* dy, void* dw, const ConvDims& d, float beta) {
  Plan& p = backward_filter_algorithm(x, dy, dw, d);
  void* scratch = workspace_.reserve(p.backward_filter->bytes);
  use_math(p.desc, p.backward_filter->math);
  const float one = 1.0f;
  HOOKRT_CUDA_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.desc.x.get(), x, p.desc.y.get(), dy,
                                                   p.desc.conv.get(), p.backward_filter->algo, scratch,
                                                   p.backward_filter->bytes, &beta, p.desc.w.get(), dw));
}

}  // namespace hookrt::cuda
