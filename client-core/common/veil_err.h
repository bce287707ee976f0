/* SPDX-License-Identifier: ISC */
/**
 * \file veil_err.h
 * \brief veil's error codes: every fallible function returns 0 or one of these.
 *
 * Codes and messages come from one X-macro list so they never drift apart.
 * The numeric values are part of the public contract (SPEC.md section 11):
 * they appear on the wire and in the wasm binding. Never renumber.
 */
#ifndef VEIL_ERR_H
#define VEIL_ERR_H

/* X(name, value, message) */
#define VEIL_ERRNO_MAP(X)                                                          \
    X(VEIL_EINVAL, -1, "invalid argument or malformed input")                      \
    X(VEIL_ENOSPC, -2, "output buffer too small")                                  \
    X(VEIL_EAUTH, -3, "authentication failed")                                     \
    X(VEIL_ESIG, -4, "signature verification failed")                              \
    X(VEIL_EKEY, -5, "invalid or weak public key")                                 \
    X(VEIL_EREPLAY, -6, "message key already used or discarded (replay)")          \
    X(VEIL_ESKIP, -7, "too many skipped messages")                                 \
    X(VEIL_EVERSION, -8, "unsupported version")                                    \
    X(VEIL_ECORRUPT, -9, "corrupt or truncated serialized data")                   \
    X(VEIL_ESTATE, -10, "operation not valid in the current state")                \
    X(VEIL_ELIMIT, -11, "counter or size limit reached")                           \
    X(VEIL_ENOPREKEY, -12, "unknown or already used prekey")                       \
    X(VEIL_EPAD, -13, "invalid padding")                                           \
    X(VEIL_ENOMEM, -14, "out of memory")                                           \
    X(VEIL_EUNSUPPORTED, -15, "unknown or unsupported frame type")                 \
    X(VEIL_EPERM, -16, "not permitted (authenticate first, or not the owner)")     \
    X(VEIL_ENOTJOINED, -17, "room not joined")                                     \
    X(VEIL_ERATE, -18, "rate limit exceeded")                                      \
    X(VEIL_EFULL, -19, "quota or capacity exceeded")                               \
    X(VEIL_EBUSY, -20, "relay busy (connection limit or shutting down)")           \
    X(VEIL_ESTORE, -21, "relay store failure")                                     \
    X(VEIL_ETOOBIG, -22, "frame or envelope too large")

enum veil_err {
    VEIL_OK = 0,
#define VEIL__ERR_ENUM(name, value, msg) name = (value),
    VEIL_ERRNO_MAP(VEIL__ERR_ENUM)
#undef VEIL__ERR_ENUM
};

/**
 * \brief Returns a static, human-readable message for an error code.
 * \param err 0 or a negative veil error code.
 * \return never NULL; "unknown error" for codes not in the list.
 */
const char *veil_strerror(int err);

/** \brief Returns the symbolic name ("VEIL_EAUTH") of an error code, or "VEIL_UNKNOWN". */
const char *veil_err_name(int err);

#endif
