# device_test (label unit): device discipline on LibTorch's meta device (a CPU tensor made
# by mistake fails), the --device rule, and the CUDA generator field of checkpoints.
abm_test(device_test unit ${CMAKE_CURRENT_SOURCE_DIR}/device_test.cpp)
