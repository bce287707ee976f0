// SPDX-License-Identifier: ISC
// veil's JavaScript binding to the WebAssembly build of client-core.
//
// Keys and plaintext never leave wasm memory except as the Uint8Arrays the
// caller asks for. Every object that holds secret state lives in wasm memory;
// dispose() wipes and frees it, and a FinalizationRegistry does the same for
// objects the caller forgets (a backstop, not a substitute: call dispose()).
// Sizes come from the core's getters, never from constants written here.
import createVeilCore from './veil_core.mjs';

export class VeilError extends Error {
  constructor(code, name, message) {
    super(`${name}: ${message}`);
    this.code = code;
    this.veilName = name;
  }
}

let corePromise = null;

/** Loads the module once; returns the shared Veil instance. */
export function loadVeil() {
  if (corePromise === null) {
    corePromise = createVeilCore().then((m) => new Veil(m));
  }
  return corePromise;
}

class Veil {
  constructor(m) {
    this.m = m;
    this.#check(m._veil_wasm_init());
    this.sizes = {
      key: m._veil_key_bytes(),
      idpub: m._veil_idpub_bytes(),
      bundle: m._veil_bundle_bytes(),
      x3dhInit: m._veil_x3dh_init_bytes(),
      overhead: m._veil_dr_overhead_bytes(),
      maxMessage: m._veil_dr_max_message_bytes(),
      maxPlaintext: m._veil_max_plaintext_bytes(),
      sealOverhead: m._veil_seal_overhead_bytes(),
      sealKey: m._veil_seal_key_bytes(),
      fingerprintDigits: m._veil_fingerprint_digits(),
      safetyDigits: m._veil_safety_number_digits(),
      session: m._veil_session_size(),
      keyring: m._veil_keyring_size(),
    };
    // Scratch buffers, allocated once: input, output, and a size_t / u32 slot.
    const cap = this.sizes.maxMessage;
    this.scratchCap = cap;
    this.inPtr = m._veil_wasm_alloc(cap);
    this.outPtr = m._veil_wasm_alloc(cap);
    this.lenPtr = m._veil_wasm_alloc(8);
    this.registry = new FinalizationRegistry(({ ptr, size }) => m._veil_wasm_free(ptr, size));
  }

