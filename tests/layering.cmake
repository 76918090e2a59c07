# layering_check: every #include "room/..." in a room follows the abm_room DEPENDS graph
# of CMakeLists.txt (docs/design.md §10); the self-test shows an upward include is caught.
add_test(NAME layering_check
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/layering_check.py ${PROJECT_SOURCE_DIR})
add_test(NAME layering_check_fails_on_upward_include
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/layering_check.py
                 ${PROJECT_SOURCE_DIR} --self-test)
set_tests_properties(layering_check layering_check_fails_on_upward_include PROPERTIES
                     LABELS unit TIMEOUT 60)
