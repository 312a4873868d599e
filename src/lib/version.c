/* SPDX-License-Identifier: BSD-3-Clause */
/* version.c - runtime version and error strings. */
#include "gracehttp.h"

#include <string.h>

const char *grace_version(void)
{
    return GRACE_VERSION_STRING;
}

int grace_version_number(void)
{
    return GRACE_VERSION_NUMBER;
}

const char *grace_strerror(int err)
{
    return strerror(err < 0 ? -err : err);
}
