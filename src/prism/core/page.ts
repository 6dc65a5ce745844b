/**
 * @module
 * Prism's web page: the cluster summary (hosts, CVMs and their services, storage capacity and its
 * RF, health), rendered on the server from one snapshot (pure). No script: the page reloads itself
 * every 10 s.
 */
import { healthOf, type ClusterSnapshot } from './snapshot.ts';

const esc = (v: unknown): string => String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(b >= 10 * 1024 ** 3 ? 0 : 1)} GiB`;
const pct = (a: number, b: number): string => (b > 0 ? `${Math.round((100 * a) / b)} %` : '–');

export function summaryPage(s: ClusterSnapshot, user: string): string {
  const c = s.cluster;
  const h = healthOf(s);
  const u = s.pool?.usage;
  const badge = (state: string): string => `<span class="b ${esc(state.toLowerCase())}">${esc(state)}</span>`;
  const hosts = s.members.map((m) => {
    const services = (m.cvm?.services ?? []).map((sv) => `${badge(sv.state === 'up' ? 'UP' : sv.state.toUpperCase())} ${esc(sv.name)}`).join(' ');
    const node = u?.nodes.find((n) => n.node === m.serial);
    return `<tr data-serial="${esc(m.serial)}"><td>${esc(m.host?.hostname ?? m.serial)}<div class="d">${esc(m.serial)}</div></td>
<td>${esc(m.hostIp)}<div class="d">AHV ${esc(m.host?.hypervisorVersion ?? '?')} · link ${esc(m.host?.link.state ?? 'unknown')}</div></td>
<td>${esc(m.cvmIp)}${m.cvmIp === s.leader ? ' <span class="b leader">Prism leader</span>' : ''}<div class="d">AOS ${esc(m.cvm?.nosVersion ?? '?')}</div></td>
<td>${m.cvm ? services : badge('DOWN')}</td>
<td>${node ? `${gib(node.usedBytes)} / ${gib(node.capacityBytes)}${node.failedDisks ? ` · ${node.failedDisks} failed disk(s)` : ''}` : '–'}</td></tr>`;
  }).join('\n');
  const containers = (u?.containers ?? []).map((x) => `<tr><td>${esc(x.name)}</td><td>RF${x.replicationFactor}</td><td>${x.vdisks}</td><td>${gib(x.provisionedBytes)}</td><td>${gib(x.logicalBytes)}</td><td>${gib(x.physicalBytes)}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>Prism · ${esc(c.name)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2731}
header{background:#1d2731;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline}
header h1{font-size:18px;margin:0}header .u{margin-left:auto;opacity:.8}
main{padding:16px 24px;display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(260px,1fr))}
section{background:#fff;border-radius:6px;padding:12px 16px;box-shadow:0 1px 2px #0002}
section.wide{grid-column:1/-1}h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#5a6b7b;margin:0 0 8px}
.big{font-size:28px;font-weight:600}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:6px 8px;border-top:1px solid #e3e8ee;vertical-align:top}
th{border:0;color:#5a6b7b;font-weight:500}.d{color:#5a6b7b;font-size:12px}
.b{display:inline-block;padding:1px 6px;border-radius:3px;font-size:11px;font-weight:600;background:#dfe6ee}
.b.ok,.b.up{background:#d3f2dc;color:#17612f}.b.warning,.b.starting,.b.restarting{background:#fdf0c8;color:#7a5a00}
.b.critical,.b.down,.b.stopped{background:#fbd5d5;color:#8a1c1c}.b.leader{background:#dbe8ff;color:#1d4fa8}
.bar{height:8px;background:#e3e8ee;border-radius:4px;overflow:hidden}.bar>i{display:block;height:100%;background:#3b82c4}
</style></head><body>
<header><h1>${esc(c.name)}</h1><span>Prism · ${esc(c.vip ?? s.leader)}:9440</span><span class="u">${esc(user)}</span></header>
<main>
<section id="health"><h2>Health</h2><div class="big">${badge(h.state)}</div>${h.reasons.length ? `<ul>${h.reasons.map((r) => `<li>${esc(r)}</li>`).join('')}</ul>` : '<p class="d">Every CVM, service, disk and link is up.</p>'}</section>
<section id="cluster"><h2>Cluster</h2><div class="big">${s.members.length} nodes</div>
<p class="d">RF${c.redundancyFactor} · configuration store on ${esc(c.store.join(', '))}${s.store ? ` (${s.store.quorum ? 'quorum' : 'NO QUORUM'})` : ''}<br>UUID ${esc(c.clusterId)}<br>created ${esc(c.createdAt)}</p></section>
<section id="storage"><h2>Storage</h2>${u ? `<div class="big">${gib(u.usedBytes)}</div><div class="d">used of ${gib(u.capacityBytes)} (${pct(u.usedBytes, u.capacityBytes)})</div>
<div class="bar"><i style="width:${u.capacityBytes ? Math.min(100, (100 * u.usedBytes) / u.capacityBytes) : 0}%"></i></div>
<p class="d">${gib(u.freeBytes)} free on healthy disks · ${u.disks.length} disks · ${s.vdisks.length} vdisks</p>` : '<p>The storage pool does not answer.</p>'}</section>
<section class="wide" id="hosts"><h2>Hosts and CVMs</h2><table><tr><th>Host</th><th>Hypervisor</th><th>CVM</th><th>Services</th><th>Storage used</th></tr>
${hosts}</table></section>
<section class="wide" id="containers"><h2>Storage containers</h2><table><tr><th>Name</th><th>RF</th><th>vdisks</th><th>Provisioned</th><th>Written</th><th>Physical</th></tr>
${containers}</table></section>
</main></body></html>
`;
}
