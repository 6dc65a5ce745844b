/**
 * @module
 * A learning switch for one L2 segment (one subnet), as an Ethernet bridge does it [IEEE 802.1D
 * §7.8, §7.9]: it learns which port each source MAC sits behind, sends a unicast frame to the port
 * its destination was learned on, and floods broadcast, multicast and unknown-destination frames.
 *
 * Ports are local (a VM's NIC on this host) or tunnels (the same segment on another host). The
 * hosts are a full mesh, each of them one tunnel hop from every other, so a frame that came in from
 * a tunnel is flooded to local ports only (split horizon): the sending host already flooded it to
 * every other host itself, and sending it on would loop it.
 *
 * Invariants:
 *  1. A frame never goes back out of the port it came in on.
 *  2. A frame from a tunnel never goes out of a tunnel.
 *  3. An entry older than `agingMs` is not used (and is removed when met); the table holds at most
 *     `maxMacs` entries, evicting the least recently seen.
 *  4. Removing a port forgets every MAC learned on it.
 */
import type { Clock } from '../../../shared/clock.ts';
import { isGroupMac } from './ethernet.ts';

export type PortKind = 'local' | 'tunnel';

export interface MacEntry {
  port: string;
  seenAt: number;
}

export interface LearningSwitchOptions {
  /** How long a learned MAC is kept without traffic from it (Open vSwitch's default: 300 s). */
  agingMs?: number;
  /** The most MACs the table holds (bounded memory against a guest that sends from random MACs). */
  maxMacs?: number;
}

export const DEFAULT_AGING_MS = 300_000;
export const DEFAULT_MAX_MACS = 4096;

export class LearningSwitch {
  private readonly ports = new Map<string, PortKind>();
  /** Insertion order is least recently seen first (an entry is moved to the end when seen). */
  private readonly table = new Map<string, MacEntry>();
  readonly agingMs: number;
  readonly maxMacs: number;

  constructor(private readonly clock: Clock, o: LearningSwitchOptions = {}) {
    this.agingMs = o.agingMs ?? DEFAULT_AGING_MS;
    this.maxMacs = o.maxMacs ?? DEFAULT_MAX_MACS;
  }

  addPort(id: string, kind: PortKind): void {
    this.ports.set(id, kind);
  }

  removePort(id: string): void {
    this.ports.delete(id);
    for (const [mac, e] of this.table) if (e.port === id) this.table.delete(mac);
  }

  hasPort(id: string): boolean {
    return this.ports.has(id);
  }

  portKind(id: string): PortKind | undefined {
    return this.ports.get(id);
  }

  get portIds(): string[] {
    return [...this.ports.keys()];
  }

  /** Learns `src` behind `port` (group addresses are never a frame's source, and are not learned). */
  learn(src: string, port: string): void {
    if (isGroupMac(src) || !this.ports.has(port)) return;
    this.table.delete(src);
    this.table.set(src, { port, seenAt: this.clock.now() });
    while (this.table.size > this.maxMacs) {
      const oldest = this.table.keys().next().value;
      if (oldest === undefined) break;
      this.table.delete(oldest);
    }
  }

  /** Where `mac` was last seen, if that is recent enough. */
  lookup(mac: string): string | undefined {
    const e = this.table.get(mac);
    if (!e) return undefined;
    if (this.clock.now() - e.seenAt >= this.agingMs) {
      this.table.delete(mac);
      return undefined;
    }
    return e.port;
  }

  /** Learns the frame's source and says which ports it goes out of. */
  forward(inPort: string, src: string, dst: string): string[] {
    const inKind = this.ports.get(inPort);
    if (inKind === undefined) return [];
    this.learn(src, inPort);
    if (!isGroupMac(dst)) {
      const out = this.lookup(dst);
      if (out !== undefined) {
        // the destination is behind the port the frame came from (or, from a tunnel, behind another tunnel: not ours to relay)
        if (out === inPort || (inKind === 'tunnel' && this.ports.get(out) === 'tunnel')) return [];
        return [out];
      }
    }
    const flood: string[] = [];
    for (const [id, kind] of this.ports) {
      if (id === inPort) continue;
      if (inKind === 'tunnel' && kind === 'tunnel') continue;
      flood.push(id);
    }
    return flood;
  }

  /** Drops aged entries (the table also ages lazily on lookup). */
  sweep(): void {
    const now = this.clock.now();
    for (const [mac, e] of this.table) if (now - e.seenAt >= this.agingMs) this.table.delete(mac);
  }

  /** The live table, for status and tests. */
  entries(): { mac: string; port: string; ageMs: number }[] {
    this.sweep();
    const now = this.clock.now();
    return [...this.table].map(([mac, e]) => ({ mac, port: e.port, ageMs: now - e.seenAt }));
  }
}
