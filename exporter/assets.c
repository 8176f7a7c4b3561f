/*
 * exporter/assets.c - the files of the web page the metrics server serves
 * at "/" (none yet: the page arrives with its own commit).
 */
#include <string.h>

#include "internal.h"

const qs_asset *qs_exporter_find_asset(const char *path)
{
    (void)path;
    return NULL;
}
