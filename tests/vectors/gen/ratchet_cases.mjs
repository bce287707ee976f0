// SPDX-License-Identifier: ISC
//
// The conversations of ratchet.json (SPEC 6): a main conversation between
// Alice and Bob seeded by the X3DH case with_opk, and smaller scenarios for
// the skip limits and the header-key slots of the skipped-key store.

import * as V from './veil.mjs';
import { hex, unhex, ascii, concat, equal, u32, SMALL_ORDER } from './veil.mjs';
import { det, recordingRng } from './det.mjs';

function assert(cond, what) {
  if (!cond) throw new Error(`generator self-check failed: ${what}`);
}

const other = (p) => (p === 'alice' ? 'bob' : 'alice');

// Deterministic plaintexts: printable text of the asked length.
function text(label, len) {
  const words = ['veil', 'ratchet', 'header', 'chain', 'key', 'nonce', 'skipped', 'padding', 'root', 'hello', 'ok', 'see you'];
  const seed = det(`ratchet/text/${label}`, 64);
  let s = '';
  for (let i = 0; s.length < len; i++) s += (s ? ' ' : '') + words[seed[i % 64] % words.length];
  return ascii(s.slice(0, len));
}

export class Conversation {
  constructor(name, keys, bobSpk) {
    this.name = name;
    this.rng = { alice: recordingRng(`ratchet/${name}/alice`), bob: recordingRng(`ratchet/${name}/bob`) };
    this.state = {
      alice: V.initAlice(keys, bobSpk.pk, this.rng.alice),
      bob: V.initBob(keys, bobSpk),
    };
    this.aliceInitRng = this.rng.alice.take();
    assert(this.aliceInitRng.length === 32, 'alice init draws 32');
    this.head = {
      sk: hex(keys.sk), hka: hex(keys.hka), nhkb: hex(keys.nhkb), ad: hex(keys.ad),
      bob_spk_sk: hex(bobSpk.sk), bob_spk_pk: hex(bobSpk.pk),
      alice_init_rng: hex(this.aliceInitRng),
    };
    this.msgs = [];
    this.events = [];
    this.craftCount = 0;
    // snaps[k] = both parties' states after the first k events (snaps[0]:
    // right after initialisation). States are never modified in place, so
    // references suffice. Used by state.json (SPEC 10.3).
    this.snaps = [{ ...this.state }];
  }

  record(ev) {
    this.events.push(ev);
    this.snaps.push({ ...this.state });
  }

  enc(party, pt) {
    if (typeof pt === 'number') pt = text(`${this.name}/${this.msgs.length}`, pt);
    const wasPending = this.state[party].pending;
    const r = V.ratchetEncrypt(this.state[party], pt, this.rng[party]);
    const drawn = this.rng[party].take();
    assert(drawn.length === (wasPending ? 56 : 24), 'encrypt draws');
    assert(r.message.length === 97 + V.paddedLength(pt.length) + 0, 'message size');
    this.state[party] = r.state;
    const id = this.msgs.length;
    this.msgs.push({ party, pt, ct: r.message });
    this.record({
      op: 'encrypt', party, id, rng: hex(drawn), plaintext: hex(pt),
      header: hex(r.hdr), mk: hex(r.mk), ciphertext: hex(r.message),
    });
    return id;
  }

  encError(party, pt, error) {
    const before = V.stateSnapshot(this.state[party]);
    try {
      V.ratchetEncrypt(this.state[party], pt, this.rng[party]);
    } catch (e) {
      assert(e.veil === error, `encrypt error ${e.message}, want ${error}`);
      assert(this.rng[party].take().length === 0, 'failed encrypt drew nothing');
      assert(V.stateSnapshot(this.state[party]) === before, 'state unchanged');
      this.record({ op: 'encrypt', party, rng: '', plaintext: hex(pt), error });
      return;
    }
    throw new Error(`encrypt succeeded, want ${error}`);
  }

  // The party encrypts `count` empty messages that are never delivered; each
  // draws a 24-octet nonce, which is all zero here (pending must be 0 so
  // that no ratchet secret is drawn).
  skip(party, count) {
    assert(!this.state[party].pending && this.state[party].CKs, 'skip needs an open sending chain');
    const zero = (n) => new Uint8Array(n);
    for (let i = 0; i < count; i++) this.state[party] = V.ratchetEncrypt(this.state[party], new Uint8Array(0), zero).state;
    this.record({ op: 'skip', party, count, nonce: hex(zero(24)) });
  }

