# vt_add_component(NAME DEPS ... [SOURCES ...]): a static library vt_NAME from
# the .c files of the calling folder (globbed, so adding a file needs no CMake
# edit; re-run cmake or build to pick it up). Includes are rooted at the
# project: #include "common/error.h". A component with no sources yet is an
# INTERFACE library that only forwards its dependencies.
function(vt_add_component name)
  cmake_parse_arguments(A "" "" "DEPS;SOURCES" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  list(APPEND srcs ${A_SOURCES})
  if(srcs)
    add_library(vt_${name} STATIC ${srcs})
    set(scope PUBLIC)
  else()
    add_library(vt_${name} INTERFACE)
    set(scope INTERFACE)
  endif()
  target_include_directories(vt_${name} ${scope} ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/gen)
  target_link_libraries(vt_${name} ${scope} ${A_DEPS})
endfunction()
