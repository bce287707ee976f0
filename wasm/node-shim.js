// SPDX-License-Identifier: ISC
// Prepended to veil_core.mjs (--extern-pre-js). Emscripten 3.1.6's ES-module
// output still uses `require` and `__dirname` on Node, which ES modules lack;
// this gives the module its own, scoped to the module, on Node only. In a
// browser both stay undefined and the branch is never taken.
// veilWebCrypto is the Web Crypto object the random generator is seeded from:
// the page's, or Node's (Node 18, Debian 12's, has no global `crypto`).
var require, __dirname, veilWebCrypto = globalThis.crypto;
if (typeof process === 'object' && process.versions && process.versions.node) {
  require = (await import('node:module')).createRequire(import.meta.url);
  __dirname = require('node:path').dirname(new URL(import.meta.url).pathname);
  if (veilWebCrypto === undefined) {
    veilWebCrypto = require('node:crypto').webcrypto;
  }
}
