/**
 * @module
 * Debian's Chromium for the browser tests and benches (playwright-core, never a downloaded
 * browser), and where their screenshots go.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Headless Chromium as the tests run it (no sandbox: root in CI; no GPU; /tmp instead of a small /dev/shm). */
export function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does: apt-get install chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** Where screenshots go: CONVERGE_SCREENSHOTS (docs/images refreshes the docs' pictures) or a temp dir; made if missing. */
export function screenshotDir(): string {
  const dir = process.env['CONVERGE_SCREENSHOTS'] ?? join(tmpdir(), 'converge-screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}
