# tokenizer_test: SentencePiece through our shim vs Debian's spm_encode.
abm_test(tokenizer_test unit ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_test.cpp)
