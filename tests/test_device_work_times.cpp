// Device time by kind of work, as `hookrt bench` reports it: kernels grouped by their plain
// qualified names whatever their template arguments, names that do not demangle kept, sums by
// name ordered the same way on every run, and the changes between two runs largest first.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "device_work_times.h"

namespace hookrt {
namespace {

TEST(KernelFamily, IsTheQualifiedNameWithoutAnonymousNamespaceTemplateArgumentsOrParameters) {
  // hookrt's common probe pass, as CUPTI names it (an anonymous namespace in a .cu file).
  EXPECT_EQ(kernel_family("_ZN6hookrt4cuda6detail53_GLOBAL__N__6a2bc8da_20_probe_pass_kernel_cu_2e85866b18common_"
                          "pass_kernelENS1_8PassArgsEPNS1_7FlatAccE"),
            "hookrt::cuda::detail::common_pass_kernel");
  // A template: void fill_kernel<float>(long, float*, float); the return type goes too.
  EXPECT_EQ(kernel_family("_ZN6hookrt4cuda6detail12_GLOBAL__N_111fill_kernelIfEEvlPT_S4_"),
            "hookrt::cuda::detail::fill_kernel");
  // void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, 512, true>(float const*)
  EXPECT_EQ(kernel_family("_ZN5cudnn25bn_fw_tr_1C11_kernel_NCHWIffLi512ELb1EEEvPKf"),
            "cudnn::bn_fw_tr_1C11_kernel_NCHW");
}

// cuDNN's and CUTLASS's templated kernels are all "kernel": their first template argument says
// what each runs (a convolution's direction, a GEMM's tiles), and stays, without its own arguments.
TEST(KernelFamily, AGenericLibraryKernelKeepsItsFirstTemplateArgument) {
  // void xmma_cudnn::gemm::kernel<xmma_cudnn::implicit_gemm::wgrad_indexed::Kernel_traits<int, 4>, false>(int)
  EXPECT_EQ(kernel_family("_ZN10xmma_cudnn4gemm6kernelINS_13implicit_gemm13wgrad_indexed13Kernel_traitsIiLi4EEELb0EEEvi"),
            "xmma_cudnn::gemm::kernel<xmma_cudnn::implicit_gemm::wgrad_indexed::Kernel_traits>");
  // void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4>(int)
  EXPECT_EQ(kernel_family("_ZN7cutlass7Kernel2I52cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4EEvi"),
            "cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4>");
  // A kernel of hookrt's with a template argument keeps only its name (see the test above).
  EXPECT_EQ(kernel_family("_ZN6hookrt4cuda6detail12_GLOBAL__N_111fill_kernelIfEEvlPT_S4_"),
            "hookrt::cuda::detail::fill_kernel");
}

TEST(KernelFamily, KeepsNamesThatAreNotMangled) {
  const std::string cudnn_conv = "sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nchwkcrs_nchw_tilesize128x128x32";
  EXPECT_EQ(kernel_family(cudnn_conv), cudnn_conv);
  EXPECT_EQ(kernel_family("_Z_not_a_symbol"), "_Z_not_a_symbol");
  EXPECT_EQ(kernel_family(""), "");
}

TEST(DeviceWorkTimes, SumsByNameMostTimeFirstTiesInNameOrder) {
  DeviceWorkTimes times;
  times.add("b", 1.0);
  times.add("a", 0.5);
  times.add("c", 3.0);
  times.add("a", 0.5);
  DeviceWorkTimes more;
  more.add("d", 2.0, 4);
  times.add(more);
  const std::vector<DeviceWorkTime> sorted = times.by_time();
  ASSERT_EQ(sorted.size(), 4u);
  EXPECT_EQ(sorted[0].name, "c");
  EXPECT_EQ(sorted[1].name, "d");
  EXPECT_EQ(sorted[1].items, 4);
  EXPECT_EQ(sorted[2].name, "a");  // a and b both 1.0 ms: name order
  EXPECT_EQ(sorted[2].items, 2);
  EXPECT_DOUBLE_EQ(sorted[2].ms, 1.0);
  EXPECT_EQ(sorted[3].name, "b");
  EXPECT_DOUBLE_EQ(total_ms(sorted), 7.0);
  EXPECT_TRUE(DeviceWorkTimes{}.empty());
  EXPECT_FALSE(times.empty());
}

std::vector<DeviceWorkTime> times_of(const std::vector<std::pair<std::string, double>>& entries) {
  DeviceWorkTimes times;
  for (const auto& [name, ms] : entries) times.add(name, ms);
  return times.by_time();
}

TEST(DeviceWorkTimes, LargestChangesEitherWayGrowthFirstSavingsLast) {
  const auto before = times_of({{"conv", 10.0}, {"bn", 4.0}, {"relu", 2.0}, {"add", 1.0}});
  const auto after = times_of({{"conv", 10.01}, {"bn", 4.5}, {"relu", 1.0}, {"add", 1.0}, {"probe", 3.0}});
  const std::vector<DeviceWorkChange> changes = largest_changes(before, after, 3);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].name, "probe");  // only in the second run: +3
  EXPECT_DOUBLE_EQ(changes[0].before.ms, 0.0);
  EXPECT_EQ(changes[0].before.items, 0);
  EXPECT_EQ(changes[0].after.items, 1);
  EXPECT_EQ(changes[1].name, "bn");  // +0.5
  EXPECT_EQ(changes[2].name, "relu");  // -1: a saving, larger than conv's +0.01, comes last
  EXPECT_DOUBLE_EQ(changes[2].delta_ms(), -1.0);
  EXPECT_EQ(largest_changes(before, after, 10).size(), 5u) << "every name once, however many asked for";
  EXPECT_TRUE(largest_changes({}, {}, 3).empty());
}

}  // namespace
}  // namespace hookrt
