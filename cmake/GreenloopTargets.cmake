# Helpers shared by every CMakeLists.txt in the tree.
include(GoogleTest)

# Warnings for project code come from this one INTERFACE target; generated code does not link it.
add_library(greenloop_warnings INTERFACE)
add_library(greenloop::warnings ALIAS greenloop_warnings)
target_compile_options(greenloop_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual
  -Wimplicit-fallthrough -Wformat=2
  # GCC 12 warns on designated initializers that leave members at their defaults, which is the
  # point of option structs like `{.min = 0, .max = 65535}`.
  -Wno-missing-field-initializers
  $<$<BOOL:${GREENLOOP_WERROR}>:-Werror>)

# greenloop_test(NAME <name> SOURCES ... [LIBS ...] [LABELS unit|pg|e2e ...] [PROPERTIES ...])
#
# One gtest executable per library; each TEST() becomes its own CTest test carrying LABELS, so
# `ctest -L unit` stays fast and `ctest -L pg` runs only what needs PostgreSQL.
function(greenloop_test)
  cmake_parse_arguments(arg "" "NAME" "SOURCES;LIBS;LABELS;PROPERTIES" ${ARGN})
  add_executable(${arg_NAME} ${arg_SOURCES})
  target_link_libraries(${arg_NAME} PRIVATE ${arg_LIBS} GTest::gtest GTest::gmock
                        GTest::gtest_main greenloop::warnings)
  target_compile_features(${arg_NAME} PRIVATE cxx_std_20)
  set(labels ${arg_LABELS})
  if(NOT labels)
    set(labels unit)
  endif()
  # In a sanitizer build (GREENLOOP_SANITIZE) the one label is the sanitizer's, so `ctest -L asan`
  # runs every gtest executable that build holds; one label, since gtest_discover_tests flattens
  # a list value of PROPERTIES.
  if(GREENLOOP_SANITIZE)
    set(labels ${GREENLOOP_SANITIZE})
  endif()
  gtest_discover_tests(${arg_NAME}
    DISCOVERY_TIMEOUT 30
    PROPERTIES LABELS "${labels}" ${arg_PROPERTIES})
endfunction()
