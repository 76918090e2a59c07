# train_step_test: the hand-written train step (train/backprop, train/attention) against
# LibTorch autograd through the model; recomputation bitwise equal (label unit).
abm_test(train_step_test unit ${CMAKE_CURRENT_SOURCE_DIR}/train_step_test.cpp)
