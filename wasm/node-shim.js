// SPDX-License-Identifier: ISC
// Prepended to veil_core.mjs (--extern-pre-js). Emscripten 3.1.6's ES-module
// output still uses `require` and `__dirname` on Node, which ES modules lack;
// this gives the module its own, scoped to the module, on Node only. In a
// browser both stay undefined and the branch is never taken.
var require, __dirname;
if (typeof process === 'object' && process.versions && process.versions.node) {
  require = (await import('node:module')).createRequire(import.meta.url);
  __dirname = require('node:path').dirname(new URL(import.meta.url).pathname);
}
