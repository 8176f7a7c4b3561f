/*
 * exporter/internal.h - pieces of the metrics renderer shared between the
 * exporter's files and exposed to its unit tests (not part of the public
 * API in qs-exporter.h).
 */
#ifndef QS_EXPORTER_INTERNAL_H
#define QS_EXPORTER_INTERNAL_H

#include "qs-common.h"
#include "qs-exporter.h"

/* Base-unit word for a schema unit ("seconds", "bytes", "cycles") or NULL
 * for unit-less and boolean stats. */
const char *qs_metrics_unit_word(qs_unit u);

/* Stem of a stat name (see qs-exporter.h): sanitised, own unit suffix
 * removed when the stat has a unit of that kind, "_total" removed from
 * counters, "_hist" removed when strip_hist (for _sum matching). */
void qs_metrics_stem(qs_buf *out, const qs_schema_value *sv, bool strip_hist);

/* Full family name: qstats_<provider>_<target>_<stem>[_<unit>]. */
void qs_metrics_family_name(qs_buf *out, const char *provider, qs_target t,
                            const qs_schema_value *sv);

/* Shortest text that reads back as the same double; "+Inf", "-Inf", "NaN".
 * om_label: OpenMetrics canonical label form (integral values get ".0"). */
void qs_metrics_put_double(qs_buf *out, double v, bool om_label);

/* Label value escaping (backslash, double quote, newline); invalid UTF-8
 * becomes U+FFFD. */
void qs_metrics_put_label_value(qs_buf *out, const char *s);

/* Copies the character at *s (a byte >= 0x80 first) and steps over it:
 * itself when it is valid UTF-8, else U+FFFD.  Prometheus refuses a whole
 * scrape over one HELP text or label value that is not UTF-8, and stat
 * names come from stats files. */
void qs_metrics_put_non_ascii(qs_buf *out, const char **s);

#endif