  // Delivers message `id` to its recipient. opts: {error, tamper: {offset, xor}}.
  dec(id, opts = {}) {
    const m = this.msgs[id];
    const party = other(m.party);
    let ct = m.ct;
    const ev = { op: 'decrypt', party, id };
    if (opts.tamper) {
      ct = ct.slice();
      ct[opts.tamper.offset] ^= opts.tamper.xor;
      ev.tamper = opts.tamper;
    }
    this.deliver(party, ct, ev, opts.error, m.pt, opts.kase);
  }

  // Delivers a constructed message to `party`; it must fail with `error`.
  decRaw(party, name, ct, error) {
    this.deliver(party, ct, { op: 'decrypt', party, name, ciphertext: hex(ct) }, error, null);
  }

  deliver(party, ct, ev, error, expectPt, expectKase) {
    const before = V.stateSnapshot(this.state[party]);
    if (error) {
      try {
        V.ratchetDecrypt(this.state[party], ct);
      } catch (e) {
        if (!(e instanceof V.VeilError)) throw e;
        assert(e.veil === error, `${this.name} event ${this.events.length}: got ${e.message}, want ${error}`);
        assert(V.stateSnapshot(this.state[party]) === before, 'state unchanged on failure');
        ev.error = error;
        this.record(ev);
        return;
      }
      throw new Error(`${this.name} event ${this.events.length}: decrypt succeeded, want ${error}`);
    }
    const r = V.ratchetDecrypt(this.state[party], ct);
    assert(equal(r.plaintext, expectPt), 'plaintext round trip');
    if (expectKase) assert(r.kase === expectKase, `${this.name} event ${this.events.length}: case ${r.kase}, want ${expectKase}`);
    this.state[party] = r.state;
    ev.plaintext = hex(r.plaintext);
    ev.case = r.kase;
    this.record(ev);
  }

  // Builds a message for `party` with chosen header fields under header
  // key `hk` and body key `mk` (random when not given).
  craft(party, { hk, dh, pn, n, mk, padded }) {
    const k = this.craftCount++;
    const st = this.state[party];
    return V.buildMessage({
      hk,
      mk: mk || det(`ratchet/${this.name}/craft/${k}/mk`, 32),
      nonce: det(`ratchet/${this.name}/craft/${k}/nonce`, 24),
      hdr: V.encodeHdr(dh, pn, n),
      ad: st.AD,
      padded: padded || V.pad(ascii('crafted')),
    });
  }

  freshPk(tag) {
    return V.x25519Base(det(`ratchet/${this.name}/fresh/${tag}`, 32));
  }

  json() {
    return { ...this.head, events: this.events };
  }
}

// Crafted failures against the current state of `party`, none of which may
// change it.
function craftCaseA(c, party) {
  const st = c.state[party];
  assert(st.HKr, 'case a needs HKr');
  c.decRaw(party, 'case_a_dh_differs_from_dhrr',
    c.craft(party, { hk: st.HKr, dh: c.freshPk(`${c.events.length}`), pn: 0, n: st.Nr }), 'VEIL_EAUTH');
  c.decRaw(party, 'case_a_n_max',
    c.craft(party, { hk: st.HKr, dh: st.DHRr, pn: 0, n: 0xffffffff }), 'VEIL_ELIMIT');
  c.decRaw(party, 'case_a_skip_1001',
    c.craft(party, { hk: st.HKr, dh: st.DHRr, pn: 0, n: st.Nr + 1001 }), 'VEIL_ESKIP');
  // A correct header and body key, but the body's padding is invalid.
  const mk = V.kdfCk(st.CKr).mk;
  c.decRaw(party, 'case_a_bad_padding',
    c.craft(party, { hk: st.HKr, dh: st.DHRr, pn: 0, n: st.Nr, mk, padded: new Uint8Array(64) }), 'VEIL_EPAD');
  c.decRaw(party, 'case_a_bad_padding_marker_then_nonzero',
    c.craft(party, { hk: st.HKr, dh: st.DHRr, pn: 0, n: st.Nr, mk, padded: concat(V.pad(ascii('x')).slice(0, 63), Uint8Array.of(1)) }), 'VEIL_EPAD');
  // A correct header, but a body encrypted under a wrong key.
  c.decRaw(party, 'case_a_wrong_body_key',
    c.craft(party, { hk: st.HKr, dh: st.DHRr, pn: 0, n: st.Nr }), 'VEIL_EAUTH');
}

