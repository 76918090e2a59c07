# report_test: `abmlora report`'s table, "steps to target" paired per seed (label unit).
abm_test(report_test unit ${CMAKE_CURRENT_SOURCE_DIR}/report_test.cpp)
