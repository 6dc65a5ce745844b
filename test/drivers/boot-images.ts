/**
 * @module
 * Test boot media: small programs packed as Converge boot images (tar + boot.json), and a
 * loopback HTTP server that serves them, as Foundation will serve the installer.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from 'tar';

/**
 * A stand-in installer: reports progress on its console, honours the injected crash fault, writes
 * a "hypervisor" onto the boot disk (boot.json + hv.mjs) and asks for a reboot.
 */
export const TEST_INSTALLER = `
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
const hw = JSON.parse(readFileSync(process.env.CONVERGE_HARDWARE, 'utf8'));
console.log('installer on ' + hw.serial + ' from ' + hw.mediaUrl + ' disks=' + hw.disks.length + ' hba=' + hw.hba.model);
const crashAt = hw.faults.installerCrashAtPercent;
for (let pct = 0; pct <= 100; pct += 20) {
  if (crashAt !== undefined && pct >= crashAt) { console.log('installer: fatal error at ' + pct + '%'); process.exit(70); }
  console.log('installer: ' + pct + '%');
}
const root = join(hw.bootDevice.path, 'data');
mkdirSync(root, { recursive: true });
writeFileSync(join(root, 'hv.mjs'), readFileSync(new URL('./hv.mjs', import.meta.url)));
writeFileSync(join(root, 'boot.json'), JSON.stringify({ name: 'test-hypervisor', version: '9.9.1', entry: 'hv.mjs' }));
console.log('installer: done, rebooting');
process.exit(3);
`;

/** A stand-in hypervisor: runs until told to stop; SIGTERM is a clean shutdown. */
export const TEST_HYPERVISOR = `
import { readFileSync } from 'node:fs';
const hw = JSON.parse(readFileSync(process.env.CONVERGE_HARDWARE, 'utf8'));
console.log('hypervisor up on ' + hw.serial + ' boot=' + hw.bootSource);
process.on('SIGTERM', () => { console.log('hypervisor: shutting down'); process.exit(0); });
process.on('SIGUSR2', () => console.log('hypervisor: NMI received, dumping state'));
setInterval(() => {}, 1000);
`;

export async function buildImage(files: Record<string, string>, manifest: { name: string; version: string; entry: string }): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-img-'));
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'boot.json'), JSON.stringify(manifest));
  for (const [name, body] of Object.entries(files)) writeFileSync(join(src, name), body);
  const out = join(dir, 'image.tar');
  await create({ file: out, cwd: src }, ['boot.json', ...Object.keys(files)]);
  return out;
}

/** Serves files by name on 127.0.0.1 (port chosen by the OS). */
export class FileServer {
  private files = new Map<string, string | Buffer>();
  private constructor(private readonly server: Server, readonly base: string) {}

  static async start(): Promise<FileServer> {
    const files = new Map<string, string | Buffer>();
    const server = createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '/').slice(1));
      const f = files.get(name);
      if (f === undefined) {
        res.writeHead(404).end('not found');
        return;
      }
      const body = typeof f === 'string' && existsSync(f) ? readFileSync(f) : f;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const self = new FileServer(server, `http://127.0.0.1:${port}`);
    self.files = files;
    return self;
  }

  /** Serves a file (a path) or content (a Buffer) at /name; returns its URL. */
  serve(name: string, pathOrContent: string | Buffer): string {
    this.files.set(name, pathOrContent);
    return `${this.base}/${name}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Serves the test installer (which installs the test hypervisor) as virtual media; returns its URL. */
export async function serveTestInstaller(files: FileServer, name = 'installer.tar'): Promise<string> {
  return files.serve(name, await buildImage({ 'installer.mjs': TEST_INSTALLER, 'hv.mjs': TEST_HYPERVISOR }, { name: 'test-installer', version: '1.0', entry: 'installer.mjs' }));
}
