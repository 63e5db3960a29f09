# Installs corelet from a fresh configure of SOURCE_DIR into a prefix, then
# configures, builds and runs tests/consumer against it with find_package.
set(prefix ${BUILD_DIR}/prefix)
file(REMOVE_RECURSE ${BUILD_DIR})
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer check failed (${rc}): ${ARGN}")
  endif()
endfunction()
step(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BUILD_DIR}/corelet -G ${GENERATOR}
     -DCMAKE_BUILD_TYPE=Release -DCORELET_BUILD_TESTS=OFF -DCORELET_BUILD_PERF=OFF
     -DCORELET_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX=${prefix})
step(${CMAKE_COMMAND} --build ${BUILD_DIR}/corelet)
step(${CMAKE_COMMAND} --install ${BUILD_DIR}/corelet)
step(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${BUILD_DIR}/consumer -G ${GENERATOR}
     -DCMAKE_PREFIX_PATH=${prefix})
step(${CMAKE_COMMAND} --build ${BUILD_DIR}/consumer)
step(${BUILD_DIR}/consumer/consumer)
