# Run by `cmake --install` (see the install rules in the top CMakeLists.txt):
# writes VOUCHERD_UNIT_OUTPUT, the unit VOUCHERD_UNIT_SOURCE with its
# ExecStart naming the voucherd of the prefix being installed to,
# VOUCHERD_BINDIR under CMAKE_INSTALL_PREFIX (or VOUCHERD_BINDIR itself when
# it is absolute). DESTDIR is not part of the path: the unit names where the
# program will be on the target system.
set(bindir "${VOUCHERD_BINDIR}")
if(NOT IS_ABSOLUTE "${bindir}")
  set(bindir "${CMAKE_INSTALL_PREFIX}/${bindir}")
endif()
if(bindir MATCHES "[ \t%$\\\"']")
  # systemd would split or expand the path: keep the unit a plain line.
  message(FATAL_ERROR "voucherd@.service: cannot name ${bindir}/voucherd in ExecStart "
                      "(install to a prefix without spaces, quotes, % or $)")
endif()
# The source unit names the default prefix's program, so that it can be
# read (and copied by hand) as it is.
set(source_exec "ExecStart=/usr/local/bin/voucherd ")
file(READ "${VOUCHERD_UNIT_SOURCE}" unit)
string(FIND "${unit}" "\n${source_exec}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${VOUCHERD_UNIT_SOURCE} has no line starting \"${source_exec}\"")
endif()
string(REPLACE "\n${source_exec}" "\nExecStart=${bindir}/voucherd " unit "${unit}")
file(WRITE "${VOUCHERD_UNIT_OUTPUT}" "${unit}")
