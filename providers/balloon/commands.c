/*
 * commands.c - what the balloon adds to the monitors: QMP query-balloon
 * (with its part of the QMP schema, qapi-balloon.json) and HMP `info
 * balloon`, QEMU's commands for the balloon size.  Without a balloon device
 * they still exist and give QEMU's "No balloon device has been activated".
 */
#include <string.h>

#include "internal.h"
#include "qs-hmp.h"
#include "qs-qmp.h"

extern const char qs_balloon_schema_json[];

static bool qmp_query_balloon(void *opaque, const qs_qmp_args *args, qs_jw *ret,
                              qs_error **errp)
{
    qs_balloon *b = opaque;
    if (!b) {
        qs_error_set(errp, QS_ERR_DEVICE_NOT_ACTIVE, "No balloon device has been activated");
        return false;
    }
    qs_jw_begin_object(ret);
    qs_jw_key(ret, "actual");
    qs_jw_u64(ret, qs_balloon_actual(b));
    qs_jw_end_object(ret);
    return true;
}

static void hmp_info_balloon(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a,
                             qs_buf *out)
{
    qs_balloon *b = opaque;
    if (!b) {
        qs_buf_puts(out, "Error: No balloon device has been activated\n");
        return;
    }
    qs_buf_puts(out, "balloon: actual=");
    qs_buf_put_u64(out, qs_balloon_actual(b) >> 20);
    qs_buf_putc(out, '\n');
}

static const qs_hmp_command info_balloon = {
    "balloon", "", "", "show balloon information", hmp_info_balloon,
};

bool qs_balloon_add_commands(qs_balloon *b, qs_qmp *qmp, qs_hmp *hmp, qs_error **errp)
{
    return (!qmp || qs_qmp_add_command(qmp, "query-balloon", qs_balloon_schema_json,
                                       qmp_query_balloon, b, errp)) &&
           (!hmp || qs_hmp_add_command(hmp, true, &info_balloon, b, errp));
}
