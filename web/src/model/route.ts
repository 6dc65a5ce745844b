/**
 * @module
 * The UI's routes, kept in the URL's hash so a reload opens the same page (pure).
 */
export type Route = { page: 'wizard' } | { page: 'session'; id: string };

export function routeOf(hash: string): Route {
  const m = /^#\/session\/([^/?#]+)\/?$/.exec(hash);
  if (m?.[1]) {
    try {
      return { page: 'session', id: decodeURIComponent(m[1]) };
    } catch {
      return { page: 'wizard' };
    }
  }
  return { page: 'wizard' };
}

export const hashOfSession = (id: string): string => `#/session/${encodeURIComponent(id)}`;
