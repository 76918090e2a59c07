# ABM_DEPS_PREFIX: a folder into which launch/debs.sh unpacked the Debian packages the
# build needs (Open MPI, HDF5, Boost, SentencePiece, nlohmann-json, GoogleTest), for a
# machine without apt such as the lent GPU machine. Searched before the system, so a
# library half found in each cannot mix. Empty (the default): the system's packages.
set(ABM_DEPS_PREFIX "" CACHE PATH "Debian packages unpacked by launch/debs.sh (empty: the system's)")
if(ABM_DEPS_PREFIX)
  if(NOT EXISTS "${ABM_DEPS_PREFIX}/env.sh")
    message(FATAL_ERROR "ABM_DEPS_PREFIX=${ABM_DEPS_PREFIX}: no env.sh there (run `launch/debs.sh unpack DIR PREFIX`)")
  endif()
  # The mpicxx wrapper reports Open MPI's flags relative to OPAL_PREFIX; without it they
  # would name /usr, which on that machine has no Open MPI.
  if(NOT "$ENV{OPAL_PREFIX}" STREQUAL "${ABM_DEPS_PREFIX}/usr")
    message(FATAL_ERROR "ABM_DEPS_PREFIX=${ABM_DEPS_PREFIX}: `source ${ABM_DEPS_PREFIX}/env.sh` first (OPAL_PREFIX)")
  endif()
  list(PREPEND CMAKE_PREFIX_PATH "${ABM_DEPS_PREFIX}/usr")
  set(MPI_CXX_COMPILER "${ABM_DEPS_PREFIX}/usr/bin/mpicxx.openmpi")
  # HDF5 by path: FindHDF5 would ask the first h5cc on PATH (the system's, where there is
  # one) and mix its flags with the prefix's files.
  set(_h5 "${ABM_DEPS_PREFIX}/usr")
  find_path(ABM_HDF5_INCLUDE_DIR hdf5.h PATHS "${_h5}/include/hdf5/serial" NO_DEFAULT_PATH REQUIRED)
  find_library(ABM_HDF5_LIBRARY hdf5 PATHS "${_h5}/lib/x86_64-linux-gnu/hdf5/serial" NO_DEFAULT_PATH REQUIRED)
  set(HDF5_INCLUDE_DIRS "${ABM_HDF5_INCLUDE_DIR}")
  set(HDF5_C_LIBRARIES "${ABM_HDF5_LIBRARY}")
  message(STATUS "Dependencies from ${ABM_DEPS_PREFIX}")
endif()
