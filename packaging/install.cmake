# Install rules, included from the top CMakeLists.txt:
#   bin/       qstatsd, qstats, qstats-guest-agent (linked with the static
#              archive: they use internals the shared library does not export)
#   lib/       libqstats.so.0 (SONAME) and the libqstats.so development link
#   include/qstats/   qstats.h and every module's public header: the embedding API
#   lib/pkgconfig/qstats.pc
#   QS_SYSTEMD_UNITDIR/qstatsd.service   (default lib/systemd/system under the
#              prefix; the Debian build puts it in /lib/systemd/system)
#   share/man/ the manual pages of the programs built (docs/man/, roff)
#   share/qstats/prometheus/   recording rules and alerts (packaging/prometheus/)
# The .pc file and the unit contain absolute paths, so they are written at
# install time from the prefix actually used (`cmake --install --prefix P`).
include(GNUInstallDirs)
set(QS_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit is installed (relative to the prefix, or absolute)")

foreach(t qstatsd qstats-client qstats-guest-agent)
  if(TARGET ${t})
    install(TARGETS ${t} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
install(TARGETS qstats LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${QS_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/qstats)

set(QS_PKG_OUT ${CMAKE_BINARY_DIR}/packaging)
install(CODE "
  set(QS_PC_VERSION \"${PROJECT_VERSION}\")
  set(QS_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(QS_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(QS_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(QS_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  if(NOT IS_ABSOLUTE \"\${QS_BINDIR}\")
    set(QS_BINDIR \"\${CMAKE_INSTALL_PREFIX}/\${QS_BINDIR}\")
  endif()
  configure_file(\"${CMAKE_SOURCE_DIR}/packaging/qstats.pc.in\" \"${QS_PKG_OUT}/qstats.pc\" @ONLY)
  configure_file(\"${CMAKE_SOURCE_DIR}/packaging/qstatsd.service.in\" \"${QS_PKG_OUT}/qstatsd.service\" @ONLY)
")
install(FILES ${QS_PKG_OUT}/qstats.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${QS_PKG_OUT}/qstatsd.service DESTINATION ${QS_SYSTEMD_UNITDIR})

install(FILES ${CMAKE_SOURCE_DIR}/docs/man/qstatsd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
if(TARGET qstats-client)
  install(FILES ${CMAKE_SOURCE_DIR}/docs/man/qstats.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()
if(TARGET qstats-guest-agent)
  install(FILES ${CMAKE_SOURCE_DIR}/docs/man/qstats-guest-agent.8
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
endif()

install(FILES ${CMAKE_SOURCE_DIR}/packaging/prometheus/qstats.rules.yml
              ${CMAKE_SOURCE_DIR}/packaging/prometheus/qstats.alerts.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/qstats/prometheus)