  #check(rc) {
    if (rc < 0) {
      const m = this.m;
      throw new VeilError(rc, m.UTF8ToString(m._veil_err_name(rc)), m.UTF8ToString(m._veil_strerror(rc)));
    }
    return rc;
  }

  check(rc) {
    return this.#check(rc);
  }

  /** Copies bytes into the input scratch buffer (or a fresh allocation when larger). */
  put(bytes, ptr = this.inPtr) {
    if (bytes.length > this.scratchCap) {
      throw new VeilError(-1, 'VEIL_EINVAL', 'input larger than the largest message');
    }
    this.m.HEAPU8.set(bytes, ptr);
    return ptr;
  }

  take(ptr, len) {
    return this.m.HEAPU8.slice(ptr, ptr + len);
  }

  wipeScratch(len) {
    this.m.HEAPU8.fill(0, this.inPtr, this.inPtr + len);
  }

  lenOut() {
    // size_t is 32 bits in wasm32.
    return this.m.HEAPU32[this.lenPtr >> 2];
  }

  own(obj, size) {
    this.registry.register(obj, { ptr: obj.ptr, size }, obj);
  }

  /** A new identity with its first signed prekey. now: seconds since the epoch. */
  createKeyring(now = Math.floor(Date.now() / 1000)) {
    const k = new Keyring(this, this.m._veil_wasm_alloc(this.sizes.keyring));
    this.m._veil_wasm_keyring_init(k.ptr, now >>> 0);
    return k;
  }

  /** A keyring from Keyring.serialize() output (unsealed). */
  restoreKeyring(bytes) {
    return this.#restore(new Keyring(this, this.m._veil_wasm_alloc(this.sizes.keyring)), this.m._veil_keyring_deserialize, bytes);
  }

  /** Loads serialized state into a fresh object; the copy in wasm memory is wiped either way. */
  #restore(obj, deserialize, bytes) {
    try {
      const p = this.put(bytes);
      this.#check(deserialize(obj.ptr, p, bytes.length));
      return obj;
    } catch (e) {
      obj.dispose();
      throw e;
    } finally {
      this.wipeScratch(bytes.length);
    }
  }

  /** X3DH as initiator: returns { session, header } (header goes with the first messages). */
  initiate(keyring, bundle) {
    const s = new Session(this, this.m._veil_wasm_alloc(this.sizes.session));
    try {
      const p = this.put(bundle);
      this.#check(this.m._veil_wasm_x3dh_initiate(s.ptr, this.outPtr, keyring.ptr, p, bundle.length));
      return { session: s, header: this.take(this.outPtr, this.sizes.x3dhInit) };
    } catch (e) {
      s.dispose();
      throw e;
    }
  }

  /**
   * X3DH as responder: returns { session, opkId }. Decrypt the first message
   * with the session, and only then call keyring.removeOneTimePrekey(opkId).
   */
  respond(keyring, header) {
    const s = new Session(this, this.m._veil_wasm_alloc(this.sizes.session));
    try {
      const p = this.put(header);
      this.#check(this.m._veil_wasm_x3dh_respond(s.ptr, this.lenPtr, keyring.ptr, p, header.length));
      return { session: s, opkId: this.m.HEAPU32[this.lenPtr >> 2] };
    } catch (e) {
      s.dispose();
      throw e;
    }
  }

  /** A session from Session.serialize() output (unsealed). */
  restoreSession(bytes) {
    return this.#restore(new Session(this, this.m._veil_wasm_alloc(this.sizes.session)), this.m._veil_session_deserialize, bytes);
  }

  /** 60 digits, the same on both sides. */
  safetyNumber(signPkA, signPkB) {
    const m = this.m;
    const a = this.put(signPkA, this.inPtr);
    const b = this.put(signPkB, this.inPtr + 32);
    m._veil_safety_number(this.outPtr, a, b);
    return m.UTF8ToString(this.outPtr);
  }

  /** Seals bytes under a 32-octet host key (SPEC.md 10.1), e.g. for IndexedDB. */
  seal(kind, key, bytes) {
    const m = this.m;
    const keyPtr = m._veil_wasm_alloc(this.sizes.sealKey);
    try {
      m.HEAPU8.set(key, keyPtr);
      const p = this.put(bytes);
      this.#check(m._veil_wasm_seal_with_key(this.outPtr, this.scratchCap, this.lenPtr, kind, keyPtr, p, bytes.length));
      return this.take(this.outPtr, this.lenOut());
    } finally {
      this.wipeScratch(bytes.length);
      m._veil_wasm_free(keyPtr, this.sizes.sealKey);
    }
  }

  unseal(kind, key, blob) {
    const m = this.m;
    const keyPtr = m._veil_wasm_alloc(this.sizes.sealKey);
    try {
      m.HEAPU8.set(key, keyPtr);
      const p = this.put(blob);
      this.#check(m._veil_unseal_with_key(this.outPtr, this.scratchCap, this.lenPtr, kind, keyPtr, p, blob.length));
      const out = this.take(this.outPtr, this.lenOut());
      m.HEAPU8.fill(0, this.outPtr, this.outPtr + out.length);
      return out;
    } finally {
      m._veil_wasm_free(keyPtr, this.sizes.sealKey);
    }
  }
}

class Owned {
  constructor(veil, ptr, size) {
    if (ptr === 0) {
      throw new VeilError(-14, 'VEIL_ENOMEM', 'out of memory');
    }
    this.veil = veil;
    this.ptr = ptr;
    this.size = size;
    veil.own(this, size);
  }