function craftCaseB(c, party) {
  const st = c.state[party];
  assert(!st.pending && st.CKr && st.Nr > 0, 'case b preconditions');
  c.decRaw(party, 'case_b_dh_equals_dhrr',
    c.craft(party, { hk: st.NHKr, dh: st.DHRr, pn: st.Nr, n: 0 }), 'VEIL_EAUTH');
  c.decRaw(party, 'case_b_pn_below_nr',
    c.craft(party, { hk: st.NHKr, dh: c.freshPk(`${c.events.length}`), pn: st.Nr - 1, n: 0 }), 'VEIL_EAUTH');
  c.decRaw(party, 'case_b_pn_skips_1001',
    c.craft(party, { hk: st.NHKr, dh: c.freshPk(`${c.events.length}`), pn: st.Nr + 1001, n: 0 }), 'VEIL_ESKIP');
  c.decRaw(party, 'case_b_n_1001',
    c.craft(party, { hk: st.NHKr, dh: c.freshPk(`${c.events.length}`), pn: st.Nr, n: 1001 }), 'VEIL_ESKIP');
  c.decRaw(party, 'case_b_dh_zero_point',
    c.craft(party, { hk: st.NHKr, dh: SMALL_ORDER.zero, pn: st.Nr, n: 0 }), 'VEIL_EKEY');
  c.decRaw(party, 'case_b_dh_order8_point',
    c.craft(party, { hk: st.NHKr, dh: SMALL_ORDER.order8, pn: st.Nr, n: 0 }), 'VEIL_EKEY');
  c.decRaw(party, 'case_b_wrong_body_key',
    c.craft(party, { hk: st.NHKr, dh: c.freshPk(`${c.events.length}`), pn: st.Nr, n: 0 }), 'VEIL_EAUTH');
}

