# model_test: the LLaMA forward against the Python oracles and the real stories260K peer.
abm_test(model_test model ${CMAKE_CURRENT_SOURCE_DIR}/model_test.cpp)
