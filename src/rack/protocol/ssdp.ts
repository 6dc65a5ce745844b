/**
 * @module
 * The client side of Redfish SSDP discovery (DSP0266 "Discovery"): send an M-SEARCH for the
 * Redfish service and collect the service root URLs (AL) and UUIDs (USN) of the answers. Sends to
 * the multicast group and, for loopback labs where multicast does not leave the host, to a
 * unicast address too.
 */
import { createSocket } from 'node:dgram';
import { SSDP_ADDRESS, SSDP_PORT, SSDP_ST } from './redfish.ts';

export interface SsdpAnswer {
  url: string;
  uuid: string;
  from: string;
}

export async function ssdpSearch(opts: { port?: number; unicast?: string[]; timeoutMs?: number } = {}): Promise<SsdpAnswer[]> {
  const port = opts.port ?? SSDP_PORT;
  const sock = createSocket({ type: 'udp4', reuseAddr: true });
  const found = new Map<string, SsdpAnswer>();
  sock.on('message', (msg, rinfo) => {
    const text = msg.toString('latin1');
    const al = /^AL:\s*(\S+)/im.exec(text)?.[1];
    const usn = /^USN:\s*uuid:([0-9a-fA-F-]{36})/im.exec(text)?.[1];
    if (al && usn) found.set(al, { url: al, uuid: usn, from: rinfo.address });
  });
  sock.on('error', () => undefined);
  await new Promise<void>((r) => sock.bind(0, r));
  const m = ['M-SEARCH * HTTP/1.1', `HOST: ${SSDP_ADDRESS}:${port}`, 'MAN: "ssdp:discover"', 'MX: 1', `ST: ${SSDP_ST}`, '', ''].join('\r\n');
  const send = (addr: string): Promise<void> => new Promise((r) => sock.send(m, port, addr, () => r()));
  try {
    sock.setMulticastTTL(2);
    await send(SSDP_ADDRESS);
  } catch {
    // no multicast route: unicast below still works
  }
  for (const a of opts.unicast ?? ['127.0.0.1']) await send(a);
  await new Promise((r) => setTimeout(r, opts.timeoutMs ?? 1000));
  sock.close();
  return [...found.values()].sort((a, b) => a.url.localeCompare(b.url, undefined, { numeric: true }));
}
