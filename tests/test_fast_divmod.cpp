// FastDivmod against the `/` and `%` operators: every dividend up to 2^20 for small divisors,
// the dividends around each multiple and at the top of the range for divisors of every size
// (powers of two and their neighbours, the shapes a ResNet's channels and planes take), and
// seeded random pairs.
#include "fast_divmod.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "random.h"

namespace hookrt {
namespace {

void expect_exact(const FastDivmod& d, uint32_t n) {
  ASSERT_EQ(d.divide(n), n / d.divisor()) << n << " / " << d.divisor();
  ASSERT_EQ(d.remainder(n), n % d.divisor()) << n << " % " << d.divisor();
}

std::vector<uint32_t> divisors_of_every_size() {
  std::vector<uint32_t> out;
  for (uint32_t d = 1; d <= 300; ++d) out.push_back(d);
  for (uint64_t p = 256; p <= FastDivmod::kMaxDividend; p *= 2)
    for (int64_t delta : {-3, -1, 0, 1, 3}) out.push_back(static_cast<uint32_t>(p + delta));
  for (uint32_t d : {49u, 196u, 784u, 3136u, 12544u, 50176u, 1000u, 4096u * 7u, 0x7fffffffu}) out.push_back(d);
  return out;
}

TEST(FastDivmod, EveryDividendUpTo2To20ForSmallDivisors) {
  for (uint32_t divisor : {1u, 2u, 3u, 5u, 7u, 49u, 64u, 196u, 255u}) {
    const FastDivmod d(divisor);
    for (uint32_t n = 0; n <= (1u << 20); ++n) expect_exact(d, n);
  }
}

TEST(FastDivmod, AroundMultiplesAndAtTheTopOfTheRange) {
  for (uint32_t divisor : divisors_of_every_size()) {
    const FastDivmod d(divisor);
    for (uint32_t n : {0u, 1u, FastDivmod::kMaxDividend, FastDivmod::kMaxDividend - 1}) expect_exact(d, n);
    for (uint64_t q : {uint64_t{1}, uint64_t{2}, uint64_t{1000}, uint64_t{FastDivmod::kMaxDividend / divisor}}) {
      const uint64_t multiple = q * divisor;
      for (int64_t delta = -2; delta <= 2; ++delta) {
        const int64_t n = static_cast<int64_t>(multiple) + delta;
        if (n >= 0 && n <= FastDivmod::kMaxDividend) expect_exact(d, static_cast<uint32_t>(n));
      }
    }
  }
}

TEST(FastDivmod, SeededRandomPairs) {
  Pcg32 rng(2026);
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t divisor = 1 + rng.next_u32() % (i % 2 ? 1000u : FastDivmod::kMaxDividend);
    const uint32_t n = rng.next_u32() & FastDivmod::kMaxDividend;
    expect_exact(FastDivmod(divisor), n);
  }
}

TEST(FastDivmod, ZeroIsRefusedByName) {
  try {
    FastDivmod d(0);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("division by zero"), std::string::npos);
  }
}

}  // namespace
}  // namespace hookrt
