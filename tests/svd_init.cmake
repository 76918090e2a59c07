# svd_init_test: inits computed from the weights or their gradient (PiSSA, LoRA-GA) against
# python3-torch references (tests/ref/init_ref.py) and real PEFT (label unit; the PEFT part
# skips without the oracle venv).
abm_test(svd_init_test unit ${CMAKE_CURRENT_SOURCE_DIR}/svd_init_test.cpp)
