/*
 * gracehttp.h - public API of libgracehttp, an HTTP/1.1 server library on
 * libevent that answers early without losing the answer.
 *
 * This is the only installed header. All types are opaque; every function
 * that can fail returns 0 on success or a negative errno value (see
 * grace_strerror()). Callbacks take the caller's context as the last
 * argument (void *arg).
 */
#ifndef GRACEHTTP_H
#define GRACEHTTP_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(GRACE_BUILDING_LIBRARY)
#define GRACE_API __attribute__((visibility("default")))
#else
#define GRACE_API
#endif

/** Compile-time version: major * 10000 + minor * 100 + patch. */
#define GRACE_VERSION_NUMBER 100
/** Compile-time version string; grace_version() gives the linked one. */
#define GRACE_VERSION_STRING "0.1.0"

/**
 * The version of the library actually linked, e.g. "0.1.0".
 * @return a static string; never NULL.
 */
GRACE_API const char *grace_version(void);

/** The linked library's version as GRACE_VERSION_NUMBER encodes it. */
GRACE_API int grace_version_number(void);

/**
 * A short description of an error code returned by this library.
 * @param err a negative errno value as returned by grace_* functions
 * @return a static string; never NULL.
 */
GRACE_API const char *grace_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
