/**
 * @module
 * The host's virtual switch: one L2 segment per subnet (core/segment.ts), VM NICs as ports on
 * Unix sockets, and tunnels to the other hosts' switches over mutual TLS.
 *
 * ```
 *   QEMU -netdev stream ──unix──► <socketDir>/<subnet uuid>.sock ─┐   one connection = one port
 *   QEMU …                                                         ├─► Segment (learn, flood, DHCP)
 *   peer host's switch ──TLS──► hostIp:8110 (incoming: receive) ───┘        │
 *                                                                            └─► to local ports, and
 *        this host dials every peer's hostIp:8110 (outgoing: send) ◄──────────── to peers' tunnels
 * ```
 * Each host dials every peer and sends on the connection it dialed; it receives on the ones it
 * accepted. Two one-way connections per pair keep the full mesh free of who-dials-whom races.
 * Both ends present their `host` certificate from the cluster CA; a connection from anyone else
 * is closed after the handshake, and a dialer's HELLO must name the address its certificate
 * names. A dialed link that breaks is dialed again with backoff (250 ms doubling to 10 s).
 *
 * Queues are bounded: a frame that would put more than `queueBytes` in a socket's write buffer
 * is dropped and counted (a slow guest or tunnel loses frames, as a real switch port does, and
 * memory stays bounded); frames for a tunnel that is down are dropped, not kept.
 *
 * Invariants:
 *  1. A frame read from subnet S's socket or tagged S on a tunnel reaches only S's segment, and
 *     a segment's ports are only its own socket's connections and its tunnel ports.
 *  2. Frames from hosts not in `peers` are dropped (the segment has no port for them).
 *  3. After close(), no socket, server or timer of the switch is left.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { SystemClock, type Clock, type Disposable } from '../../../shared/clock.ts';
import { InputError, NotFoundError, errorMessage } from '../../../shared/errors.ts';
import { peerOf, serverTls, type Anchors, type Identity } from '../../../shared/identity.ts';
import { VSWITCH_TUNNEL_PORT, type HostNetwork, type HostSubnet } from '../../protocol/vms.ts';
import { parseCidr } from '../core/dhcp.ts';
import { ETH_MAX_FRAME, ipv4ToInt, normalizeMac } from '../core/ethernet.ts';
import {
  decodeTunnelMessage, encodeHello, encodeStreamFrame, encodeTunnelFrame, FramingError, LengthPrefixedReader, TUNNEL_MAX_MESSAGE, TUNNEL_VERSION,
} from '../core/framing.ts';
import { Segment, type DropReason, type LeaseStatus, type SegmentOptions, type Verdict } from '../core/segment.ts';

/** A member's TLS for the tunnels: its `host` certificate and the cluster CA. */
export interface SwitchTls {
  identity: Pick<Identity, 'cert' | 'key'>;
  clusterCa: string;
}

export interface VirtualSwitchOptions {
  /** Where the per-subnet sockets go. Keep it short: a Unix socket path is at most 107 bytes. */
  socketDir: string;
  clock?: Clock;
  log?: (m: string) => void;
  /** Bytes a port's or tunnel's write buffer may hold before frames to it are dropped (default 1 MiB). */
  queueBytes?: number;
  segment?: SegmentOptions;
  /** The peers' tunnel port (default VSWITCH_TUNNEL_PORT). */
  tunnelPort?: number;
  /** Reconnect backoff of a dialed tunnel. */
  backoff?: { initialMs: number; maxMs: number };
}

export type TunnelState = 'connecting' | 'up' | 'down';

export interface SwitchStats {
  subnets: { uuid: string; vlanId: number; ports: number; macs: { mac: string; port: string; ageMs: number }[]; leases: LeaseStatus[]; dhcpServer?: { ip: string; mac: string } }[];
  tunnels: { peer: string; state: TunnelState; sentFrames: number; droppedFrames: number; lastError?: string }[];
  /** Incoming tunnels by peer address. */
  incoming: string[];
  forwarded: number;
  answered: number;
  /** Frames dropped, by reason (`queue-full`: a port's or tunnel's write buffer was full; `tunnel-down`). */
  drops: Partial<Record<DropReason | 'queue-full' | 'tunnel-down' | 'unknown-subnet', number>>;
}

