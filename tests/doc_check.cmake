# doc_check: every command a user would type in README.md and docs/*.md (```sh blocks)
# names an abmlora command and options that exist, and scripts (and the ENV=value they
# take) that exist; `inspect` of an existing directory runs for real (label unit).
add_test(NAME doc_check
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/doc_check.py
                 --abmlora $<TARGET_FILE:abmlora> --source-dir ${PROJECT_SOURCE_DIR})
set_tests_properties(doc_check PROPERTIES LABELS unit TIMEOUT 300)
