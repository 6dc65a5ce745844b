/**
 * @module
 * The HTTP status of a domain error (STYLE.md C6): the one mapping every HTTP API of Converge
 * answers with — the internal APIs (http-api.ts), Foundation and Prism — each in its own error
 * envelope. A protocol that the reference defines otherwise says so where it deviates (Prism's v3
 * answers a stale spec_version with 409).
 */
import {
  AuthError, ConflictError, DiskFullError, ForbiddenError, InputError, NotFoundError, PayloadTooLargeError, PreconditionError,
  RequestTimeoutError, TimeoutError, TooManyAttemptsError, UnavailableError, UnsupportedMediaTypeError,
} from './errors.ts';

export function httpStatusOf(e: unknown): number {
  if (e instanceof PayloadTooLargeError) return 413;
  if (e instanceof UnsupportedMediaTypeError) return 415;
  if (e instanceof RequestTimeoutError) return 408;
  if (e instanceof InputError) return 400;
  if (e instanceof TooManyAttemptsError) return 429;
  if (e instanceof AuthError) return 401;
  if (e instanceof ForbiddenError) return 403;
  if (e instanceof NotFoundError) return 404;
  if (e instanceof ConflictError) return 409;
  if (e instanceof PreconditionError) return 412;
  if (e instanceof DiskFullError) return 507;
  if (e instanceof UnavailableError) return 503;
  if (e instanceof TimeoutError) return 504;
  return 500;
}