/** Longest Unix socket path (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;
const UUID_RE = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const HELLO_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

interface LocalPort {
  id: string;
  sock: Socket;
}

interface SubnetState {
  segment: Segment;
  server: NetServer;
  path: string;
  ports: Map<string, LocalPort>;
}

/** A tunnel this host dialed to a peer (it sends on it). */
class OutgoingTunnel {
  state: TunnelState = 'connecting';
  sock: TLSSocket | undefined;
  sentFrames = 0;
  droppedFrames = 0;
  lastError: string | undefined;
  private timer: Disposable | undefined;
  private delayMs: number;
  private closed = false;

  constructor(readonly peer: string, private readonly sw: VirtualSwitch, private readonly dial: () => TLSSocket, private readonly backoff: { initialMs: number; maxMs: number }) {
    this.delayMs = backoff.initialMs;
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    this.state = 'connecting';
    const s = this.dial();
    this.sock = s;
    s.setNoDelay(true);
    // a peer that does not answer (a SYN into the void waits minutes) is given up and dialed again
    const giveUp = this.sw.clock.setTimeout(() => {
      this.lastError = `no TLS session within ${CONNECT_TIMEOUT_MS} ms`;
      s.destroy();
    }, CONNECT_TIMEOUT_MS);
    s.once('secureConnect', () => {
      giveUp.dispose();
      const why = this.sw.checkPeer(s, this.peer);
      if (why !== undefined) {
        this.lastError = why;
        s.destroy();
        return;
      }
      s.write(encodeHello(this.sw.hostIp!));
      this.state = 'up';
      this.delayMs = this.backoff.initialMs;
      this.sw.log(`vswitch: tunnel to ${this.peer} up`);
    });
    s.on('data', () => undefined); // the accepting side sends nothing; reading keeps 'close' coming
    s.on('error', (e) => {
      this.lastError = errorMessage(e);
    });
    s.once('close', () => {
      giveUp.dispose();
      if (this.sock !== s) return;
      const wasUp = this.state === 'up';
      this.state = 'down';
      this.sock = undefined;
      if (wasUp) this.sw.log(`vswitch: tunnel to ${this.peer} down${this.lastError ? ` (${this.lastError})` : ''}`);
      if (this.closed) return;
      this.timer = this.sw.clock.setTimeout(() => {
        this.timer = undefined;
        this.connect();
      }, this.delayMs);
      this.delayMs = Math.min(this.delayMs * 2, this.backoff.maxMs);
    });
  }

  send(msg: Buffer, queueBytes: number): DropReason | 'queue-full' | 'tunnel-down' | undefined {
    const s = this.sock;
    if (this.state !== 'up' || !s) {
      this.droppedFrames++;
      return 'tunnel-down';
    }
    if (s.writableLength + msg.length > queueBytes) {
      this.droppedFrames++;
      return 'queue-full';
    }
    s.write(msg);
    this.sentFrames++;
    return undefined;
  }

  close(): void {
    this.closed = true;
    this.timer?.dispose();
    this.timer = undefined;
    this.sock?.destroy();
    this.sock = undefined;
    this.state = 'down';
  }
}

export class VirtualSwitch {
  readonly clock: Clock;
  readonly log: (m: string) => void;
  private readonly socketDir: string;
  private readonly queueBytes: number;
  private readonly tunnelPort: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly subnets = new Map<string, SubnetState>();
  /** IPAM's addresses by subnet and MAC, kept apart from the segments so a lease may come before its subnet. */
  private readonly leases = new Map<string, Map<string, string>>();
  private peers: string[] = [];
  private readonly outgoing = new Map<string, OutgoingTunnel>();
  private readonly incoming = new Map<TLSSocket, string | undefined>();
  private tunnelServer: TlsServer | undefined;
  private tls: SwitchTls | undefined;
  hostIp: string | undefined;
  private nextPort = 1;
  private counters = { forwarded: 0, answered: 0 };
  private readonly drops: SwitchStats['drops'] = {};
  private closed = false;

  constructor(o: VirtualSwitchOptions) {
    this.socketDir = o.socketDir;
    this.clock = o.clock ?? new SystemClock();
    this.log = o.log ?? (() => undefined);
    this.queueBytes = o.queueBytes ?? 1 << 20;
    this.tunnelPort = o.tunnelPort ?? VSWITCH_TUNNEL_PORT;
    this.backoff = o.backoff ?? { initialMs: 250, maxMs: 10_000 };
    this.segmentOptions = o.segment ?? {};
  }

  private readonly segmentOptions: SegmentOptions;

