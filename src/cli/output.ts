/**
 * @module
 * Terminal output helpers for the CLI: tables, JSON, and one way of reporting errors.
 */
import { InputError, isConvergeError, errorMessage } from '../shared/errors.ts';
import { RackApiError } from '../rack/protocol/client.ts';

export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

/** Prints an error (as JSON with --json) and sets the exit code: 2 for bad input, 1 otherwise. */
export function fail(e: unknown, json: boolean): never {
  const input = e instanceof InputError || (e instanceof RackApiError && e.status === 400);
  const body: Record<string, unknown> = {
    code: isConvergeError(e) ? e.code : e instanceof RackApiError ? e.code : 'CVG_ERR_INTERNAL',
    message: errorMessage(e),
  };
  if (e instanceof InputError) {
    body['field'] = e.field;
    if (e.allowed) body['allowed'] = e.allowed;
  } else if (e instanceof RackApiError && e.field) body['field'] = e.field;
  if (json) process.stdout.write(JSON.stringify({ error: body }, null, 2) + '\n');
  else {
    const allowed = e instanceof InputError && e.allowed && !e.message.includes(e.allowed.join(', ')) ? ` (allowed: ${e.allowed.join(', ')})` : '';
    process.stderr.write(`error: ${body['message'] as string}${allowed}\n`);
  }
  process.exit(input ? 2 : 1);
}
