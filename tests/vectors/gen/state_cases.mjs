// SPDX-License-Identifier: ISC
//
// state.json (SPEC 10.2, 10.3): serialized keyrings built step by step from
// explicit draws, serialized Double Ratchet states taken at chosen events of
// the conversations of ratchet.json (and of one more conversation kept in
// this file), continuations that prove a loaded state works, and invalid
// serializations with exactly one defect each.

import * as V from './veil.mjs';
import * as S from './state.mjs';
import { hex, ascii, concat, equal, u8, u16, u32 } from './veil.mjs';
import { det, recordingRng, fixedRng } from './det.mjs';
import { Conversation } from './ratchet_cases.mjs';

function assert(cond, what) {
  if (!cond) throw new Error(`generator self-check failed: ${what}`);
}
function expectError(fn, name, what) {
  try {
    fn();
  } catch (e) {
    if (e instanceof V.VeilError) {
      assert(e.veil === name, `${what}: got ${e.message}, want ${name}`);
      return;
    }
    throw e;
  }
  throw new Error(`generator self-check failed: ${what}: succeeded, want ${name}`);
}
const mut = (b, f) => { const c = b.slice(); f(c); return c; };

// ---------------------------------------------------------------------------
// Keyrings (SPEC 3.2, 10.2)

const T_CREATED = 1732521600; // 2024-11-25 08:00:00 UTC
const T_ROTATED = 1733126400; // one week later
const T_ROTATED_AGAIN = 4294967296 + 1234567; // beyond 2^32: the high word of the u64 is non-zero

function checkKeyring(kr, bytes, what) {
  assert(equal(S.serializeKeyring(kr), bytes), `${what}: serialize`);
  const loaded = S.loadKeyring(bytes);
  assert(equal(S.serializeKeyring(loaded), bytes), `${what}: load then serialize`);
  assert(JSON.stringify(S.keyringPublic(loaded)) === JSON.stringify(S.keyringPublic(kr)), `${what}: public keys recomputed`);
  return loaded;
}