function mainConversation(x3dh) {
  const keys = {
    sk: x3dh.init.sk, hka: x3dh.init.hka, nhkb: x3dh.init.nhkb, ad: x3dh.init.ad,
  };
  const c = new Conversation('main', keys, x3dh.bob.spk);

  // The responder cannot send before it has received.
  c.encError('bob', text('early', 5), 'VEIL_ESTATE');

  // Chain A1 (Alice's first sending chain).
  const e0 = c.enc('alice', 0);
  const e1 = c.enc('alice', 1);
  const e2 = c.enc('alice', 63);
  const e3 = c.enc('alice', 64);
  c.dec(e0, { kase: 'b' }); // Bob's first DH step
  c.dec(e2, { kase: 'a' }); // skips e1
  c.dec(e3, { kase: 'a' });
  c.dec(e1, { kase: 'a' }); // stored key
  c.dec(e1, { error: 'VEIL_EREPLAY' }); // replay
  c.dec(e3, { error: 'VEIL_EREPLAY' });
  // Bob has a pending sending half: his NHKr is not tried.
  c.decRaw('bob', 'nhkr_while_pending',
    c.craft('bob', { hk: c.state.bob.NHKr, dh: c.freshPk('p1'), pn: 0, n: 0 }), 'VEIL_EAUTH');

  // Chain B1; Alice keeps sending in A1 meanwhile.
  const e4 = c.enc('bob', 100);
  const e5 = c.enc('bob', 256);
  const e6 = c.enc('bob', 1000);
  const e7 = c.enc('alice', 2);
  c.dec(e5, { kase: 'b' }); // Alice's first DH step, skips e4
  c.dec(e4, { tamper: { offset: 81 + 7, xor: 0x20 }, error: 'VEIL_EAUTH' }); // body
  c.dec(e4, { tamper: { offset: 25 + 3, xor: 0x01 }, error: 'VEIL_EAUTH' }); // encrypted header
  c.dec(e4, { tamper: { offset: 5, xor: 0x80 }, error: 'VEIL_EAUTH' }); // nonce
  c.dec(e4, { tamper: { offset: 0, xor: 0x03 }, error: 'VEIL_EVERSION' }); // version 2
  c.dec(e4, { kase: 'a' }); // the genuine one still decrypts
  c.dec(e6, { kase: 'a' });
  craftCaseA(c, 'alice');
  c.decRaw('alice', 'too_short_160', c.msgs[e6].ct.slice(0, 160), 'VEIL_EINVAL');
  c.decRaw('alice', 'header_of_e5_body_of_e6', concat(c.msgs[e5].ct.slice(0, 81), c.msgs[e6].ct.slice(81)), 'VEIL_EREPLAY');

  // Chain A2. e7 (A1) is delivered after A2's messages.
  const e8 = c.enc('alice', 65);
  const e9 = c.enc('alice', 17);
  const e10 = c.enc('alice', 31);
  c.dec(e9, { kase: 'b' }); // stores A1 key 4 (e7) and A2 key 0 (e8)
  c.dec(e10, { kase: 'a' });
  c.dec(e7, { kase: 'c' }); // previous chain, after the new chain's messages
  c.dec(e8, { kase: 'a' });
  // A1's slot was freed with its last key: a replay of e7 opens under no key.
  c.dec(e7, { error: 'VEIL_EAUTH' });
  c.dec(e0, { error: 'VEIL_EAUTH' });

  // Chain B2; e12 is lost.
  const e11 = c.enc('bob', 42);
  const e12 = c.enc('bob', 12);
  const e13 = c.enc('bob', 4096);
  craftCaseB(c, 'alice');
  c.dec(e13, { tamper: { offset: 81 + 4000, xor: 0x01 }, error: 'VEIL_EAUTH' }); // a DH-step message with a bad body
  c.dec(e13, { kase: 'b' }); // stores e11, e12
  c.dec(e11, { kase: 'a' });
  void e12; // never delivered

  // Chain A3.
  const e14 = c.enc('alice', 7);
  const e15 = c.enc('alice', 128);
  c.dec(e15, { kase: 'b' });
  c.dec(e14, { kase: 'a' });

  // Chain B3.
  const e16 = c.enc('bob', 33);
  const e17 = c.enc('bob', 64);
  const e18 = c.enc('bob', 255);
  // A header that opens (a new DH step) with another message's body.
  c.decRaw('alice', 'header_of_e17_body_of_e18', concat(c.msgs[e17].ct.slice(0, 81), c.msgs[e18].ct.slice(81)), 'VEIL_EAUTH');
  c.dec(e16, { kase: 'b' });
  c.dec(e18, { kase: 'a' });
  c.dec(e17, { kase: 'a' });
  c.dec(e13, { error: 'VEIL_EREPLAY' }); // B2's slot still holds e12's key
  c.dec(e16, { error: 'VEIL_EREPLAY' });

  // Chain A4.
  const e19 = c.enc('alice', 9);
  const e20 = c.enc('alice', 300);
  const e21 = c.enc('alice', 1);
  c.dec(e19, { kase: 'b' });
  c.dec(e20, { kase: 'a' });
  c.dec(e21, { kase: 'a' });
  c.dec(e20, { error: 'VEIL_EREPLAY' });

  // Chain B4; e23 is delivered after B5's first message.
  const e22 = c.enc('bob', 60);
  const e23 = c.enc('bob', 61);
  c.dec(e22, { kase: 'b' });
  const e24 = c.enc('alice', 62); // chain A5
  c.dec(e24, { kase: 'b' });
  const e25 = c.enc('bob', 1000); // chain B5, PN = 2
  c.dec(e25, { kase: 'b' }); // stores B4 key 1 (e23)
  c.dec(e23, { kase: 'c' });
  c.dec(e23, { error: 'VEIL_EAUTH' }); // B4's slot is gone with its last key

  // Chain A6.
  const e26 = c.enc('alice', 100);
  const e27 = c.enc('alice', 0);
  c.dec(e27, { kase: 'b' });
  c.dec(e26, { kase: 'a' });
  c.dec(e25, { error: 'VEIL_EREPLAY' });

  const n = c.msgs.length;
  const steps = c.events.filter((e) => e.case === 'b').length;
  assert(n >= 24 && steps >= 4, 'main conversation size');
  // Alice still holds e12's key and nothing else.
  assert(c.state.alice.skipped.entries.length === 1, 'one lost key remains');
  return c;
}

