# Slurm tests (label slurm): a real one-node Slurm (slurm/local/start.sh) started and stopped
# by each test; skipped (exit 77) when not root or slurm-wlm/munge cannot be installed.
#   slurm_smoke    a 2-task job: srun --mpi=pmix, launch/run, checkpoints_mpi_test under srun
#   slurm_stop     SIGTERM / SIGINT to launch/run inside a job: checkpoint, launch/run returns 3
#   slurm_requeue  slurm/requeue.sbatch with the real abmlora on 2 tasks: signalled, checkpoint,
#                  requeue, resume, and the final adapter equals an uninterrupted run's
add_test(NAME slurm_smoke
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm_test.sh smoke
                 $<TARGET_FILE:abmlora> $<TARGET_FILE:checkpoints_mpi_test>)
add_test(NAME slurm_stop
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm_test.sh stop $<TARGET_FILE:abmlora>)
add_test(NAME slurm_requeue
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm_test.sh requeue $<TARGET_FILE:abmlora>)
set_tests_properties(slurm_smoke slurm_stop slurm_requeue PROPERTIES
  LABELS slurm TIMEOUT 900 RUN_SERIAL TRUE SKIP_RETURN_CODE 77
  ENVIRONMENT "ABM_MATMUL_GFLOPS=fp32=1,bf16=1")  # --dtype auto: fp32 (test_main.cpp)
