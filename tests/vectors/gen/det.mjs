// SPDX-License-Identifier: ISC
//
// Deterministic "random" inputs for the vectors: every value is
// BLAKE2b-512 blocks of a label and a block counter, so regeneration is
// byte-identical. Protocol randomness is recorded so that the JSON lists
// every drawn octet in draw order.

import { blake2b, concat, ascii, u32 } from './veil.mjs';

const DOMAIN = 'veil-test-vectors-v1/';

// n octets named by label.
export function det(label, n) {
  const blocks = [];
  for (let i = 0; blocks.length * 64 < n; i++) blocks.push(blake2b(64, concat(ascii(DOMAIN + label), u32(i))));
  return concat(...blocks).slice(0, n);
}

// A recording random source: each draw is det(`${label}/${k}`, n) for the
// k-th draw. `take()` returns (and forgets) the octets drawn since the last
// take, concatenated in draw order.
export function recordingRng(label) {
  let k = 0;
  let log = [];
  const rng = (n) => {
    const b = det(`${label}/${k++}`, n);
    log.push(b);
    return b;
  };
  rng.take = () => {
    const out = concat(...log);
    log = [];
    return out;
  };
  return rng;
}

// A random source that replays given octets and checks they are all used.
export function fixedRng(bytes) {
  let o = 0;
  const rng = (n) => {
    if (o + n > bytes.length) throw new Error('fixedRng exhausted');
    const b = bytes.slice(o, o + n);
    o += n;
    return b;
  };
  rng.done = () => o === bytes.length;
  return rng;
}
