/**
 * @module
 * What a BMC keeps in memory only, as a real BMC does: sessions and tasks. A BMC restart (firmware
 * update, Manager.Reset, rack restart) loses them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../../../shared/clock.ts';

export interface Session {
  id: string;
  token: string;
  userName: string;
  roleId: string;
  created: number;
  lastUsed: number;
}

export type TaskState = 'New' | 'Running' | 'Completed' | 'Exception' | 'Cancelled';

export interface BmcTask {
  id: string;
  name: string;
  state: TaskState;
  status: 'OK' | 'Warning' | 'Critical';
  percent: number;
  start: number;
  end?: number;
  messages: { severity: 'OK' | 'Warning' | 'Critical'; text: string }[];
}

/** Tasks kept for TaskService/Tasks (the oldest are dropped, CompletedTaskOverWritePolicy Oldest). */
export const MAX_TASKS = 100;

export class BmcMemory {
  sessions = new Map<string, Session>();
  tasks: BmcTask[] = [];
  sessionTimeoutS = 1800;
  /** Time until which the BMC is rebooting and answers nothing. */
  rebootingUntil = 0;
  /** Set by the rack: called when the BMC reboots, so it can drop the connections already open. */
  onReboot: () => void = () => undefined;
  /** Task Ids are never reused, even after older tasks are dropped. */
  private lastTaskId = 0;

  constructor(private readonly clock: Clock) {}

  createSession(userName: string, roleId: string): Session {
    const now = this.clock.now();
    const s: Session = { id: randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase(), token: randomBytes(24).toString('base64url'), userName, roleId, created: now, lastUsed: now };
    this.sessions.set(s.id, s);
    return s;
  }

  /** The live session with this token, refreshing its idle timer; expired sessions are dropped. */
  sessionByToken(token: string): Session | undefined {
    const now = this.clock.now();
    for (const s of this.sessions.values()) {
      if (now - s.lastUsed > this.sessionTimeoutS * 1000) {
        this.sessions.delete(s.id);
        continue;
      }
      if (s.token === token) {
        s.lastUsed = now;
        return s;
      }
    }
    return undefined;
  }

  /** Ends every session of a user (account deleted, disabled, renamed, new role or password). */
  dropSessionsOf(userName: string): void {
    for (const s of [...this.sessions.values()]) if (s.userName === userName) this.sessions.delete(s.id);
  }

  newTask(name: string): BmcTask {
    this.lastTaskId += 1;
    const t: BmcTask = { id: String(this.lastTaskId), name, state: 'New', status: 'OK', percent: 0, start: this.clock.now(), messages: [] };
    this.tasks.push(t);
    if (this.tasks.length > MAX_TASKS) this.tasks.shift();
    return t;
  }

  /** Forgets everything, as a BMC reboot does, and drops the connections that are open. */
  reboot(untilMs: number): void {
    this.sessions.clear();
    this.tasks = [];
    this.rebootingUntil = untilMs;
    this.onReboot();
  }
}
