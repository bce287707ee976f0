/* SPDX-License-Identifier: ISC */
/**
 * \file veil_safety.h
 * \brief Identity fingerprints and safety numbers (SPEC.md 7.2).
 *
 * A fingerprint is 30 decimal digits derived from an identity's Ed25519 public
 * key by 5200 iterations of SHA-512 (the iteration count raises the cost of
 * searching for a key whose fingerprint collides with a target's). A safety
 * number is both fingerprints, sorted, so both parties see the same 60 digits.
 */
#ifndef VEIL_SAFETY_H
#define VEIL_SAFETY_H

#include <stddef.h>
#include <stdint.h>

#include "veil_util.h"

#define VEIL_FINGERPRINT_DIGITS 30U
#define VEIL_SAFETY_NUMBER_DIGITS 60U
#define VEIL_FINGERPRINT_ITERATIONS 5200U

/** \brief out receives 30 digits and a NUL. */
void veil_fingerprint(char out[VEIL_FINGERPRINT_DIGITS + 1], const uint8_t sign_pk[32]);

/** \brief out receives 60 digits and a NUL; symmetric in a and b. */
void veil_safety_number(char out[VEIL_SAFETY_NUMBER_DIGITS + 1], const uint8_t sign_pk_a[32],
                        const uint8_t sign_pk_b[32]);

#endif
