/**
 * @module
 * The one translation of errors into Redfish responses (STYLE.md C6): domain errors from the
 * rack (InputError, NotFoundError, ConflictError, ...) and protocol errors raised by the service
 * itself become a status and a Redfish error body with Base registry messages.
 */
import { AuthError, ConflictError, ForbiddenError, InputError, NotFoundError, PreconditionError, UnavailableError, isConvergeError, errorMessage } from '../../../shared/errors.ts';
import { errorBody, message, type RedfishErrorBody, type RedfishMessage } from '../../protocol/redfish.ts';
import { BodyTooLarge } from '../http-util.ts';

/** An error the service raises with its status and messages already decided. */
export class RedfishError extends Error {
  constructor(readonly status: number, summary: string, readonly messages: RedfishMessage[], readonly headers: Record<string, string> = {}) {
    super(summary);
  }
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? String(v));

/**
 * Translates any error. `action` names the action being run (for ActionParameter* messages);
 * without it, an InputError is about a property of a PATCH or POST body.
 */
export function toRedfish(err: unknown, action?: string): { status: number; body: RedfishErrorBody; headers: Record<string, string> } {
  if (err instanceof RedfishError) return { status: err.status, body: errorBody(err.message, err.messages), headers: err.headers };
  // the body was not kept (or not read to its end): the connection closes after the answer
  if (err instanceof BodyTooLarge) return { status: 413, body: errorBody(`${err.message}; nothing was changed`, [message('GeneralError')]), headers: { Connection: 'close' } };
  if (err instanceof InputError) {
    const prop = err.field;
    const value = err.value === undefined ? '' : show(err.value);
    let m: RedfishMessage;
    if (action) {
      if (err.value === undefined && /required|missing/i.test(err.reason)) m = message('ActionParameterMissing', [action, prop], [`#/${prop}`]);
      else if (err.allowed) m = message('ActionParameterValueNotInList', [value, prop, action], [`#/${prop}`]);
      else m = message('ActionParameterValueFormatError', [value, prop, action], [`#/${prop}`]);
    } else if (err.value === undefined && /required|missing/i.test(err.reason)) {
      m = message('PropertyMissing', [prop], [`#/${prop}`]);
    } else if (err.allowed) {
      m = message('PropertyValueNotInList', [value, prop], [`#/${prop}`]);
    } else {
      m = message('PropertyValueFormatError', [value, prop], [`#/${prop}`]);
    }
    const allowed = err.allowed && !err.reason.includes(err.allowed.join(', ')) ? ` Allowed values: ${err.allowed.join(', ')}.` : '';
    return { status: 400, body: errorBody(`${prop}: ${err.reason}.${allowed}`, [m]), headers: {} };
  }
  if (err instanceof NotFoundError) return { status: 404, body: errorBody(err.message, [message('ResourceNotFound', [err.what, err.id])]), headers: {} };
  if (err instanceof ConflictError) return { status: 409, body: errorBody(err.message, [message('ResourceInStandby')]), headers: {} };
  if (err instanceof PreconditionError) return { status: 412, body: errorBody(err.message, [message('PreconditionFailed')]), headers: {} };
  if (err instanceof AuthError) return { status: 401, body: errorBody(err.message, [message('NoValidSession')]), headers: { 'WWW-Authenticate': 'Basic realm="Redfish"' } };
  if (err instanceof ForbiddenError) return { status: 403, body: errorBody(err.message, [message('InsufficientPrivilege')]), headers: {} };
  if (err instanceof UnavailableError) return { status: 503, body: errorBody(err.message, [message('ServiceTemporarilyUnavailable', ['10'])]), headers: { 'Retry-After': '10' } };
  const text = isConvergeError(err) ? err.message : 'internal error';
  return { status: 500, body: errorBody(text, [message('InternalError')]), headers: {} };
}

/** What the BMC answers to a request Node's HTTP parser refused (see clientErrorStatus). */
export function redfishParseError(status: number, code: string | undefined): RedfishErrorBody {
  if (status === 501) return errorBody('the HTTP method is not one this service knows; Redfish uses GET, HEAD, POST, PATCH, PUT and DELETE', [message('OperationNotAllowed')]);
  if (status === 431) return errorBody('the request headers are too large', [message('GeneralError')]);
  if (status === 408) return errorBody('the request took too long to arrive', [message('GeneralError')]);
  return errorBody(`malformed HTTP request${code ? ` (${code})` : ''}`, [message('GeneralError')]);
}

export { errorMessage };
