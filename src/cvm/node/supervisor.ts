/**
 * @module
 * Starts a child process and keeps it running: restarts with backoff (1 s doubling to 30 s, reset
 * after a minute up), reports its state and pid, stops it with SIGTERM then SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { onLines } from '../../shared/lines.ts';

export type ServiceState = 'starting' | 'up' | 'restarting' | 'stopped' | 'down';

export interface ServiceStatus {
  name: string;
  state: ServiceState;
  pid: number | null;
  restarts: number;
}

export class Supervised {
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoff = 1000;
  private stopping = false;
  state: ServiceState = 'stopped';
  restarts = 0;

  constructor(readonly name: string, private readonly cmd: string, private readonly args: string[], private readonly log: (m: string) => void, private readonly opts: { env?: NodeJS.ProcessEnv; cwd?: string; pidFile?: string; echo?: boolean } = {}) {}

  start(): void {
    this.stopping = false;
    if (this.child) return;
    this.state = 'starting';
    const t0 = Date.now();
    const child = spawn(this.cmd, this.args, { stdio: ['ignore', 'pipe', 'pipe'], env: this.opts.env ?? process.env, cwd: this.opts.cwd });
    this.child = child;
    child.once('spawn', () => {
      if (this.child === child) this.state = 'up';
      if (this.opts.pidFile && child.pid) writeFileSync(this.opts.pidFile, String(child.pid));
    });
    const quiet = (l: string): void => {
      if (this.opts.echo) this.log(l.slice(0, 500));
      else if (/\b(error|fatal|panic)\b/i.test(l)) this.log(`${this.name}: ${l.slice(0, 300)}`);
    };
    onLines(child.stdout, quiet);
    onLines(child.stderr, quiet);
    child.once('error', (e) => this.log(`${this.name}: cannot start ${this.cmd}: ${e.message}`));
    child.once('close', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopping) {
        this.state = 'stopped';
        return;
      }
      if (Date.now() - t0 > 60_000) this.backoff = 1000;
      this.restarts++;
      this.state = 'restarting';
      this.log(`${this.name} exited (${signal ?? `code ${code}`}); restarting in ${this.backoff / 1000} s`);
      this.timer = setTimeout(() => this.start(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 30_000);
    });
  }

  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const child = this.child;
    if (!child) {
      this.state = 'stopped';
      return;
    }
    await new Promise<void>((resolve) => {
      const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('close', () => {
        clearTimeout(killer);
        resolve();
      });
      child.kill('SIGTERM');
    });
    this.state = 'stopped';
  }

  status(): ServiceStatus {
    return { name: this.name, state: this.state, pid: this.child?.pid ?? null, restarts: this.restarts };
  }
}
