# Decides whether the CUDA backend is built and, if so, adds cuda/ to the library.
# AUTO builds it when nvcc and cuDNN are both found; ON requires them; OFF skips them.

set(HOOKRT_HAVE_CUDA OFF)
if(NOT HOOKRT_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  find_package(CUDAToolkit QUIET)
  find_path(HOOKRT_CUDNN_INCLUDE_DIR cudnn.h
    HINTS ENV CUDNN_ROOT ${CUDAToolkit_INCLUDE_DIRS}
    PATH_SUFFIXES include)
  find_library(HOOKRT_CUDNN_LIBRARY cudnn
    HINTS ENV CUDNN_ROOT ${CUDAToolkit_LIBRARY_DIR}
    PATH_SUFFIXES lib lib64)
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND HOOKRT_CUDNN_INCLUDE_DIR AND HOOKRT_CUDNN_LIBRARY)
    set(HOOKRT_HAVE_CUDA ON)
  elseif(HOOKRT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "HOOKRT_CUDA=ON but nvcc (${CMAKE_CUDA_COMPILER}), the CUDA toolkit or cuDNN "
                        "(${HOOKRT_CUDNN_INCLUDE_DIR}, ${HOOKRT_CUDNN_LIBRARY}) was not found")
  endif()
endif()
message(STATUS "hookrt CUDA backend: ${HOOKRT_HAVE_CUDA}")
if(HOOKRT_HAVE_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "80;90")
  endif()
  enable_language(CUDA)  # file scope: CMake does not allow it inside a function
endif()

function(hookrt_add_cuda_backend target)
  if(NOT HOOKRT_HAVE_CUDA)
    target_compile_definitions(${target} PUBLIC HOOKRT_WITH_CUDA=0)
    return()
  endif()
  file(GLOB cuda_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/cuda/*.cu ${PROJECT_SOURCE_DIR}/cuda/*.cpp)
  target_sources(${target} PRIVATE ${cuda_sources})
  # C++17 for device code: CMake 3.25 (Debian 12) does not know nvcc's C++20 flag, and the .cu
  # files include no C++20 header; host-side backend code is .cpp and compiles as C++20.
  set_target_properties(${target} PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                                             CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
  target_include_directories(${target} PRIVATE ${HOOKRT_CUDNN_INCLUDE_DIR})
  target_link_libraries(${target} PUBLIC CUDA::cudart CUDA::cublas ${HOOKRT_CUDNN_LIBRARY})
  target_compile_definitions(${target} PUBLIC HOOKRT_WITH_CUDA=1)
endfunction()
