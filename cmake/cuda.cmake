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

# CUPTI, optional: with it `hookrt bench` counts a step's kernels, memcpys and memsets
# (cuda/launch_counter.cpp); without it the bench says they were not counted. A root named by
# HOOKRT_CUPTI_ROOT or $CUPTI_ROOT wins over the CUDA toolkit's copy (include/ and lib64/, or
# extras/CUPTI). In a root, any libcupti.so* will do: Python's nvidia-cuda-cupti wheel ships only a
# versioned libcupti.so.N.
set(HOOKRT_CUPTI_ROOT "" CACHE PATH "Where CUPTI is (include/cupti.h, lib/ or lib64/libcupti.so*); optional")
set(HOOKRT_HAVE_CUPTI OFF)
if(HOOKRT_HAVE_CUDA)
  set(cupti_roots ${HOOKRT_CUPTI_ROOT} $ENV{CUPTI_ROOT})
  find_path(HOOKRT_CUPTI_INCLUDE_DIR cupti.h
    HINTS ${cupti_roots} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}/extras/CUPTI
    PATH_SUFFIXES include)
  if(NOT HOOKRT_CUPTI_LIBRARY)
    foreach(root ${cupti_roots})
      file(GLOB in_root ${root}/lib64/libcupti.so* ${root}/lib/libcupti.so*)
      if(in_root)
        list(SORT in_root)  # libcupti.so, when there, sorts before libcupti.so.N
        list(GET in_root 0 first)
        set(HOOKRT_CUPTI_LIBRARY ${first} CACHE FILEPATH "libcupti, for hookrt's launch counts")
        break()
      endif()
    endforeach()
  endif()
  find_library(HOOKRT_CUPTI_LIBRARY cupti
    HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/extras/CUPTI
    PATH_SUFFIXES lib64 lib)
  if(HOOKRT_CUPTI_INCLUDE_DIR AND HOOKRT_CUPTI_LIBRARY)
    set(HOOKRT_HAVE_CUPTI ON)
  endif()
  message(STATUS "hookrt CUPTI (launch counts): ${HOOKRT_HAVE_CUPTI} (${HOOKRT_CUPTI_INCLUDE_DIR}, ${HOOKRT_CUPTI_LIBRARY})")
endif()
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
  # Only the launch counter includes CUPTI's headers; the rest of the backend does not need them.
  set(launch_counter ${PROJECT_SOURCE_DIR}/cuda/launch_counter.cpp)
  if(HOOKRT_HAVE_CUPTI)
    set_source_files_properties(${launch_counter} PROPERTIES COMPILE_DEFINITIONS HOOKRT_WITH_CUPTI=1
                                INCLUDE_DIRECTORIES ${HOOKRT_CUPTI_INCLUDE_DIR})
    target_link_libraries(${target} PRIVATE ${HOOKRT_CUPTI_LIBRARY})
  else()
    set_source_files_properties(${launch_counter} PROPERTIES COMPILE_DEFINITIONS HOOKRT_WITH_CUPTI=0)
  endif()
endfunction()
