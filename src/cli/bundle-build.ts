/**
 * @module
 * `converge bundle build`: packs the hypervisor, the CVM software and the installer (each bundled
 * by esbuild into one self-contained JavaScript module) with a manifest into a release bundle.
 */
import { fileURLToPath } from 'node:url';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { build } from 'esbuild';
import { InputError } from '../shared/errors.ts';
import { writeBundle, sha256Of, openBundle } from '../shared/bundle/archive.ts';
import { bundleFileName, type BundleManifest } from '../shared/bundle/manifest.ts';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const SRC = resolve(fileURLToPath(import.meta.url), '../..');

export interface BuildOptions {
  version: string;
  out: string;
  hypervisorVersion?: string;
  nosVersion?: string;
  minBios?: string;
  minBmc?: string;
  /** Extra storage-OS → hypervisor pairs to declare compatible. */
  compatible?: Record<string, string[]>;
  /** Bundle versions it upgrades from (absent: any older one). */
  upgradeFrom?: string[];
  /** The CVM protocol it speaks and the oldest it works beside (absent: 1 and 1). */
  cvmProtocol?: { version: number; compatibleFrom: number };
  /** Firmware images to ship (Converge firmware images the rack's BMCs flash; docs/rack.md), by version. */
  firmwareBmc?: string;
  firmwareBios?: string;
}

/** A Converge firmware image (what the rack's BMCs flash through SimpleUpdate; docs/rack.md). */
function firmwareImage(component: 'BMC' | 'BIOS', version: string): [string, Buffer] {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(version)) throw new InputError(`firmware-${component.toLowerCase()}`, `"${version}" is not a firmware version (letters, digits, . _ -)`);
  return [`firmware/${component.toLowerCase()}-${version}.json`, Buffer.from(`${JSON.stringify({ ConvergeFirmware: 1, Component: component, Version: version })}\n`)];
}

/**
 * One entry bundled: its module, and the native addons it loads (`.node` files, e.g. the CRC32C of
 * @node-rs/crc32, built for this machine's platform) shipped beside it, where the module's
 * rewritten `require("./name-hash.node")` finds them.
 */
async function bundleEntry(entry: string, at: string): Promise<[string, Buffer][]> {
  const r = await build({
    entryPoints: [resolve(SRC, entry)],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    write: false,
    minify: false,
    legalComments: 'none',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    // CommonJS dependencies that read files beside themselves (etcd3's .proto files) find them
    // beside the bundle: see DATA_FILES.
    define: { __dirname: 'import.meta.dirname', __filename: 'import.meta.filename' },
    logLevel: 'silent',
    outdir: '/bundle',
    loader: { '.node': 'copy' },
    assetNames: '[name]-[hash]',
  });
  const out = r.outputFiles.find((f) => f.path.endsWith('.js'));
  if (!out) throw new Error(`esbuild produced nothing for ${entry}`);
  const addons = r.outputFiles.filter((f) => f.path.endsWith('.node')).map((f): [string, Buffer] => [`${dirname(at)}/${basename(f.path)}`, Buffer.from(f.contents)]);
  return [[at, Buffer.from(out.contents)], ...addons];
}

/** Prism's browser console as scripts/build-web.mjs builds it: shipped at cvm/console/, beside prism.mjs, where Prism looks for it. */
const CONSOLE_DIST = resolve(SRC, '..', 'web', 'prism', 'dist');

function consoleFiles(): [string, Buffer][] {
  if (!existsSync(join(CONSOLE_DIST, 'index.html'))) throw new InputError('console', `Prism's console is not built (no ${join(CONSOLE_DIST, 'index.html')}); build it with: npm run build:web`);
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
  return walk(CONSOLE_DIST).map((f): [string, Buffer] => [`cvm/console/${relative(CONSOLE_DIST, f).split(sep).join('/')}`, readFileSync(f)]);
}