function keyringVectors() {
  const rng = recordingRng('state/keyring');
  const steps = [];
  const step = (json, kr) => {
    const bytes = S.serializeKeyring(kr);
    checkKeyring(kr, bytes, json.op);
    steps.push({ ...json, public: S.keyringPublic(kr), serialized: hex(bytes) });
    return kr;
  };

  let kr = S.newKeyring(rng, T_CREATED);
  let drawn = rng.take();
  assert(drawn.length === 96, 'create draws 96');
  assert(equal(drawn.slice(0, 32), kr.seed) && equal(drawn.slice(32, 64), kr.dh.sk) && equal(drawn.slice(64), kr.spk.sk), 'create draw order');
  step({ op: 'create', rng: hex(drawn), created: T_CREATED }, kr);

  kr = S.addOneTimePrekeys(kr, 5, rng);
  drawn = rng.take();
  assert(drawn.length === 160 && equal(drawn.slice(64, 96), kr.opks[2].sk), 'opk draws in id order');
  step({ op: 'add_opks', count: 5, rng: hex(drawn) }, kr);

  kr = S.rotateSignedPrekey(kr, rng, T_ROTATED);
  drawn = rng.take();
  assert(drawn.length === 32 && kr.spk.id === 2 && kr.prev.id === 1, 'first rotation');
  step({ op: 'rotate_spk', rng: hex(drawn), created: T_ROTATED }, kr);

  kr = S.rotateSignedPrekey(kr, rng, T_ROTATED_AGAIN);
  drawn = rng.take();
  assert(drawn.length === 32 && kr.spk.id === 3 && kr.prev.id === 2 && kr.nextSpkId === 4, 'second rotation');
  step({ op: 'rotate_spk', rng: hex(drawn), created: T_ROTATED_AGAIN }, kr);

  kr = S.removeOneTimePrekey(kr, 3);
  assert(rng.take().length === 0 && kr.opks.map((o) => o.id).join() === '1,2,4,5' && kr.nextOpkId === 6, 'removal');
  step({ op: 'remove_opk', id: 3 }, kr);
  const final = kr;

  // --- accepted: loads that must succeed although no API call produces them.
  const ident = { seed: final.seed, sig: final.sig, dh: final.dh, idsig: final.idsig };
  const accepted = [];
  const accept = (name, k, note) => {
    const bytes = S.serializeKeyring(k);
    checkKeyring(k, bytes, name);
    accepted.push({ name, note, public: S.keyringPublic(k), serialized: hex(bytes) });
  };
  {
    const k = structuredClone(final);
    k.spk.sig = S.ed25519SignWithNonce(final.seed, V.spkMessage(k.spk.id, k.spk.pk), det('state/keyring/spk_sig_nonce', 32));
    accept('spk_sig_valid_not_deterministic', k, 'spk_sig verifies but is not the deterministic signature: SPEC 10.2 only requires that it verifies');
  }
  {
    const k = structuredClone(final);
    const spk = V.newSignedPrekey(ident, 0x01020304, fixedRng(final.spk.sk));
    k.spk = { ...spk, created: T_ROTATED_AGAIN };
    k.prev.id = 0x00fffffe;
    k.prev.sig = V.sign(final.sig.sk, V.spkMessage(k.prev.id, k.prev.pk));
    k.nextSpkId = 0x80000000;
    k.opks = k.opks.map((o, i) => ({ ...o, id: [300, 65537, 0x00ff00ff, 0x7ffffffe][i] }));
    k.nextOpkId = 0xffffffff;
    accept('large_ids', k, 'ids above 255 and 65535 (byte order); ids need not be contiguous');
  }
  {
    const k = structuredClone(final);
    k.opks = Array.from({ length: 200 }, (_, i) => V.newOneTimePrekey(i + 1, fixedRng(det(`state/keyring/opk200/${i}`, 32))));
    k.nextOpkId = 201;
    accept('opk_count_200', k, 'the largest number of one-time prekeys');
  }

  // --- invalid: one defect each, against the final keyring (has_prev = 1,
  // four one-time prekeys 1, 2, 4, 5).
  const base = S.serializeKeyring(final);
  const O = { idsig: 65, nextSpk: 129, nextOpk: 133, spk: 137, hasPrev: 245, prev: 246, count: 354, opks: 356 };
  assert(base[O.hasPrev] === 1 && base.length === O.opks + 4 * 36, 'keyring layout');
  const opkAt = (i) => O.opks + 36 * i;
  const withOpks = (k, opks, nextOpkId) => S.serializeKeyring({ ...k, opks, nextOpkId });
  const invalid = [
    ['empty', new Uint8Array(0), 'VEIL_ECORRUPT'],
    ['version_0', mut(base, (b) => { b[0] = 0; }), 'VEIL_EVERSION'],
    ['version_2', mut(base, (b) => { b[0] = 2; }), 'VEIL_EVERSION'],
    ['truncated_by_one', base.slice(0, base.length - 1), 'VEIL_ECORRUPT'],
    ['truncated_in_prev_spk', base.slice(0, O.prev + 50), 'VEIL_ECORRUPT'],
    ['trailing_octet', concat(base, u8(0)), 'VEIL_ECORRUPT'],
    ['opk_count_one_more_than_present', mut(base, (b) => b.set(u16(5), O.count)), 'VEIL_ECORRUPT'],
    ['opk_count_one_less_than_present', mut(base, (b) => b.set(u16(3), O.count)), 'VEIL_ECORRUPT'],
    ['idsig_flipped', mut(base, (b) => { b[O.idsig + 9] ^= 0x02; }), 'VEIL_ECORRUPT'],
    ['idsig_valid_not_deterministic', mut(base, (b) => b.set(S.ed25519SignWithNonce(final.seed, V.idkMessage(final.dh.pk), det('state/keyring/idsig_nonce', 32)), O.idsig)), 'VEIL_ECORRUPT'],
    ['spk_sig_flipped', mut(base, (b) => { b[O.spk + 36 + 3] ^= 0x01; }), 'VEIL_ECORRUPT'],
    ['prev_spk_sig_flipped', mut(base, (b) => { b[O.prev + 36 + 40] ^= 0x10; }), 'VEIL_ECORRUPT'],
    ['spk_sig_of_prev', mut(base, (b) => b.set(final.prev.sig, O.spk + 36)), 'VEIL_ECORRUPT'],
    ['has_prev_2', mut(base, (b) => { b[O.hasPrev] = 2; }), 'VEIL_ECORRUPT'],
    ['spk_id_equals_next_spk_id', mut(base, (b) => b.set(u32(3), O.nextSpk)), 'VEIL_ECORRUPT'],
    ['spk_id_above_next_spk_id', mut(base, (b) => b.set(u32(1), O.nextSpk)), 'VEIL_ECORRUPT'],
    ['opk_id_equals_next_opk_id', mut(base, (b) => b.set(u32(5), O.nextOpk)), 'VEIL_ECORRUPT'],
    ['opk_ids_not_increasing', mut(base, (b) => { const a = b.slice(opkAt(1), opkAt(2)); b.copyWithin(opkAt(1), opkAt(2), opkAt(3)); b.set(a, opkAt(2)); }), 'VEIL_ECORRUPT'],
    ['opk_ids_duplicate', mut(base, (b) => b.set(u32(2), opkAt(2))), 'VEIL_ECORRUPT'],
    ['opk_count_201', withOpks(final, Array.from({ length: 201 }, (_, i) => V.newOneTimePrekey(i + 1, fixedRng(det(`state/keyring/opk201/${i}`, 32)))), 202), 'VEIL_ECORRUPT'],
  ].map(([name, bytes, error]) => {
    expectError(() => S.loadKeyring(bytes), error, `keyring ${name}`);
    return { name, bytes: hex(bytes), error };
  });
  // The swapped and duplicated ids are where the layout says.
  assert(V.rdU32(base, opkAt(1)) === 2 && V.rdU32(base, opkAt(2)) === 4, 'opk offsets');
  return { keyrings: steps, accepted_keyrings: accepted, invalid_keyrings: invalid };
}

