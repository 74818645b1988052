# voucherd_embed_text(<target> <source file> <header name> <namespace> <constant>)
# Generates <build dir>/generated/<header name> from <source file> (see
# embed_text.cmake) at build time, adds it to <target>, and puts the
# generated folder on <target>'s private include path. Editing the source
# file regenerates the header and rebuilds what includes it.
function(voucherd_embed_text target source header namespace constant)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/generated/${header}")
  add_custom_command(OUTPUT "${out}"
    COMMAND "${CMAKE_COMMAND}" -DIN=${source} -DOUT=${out} -DNAMESPACE=${namespace}
      -DCONSTANT=${constant} -DROOT=${PROJECT_SOURCE_DIR}
      -P "${PROJECT_SOURCE_DIR}/cmake/embed_text.cmake"
    DEPENDS "${source}" "${PROJECT_SOURCE_DIR}/cmake/embed_text.cmake"
    COMMENT "Embedding ${source}"
    VERBATIM)
  target_sources(${target} PRIVATE "${out}")
  target_include_directories(${target} PRIVATE "${CMAKE_CURRENT_BINARY_DIR}/generated")
endfunction()
