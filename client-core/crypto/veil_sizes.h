/* SPDX-License-Identifier: ISC */
/**
 * \file veil_sizes.h
 * \brief Every size macro of the crypto layer as a function too, so bindings
 *        (the wasm ES module) never hard-code a size. One X-macro list makes
 *        both; tests/unit/test_err.c checks they agree.
 */
#ifndef VEIL_SIZES_H
#define VEIL_SIZES_H

#include <stddef.h>

#include "veil_keys.h"
#include "veil_pad.h"
#include "veil_ratchet.h"
#include "veil_rng.h"
#include "veil_safety.h"
#include "veil_seal.h"
#include "veil_x3dh.h"

/* X(function_name, macro) */
#define VEIL_SIZES_MAP(X)                                   \
    X(veil_key_bytes, VEIL_KEY_BYTES)                       \
    X(veil_sign_pk_bytes, VEIL_SIGN_PK_BYTES)               \
    X(veil_sig_bytes, VEIL_SIG_BYTES)                       \
    X(veil_idpub_bytes, VEIL_IDPUB_BYTES)                   \
    X(veil_bundle_bytes, VEIL_BUNDLE_BYTES)                 \
    X(veil_x3dh_init_bytes, VEIL_X3DH_INIT_BYTES)           \
    X(veil_ad_bytes, VEIL_AD_BYTES)                         \
    X(veil_dr_overhead_bytes, VEIL_DR_OVERHEAD_BYTES)       \
    X(veil_dr_max_message_bytes, VEIL_DR_MAX_MESSAGE_BYTES) \
    X(veil_max_plaintext_bytes, VEIL_MAX_PLAINTEXT_BYTES)   \
    X(veil_seal_overhead_bytes, VEIL_SEAL_OVERHEAD_BYTES)   \
    X(veil_seal_key_bytes, VEIL_SEAL_KEY_BYTES)             \
    X(veil_drbg_seed_bytes, VEIL_DRBG_SEED_BYTES)           \
    X(veil_fingerprint_digits, VEIL_FINGERPRINT_DIGITS)     \
    X(veil_safety_number_digits, VEIL_SAFETY_NUMBER_DIGITS)

#define VEIL__SIZE_DECL(fn, macro) size_t fn(void);
VEIL_SIZES_MAP(VEIL__SIZE_DECL)
#undef VEIL__SIZE_DECL

#endif
