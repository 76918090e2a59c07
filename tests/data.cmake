# data_test: formats, templates and masking, packing vs unpacked loss, the global sampler,
# the HDF5 token cache, and every bad-input path of the data room.
abm_test(data_test unit ${CMAKE_CURRENT_SOURCE_DIR}/data_test.cpp)
