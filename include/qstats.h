/*
 * qstats.h - the one header a VMM includes to embed libqstats: every
 * module's public header (what libqstats.so exports, and nothing more).  Installed as <prefix>/include/qstats/qstats.h
 * beside them; `pkg-config --cflags qstats` puts that directory on the
 * include path, so both #include <qstats.h> and the module headers work.
 */
#ifndef QSTATS_H
#define QSTATS_H

#include "qs-core.h"
#include "qs-kvm.h"
#include "qs-balloon.h"
#include "qs-sched.h"
#include "qs-qmp.h"
#include "qs-hmp.h"
#include "qs-exporter.h"

#endif
