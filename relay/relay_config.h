/* SPDX-License-Identifier: ISC */
/**
 * \file relay_config.h
 * \brief veil-relay's settings: defaults, command-line flags, environment
 *        variables (VEIL_RELAY_<FLAG>, dashes as underscores), validation,
 *        and --help. The limits are those of SPEC.md 9.11.
 */
#ifndef VEIL_RELAY_CONFIG_H
#define VEIL_RELAY_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define VEIL_RELAY_PATH_MAX 1024

typedef struct veil_relay_config {
    char host[256];
    uint32_t port;
    char db[VEIL_RELAY_PATH_MAX];
    char web[VEIL_RELAY_PATH_MAX];
    char port_file[VEIL_RELAY_PATH_MAX];
    char sync[8];      /* "normal" or "full" */
    char log_level[8]; /* error, warn, info, debug */
    uint32_t max_frame, max_frame_anon, max_env, max_eph;
    uint32_t max_rooms, max_members, max_conns;
    uint32_t rate, burst;
    uint32_t queue_frames;
    uint64_t queue_bytes;
    uint32_t max_errors;
    uint32_t idle, handshake_timeout;
    uint32_t max_page;
    uint32_t retain_count;
    uint64_t retain_age;
    uint32_t max_inbox;
    uint64_t inbox_ttl;
    uint32_t max_opks;
    uint32_t sweep;
    uint32_t rx_buffer;
    uint32_t batch_delay;
} veil_relay_config;

/** Fills the defaults. */
void veil_relay_config_defaults(veil_relay_config *c);

/**
 * \brief Applies environment variables, then flags, then validates.
 * \return 0 to run, 1 when --help or --version was printed (exit 0),
 *         -1 on a bad flag or value (message on `err`, exit 2).
 */
int veil_relay_config_load(veil_relay_config *c, int argc, char **argv, FILE *out, FILE *err);

/** Prints the effective settings as one structured log line's fields. */
void veil_relay_config_describe(const veil_relay_config *c, char *buf, size_t cap);

#endif
