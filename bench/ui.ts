/**
 * bench/ui: what watching a deployment costs the browser — Foundation's flow diagram in Debian's
 * Chromium while a real rack and Foundation image 8 and 32 nodes (no cluster) at pace 0.
 *
 * For each size it reports the deployment's wall time and, over that same time, the page's
 * main-thread busy time (Chromium's TaskDuration) as a share of the wall time, the long tasks
 * (> 50 ms: their total and the longest, which is how long a click or a scroll could wait), the
 * number of DOM mutation batches (redraws), and how long a screenshot takes at the end. The share
 * of the wall time is the ratio: a page that keeps up with any number of nodes stays well below 1.
 *
 * Usage: node --import tsx bench/ui.ts [sizes...] [--reduced-motion] [--profile]
 *   default sizes 8 32; --reduced-motion asks for prefers-reduced-motion (no pulsing icons or
 *   moving dashes: about half of the page's work at 32 nodes); --profile prints the page's
 *   functions with the most self time.
 */
import { launchChromium } from '../test/drivers/browser.ts';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestFoundation } from '../test/drivers/foundation-driver.ts';
import { machineContext } from './machine.ts';

const args = process.argv.slice(2);
const PROFILE = args.includes('--profile');
const REDUCED = args.includes('--reduced-motion');
const sizes = args.map(Number).filter((n) => n > 0);
const SIZES = sizes.length ? sizes : [8, 32];
const ROOT = fileURLToPath(new URL('../', import.meta.url));

const RECORD = `
  window.__long = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); }).observe({ type: 'longtask', buffered: true });
  window.__muts = 0;
  new MutationObserver(() => { window.__muts++; }).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
`;

interface Row { nodes: number; wallS: number; busyS: number; share: number; longTasks: number; longS: number; maxLongMs: number; redraws: number; screenshotMs: number }

const built = spawnSync(process.execPath, [`${ROOT}scripts/build-web.mjs`], { stdio: 'inherit' });
if (built.status !== 0) process.exit(1);
const browser = await launchChromium();
const rows: Row[] = [];
console.log(machineContext());
for (const [i, n] of SIZES.entries()) {
  const t = await TestFoundation.start(`127.${101 + i * 2}`, 18100 + i, n);
  try {
    await t.upload();
    const page = await browser.newPage({ viewport: { width: 1500, height: 900 }, reducedMotion: REDUCED ? 'reduce' : 'no-preference' });
    await page.addInitScript(RECORD);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Performance.enable');
    if (PROFILE) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.start');
    }
    const r = await t.call('POST', '/foundation/image_nodes', t.imageBody(`127.${102 + i * 2}`, Array.from({ length: n }, (_x, k) => k), { max_parallel: 4 }));
    if (r.status !== 200) throw new Error(`image_nodes: ${r.text}`);
    const sid = r.json.session_id as string;
    const busy = async (): Promise<number> => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration')?.value ?? 0;
    const t0 = Date.now();
    await page.goto(`${t.fd.url}/#/session/${sid}`);
    const b0 = await busy();
    await t.waitStopped(sid, 600_000);
    await page.locator('[data-testid=session-status][data-verdict=succeeded]').waitFor({ timeout: 30_000 });
    const wall = (Date.now() - t0) / 1000;
    const busyS = (await busy()) - b0;
    const s0 = Date.now();
    await page.screenshot({ timeout: 60_000 });
    const shot = Date.now() - s0;
    const long = await page.evaluate<number[]>('window.__long');
    rows.push({
      nodes: n, wallS: wall, busyS, share: busyS / wall, longTasks: long.length, longS: long.reduce((a, b) => a + b, 0) / 1000,
      maxLongMs: Math.max(0, ...long), redraws: await page.evaluate<number>('window.__muts'), screenshotMs: shot,
    });
    if (PROFILE) {
      const { profile } = await cdp.send('Profiler.stop');
      const byId = new Map(profile.nodes.map((p) => [p.id, p]));
      const self = new Map<string, number>();
      (profile.samples ?? []).forEach((id, k) => {
        const f = byId.get(id)?.callFrame;
        const key = `${f?.functionName || '(anonymous)'} ${f?.url.split('/').pop() ?? ''}:${f?.lineNumber ?? 0}`;
        self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas?.[k] ?? 0) / 1000);
      });
      console.log(`\nself time, ${n} nodes:`);
      for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${v.toFixed(0).padStart(8)} ms  ${k}`);
    }
    await page.close();
  } finally {
    await t.stop();
  }
}
await browser.close();

console.log(`\nFoundation flow diagram in Chromium, watching a deployment (pace 0, no cluster${REDUCED ? ', reduced motion' : ''})`);
console.log('nodes  wall s  page busy s  busy/wall  long tasks  long s  longest ms  redraws  screenshot ms');
for (const r of rows) {
  console.log(`${String(r.nodes).padStart(5)}  ${r.wallS.toFixed(1).padStart(6)}  ${r.busyS.toFixed(2).padStart(11)}  ${r.share.toFixed(2).padStart(8)}x  ${String(r.longTasks).padStart(10)}  ${r.longS.toFixed(2).padStart(6)}  ${r.maxLongMs.toFixed(0).padStart(10)}  ${String(r.redraws).padStart(7)}  ${String(r.screenshotMs).padStart(13)}`);
}
