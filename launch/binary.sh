# Sourced by the launch scripts (from the repository root): installs what is missing
# (setup.sh; skipped with ABM_SKIP_SETUP=1, e.g. on a GPU machine that reaches no package
# registry), then sets and exports ABMLORA, building build/abmlora unless ABMLORA already
# names a built binary.
[ "${ABM_SKIP_SETUP:-0}" = 1 ] || bash launch/setup.sh
if [ -z "${ABMLORA:-}" ]; then
  bash launch/build.sh --target abmlora
  ABMLORA=$PWD/build/abmlora
fi
export ABMLORA
