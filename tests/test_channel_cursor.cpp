// ChannelCursor against (i / inner) % channels: from every start in the first runs and around the
// top of FastDivmod's range, stepped far enough to wrap past the last channel, for the layouts a
// ResNet's batch norms take (NCHW planes of 112² down to 7², odd and one-element planes; channels-
// last, runs of one) and channel counts of 1 to 512.
#include "channel_cursor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace hookrt {
namespace {

void expect_steps_match_division(uint32_t inner, uint32_t channels, int64_t start, int steps) {
  const FastDivmod inner_div(inner), channels_div(channels);
  ChannelCursor at(inner_div, channels_div, start);
  for (int k = 0; k < steps; ++k) {
    const int64_t i = start + k;
    if (i > FastDivmod::kMaxDividend) return;
    const uint32_t want_channel = static_cast<uint32_t>((i / inner) % channels);
    const uint32_t want_place = static_cast<uint32_t>(i % inner);
    ASSERT_EQ(at.channel, want_channel) << "inner " << inner << ", channels " << channels << ", element " << i
                                        << " (start " << start << ")";
    ASSERT_EQ(at.place, want_place) << "inner " << inner << ", channels " << channels << ", element " << i;
    at.next(inner_div, channels_div);
  }
}

TEST(ChannelCursor, StepsAsDivisionWouldFindEachElementsChannel) {
  const std::vector<uint32_t> inners = {1, 2, 3, 4, 7, 49, 196, 784, 3136, 12544};
  const std::vector<uint32_t> channel_counts = {1, 2, 3, 5, 64, 128, 512};
  for (const uint32_t inner : inners)
    for (const uint32_t channels : channel_counts) {
      const int steps = static_cast<int>(std::min<int64_t>(int64_t{inner} * channels + 2 * inner + 9, 20000));
      for (int64_t start = 0; start < 11; ++start) expect_steps_match_division(inner, channels, start, steps);
      for (const int64_t start : {int64_t{inner} - 1, int64_t{inner} * channels - 1, int64_t{inner} * channels * 3 + 5})
        expect_steps_match_division(inner, channels, start, steps);
      expect_steps_match_division(inner, channels, FastDivmod::kMaxDividend - 40, 41);
    }
}

}  // namespace
}  // namespace hookrt