// MAX_SKIP at its bounds in both cases a and b, and the FIFO eviction of
// MAX_SKIPPED.
function skipScenario() {
  const keys = {
    sk: det('ratchet/skip/sk', 32), hka: det('ratchet/skip/hka', 32), nhkb: det('ratchet/skip/nhkb', 32), ad: det('ratchet/skip/ad', 128),
  };
  const spkSk = det('ratchet/skip/bob_spk_sk', 32);
  const c = new Conversation('skip', keys, { sk: spkSk, pk: V.x25519Base(spkSk) });
  const i0 = c.enc('alice', 10); // N = 0
  c.skip('alice', 999); // N = 1..999
  const i1 = c.enc('alice', 11); // N = 1000
  const i2 = c.enc('alice', 12); // N = 1001
  c.skip('alice', 999); // N = 1002..2000
  const i3 = c.enc('alice', 13); // N = 2001
  const i4 = c.enc('alice', 14); // N = 2002
  const i5 = c.enc('alice', 15); // N = 2003
  c.dec(i2, { error: 'VEIL_ESKIP' }); // case b, N = 1001
  c.dec(i1, { kase: 'b' }); // case b, N = 1000: stores 0..999
  c.dec(i4, { error: 'VEIL_ESKIP' }); // case a, N - Nr = 1001
  c.dec(i3, { kase: 'a' }); // case a, N - Nr = 1000: stores 1001..2000, evicting 0..999
  assert(c.state.bob.skipped.entries.length === 1000, 'store full');
  c.dec(i0, { error: 'VEIL_EREPLAY' }); // evicted
  c.dec(i2, { kase: 'a' });
  c.dec(i2, { error: 'VEIL_EREPLAY' });
  c.dec(i4, { kase: 'a' });
  c.dec(i5, { kase: 'a' });

  const j6 = c.enc('bob', 20); // N = 0 of Bob's first chain
  c.skip('bob', 1000); // N = 1..1000
  const j7 = c.enc('bob', 21); // N = 1001
  c.dec(j6, { kase: 'b' });
  const j8 = c.enc('alice', 22); // PN = 2004
  c.dec(j8, { kase: 'b' });
  const j9 = c.enc('bob', 23); // PN = 1002
  c.dec(j9, { error: 'VEIL_ESKIP' }); // case b, PN - Nr = 1001
  c.dec(j7, { kase: 'a' }); // case a, N - Nr = 1000
  c.dec(j9, { kase: 'b' });
  c.jsonName = 'skip_limits';
  return c;
}

// Seven receiving chains with stored keys: the seventh evicts the first
// chain's slot (SPEC 6.7 step 2).
function slotScenario() {
  const keys = {
    sk: det('ratchet/slots/sk', 32), hka: det('ratchet/slots/hka', 32), nhkb: det('ratchet/slots/nhkb', 32), ad: det('ratchet/slots/ad', 128),
  };
  const spkSk = det('ratchet/slots/bob_spk_sk', 32);
  const c = new Conversation('slots', keys, { sk: spkSk, pk: V.x25519Base(spkSk) });
  c.dec(c.enc('alice', 3), { kase: 'b' });
  const firsts = [];
  for (let k = 1; k <= 7; k++) {
    firsts.push(c.enc('bob', 4 + k));
    c.dec(c.enc('bob', 20 + k), { kase: 'b' }); // stores the chain's key 0
    const used = c.state.alice.skipped.slots.filter((s) => s.used).length;
    assert(used === Math.min(k, 6), 'slots in use');
    c.dec(c.enc('alice', 40 + k), { kase: 'b' });
  }
  assert(c.state.alice.skipped.entries.length === 6, 'six stored keys');
  c.dec(firsts[0], { error: 'VEIL_EAUTH' }); // chain 1 was dropped with its slot
  c.dec(firsts[1], { kase: 'c' });
  c.dec(firsts[6], { kase: 'a' }); // chain 7 is the current receiving chain
  c.dec(firsts[5], { kase: 'c' });
  c.dec(firsts[1], { error: 'VEIL_EAUTH' });
  // Chain 8 takes a freed slot.
  const b8a = c.enc('bob', 50);
  c.dec(c.enc('bob', 51), { kase: 'b' });
  c.dec(b8a, { kase: 'a' });
  for (const k of [2, 3, 4]) c.dec(firsts[k], { kase: 'c' });
  assert(c.state.alice.skipped.entries.length === 0 && c.state.alice.skipped.slots.every((s) => !s.used), 'store empty');
  c.jsonName = 'header_key_slots';
  return c;
}

// The three conversations of ratchet.json, with every intermediate state
// (Conversation.snaps), so that state.json can serialize them.
export function ratchetConversations(x3dh) {
  return { main: mainConversation(x3dh), skip: skipScenario(), slots: slotScenario() };
}

export function ratchetVectors(x3dh, convs = ratchetConversations(x3dh)) {
  const named = (c) => ({ name: c.jsonName, ...c.json() });
  return { ...convs.main.json(), scenarios: [named(convs.skip), named(convs.slots)] };
}