/** Files that bundled code reads at run time, shipped at these paths (relative to the boot disk root). */
const DATA_FILES: [string, string][] = ['rpc.proto', 'kv.proto', 'auth.proto'].map((f) => [`proto/${f}`, `etcd3/proto/${f}`]);

export async function buildBundle(o: BuildOptions): Promise<{ file: string; manifest: BundleManifest; sha256: string; bytes: number }> {
  const vre = /^\d+\.\d+\.\d+([-.][0-9A-Za-z.-]+)?$/;
  for (const [f, v] of [['version', o.version], ['hypervisor-version', o.hypervisorVersion], ['nos-version', o.nosVersion], ...(o.upgradeFrom ?? []).map((x) => ['upgrade-from', x] as const)] as const) {
    if (v !== undefined && !vre.test(v)) throw new InputError(f, `"${v}" is not a version like 1.2.3`);
  }
  if (o.cvmProtocol && (!Number.isInteger(o.cvmProtocol.version) || !Number.isInteger(o.cvmProtocol.compatibleFrom) || o.cvmProtocol.compatibleFrom < 1 || o.cvmProtocol.compatibleFrom > o.cvmProtocol.version)) {
    throw new InputError('cvm-protocol', 'must be whole numbers, the oldest protocol (1 or more) not above the protocol');
  }
  const hv = o.hypervisorVersion ?? o.version;
  const nos = o.nosVersion ?? o.version;
  const files = new Map<string, Buffer>([
    ...(await bundleEntry('hypervisor/main.ts', 'hypervisor/hypervisor.mjs')),
    ...(await bundleEntry('cvm/main.ts', 'cvm/cvm.mjs')),
    ...(await bundleEntry('prism/main.ts', 'cvm/prism.mjs')),
    ...(await bundleEntry('lcm/main.ts', 'cvm/lcm.mjs')),
    ...(await bundleEntry('installer/main.ts', 'installer/installer.mjs')),
    ...DATA_FILES.map(([to, from]): [string, Buffer] => [to, readFileSync(require.resolve(from))]),
    ...consoleFiles(),
  ]);
  const images = [...(o.firmwareBmc ? [['bmc', firmwareImage('BMC', o.firmwareBmc), o.firmwareBmc] as const] : []), ...(o.firmwareBios ? [['bios', firmwareImage('BIOS', o.firmwareBios), o.firmwareBios] as const] : [])];
  for (const [, f] of images) files.set(f[0], f[1]);
  const minFirmware: BundleManifest['minFirmware'] = {};
  if (o.minBios) minFirmware.bios = o.minBios;
  if (o.minBmc) minFirmware.bmc = o.minBmc;
  const manifest: BundleManifest = {
    format: 1,
    name: 'converge',
    version: o.version,
    builtAt: new Date().toISOString(),
    components: {
      hypervisor: { name: 'converge-hypervisor', version: hv, entry: 'hypervisor/hypervisor.mjs' },
      cvm: { name: 'converge-aos', version: nos, entry: 'cvm/cvm.mjs' },
      installer: { name: 'converge-installer', version: o.version, entry: 'installer/installer.mjs' },
    },
    files: Object.fromEntries([...files].map(([p, b]) => [p, sha256Of(b)])),
    minFirmware,
    compatibility: { [nos]: [hv], ...(o.compatible ?? {}) },
    ...(o.upgradeFrom && o.upgradeFrom.length > 0 ? { upgradeFrom: o.upgradeFrom } : {}),
    cvmProtocol: o.cvmProtocol ?? { version: 1, compatibleFrom: 1 },
    ...(images.length > 0 ? { firmwareImages: Object.fromEntries(images.map(([part, f, v]) => [part, { version: v, file: f[0] }])) } : {}),
  };
  const file = resolve(o.out, bundleFileName(o.version));
  await writeBundle(file, manifest, files);
  const archive = readFileSync(file);
  await openBundle(archive, file); // what we ship must verify
  return { file, manifest, sha256: sha256Of(archive), bytes: archive.length };
}
