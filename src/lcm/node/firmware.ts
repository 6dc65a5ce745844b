/**
 * @module
 * Firmware through a node's BMC (ADR 018): the image (from the release bundle) is served once over
 * HTTPS from this CVM's address, on a port of its own, at a random path behind one-time Basic
 * credentials, with a certificate of the cluster's CA; the BMC is told to trust that CA
 * (UpdateService RemoteServerCertificates) and to fetch the image (UpdateService.SimpleUpdate, its
 * task monitor). The step is done when the BMC's FirmwareInventory shows the new version (a BMC
 * update ends with the BMC restarting, its tasks gone). Asking again while an update runs is a 409
 * the BMC answers: taken as asked.
 */
import { randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { bmcBaseUrl, type BmcAccess } from '../../cvm/protocol/bmcs.ts';
import { RedfishClient, RedfishClientError } from '../../rack/protocol/redfish-client.ts';
import { UnavailableError, errorMessage } from '../../shared/errors.ts';
import { issueCert, type Pem } from '../../shared/tls.ts';

const UPDATE = '/redfish/v1/UpdateService';
/** How long an image stays served (the BMC fetches it within seconds of SimpleUpdate). */
const SERVE_MS = 15 * 60_000;

export interface FirmwareDeps {
  /** This CVM's address: the image server listens there. */
  self: string;
  bmc: (serial: string) => Promise<BmcAccess | undefined>;
  /** The cluster's CA (Prism's, in etcd): it signs the image server's certificate, and the BMC trusts it. */
  ca: () => Promise<Pem>;
  log: (m: string) => void;
}

interface Served {
  server: Server;
  url: string;
  user: string;
  password: string;
  timer: NodeJS.Timeout;
}

export class FirmwareFlasher {
  private readonly served = new Map<string, Served>();

  constructor(private readonly d: FirmwareDeps) {}

  /** Asks the node's BMC to flash `image` (its `file` name) onto `part`. */
  async flash(serial: string, part: 'bmc' | 'bios', image: Buffer, file: string): Promise<void> {
    const bmc = await this.d.bmc(serial);
    if (!bmc) throw new UnavailableError(`no BMC is known for node ${serial} (the cluster keeps them from the create request's bmcs[])`);
    const ca = await this.d.ca();
    const client = new RedfishClient(bmcBaseUrl(bmc.address), bmc.user, bmc.password, bmc.ca ?? undefined, 15_000);
    try {
      await this.trust(client, ca.cert);
      const s = await this.serve(`${serial}/${part}`, image, file, ca);
      try {
        await client.post(`${UPDATE}/Actions/UpdateService.SimpleUpdate`, { ImageURI: s.url, TransferProtocol: 'HTTPS', Username: s.user, Password: s.password, Targets: [`${UPDATE}/FirmwareInventory/${part.toUpperCase()}`] });
        this.d.log(`firmware: ${serial}'s BMC asked to flash ${part.toUpperCase()} ${file}`);
      } catch (e) {
        if (e instanceof RedfishClientError && e.status === 409) return; // an update runs already: the one asked before
        throw new UnavailableError(`${serial}'s BMC refused the ${part.toUpperCase()} update: ${errorMessage(e)}`);
      }
    } finally {
      await client.close();
    }
  }

  /** The BMC trusts the cluster's CA for HTTPS image downloads (added once; a BMC without the collection is left as it is). */
  private async trust(client: RedfishClient, caPem: string): Promise<void> {
    const want = new X509Certificate(caPem).fingerprint256;
    let have: { CertificateString?: string }[];
    try {
      have = await client.members<{ CertificateString?: string }>(`${UPDATE}/RemoteServerCertificates`);
    } catch (e) {
      if (e instanceof RedfishClientError && e.status === 404) return;
      throw e;
    }
    if (have.some((c) => c.CertificateString !== undefined && new X509Certificate(c.CertificateString).fingerprint256 === want)) return;
    try {
      await client.post(`${UPDATE}/RemoteServerCertificates`, { CertificateString: caPem, CertificateType: 'PEM' });
    } catch (e) {
      if (!(e instanceof RedfishClientError && e.status === 409)) throw e;
    }
  }

  /** The image at a one-time HTTPS URL (the same one while it is served: asking again reuses it). */
  private async serve(key: string, image: Buffer, file: string, ca: Pem): Promise<Served> {
    const open = this.served.get(key);
    if (open) return open;
    const cert = await issueCert(ca, { cn: this.d.self, ips: [this.d.self], usage: 'server' });
    const token = randomBytes(16).toString('hex');
    const user = `lcm-${randomBytes(4).toString('hex')}`;
    const password = randomBytes(18).toString('base64url');
    const path = `/firmware/${token}/${encodeURIComponent(file)}`;
    const expected = Buffer.from(`Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`);
    const server = createServer({ key: cert.key, cert: cert.cert, requestTimeout: 30_000 }, (req, res) => {
      const given = Buffer.from(req.headers.authorization ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="firmware"' }).end();
        return;
      }
      if (req.method !== 'GET' || req.url !== path) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': image.length }).end(image);
      this.d.log(`firmware: ${file} fetched by ${req.socket.remoteAddress ?? '?'}`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.d.self, () => resolve());
    });
    const port = (server.address() as { port: number }).port;
    const s: Served = { server, url: `https://${this.d.self}:${port}${path}`, user, password, timer: setTimeout(() => this.drop(key), SERVE_MS) };
    s.timer.unref();
    this.served.set(key, s);
    return s;
  }

  private drop(key: string): void {
    const s = this.served.get(key);
    if (!s) return;
    this.served.delete(key);
    clearTimeout(s.timer);
    s.server.close();
    s.server.closeAllConnections();
  }

  /** Stops serving a node's image (its step is done), or every image. */
  close(key?: string): void {
    for (const k of [...this.served.keys()]) if (key === undefined || k === key) this.drop(k);
  }
}