  /**
   * Takes the subnets and peers (PUT /network). Validates everything first and changes nothing on
   * bad input (InputError naming the field). A new subnet gets its socket; a removed one loses its
   * socket and every port on it; a changed one keeps its ports and learned MACs.
   */
  async configure(net: HostNetwork): Promise<void> {
    this.validate(net);
    const wanted = new Map(net.subnets.map((s) => [s.uuid, s]));
    for (const [uuid, st] of this.subnets) if (!wanted.has(uuid)) await this.removeSubnet(uuid, st);
    for (const s of net.subnets) {
      const st = this.subnets.get(s.uuid);
      if (st) st.segment.update(s);
      else await this.addSubnet(s);
    }
    this.peers = [...new Set(net.peers)].filter((p) => p !== this.hostIp);
    this.syncPeers();
  }

  /** The Unix socket of a subnet, for QEMU's `-netdev stream,server=off,addr.type=unix,addr.path=…`. */
  portPath(subnetUuid: string): string {
    const st = this.subnets.get(subnetUuid);
    if (!st) throw new NotFoundError('subnet', subnetUuid);
    return st.path;
  }

  /** IPAM's address for a NIC on a subnet (null: forget it; the NIC's DHCP then goes unanswered). */
  setLease(subnetUuid: string, mac: string, ip: string | null): void {
    const m = normalizeMac(mac);
    if (!m) throw new InputError('mac', 'is not a MAC address (aa:bb:cc:dd:ee:ff)', undefined, mac);
    if (ip !== null && ipv4ToInt(ip) === undefined) throw new InputError('ip', 'is not an IPv4 address', undefined, ip);
    let l = this.leases.get(subnetUuid);
    if (ip === null) l?.delete(m);
    else {
      if (!l) this.leases.set(subnetUuid, (l = new Map<string, string>()));
      l.set(m, ip);
    }
    this.subnets.get(subnetUuid)?.segment.setReservation(m, ip);
  }

