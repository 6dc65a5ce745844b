/**
 * @module
 * The message and field of an error answer, whichever of Prism's APIs gave it (pure): v3
 * `{ message_list: [{ message, details: { field: reason } }] }`, v2.0 `{ message, error_code:
 * { validation_errors: [{ field }] } }`, v4 `{ data: { error: [{ message, argumentsMap: { field } }] } }`.
 */
type Json = Record<string, unknown>;
const obj = (x: unknown): Json | undefined => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Json) : undefined);
const first = (x: unknown): Json | undefined => (Array.isArray(x) ? obj(x[0]) : undefined);
const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);
const withField = (message: string, field: string | undefined): { message: string; field?: string } => (field === undefined ? { message } : { message, field });

export function errorOf(body: unknown): { message: string; field?: string } {
  if (typeof body === 'string') return { message: body.slice(0, 500) };
  const b = obj(body);
  if (!b) return { message: '' };
  const v3 = first(b['message_list']);
  const v3Message = str(v3?.['message']);
  if (v3Message !== undefined) return withField(v3Message, Object.keys(obj(v3?.['details']) ?? {})[0]);
  const v4 = first(obj(b['data'])?.['error']);
  const v4Message = str(v4?.['message']);
  if (v4Message !== undefined) return withField(v4Message, str(obj(v4?.['argumentsMap'])?.['field']));
  const v2Message = str(b['message']);
  if (v2Message !== undefined) return withField(v2Message, str(first(obj(b['error_code'])?.['validation_errors'])?.['field']));
  return { message: '' };
}
