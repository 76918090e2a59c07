# lora_test: LoRA adapters against a torch reference (gradients), real PEFT 0.7.1 (export
# format, loading, logits) when the oracle venv exists, merge, init and bad input.
abm_test(lora_test unit ${CMAKE_CURRENT_SOURCE_DIR}/lora_test.cpp)