  /** Accepts the peers' tunnels on hostIp:tunnelPort and dials the peers, with the member's `host` certificate. */
  async listen(hostIp: string, tls: SwitchTls): Promise<void> {
    if (this.tunnelServer) throw new InputError('hostIp', 'the switch is already listening');
    this.hostIp = hostIp;
    this.tls = tls;
    const server = createTlsServer(serverTls(tls.identity, this.anchors()), (s) => this.accept(s));
    server.on('tlsClientError', () => undefined); // a stranger's failed handshake: nothing to serve
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.tunnelPort, hostIp, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.tunnelServer = server;
    this.peers = this.peers.filter((p) => p !== hostIp);
    this.syncPeers();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.outgoing.values()) t.close();
    this.outgoing.clear();
    for (const s of this.incoming.keys()) s.destroy();
    this.incoming.clear();
    const server = this.tunnelServer;
    this.tunnelServer = undefined;
    const closing: Promise<void>[] = [];
    if (server) closing.push(new Promise((r) => server.close(() => r())));
    for (const [uuid, st] of this.subnets) closing.push(this.removeSubnet(uuid, st));
    await Promise.all(closing);
  }

  stats(): SwitchStats {
    return {
      subnets: [...this.subnets.values()].map((st) => {
        const dhcp = st.segment.dhcpServer;
        return {
          uuid: st.segment.subnet.uuid,
          vlanId: st.segment.subnet.vlanId,
          ports: st.ports.size,
          macs: st.segment.switch.entries(),
          leases: st.segment.leaseList(),
          ...(dhcp ? { dhcpServer: dhcp } : {}),
        };
      }),
      tunnels: [...this.outgoing.values()].map((t) => ({
        peer: t.peer, state: t.state, sentFrames: t.sentFrames, droppedFrames: t.droppedFrames, ...(t.lastError ? { lastError: t.lastError } : {}),
      })),
      incoming: [...this.incoming.values()].filter((x): x is string => x !== undefined),
      ...this.counters,
      drops: { ...this.drops },
    };
  }

  // ---- subnets and local ports ------------------------------------------------------------

  private validate(net: HostNetwork): void {
    const seen = new Set<string>();
    net.subnets.forEach((s, i) => {
      const f = (k: string): string => `subnets[${i}].${k}`;
      if (!UUID_RE.test(s.uuid)) throw new InputError(f('uuid'), 'must be letters, digits and dashes (at most 64)', undefined, s.uuid);
      if (seen.has(s.uuid)) throw new InputError(f('uuid'), 'is given twice', undefined, s.uuid);
      seen.add(s.uuid);
      if (!Number.isInteger(s.vlanId) || s.vlanId < 0 || s.vlanId > 4094) throw new InputError(f('vlanId'), 'must be an integer from 0 to 4094', undefined, s.vlanId);
      const cidr = s.cidr === null ? undefined : parseCidr(s.cidr);
      if (s.cidr !== null && (!cidr || cidr.prefix > 30)) throw new InputError(f('cidr'), 'must be a network address a.b.c.d/n with n at most 30, or null', undefined, s.cidr);
      if (s.gateway !== null && ipv4ToInt(s.gateway) === undefined) throw new InputError(f('gateway'), 'is not an IPv4 address', undefined, s.gateway);
      s.dns.forEach((d, j) => {
        if (ipv4ToInt(d) === undefined) throw new InputError(f(`dns[${j}]`), 'is not an IPv4 address', undefined, d);
      });
      const path = this.pathOf(s.uuid);
      if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new InputError('socketDir', `makes the socket path ${path} longer than ${MAX_SOCKET_PATH} bytes`);
    });
    net.peers.forEach((p, i) => {
      if (ipv4ToInt(p) === undefined) throw new InputError(`peers[${i}]`, 'is not an IPv4 address', undefined, p);
    });
  }

  private pathOf(uuid: string): string {
    return join(this.socketDir, `${uuid}.sock`);
  }

  private async addSubnet(s: HostSubnet): Promise<void> {
    const segment = new Segment(s, this.clock, this.segmentOptions);
    for (const [mac, ip] of this.leases.get(s.uuid) ?? []) segment.setReservation(mac, ip);
    for (const p of this.peers) segment.addPort(`tunnel:${p}`, 'tunnel');
    const path = this.pathOf(s.uuid);
    const st: SubnetState = { segment, server: createNetServer(), path, ports: new Map() };
    st.server.on('connection', (sock) => this.attach(st, sock));
    rmSync(path, { force: true }); // a socket left by an earlier run
    await new Promise<void>((resolve, reject) => {
      st.server.once('error', reject);
      st.server.listen(path, () => {
        st.server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    this.subnets.set(s.uuid, st);
    this.log(`vswitch: subnet ${s.name} (${s.uuid}, VLAN ${s.vlanId}, ${s.cidr ?? 'no IPAM'}) on ${path}`);
  }

  private removeSubnet(uuid: string, st: SubnetState): Promise<void> {
    this.subnets.delete(uuid);
    for (const p of st.ports.values()) p.sock.destroy();
    st.ports.clear();
    return new Promise((resolve) => {
      st.server.close(() => {
        rmSync(st.path, { force: true });
        resolve();
      });
    });
  }

  private attach(st: SubnetState, sock: Socket): void {
    if (this.closed || this.subnets.get(st.segment.subnet.uuid) !== st) {
      sock.destroy();
      return;
    }
    const id = `vm:${this.nextPort++}`;
    const port: LocalPort = { id, sock };
    st.ports.set(id, port);
    st.segment.addPort(id, 'local');
    const reader = new LengthPrefixedReader(ETH_MAX_FRAME);
    sock.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        this.log(`vswitch: port ${id} on ${st.segment.subnet.uuid}: ${errorMessage(e)}; closed`);
        sock.destroy();
        return;
      }
      for (const f of frames) this.act(st, id, f, st.segment.receive(id, f));
    });
    sock.on('error', () => undefined);
    sock.once('close', () => {
      st.ports.delete(id);
      st.segment.removePort(id);
    });
  }

  private act(st: SubnetState, inPort: string, frame: Buffer, v: Verdict): void {
    switch (v.kind) {
      case 'drop':
        this.drop(v.reason);
        return;
      case 'answer':
        this.counters.answered++;
        for (const f of v.frames) this.toLocal(st, inPort, f);
        return;
      case 'forward': {
        let tunnelMsg: Buffer | undefined;
        for (const p of v.ports) {
          if (p.startsWith('tunnel:')) {
            const t = this.outgoing.get(p.slice(7));
            tunnelMsg ??= encodeTunnelFrame(st.segment.subnet.uuid, frame);
            const why = t ? t.send(tunnelMsg, this.queueBytes) : 'tunnel-down';
            if (why) this.drop(why);
          } else this.toLocal(st, p, frame);
        }
        this.counters.forwarded++;
        return;
      }
    }
  }

  private toLocal(st: SubnetState, portId: string, frame: Buffer): void {
    const p = st.ports.get(portId);
    if (!p || p.sock.destroyed) return;
    if (p.sock.writableLength + frame.length + 4 > this.queueBytes) {
      this.drop('queue-full');
      return;
    }
    p.sock.write(encodeStreamFrame(frame));
  }

  private drop(reason: keyof SwitchStats['drops']): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  // ---- tunnels ------------------------------------------------------------------------------

  private anchors(): Anchors {
    return { cluster: this.tls!.clusterCa };
  }

  /** Why a tunnel's far end is not the member host `ip` (undefined: it is). */
  checkPeer(s: TLSSocket, ip: string): string | undefined {
    if (peerOf(s, this.anchors())?.role !== 'host') return 'the peer has no host certificate of this cluster';
    const raw = s.getPeerCertificate().raw as Buffer | undefined;
    const ips = raw ? (new X509Certificate(raw).subjectAltName ?? '').split(', ').filter((x) => x.startsWith('IP Address:')).map((x) => x.slice(11)) : [];
    if (!ips.includes(ip)) return `the peer's certificate does not name ${ip}`;
    return undefined;
  }

  private syncPeers(): void {
    const want = new Set(this.peers);
    for (const st of this.subnets.values()) {
      for (const id of st.segment.switch.portIds) if (id.startsWith('tunnel:') && !want.has(id.slice(7))) st.segment.removePort(id);
      for (const p of want) if (!st.segment.switch.hasPort(`tunnel:${p}`)) st.segment.addPort(`tunnel:${p}`, 'tunnel');
    }
    for (const [p, t] of this.outgoing) {
      if (!want.has(p)) {
        t.close();
        this.outgoing.delete(p);
      }
    }
    for (const [s, p] of this.incoming) if (p !== undefined && !want.has(p)) s.destroy();
    if (!this.tunnelServer || !this.tls || this.closed) return;
    for (const p of want) {
      if (this.outgoing.has(p)) continue;
      const tls = this.tls;
      // from hostIp, so the peer sees this host's address (the default source on loopback would be 127.0.0.1)
      const dial = (): TLSSocket => tlsConnect({
        socket: netConnect({ host: p, port: this.tunnelPort, localAddress: this.hostIp! }),
        host: p, cert: tls.identity.cert, key: tls.identity.key, ca: [tls.clusterCa], minVersion: 'TLSv1.2',
      });
      this.outgoing.set(p, new OutgoingTunnel(p, this, dial, this.backoff));
    }
  }

  private accept(s: TLSSocket): void {
    if (this.closed || peerOf(s, this.anchors())?.role !== 'host') {
      s.destroy();
      return;
    }
    this.incoming.set(s, undefined);
    s.setNoDelay(true);
    const helloTimer = this.clock.setTimeout(() => s.destroy(), HELLO_TIMEOUT_MS);
    const reader = new LengthPrefixedReader(TUNNEL_MAX_MESSAGE);
    let peer: string | undefined;
    s.on('data', (chunk: Buffer) => {
      try {
        for (const m of reader.push(chunk)) {
          const msg = decodeTunnelMessage(m);
          if (msg.type === 'hello') {
            if (peer !== undefined) throw new FramingError('a second HELLO');
            if (msg.version !== TUNNEL_VERSION) throw new FramingError(`tunnel version ${msg.version}`);
            const why = this.checkPeer(s, msg.hostIp);
            if (why !== undefined) throw new FramingError(`HELLO from ${msg.hostIp}: ${why}`);
            peer = msg.hostIp;
            helloTimer.dispose();
            this.incoming.set(s, peer);
            this.log(`vswitch: tunnel from ${peer} accepted`);
            continue;
          }
          if (peer === undefined) throw new FramingError('a frame before HELLO');
          const st = this.subnets.get(msg.subnetUuid);
          if (!st) {
            this.drop('unknown-subnet');
            continue;
          }
          const port = `tunnel:${peer}`;
          this.act(st, port, msg.frame, st.segment.receive(port, msg.frame));
        }
      } catch (e) {
        this.log(`vswitch: tunnel from ${peer ?? s.remoteAddress ?? '?'}: ${errorMessage(e)}; closed`);
        s.destroy();
      }
    });
    s.on('error', () => undefined);
    s.once('close', () => {
      helloTimer.dispose();
      this.incoming.delete(s);
    });
  }
}
