#pragma once
// Which BLAS the CPU ops call, for `hookrt info`.
#include <string>

namespace hookrt::cpu {

// The library, its version and the kernels it chose for this CPU, e.g. "OpenBLAS 0.3.21 (cblas),
// Haswell kernels". Where OpenBLAS does not know the CPU (a newer model, or a virtual machine that
// hides it) it falls back to its oldest x86-64 kernels, "Prescott" (a CPU ResNet step took 1.3x as
// long as with its Haswell ones on an AVX-512 Xeon): the description then says how to pick others.
std::string blas_description();

}  // namespace hookrt::cpu
