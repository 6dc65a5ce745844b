/**
 * @module
 * `converge image build-guest`: builds the Converge guest disk (docs/guest-image.md) from Debian
 * packages; progress on stderr, the result on stdout (JSON with --json).
 */
import { Command } from 'commander';
import { resolve } from 'node:path';
import { buildGuestImage, defaultCacheDir } from '../guest/build.ts';
import { fail, printJson } from './output.ts';

export function guestImageCommand(): Command {
  return new Command('build-guest')
    .description('build the Converge guest: a small raw disk that boots by itself (syslinux, Debian kernel, busybox), for VM tests, the demo and the benchmarks')
    .option('--out <file>', 'the image to write', './converge-guest.img')
    .option('--cache <dir>', `the Debian package cache (default ${defaultCacheDir()})`)
    .option('--json', 'machine-readable output')
    .action(async (o: { out: string; cache?: string; json?: boolean }) => {
      try {
        const t0 = Date.now();
        const r = await buildGuestImage({
          out: resolve(o.out),
          ...(o.cache !== undefined ? { cacheDir: resolve(o.cache) } : {}),
          log: (m) => process.stderr.write(`build-guest: ${m}\n`),
        });
        if (o.json) printJson(r);
        else process.stdout.write(`${r.file}: ${(r.bytes / 1048576).toFixed(0)} MiB, kernel ${r.kernel}, sha256 ${r.sha256} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
}
