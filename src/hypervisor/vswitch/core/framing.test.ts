import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeTunnelMessage, encodeHello, encodeStreamFrame, encodeTunnelFrame, FramingError, LengthPrefixedReader, TUNNEL_MAX_MESSAGE } from './framing.ts';
import { parseFrame } from './ethernet.ts';

test('stream framing: 4-byte big-endian length then the frame, reassembled from any chunking', () => {
  const frames = [Buffer.alloc(60, 1), Buffer.alloc(1514, 2), Buffer.alloc(342, 3)];
  const wire = Buffer.concat(frames.map(encodeStreamFrame));
  assert.deepEqual([...wire.subarray(0, 4)], [0, 0, 0, 60]);
  for (const step of [1, 3, 7, 100, wire.length]) {
    const r = new LengthPrefixedReader(65_536);
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i += step) got.push(...r.push(wire.subarray(i, i + step)));
    assert.deepEqual(got, frames, `chunks of ${step}`);
    assert.equal(r.pending, 0);
  }
});

test('a length over the limit is a FramingError (the connection is closed, not resynchronised)', () => {
  const r = new LengthPrefixedReader(100);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(101);
  assert.throws(() => r.push(b), FramingError);
});

test('tunnel messages: HELLO and FRAME round trip; unknown types and bad uuids are refused', () => {
  const r = new LengthPrefixedReader(TUNNEL_MAX_MESSAGE);
  const frame = Buffer.from('ffffffffffff525400000001080600', 'hex');
  const msgs = r.push(Buffer.concat([encodeHello('127.102.0.1'), encodeTunnelFrame('subnet-a', frame)]));
  assert.deepEqual(msgs.map(decodeTunnelMessage), [
    { type: 'hello', version: 1, hostIp: '127.102.0.1' },
    { type: 'frame', subnetUuid: 'subnet-a', frame },
  ]);
  assert.equal(parseFrame(frame)?.src, '52:54:00:00:00:01');
  assert.throws(() => decodeTunnelMessage(Buffer.from([9, 0])), /unknown tunnel message type 9/);
  assert.throws(() => decodeTunnelMessage(Buffer.from([2, 0, 1, 2])), /uuid/);
  assert.throws(() => encodeTunnelFrame('x'.repeat(65), frame), RangeError);
});
