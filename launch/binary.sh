# Sourced by the launch scripts (from the repository root): installs what is missing
# (setup.sh), then sets and exports ABMLORA, building build/abmlora unless ABMLORA already
# names a built binary.
bash launch/setup.sh
if [ -z "${ABMLORA:-}" ]; then
  bash launch/build.sh --target abmlora
  ABMLORA=$PWD/build/abmlora
fi
export ABMLORA
