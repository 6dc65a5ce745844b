/**
 * @module
 * A client of QEMU's machine protocol (QMP) over a Unix socket: one JSON object per line each way.
 *
 *   server → {"QMP": {"version": …, "capabilities": […]}}      the greeting, once
 *   client → {"execute": "qmp_capabilities"}                    leaves negotiation mode
 *   client → {"execute": cmd, "arguments": {…}, "id": n}        a command
 *   server → {"return": …, "id": n} | {"error": {"class", "desc"}, "id": n}
 *   server → {"event": name, "data": {…}, "timestamp": {seconds, microseconds}}   any time
 *
 * Commands are answered in order, but each carries an id and is matched by it. Every command has a
 * timeout; when the connection closes, what is pending fails with a QmpClosedError.
 * @see https://www.qemu.org/docs/master/interop/qmp-spec.html
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { SystemClock, type Clock, type Disposable } from '../../shared/clock.ts';
import { TimeoutError, UnavailableError } from '../../shared/errors.ts';

/** An error QEMU answered a command with: its class (GenericError, CommandNotFound, DeviceNotActive, …) and description. */
export class QmpError extends Error {
  constructor(readonly command: string, readonly qmpClass: string, readonly desc: string) {
    super(`QMP ${command}: ${desc} (${qmpClass})`);
  }
}

/** The connection closed (QEMU exited) before the command was answered. */
export class QmpClosedError extends UnavailableError {}

/** An asynchronous event from QEMU (STOP, RESUME, SHUTDOWN, POWERDOWN, RESET, MIGRATION, …). */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  /** QEMU's time of the event, ms since the epoch. */
  at: number;
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: Disposable;
}

export interface QmpConnectOptions {
  /** How long to keep trying to connect (QEMU makes its socket a moment after it starts), ms. Default 10 s. */
  timeoutMs?: number;
  /** Default timeout of each command, ms (default 10 s). */
  commandTimeoutMs?: number;
  clock?: Clock;
  /** Stop trying (QEMU exited before its socket came up). */
  signal?: AbortSignal;
}

/** Emits `event` (QmpEvent) and `close` (Error | undefined). */
export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [Error | undefined] }> {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private buf = '';
  private closed = false;
  private greeted: ((g: QmpGreeting) => void) | undefined;
  greeting: QmpGreeting | undefined;

  private constructor(private readonly sock: Socket, private readonly clock: Clock, private readonly commandTimeoutMs: number) {
    super();
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', (e) => this.shut(e));
    sock.on('close', () => this.shut(undefined));
  }

  /** Connects to QEMU's QMP socket, reads the greeting and leaves negotiation mode. */
  static async connect(path: string, o: QmpConnectOptions = {}): Promise<QmpClient> {
    const clock = o.clock ?? new SystemClock();
    const deadline = clock.now() + (o.timeoutMs ?? 10_000);
    for (;;) {
      let sock: Socket;
      try {
        sock = await openSocket(path);
      } catch (e) {
        if (o.signal?.aborted) throw o.signal.reason as Error;
        if (clock.now() >= deadline) throw new TimeoutError(`QMP socket ${path}: ${(e as Error).message}`);
        await clock.sleep(50, o.signal);
        continue;
      }
      const c = new QmpClient(sock, clock, o.commandTimeoutMs ?? 10_000);
      try {
        await c.handshake(Math.max(1000, deadline - clock.now()));
        return c;
      } catch (e) {
        c.close();
        throw e;
      }
    }
  }

  private async handshake(timeoutMs: number): Promise<void> {
    let timer: Disposable | undefined;
    let onClose: ((e: Error | undefined) => void) | undefined;
    try {
      this.greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        this.greeted = resolve;
        timer = this.clock.setTimeout(() => reject(new TimeoutError('QMP: no greeting from QEMU')), timeoutMs);
        onClose = (e): void => reject(new QmpClosedError(`QMP closed before its greeting${e ? `: ${e.message}` : ''}`));
        this.once('close', onClose);
      });
    } finally {
      timer?.dispose();
      if (onClose) this.off('close', onClose);
    }
    await this.execute('qmp_capabilities');
  }

  /** Runs a command; resolves with its `return`, rejects with a QmpError (QEMU refused), TimeoutError or QmpClosedError. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, o: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closed) return Promise.reject(new QmpClosedError(`QMP ${command}: the connection is closed`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(`QMP ${command}: no answer in ${o.timeoutMs ?? this.commandTimeoutMs} ms`));
      }, o.timeoutMs ?? this.commandTimeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  /** The next event named `name` (optionally matching `pred`), or a TimeoutError after timeoutMs. */
  waitEvent(name: string, timeoutMs: number, pred: (e: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        timer.dispose();
        this.off('event', on);
        this.off('close', onClose);
      };
      const on = (e: QmpEvent): void => {
        if (e.event === name && pred(e)) {
          done();
          resolve(e);
        }
      };
      const onClose = (): void => {
        done();
        reject(new QmpClosedError(`QMP closed while waiting for ${name}`));
      };
      const timer = this.clock.setTimeout(() => {
        done();
        reject(new TimeoutError(`QMP: no ${name} event in ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('event', on);
      this.once('close', onClose);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.sock.destroy();
    this.shut(undefined);
  }

  private onData(d: string): void {
    this.buf += d;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) break;
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line !== '') this.onMessage(line);
    }
    // a peer that sends a line without end is not QEMU
    if (this.buf.length > 16 << 20) this.shut(new Error('QMP: a message larger than 16 MiB'));
  }

  private onMessage(line: string): void {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.shut(new Error(`QMP: not JSON: ${line.slice(0, 100)}`));
      return;
    }
    if ('QMP' in m) {
      this.greeted?.(m['QMP'] as QmpGreeting);
      this.greeted = undefined;
    } else if (typeof m['event'] === 'string') {
      const ts = m['timestamp'] as { seconds?: number; microseconds?: number } | undefined;
      const at = ts?.seconds !== undefined ? ts.seconds * 1000 + Math.floor((ts.microseconds ?? 0) / 1000) : this.clock.now();
      const ev: QmpEvent = { event: m['event'], at, ...(m['data'] !== undefined ? { data: m['data'] as Record<string, unknown> } : {}) };
      this.emit('event', ev);
    } else if (typeof m['id'] === 'number') {
      const p = this.pending.get(m['id']);
      if (!p) return;
      this.pending.delete(m['id']);
      p.timer.dispose();
      const err = m['error'] as { class?: string; desc?: string } | undefined;
      if (err) p.reject(new QmpError(p.command, err.class ?? 'GenericError', err.desc ?? 'error'));
      else p.resolve(m['return']);
    }
  }

  private shut(e: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.destroy();
    for (const p of this.pending.values()) {
      p.timer.dispose();
      p.reject(new QmpClosedError(`QMP ${p.command}: the connection closed${e ? ` (${e.message})` : ''}`));
    }
    this.pending.clear();
    this.emit('close', e);
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}
