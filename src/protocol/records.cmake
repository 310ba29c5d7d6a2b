# Record batch v2 and its compression codecs: library gregor_records.
# Included at the end of src/protocol/CMakeLists.txt with include(records.cmake).
add_library(gregor_records
  ${CMAKE_CURRENT_LIST_DIR}/record_batch.cc
  ${CMAKE_CURRENT_LIST_DIR}/compression.cc)
target_link_libraries(gregor_records
  PUBLIC gregor_base
  PRIVATE PkgConfig::ZSTD PkgConfig::LZ4 PkgConfig::ZLIB ${SNAPPY_LIB})

gregor_test(record_batch_test ${CMAKE_CURRENT_LIST_DIR}/record_batch_test.cc)
if(GREGOR_TESTS)
  target_link_libraries(record_batch_test PRIVATE gregor_records)
endif()