// ---------------------------------------------------------------------------
// Sessions (SPEC 10.3)

// One more conversation: a responder whose store holds several keys in each
// of three slots, with deletions in the middle of the insertion order.
function mixedConversation() {
  const keys = {
    sk: det('state/mixed/sk', 32), hka: det('state/mixed/hka', 32), nhkb: det('state/mixed/nhkb', 32), ad: det('state/mixed/ad', 128),
  };
  const spkSk = det('state/mixed/bob_spk_sk', 32);
  const c = new Conversation('state_mixed', keys, { sk: spkSk, pk: V.x25519Base(spkSk) });
  const a1 = [5, 70, 0, 130, 9].map((n) => c.enc('alice', n));
  c.dec(a1[4], { kase: 'b' }); // stores A1 0..3 in slot 0
  c.dec(a1[1], { kase: 'a' });
  c.dec(c.enc('bob', 12), { kase: 'b' });
  const a2 = [3, 44, 200, 1].map((n) => c.enc('alice', n));
  c.dec(a2[3], { kase: 'b' }); // stores A2 0..2 in slot 1
  c.dec(a2[1], { kase: 'a' });
  c.dec(c.enc('bob', 13), { kase: 'b' });
  const a3 = [8, 64, 63].map((n) => c.enc('alice', n));
  c.dec(a3[2], { kase: 'b' }); // stores A3 0..1 in slot 2
  c.dec(a1[0], { kase: 'c' });
  c.mark = c.events.length; // the state serialized as "bob_three_slots"
  c.dec(a2[2], { kase: 'c' });
  c.dec(a1[3], { kase: 'c' });
  c.dec(a3[0], { kase: 'a' });
  c.dec(a1[2], { kase: 'c' }); // slot 0 freed
  c.dec(a2[0], { kase: 'c' }); // slot 1 freed
  c.dec(c.enc('bob', 14), { kase: 'b' });
  c.dec(a3[1], { kase: 'a' }); // A3 is still the receiving chain
  const st = c.state.bob.skipped;
  assert(st.entries.length === 0 && st.slots.every((s) => !s.used), 'mixed: store empty at the end');
  c.jsonName = 'state_mixed';
  c.ids = { a1, a2, a3 };
  return c;
}

function sessionInfo(st) {
  const b = S.serializeSession(st);
  return {
    flags: b[1], pending: st.pending, ns: st.Ns, nr: st.Nr, pn: st.PN,
    slots_used: st.skipped.slots.map((s, i) => (s.used ? i : -1)).filter((i) => i >= 0),
    skipped: st.skipped.entries.map((e) => [e.slot, e.n]),
  };
}

