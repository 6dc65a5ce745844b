/**
 * @module
 * The two byte-stream framings of the virtual switch, big-endian throughout.
 *
 * QEMU's stream netdev (`-netdev stream`, QEMU 7.2 net/stream.c, the same as the older
 * `-netdev socket`): each Ethernet frame is a 4-byte length, then the frame. Nothing else is
 * sent either way, and a connection is one NIC.
 *
 * The tunnel between two hosts' switches (on hostIp:VSWITCH_TUNNEL_PORT, inside mutual TLS):
 * messages of a 4-byte length (of what follows), a 1-byte type and a body:
 * ```
 *   HELLO  (1)  version (1 byte, 1) · the sender's host address (ASCII)    first, once, from the dialer
 *   FRAME  (2)  subnet uuid length (1 byte) · subnet uuid (ASCII) · the Ethernet frame
 * ```
 * The frame is tagged with the subnet's uuid rather than its VLAN id: two subnets may share a
 * VLAN id on different physical networks, a uuid names exactly one segment.
 */
import { ETH_MAX_FRAME } from './ethernet.ts';

export const TUNNEL_HELLO = 1;
export const TUNNEL_FRAME = 2;
export const TUNNEL_VERSION = 1;
const MAX_UUID = 64;
/** The largest tunnel message: a maximal frame with its header. */
export const TUNNEL_MAX_MESSAGE = 1 + 1 + MAX_UUID + ETH_MAX_FRAME;

export class FramingError extends Error {}

/**
 * Splits a byte stream into length-prefixed messages. `push` returns the messages completed by
 * the chunk; a length over `max` throws FramingError (the connection is then closed: a peer that
 * sends one is broken or hostile, and its stream cannot be resynchronised).
 */
export class LengthPrefixedReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly max: number) {}

  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (len > this.max) throw new FramingError(`a message of ${len} bytes (at most ${this.max})`);
      if (this.buffered < 4 + len) break;
      this.take(4);
      out.push(this.take(len));
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    let first = this.chunks[0]!;
    if (first.length < n) {
      this.chunks = [Buffer.concat(this.chunks)];
      first = this.chunks[0]!;
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

/** A frame as QEMU's stream netdev reads it. */
export function encodeStreamFrame(frame: Uint8Array): Buffer {
  const b = Buffer.alloc(4 + frame.length);
  b.writeUInt32BE(frame.length, 0);
  Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).copy(b, 4);
  return b;
}

export function encodeHello(hostIp: string): Buffer {
  const ip = Buffer.from(hostIp, 'latin1');
  const b = Buffer.alloc(4 + 2 + ip.length);
  b.writeUInt32BE(2 + ip.length, 0);
  b[4] = TUNNEL_HELLO;
  b[5] = TUNNEL_VERSION;
  ip.copy(b, 6);
  return b;
}

export function encodeTunnelFrame(subnetUuid: string, frame: Uint8Array): Buffer {
  const id = Buffer.from(subnetUuid, 'latin1');
  if (id.length === 0 || id.length > MAX_UUID) throw new RangeError(`a subnet uuid of ${id.length} bytes`);
  const b = Buffer.alloc(4 + 2 + id.length + frame.length);
  b.writeUInt32BE(2 + id.length + frame.length, 0);
  b[4] = TUNNEL_FRAME;
  b[5] = id.length;
  id.copy(b, 6);
  Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).copy(b, 6 + id.length);
  return b;
}

export type TunnelMessage =
  | { type: 'hello'; version: number; hostIp: string }
  | { type: 'frame'; subnetUuid: string; frame: Buffer };

/** Decodes one tunnel message (without its length). Throws FramingError on a malformed one. */
export function decodeTunnelMessage(m: Buffer): TunnelMessage {
  if (m.length < 2) throw new FramingError('a tunnel message without a body');
  const type = m[0]!;
  switch (type) {
    case TUNNEL_HELLO:
      return { type: 'hello', version: m[1]!, hostIp: m.subarray(2).toString('latin1') };
    case TUNNEL_FRAME: {
      const n = m[1]!;
      if (n === 0 || n > MAX_UUID || m.length < 2 + n) throw new FramingError(`a subnet uuid of ${n} bytes`);
      return { type: 'frame', subnetUuid: m.subarray(2, 2 + n).toString('latin1'), frame: m.subarray(2 + n) };
    }
    default:
      throw new FramingError(`unknown tunnel message type ${type}`);
  }
}
