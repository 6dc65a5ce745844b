/**
 * @module
 * Runs the `converge` command as a user would, for CLI tests.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/converge.js', import.meta.url));

export function cvg(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return cvgWithin(120_000, ...args);
}

/** `cvg` for a command that may take longer than two minutes (the demo). */
export function cvgWithin(timeoutMs: number, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
