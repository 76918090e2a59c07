# svd_init_test: inits computed from the weights (PiSSA) against python3-torch's SVD and
# real PEFT (label unit; the PEFT part skips without the oracle venv).
abm_test(svd_init_test unit ${CMAKE_CURRENT_SOURCE_DIR}/svd_init_test.cpp)
