# Slurm tests (label slurm): a real one-node Slurm (slurm/local/start.sh) started and stopped
# by each test; skipped (exit 77) when not root or slurm-wlm/munge cannot be installed.
add_test(NAME slurm_smoke
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm_test.sh smoke
                 $<TARGET_FILE:abmlora> $<TARGET_FILE:checkpoints_mpi_test>)
add_test(NAME slurm_requeue_pattern
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm_test.sh requeue)
set_tests_properties(slurm_smoke slurm_requeue_pattern PROPERTIES
  LABELS slurm TIMEOUT 900 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
