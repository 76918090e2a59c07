#!/usr/bin/env bash
# The build's Debian libraries as .deb files, for a machine that reaches no package
# registry (the lent GPU machine: CUDA, LibTorch and a compiler, but no Open MPI, HDF5,
# Boost, SentencePiece, nlohmann-json or GoogleTest).
#
#   launch/debs.sh fetch [DIR]           here (Debian 12, apt works): downloads exactly the
#                                        packages below into DIR (default gpu/debs) and
#                                        writes DIR/SHA256SUMS; prints the total size
#   launch/debs.sh unpack DIR PREFIX     there: checks the sums, `dpkg -x`s every .deb into
#                                        PREFIX (never into /), adds the links Debian's
#                                        alternatives would have made, writes PREFIX/env.sh
#
# `source PREFIX/env.sh` then sets LD_LIBRARY_PATH, PATH and OPAL_PREFIX (Open MPI finds its
# plugins and help files under the prefix) and ABM_DEPS_CMAKE, the CMake arguments that
# build against the prefix: -DABM_DEPS_PREFIX=PREFIX (CMakeLists.txt searches it first).
# The device tool carries at most 64 MiB with the working tree: fetch prints the sum.
set -euo pipefail

# The runtime libraries with their dependencies beyond glibc, libstdc++ and zlib (a
# machine with a C++ compiler has those), then the development files without theirs.
# openmpi-bin brings mpirun and the mpicxx wrapper CMake's FindMPI asks for the flags.
MPI="openmpi-bin openmpi-common libopenmpi3 libpmix2 libhwloc15 libxml2 libicu72
  libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 librdmacm1
  libnl-3-200 libnl-route-3-200 libpsm2-2 libpsm-infinipath1 libnuma1 libmunge2 libpciaccess0"
# libhdf5 reads remote files through libcurl, which brings its TLS and auth libraries.
HDF5="libhdf5-103-1 libsz2 libaec0 libcurl4 libbrotli1 libgssapi-krb5-2 libk5crypto3
  libkrb5-3 libkrb5support0 libkeyutils1 libcom-err2 libldap-2.5-0 libsasl2-2
  libsasl2-modules-db libdb5.3 libnghttp2-14 libpsl5 libidn2-0 libunistring2 librtmp1
  libgnutls30 libhogweed6 libnettle8 libgmp10 libp11-kit0 libffi8 libtasn1-6 libssh2-1 libssl3"
OTHER="libboost-program-options1.74.0 libsentencepiece0"
DEV="libopenmpi-dev libhdf5-dev libboost1.74-dev libboost-program-options1.74-dev
  nlohmann-json3-dev libsentencepiece-dev libgtest-dev"

die() { echo "debs: error: $*" >&2; exit 2; }

fetch() {
  local dir=${1:-gpu/debs}
  command -v apt-get >/dev/null || die "fetch needs apt-get (Debian 12)"
  mkdir -p "$dir"
  rm -f "$dir"/*.deb
  # apt-get download takes the candidate version and checks it against the signed index.
  (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root $MPI $HDF5 $OTHER $DEV >/dev/null) ||
    die "apt-get download failed (run apt-get update once)"
  (cd "$dir" && sha256sum ./*.deb > SHA256SUMS)
  local n bytes
  n=$(ls "$dir"/*.deb | wc -l)
  bytes=$(cat "$dir"/*.deb | wc -c)
  echo "debs: $n packages, $((bytes / 1048576)) MiB in $dir"
}

unpack() {
  local dir=${1:?usage: debs.sh unpack DIR PREFIX} prefix=${2:?usage: debs.sh unpack DIR PREFIX}
  [ -f "$dir/SHA256SUMS" ] || die "$dir/SHA256SUMS missing (run launch/debs.sh fetch $dir)"
  (cd "$dir" && sha256sum --quiet -c SHA256SUMS) || die "$dir: a .deb does not match SHA256SUMS"
  command -v dpkg-deb >/dev/null || die "unpack needs dpkg-deb"
  mkdir -p "$prefix"
  prefix=$(cd "$prefix" && pwd)
  [ "$prefix" != / ] || die "refusing to unpack into /"
  for f in "$dir"/*.deb; do dpkg-deb -x "$f" "$prefix"; done
  local u=$prefix/usr a=$prefix/usr/lib/x86_64-linux-gnu
  # What update-alternatives makes on an installed system.
  for t in mpirun mpiexec mpicxx mpicc; do ln -sfn "$t.openmpi" "$u/bin/$t"; done
  ln -sfn ../openmpi/lib/libmpi.so "$a/libmpi.so"
  ln -sfn ../openmpi/lib/libmpi_cxx.so "$a/libmpi_cxx.so"
  # Some packages (libnl, libkeyutils) install into /lib, not /usr/lib.
  cat > "$prefix/env.sh" <<EOF
# Written by launch/debs.sh unpack: the Debian libraries unpacked into $prefix.
export LD_LIBRARY_PATH=$a:$prefix/lib/x86_64-linux-gnu:$a/openmpi/lib:$a/hdf5/serial:$a/pmix2/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export PATH=$u/bin:\$PATH
export OPAL_PREFIX=$u
# PMIx has no relocation variable: its plugins (zlib compression) by path. Open MPI's
# plugins for fabrics whose libraries are not here (EFA, PSM) would print a line each.
export PMIX_MCA_mca_base_component_path=$a/pmix2/lib/pmix OMPI_MCA_mca_base_component_show_load_errors=0
export ABM_DEPS_CMAKE="-DABM_DEPS_PREFIX=$prefix"
# Open MPI refuses to start (mpirun, and a singleton's MPI_Init) when it finds neither ssh
# nor rsh, even for ranks on this node alone; "false" satisfies the check.
command -v ssh >/dev/null || command -v rsh >/dev/null || export OMPI_MCA_plm_rsh_agent=false
EOF
  echo "debs: $(ls "$dir"/*.deb | wc -l) packages unpacked into $prefix; source $prefix/env.sh"
}

case "${1:-}" in
  fetch) shift; fetch "$@" ;;
  unpack) shift; unpack "$@" ;;
  *) die "usage: launch/debs.sh fetch [DIR] | unpack DIR PREFIX" ;;
esac
