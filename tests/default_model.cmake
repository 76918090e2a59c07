# default_model_test: the committed embedded default (models/default) loads with the documented
# geometry and size, is far below a random init on unseen Devil's Dictionary text, and talks.
abm_test(default_model_test model ${CMAKE_CURRENT_SOURCE_DIR}/default_model_test.cpp)
