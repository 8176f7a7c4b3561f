/*
 * fuzz_exposition.h - an independent reader of the metrics exposition,
 * the oracle of the targets whose input reaches qs_metrics_render
 * (fuzz_kvm_stats: names, types, units and exponents from a stats file;
 * fuzz_metrics_request: the endpoint's answers).  It checks what a
 * Prometheus server needs to accept a scrape, in either format: valid
 * UTF-8; metadata lines before their samples, each family declared once;
 * sample names that belong to the family in hand and are valid metric
 * names; label sets with legal escapes, each series once; numbers that
 * read back; histograms whose bounds grow and end at +Inf, whose counts
 * are cumulative and whose _count is the +Inf bucket; OpenMetrics' UNIT
 * as the name's suffix and "# EOF" last.
 */
#ifndef QS_FUZZ_EXPOSITION_H
#define QS_FUZZ_EXPOSITION_H

#include <stdbool.h>
#include <stddef.h>

#include "qs-exporter.h"

/* NULL when text is a valid exposition in fmt, else what is wrong (a
 * static string); *line (if non-NULL) is then the 1-based line. */
const char *fuzz_exposition_error(const char *text, size_t len, qs_metrics_format fmt,
                                  size_t *line);

#endif
