/**
 * @module
 * Password hashing (scrypt, per-password salt) and generation. Hashes are stored; passwords never are,
 * except a lab's generated initial password, which its owner is shown once.
 */
import { scryptSync, scrypt, randomBytes, timingSafeEqual } from 'node:crypto';

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N: 16384 });
  return `scrypt$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Checks a password against a stored hash, off the event loop (scrypt runs in the thread pool). */
export function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return Promise.resolve(false);
  const expected = Buffer.from(hash, 'base64');
  return new Promise((resolve, reject) => {
    scrypt(password, Buffer.from(salt, 'base64'), expected.length, { N: 16384 }, (err, actual) => {
      if (err) reject(err);
      else resolve(timingSafeEqual(expected, actual));
    });
  });
}

/** A random password of letters and digits, easy to copy from a terminal. */
export function generatePassword(length = 16): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = randomBytes(length);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}