  alive() {
    if (this.ptr === 0) {
      throw new VeilError(-10, 'VEIL_ESTATE', 'object already disposed');
    }
    return this.ptr;
  }

  /** Wipes and frees the wasm memory behind this object. */
  dispose() {
    if (this.ptr !== 0) {
      this.veil.registry.unregister(this);
      this.veil.m._veil_wasm_free(this.ptr, this.size);
      this.ptr = 0;
    }
  }
}

export class Keyring extends Owned {
  constructor(veil, ptr) {
    super(veil, ptr, veil.sizes.keyring);
  }

  /** The 128-octet public identity (SPEC.md 5.1). */
  publicIdentity() {
    const v = this.veil;
    v.m._veil_wasm_keyring_idpub(this.alive(), v.outPtr);
    return v.take(v.outPtr, v.sizes.idpub);
  }

  fingerprint() {
    const v = this.veil;
    v.m._veil_wasm_keyring_fingerprint(this.alive(), v.outPtr);
    return v.m.UTF8ToString(v.outPtr);
  }

  addOneTimePrekeys(n) {
    return this.veil.check(this.veil.m._veil_wasm_keyring_add_opks(this.alive(), n >>> 0));
  }

  oneTimePrekeyCount() {
    return this.veil.m._veil_wasm_keyring_opk_count(this.alive());
  }

  removeOneTimePrekey(id) {
    this.veil.check(this.veil.m._veil_wasm_keyring_remove_opk(this.alive(), id >>> 0));
  }

  rotateSignedPrekey(now = Math.floor(Date.now() / 1000)) {
    this.veil.check(this.veil.m._veil_wasm_keyring_rotate_spk(this.alive(), now >>> 0));
  }

  /** A 266-octet bundle with the one-time prekey at index opkIndex (-1: none). */
  bundle(opkIndex = -1) {
    const v = this.veil;
    v.check(v.m._veil_wasm_keyring_bundle(this.alive(), opkIndex | 0, v.outPtr));
    return v.take(v.outPtr, v.sizes.bundle);
  }

  serialize() {
    const v = this.veil;
    const m = v.m;
    const n = m._veil_keyring_serialized_len(this.alive());
    const p = m._veil_wasm_alloc(n);
    try {
      v.check(m._veil_keyring_serialize(p, n, v.lenPtr, this.ptr));
      return v.take(p, n);
    } finally {
      m._veil_wasm_free(p, n);
    }
  }
}

export class Session extends Owned {
  constructor(veil, ptr) {
    super(veil, ptr, veil.sizes.session);
  }

  encrypt(plaintext) {
    const v = this.veil;
    const p = v.put(plaintext);
    try {
      v.check(v.m._veil_wasm_encrypt(this.alive(), v.outPtr, v.scratchCap, v.lenPtr, p, plaintext.length));
      return v.take(v.outPtr, v.lenOut());
    } finally {
      v.wipeScratch(plaintext.length);
    }
  }

  decrypt(message) {
    const v = this.veil;
    const m = v.m;
    const p = v.put(message);
    v.check(m._veil_session_decrypt(this.alive(), v.outPtr, v.scratchCap, v.lenPtr, p, message.length));
    const n = v.lenOut();
    const out = v.take(v.outPtr, n);
    m.HEAPU8.fill(0, v.outPtr, v.outPtr + n);
    return out;
  }

  skippedKeys() {
    return this.veil.m._veil_session_skipped_count(this.alive());
  }

  serialize() {
    const v = this.veil;
    const m = v.m;
    const n = m._veil_session_serialized_len(this.alive());
    const p = m._veil_wasm_alloc(n);
    try {
      v.check(m._veil_session_serialize(p, n, v.lenPtr, this.ptr));
      return v.take(p, n);
    } finally {
      m._veil_wasm_free(p, n);
    }
  }
}