function loadChecked(bytes, st, what) {
  const loaded = S.loadSession(bytes);
  assert(V.stateSnapshot(loaded) === V.stateSnapshot(st), `${what}: loaded state equals the original`);
  assert(equal(S.serializeSession(loaded), bytes), `${what}: load then serialize`);
  return loaded;
}

function sessionVectors(convs) {
  const conv = { main: convs.main, skip_limits: convs.skip, header_key_slots: convs.slots, state_mixed: mixedConversation() };
  // The number of events replayed up to and including the first event that
  // matches (op, party, id).
  const after = (c, op, party, id) => {
    const k = c.events.findIndex((e) => e.op === op && e.party === party && e.id === id && !e.error);
    assert(k >= 0, `event ${op} ${party} ${id}`);
    return k + 1;
  };
  const M = conv.main;
  const defs = [
    ['alice_init', 'main', 0, 'alice', 'the initiator right after initialisation (SPEC 6.3)'],
    ['bob_init', 'main', 0, 'bob', 'the responder right after initialisation (SPEC 6.3)'],
    ['bob_first_step_pending', 'main', after(M, 'decrypt', 'bob', 0), 'bob', 'the responder after its first message: pending = 1, no sending chain'],
    ['bob_out_of_order', 'main', after(M, 'decrypt', 'bob', 3), 'bob', 'the responder after messages 0, 2, 3 of chain A1: the key of message 1 is stored'],
    ['bob_after_reply', 'main', after(M, 'encrypt', 'bob', 4), 'bob', 'the responder after its first reply: every flag but pending'],
    ['alice_pending_stale_cks', 'main', after(M, 'decrypt', 'alice', 5), 'alice', 'the initiator after its first DH step: pending = 1 while CKs still holds its previous sending chain key (SPEC 6.5 does not clear it)'],
    ['bob_two_slots', 'main', after(M, 'decrypt', 'bob', 9), 'bob', 'keys of chains A1 (slot 0) and A2 (slot 1) stored'],
    ['alice_end', 'main', M.events.length, 'alice', 'the end of the main conversation: the lost message 12 keeps its key'],
    ['bob_end', 'main', M.events.length, 'bob', 'the end of the main conversation'],
    ['alice_six_slots', 'header_key_slots', after(conv.header_key_slots, 'decrypt', 'alice', 20), 'alice', 'six slots in use; the seventh chain evicted slot 0 and took it, so insertion order is slots 1, 2, 3, 4, 5, 0'],
    ['alice_slot_freed_in_middle', 'header_key_slots', after(conv.header_key_slots, 'decrypt', 'alice', 4), 'alice', 'slot 1 freed by using its only key; slots 0 and 2-5 in use'],
    ['alice_lowest_free_slot', 'header_key_slots', after(conv.header_key_slots, 'decrypt', 'alice', 23), 'alice', 'chain 8 took slot 0, the lowest free one (0 and 1 were free)'],
    ['bob_three_slots', 'state_mixed', conv.state_mixed.mark, 'bob', 'several keys in each of slots 0, 1, 2, with earlier deletions from the middle'],
  ];
  const sessions = [];
  const byName = {};
  for (const [name, cname, k, party, note] of defs) {
    const st = conv[cname].snaps[k][party];
    const bytes = S.serializeSession(st);
    assert(bytes.length === S.SESSION_FIXED + S.ENTRY_SIZE * st.skipped.entries.length, `${name}: size`);
    loadChecked(bytes, st, name);
    byName[name] = { st, bytes, c: conv[cname], k, party };
    sessions.push({ name, conversation: cname, events_applied: k, party, note, ...sessionInfo(st), serialized: hex(bytes) });
  }
  const I = (n) => sessions.find((s) => s.name === n);
  assert(I('bob_init').flags === 0 && I('alice_init').flags === 0x0b, 'init flags');
  assert(I('bob_first_step_pending').flags === 0x3d, 'pending without CKs');
  assert(I('alice_pending_stale_cks').flags === 0x3f, 'pending with stale CKs');
  assert(I('bob_after_reply').flags === 0x1f, 'all but pending');
  assert(I('alice_six_slots').slots_used.length === 6 && I('alice_six_slots').skipped[5][0] === 0, 'six slots');
  assert(I('bob_three_slots').slots_used.join() === '0,1,2' && I('bob_three_slots').skipped.length === 6, 'three slots');

  // --- continuations: the loaded state must do exactly what the original does.
  const continuations = [];
  const contDecrypt = (name, id, want) => {
    const s = byName[name];
    const m = s.c.msgs[id];
    assert(m.party !== s.party, 'message is for this party');
    const loaded = S.loadSession(s.bytes);
    const json = { session: name, op: 'decrypt', id, ciphertext: hex(m.ct) };
    if (want.error) {
      expectError(() => V.ratchetDecrypt(loaded, m.ct), want.error, `${name} decrypt ${id}`);
      expectError(() => V.ratchetDecrypt(s.st, m.ct), want.error, `${name} decrypt ${id} (original)`);
      json.error = want.error;
    } else {
      const r = V.ratchetDecrypt(loaded, m.ct);
      const r0 = V.ratchetDecrypt(s.st, m.ct);
      assert(equal(r.plaintext, m.pt) && r.kase === want.kase, `${name} decrypt ${id}`);
      const after = S.serializeSession(r.state);
      assert(equal(after, S.serializeSession(r0.state)), `${name}: same result as the original state`);
      Object.assign(json, { plaintext: hex(r.plaintext), case: r.kase, serialized_after: hex(after) });
    }
    continuations.push(json);
  };
  const contEncrypt = (name, len, want = {}) => {
    const s = byName[name];
    const loaded = S.loadSession(s.bytes);
    const pt = ascii(`${name}: continued after loading`.padEnd(len, '.').slice(0, len));
    const json = { session: name, op: 'encrypt' };
    if (want.error) {
      const rng = recordingRng(`state/cont/${name}`);
      expectError(() => V.ratchetEncrypt(loaded, pt, rng), want.error, `${name} encrypt`);
      assert(rng.take().length === 0, 'failed encryption draws nothing');
      Object.assign(json, { rng: '', plaintext: hex(pt), error: want.error });
    } else {
      const draws = det(`state/cont/${name}/rng`, loaded.pending ? 56 : 24);
      const rng = fixedRng(draws);
      const r = V.ratchetEncrypt(loaded, pt, rng);
      assert(rng.done(), 'every draw used');
      const r0 = V.ratchetEncrypt(s.st, pt, fixedRng(draws));
      assert(equal(r.message, r0.message), `${name}: same message as the original state`);
      // The peer, at the same point of the conversation, reads it.
      const peer = s.c.snaps[s.k][s.party === 'alice' ? 'bob' : 'alice'];
      assert(equal(V.ratchetDecrypt(peer, r.message).plaintext, pt), `${name}: the peer decrypts the continuation`);
      const after = S.serializeSession(r.state);
      loadChecked(after, r.state, `${name} after encrypt`);
      Object.assign(json, { rng: hex(draws), plaintext: hex(pt), header: hex(r.hdr), ciphertext: hex(r.message), serialized_after: hex(after) });
    }
    continuations.push(json);
  };
  const mx = conv.state_mixed.ids;
  contEncrypt('alice_init', 20);
  contDecrypt('bob_init', 0, { kase: 'b' });
  contEncrypt('bob_init', 5, { error: 'VEIL_ESTATE' });
  contEncrypt('bob_first_step_pending', 70);
  contDecrypt('bob_out_of_order', 1, { kase: 'a' });
  contDecrypt('bob_out_of_order', 3, { error: 'VEIL_EREPLAY' });
  contEncrypt('bob_after_reply', 0);
  contDecrypt('alice_pending_stale_cks', 4, { kase: 'a' });
  contEncrypt('alice_pending_stale_cks', 100);
  contDecrypt('bob_two_slots', 7, { kase: 'c' });
  contDecrypt('bob_two_slots', 0, { error: 'VEIL_EREPLAY' }); // A1's slot still holds key 4
  contDecrypt('alice_six_slots', 4, { kase: 'c' });
  contDecrypt('alice_six_slots', 1, { error: 'VEIL_EAUTH' });
  contEncrypt('alice_six_slots', 33);
  contDecrypt('bob_three_slots', mx.a2[2], { kase: 'c' });
  contDecrypt('bob_three_slots', mx.a1[0], { error: 'VEIL_EREPLAY' });
  contEncrypt('bob_three_slots', 64);

  // --- invalid: one defect each.
  const B = (n) => byName[n].bytes;
  const O = S.OFF;
  const rnd = (label) => det(`state/invalid/${label}`, 32);
  const slotUsed = (i) => O.slots + S.SLOT_SIZE * i;
  const setFlag = (b, f, on) => { b[O.flags] = on ? b[O.flags] | S.FLAG[f] : b[O.flags] & ~S.FLAG[f]; };
  const clearField = (f) => (b) => { setFlag(b, f, false); b.set(V.ZERO32, O[f]); };
  const withEntry = (bytes, slot, n, mk) => {
    const count = (bytes[O.count] << 8) | bytes[O.count + 1];
    const out = concat(bytes, u8(slot), u32(n), mk);
    out.set(u16(count + 1), O.count);
    return out;
  };
  const two = B('bob_two_slots');
  assert(two[slotUsed(0)] === 1 && two[slotUsed(1)] === 1 && two[slotUsed(2)] === 0 && two.length === S.SESSION_FIXED + 2 * S.ENTRY_SIZE, 'bob_two_slots layout');
  // Bob of skip_limits holding MAX_SKIPPED = 1000 keys (N 1001..2000, slot
  // 0). Not listed in sessions (75 KB); skipped_count_1001 is it with one
  // entry appended, so removing that entry and writing count 1000 gives it.
  const fullK = after(conv.skip_limits, 'decrypt', 'bob', 3);
  const fullSt = conv.skip_limits.snaps[fullK].bob;
  assert(fullK === 12 && fullSt.skipped.entries.length === 1000, 'store full');
  const full = S.serializeSession(fullSt);
  loadChecked(full, fullSt, 'store full');
  const invalid = [
    ['empty', 'bob_init', new Uint8Array(0), 'VEIL_ECORRUPT'],
    ['version_0', 'bob_two_slots', mut(two, (b) => { b[0] = 0; }), 'VEIL_EVERSION'],
    ['version_2', 'bob_two_slots', mut(two, (b) => { b[0] = 2; }), 'VEIL_EVERSION'],
    ['truncated_by_one', 'bob_two_slots', two.slice(0, two.length - 1), 'VEIL_ECORRUPT'],
    ['truncated_before_count', 'bob_two_slots', two.slice(0, O.count), 'VEIL_ECORRUPT'],
    ['truncated_in_fixed_part', 'bob_init', B('bob_init').slice(0, 300), 'VEIL_ECORRUPT'],
    ['trailing_octet', 'bob_two_slots', concat(two, u8(0)), 'VEIL_ECORRUPT'],
    ['count_one_more_than_present', 'bob_two_slots', mut(two, (b) => b.set(u16(3), O.count)), 'VEIL_ECORRUPT'],
    ['count_one_less_than_present', 'bob_two_slots', mut(two, (b) => b.set(u16(1), O.count)), 'VEIL_ECORRUPT'],
    ['flag_bit6', 'bob_two_slots', mut(two, (b) => { b[O.flags] |= 0x40; }), 'VEIL_ECORRUPT'],
    ['flag_bit7', 'alice_init', mut(B('alice_init'), (b) => { b[O.flags] |= 0x80; }), 'VEIL_ECORRUPT'],
    ['ckr_without_hkr', 'bob_after_reply', mut(B('bob_after_reply'), clearField('HKr')), 'VEIL_ECORRUPT'],
    ['hkr_without_ckr', 'bob_after_reply', mut(B('bob_after_reply'), clearField('CKr')), 'VEIL_ECORRUPT'],
    ['ckr_without_dhrr', 'bob_first_step_pending', mut(B('bob_first_step_pending'), clearField('DHRr')), 'VEIL_ECORRUPT'],
    ['cks_without_hks', 'alice_init', mut(B('alice_init'), clearField('HKs')), 'VEIL_ECORRUPT'],
    ['cks_without_dhrr', 'alice_init', mut(B('alice_init'), clearField('DHRr')), 'VEIL_ECORRUPT'],
    ['cks_without_hks_and_dhrr', 'alice_init', mut(B('alice_init'), (b) => { clearField('HKs')(b); clearField('DHRr')(b); }), 'VEIL_ECORRUPT'],
    ['pending_without_ckr', 'bob_init', mut(B('bob_init'), (b) => setFlag(b, 'pending', true)), 'VEIL_ECORRUPT'],
    ['pending_without_ckr_with_cks', 'alice_init', mut(B('alice_init'), (b) => setFlag(b, 'pending', true)), 'VEIL_ECORRUPT'],
    ['dhrr_nonzero_flag_clear', 'bob_init', mut(B('bob_init'), (b) => b.set(rnd('dhrr'), O.DHRr)), 'VEIL_ECORRUPT'],
    ['cks_nonzero_flag_clear', 'bob_first_step_pending', mut(B('bob_first_step_pending'), (b) => b.set(rnd('cks'), O.CKs)), 'VEIL_ECORRUPT'],
    ['ckr_nonzero_flag_clear', 'bob_init', mut(B('bob_init'), (b) => b.set(rnd('ckr'), O.CKr)), 'VEIL_ECORRUPT'],
    ['hks_nonzero_flag_clear', 'bob_init', mut(B('bob_init'), (b) => b.set(rnd('hks'), O.HKs)), 'VEIL_ECORRUPT'],
    ['hkr_nonzero_flag_clear', 'alice_init', mut(B('alice_init'), (b) => { b[O.HKr + 31] = 0x01; }), 'VEIL_ECORRUPT'],
    ['used_slot_octet_2', 'bob_two_slots', mut(two, (b) => { b[slotUsed(1)] = 2; }), 'VEIL_ECORRUPT'],
    ['free_slot_octet_2', 'bob_two_slots', mut(two, (b) => { b[slotUsed(4)] = 2; }), 'VEIL_ECORRUPT'],
    ['free_slot_nonzero_hk', 'bob_two_slots', mut(two, (b) => { b[slotUsed(5) + 1 + 16] = 0x80; }), 'VEIL_ECORRUPT'],
    ['free_slot_marked_used', 'bob_two_slots', mut(two, (b) => { b[slotUsed(3)] = 1; b.set(rnd('slot3'), slotUsed(3) + 1); }), 'VEIL_ECORRUPT'],
    ['used_slot_without_entries', 'bob_two_slots', mut(two.slice(0, two.length - S.ENTRY_SIZE), (b) => b.set(u16(1), O.count)), 'VEIL_ECORRUPT'],
    ['entry_names_free_slot', 'bob_two_slots', withEntry(two, 2, 7, rnd('mk_free')), 'VEIL_ECORRUPT'],
    ['entry_slot_6', 'bob_two_slots', withEntry(two, 6, 7, rnd('mk_6')), 'VEIL_ECORRUPT'],
    ['entry_slot_255', 'bob_two_slots', withEntry(two, 255, 7, rnd('mk_255')), 'VEIL_ECORRUPT'],
    ['duplicate_slot_n', 'bob_two_slots', withEntry(two, 0, 4, rnd('mk_dup')), 'VEIL_ECORRUPT'],
    ['skipped_count_1001', 'skip_limits/12/bob', withEntry(full, 0, 5, rnd('mk_1001')), 'VEIL_ECORRUPT'],
  ].map(([name, base, bytes, error]) => {
    expectError(() => S.loadSession(bytes), error, `session ${name}`);
    return { name, base, bytes: hex(bytes), error };
  });
  // The entries appended above are well-formed apart from their one defect:
  // the same entry with a fresh (slot, N) of a used slot loads.
  S.loadSession(withEntry(two, 1, 7, rnd('mk_ok')));
  S.loadSession(withEntry(mut(full.slice(0, full.length - S.ENTRY_SIZE), (b) => b.set(u16(999), O.count)), 0, 5, rnd('mk_ok')));
  // Not a defect (SPEC 10.3 lists nothing about it): the same (N) in two slots.
  S.loadSession(withEntry(two, 1, 4, rnd('mk_ok2')));

  const mixed = conv.state_mixed;
  return {
    conversations: [{ name: mixed.jsonName, ...mixed.json() }],
    sessions,
    continuations,
    invalid_sessions: invalid,
  };
}

export function stateVectors(convs) {
  return { ...keyringVectors(), ...sessionVectors(convs) };
}
