/* SPDX-License-Identifier: ISC */
/**
 * \file relay.h
 * \brief The veil relay (SPEC.md section 9): one libwebsockets event loop on
 *        one thread, serving the veil.v1 WebSocket protocol, /healthz,
 *        /metrics and static files on one port, with the SQLite store.
 *
 * Everything runs on the loop thread; veil_relay_stop() is the only function
 * another context (a signal handler) may call.
 */
#ifndef VEIL_RELAY_H
#define VEIL_RELAY_H

#include "relay_config.h"

typedef struct veil_relay veil_relay;

/**
 * \brief Opens the store, creates the lws context and starts listening.
 * \return 0, or a negative VEIL_E* code (logged).
 */
int veil_relay_create(veil_relay **out, const veil_relay_config *cfg);

/** \brief The port actually bound (useful with --port 0). */
int veil_relay_port(const veil_relay *r);

/**
 * \brief Serves until veil_relay_stop(); then commits what is pending,
 *        closes every connection with 1001 and returns.
 * \return 0, or VEIL_ESTORE if the final commit failed.
 */
int veil_relay_run(veil_relay *r);

/** \brief Asks the loop to stop; async-signal-safe. */
void veil_relay_stop(veil_relay *r);

void veil_relay_destroy(veil_relay *r);

#endif
