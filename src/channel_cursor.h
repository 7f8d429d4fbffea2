#pragma once
// ChannelCursor — the channel of consecutive elements of a tensor whose channels come in runs of
// `inner` elements in turn (NCHW: runs of H*W; channels-last: runs of one), found once by division
// and then stepped element by element: a batch norm's pass computed in a probe pass needs each
// element's coefficients, and dividing per element would cost it more than its reads. Made for the
// CUDA kernels; the CPU tests hold it to (i / inner) % channels.
#include <cstdint>

#include "fast_divmod.h"
#include "host_device.h"

namespace hookrt {

struct ChannelCursor {
  uint32_t channel;
  uint32_t place;  // in the run of `inner` elements of that channel

  // Element i's; i must fit FastDivmod (i <= kMaxDividend).
  HOOKRT_HOST_DEVICE_INLINE ChannelCursor(const FastDivmod& inner, const FastDivmod& channels, int64_t i) {
    const uint32_t run = inner.divide(static_cast<uint32_t>(i));
    channel = channels.remainder(run);
    place = static_cast<uint32_t>(i) - run * inner.divisor();
  }
  // The next element's.
  HOOKRT_HOST_DEVICE_INLINE void next(const FastDivmod& inner, const FastDivmod& channels) {
    if (++place < inner.divisor()) return;
    place = 0;
    if (++channel == channels.divisor()) channel = 0;
  }
};

}  // namespace hookrt
