/* SPDX-License-Identifier: ISC */
/**
 * \file veil_pad.h
 * \brief Padmé length buckets with an ISO/IEC 7816-4 marker (SPEC.md 7.1).
 *
 * Every plaintext is padded before encryption so the relay sees few distinct
 * sizes: Padmé leaks O(log log L) bits of the length with at most ~12% overhead.
 */
#ifndef VEIL_PAD_H
#define VEIL_PAD_H

#include <stddef.h>
#include <stdint.h>

#include "veil_util.h"

#define VEIL_PAD_MIN_BYTES 64U
#define VEIL_MAX_PLAINTEXT_BYTES 65536U
/** padme(65537): the largest padded length. */
#define VEIL_PAD_MAX_BYTES 67584U

/** \brief The Padmé bucket of L (L >= 2). */
size_t veil_padme(size_t L);

/**
 * \brief Padded length of a plaintext of len octets, or 0 if len exceeds
 *        VEIL_MAX_PLAINTEXT_BYTES.
 */
size_t veil_pad_len(size_t len);

/**
 * \brief Pads in place: buf holds len plaintext octets and has room for
 *        padded_len = veil_pad_len(len) octets.
 * \return 0, VEIL_EINVAL if padded_len is not veil_pad_len(len).
 */
VEIL_WUR int veil_pad(uint8_t *buf, size_t len, size_t padded_len);

/**
 * \brief Finds the plaintext length of a padded buffer and checks the
 *        padding is exactly what veil_pad produces.
 * \return 0, VEIL_EPAD on any malformed padding.
 */
VEIL_WUR int veil_unpad(size_t *len, const uint8_t *buf, size_t padded_len);

#endif
