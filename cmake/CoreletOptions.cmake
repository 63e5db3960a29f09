# corelet_apply_options(target): the one place that sets warnings, hardening and
# sanitizer flags, applied to every target the project builds.
function(corelet_apply_options target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                         -Wno-missing-field-initializers)
  # Large frames must touch every page so they cannot jump over a stack's guard.
  target_compile_options(${target} PRIVATE -fstack-clash-protection)
  # Bind every symbol at load: lazy binding saves ~11 KB of AVX-512 state on the
  # caller's stack on the first call through the PLT, which overflows small stacks.
  target_link_options(${target} PRIVATE -Wl,-z,now)
  if(CORELET_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${CORELET_SANITIZE}
                           -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${CORELET_SANITIZE})
  endif()
endfunction()

# corelet_check_sanitize(): refuses, at configure time, a CORELET_SANITIZE that
# the build cannot honour, instead of letting the compiler fail on every file or
# (worse) quietly building something else. Allowed: empty, address, undefined,
# thread, and address with undefined (in either order, comma-separated).
#
# No Boost define goes with these: Debian's Boost 1.74 builds Boost.Context on
# its fcontext (assembly) back end, where BOOST_USE_ASAN changes nothing (it
# only annotates the ucontext back end) and BOOST_USE_TSAN does not exist yet
# (Boost 1.81); corelet/core/fiber.hpp annotates every switch itself.
function(corelet_check_sanitize)
  set(value "${CORELET_SANITIZE}")
  if(value STREQUAL "")
    return()
  endif()
  string(REPLACE "," ";" items "${value}")
  set(seen)
  foreach(item IN LISTS items)
    if(NOT item MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "corelet: CORELET_SANITIZE=\"${value}\": unknown sanitizer \"${item}\". "
              "Allowed: empty, address, undefined, thread, or address,undefined.")
    endif()
    if(item IN_LIST seen)
      message(FATAL_ERROR "corelet: CORELET_SANITIZE=\"${value}\": \"${item}\" is given twice.")
    endif()
    list(APPEND seen ${item})
  endforeach()
  if("thread" IN_LIST seen AND "address" IN_LIST seen)
    message(FATAL_ERROR "corelet: CORELET_SANITIZE=\"${value}\": thread and address cannot be "
            "combined: ThreadSanitizer and AddressSanitizer each own the program's shadow memory "
            "and allocator, and GCC refuses -fsanitize=address,thread. Build them in separate "
            "build directories (scripts/test does).")
  endif()
  if("thread" IN_LIST seen AND "undefined" IN_LIST seen)
    message(FATAL_ERROR "corelet: CORELET_SANITIZE=\"${value}\": thread is supported alone; "
            "undefined goes with address (CORELET_SANITIZE=address,undefined).")
  endif()
endfunction()
