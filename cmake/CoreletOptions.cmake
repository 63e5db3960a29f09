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
