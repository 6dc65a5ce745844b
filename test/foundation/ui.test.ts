/**
 * Foundation's web UI in Debian's Chromium (playwright-core, no downloaded browser) against a real
 * rack and Foundation: the wizard deploys 3 nodes with their cluster and the live flow diagram
 * shows every node pass through the four stages to done; a node whose installer crashes shows
 * failed with its reason while the others go on, the state survives a reload, and Retry from the
 * UI completes it; 32 nodes draw as compact lanes that scroll and zoom, and Abort stops them.
 * Screenshots are compared by structure (the positions of columns, lanes and boxes from the DOM),
 * not by pixels; they go to CONVERGE_SCREENSHOTS (docs/images refreshes the guide's pictures) or a
 * temporary folder, so a test run does not rewrite tracked files.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../drivers/browser.ts';
import { TestFoundation, testBundle } from '../drivers/foundation-driver.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GIVEN = process.env['CONVERGE_SCREENSHOTS'];
const IMAGES = GIVEN ?? mkdtempSync(join(tmpdir(), 'cvg-ui-shots-'));

let t: TestFoundation;
let browser: Browser;
let page: Page;
let url: string;

before(async () => {
  // the UI is built by scripts/setup.sh; build it here too when it is missing or stale (run alone)
  const b = spawnSync(process.execPath, [`${ROOT}scripts/build-web.mjs`], { encoding: 'utf8' });
  assert.equal(b.status, 0, `web UI build: ${b.stderr}${b.stdout}`);
  mkdirSync(IMAGES, { recursive: true });
  t = await TestFoundation.start('127.81', 18081, 38);
  url = t.fd.url;
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
  // every state each box shows, in order, recorded as the DOM changes (React draws once per commit);
  // page scripts are strings: the test's own code is transpiled with helpers the page does not have
  await page.addInitScript(RECORD_STATES);
});

after(async () => {
  await browser?.close();
  await t?.stop();
  if (GIVEN === undefined) rmSync(IMAGES, { recursive: true, force: true });
});

const RECORD_STATES = `
  window.__states = [];
  const seen = new Map();
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('[data-testid=box]')) {
      if (seen.get(el.dataset.box) !== el.dataset.state) {
        seen.set(el.dataset.box, el.dataset.state);
        window.__states.push({ id: el.dataset.box, state: el.dataset.state });
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
`;

const SHAPE = `(() => {
  const r = (el) => el.getBoundingClientRect();
  return {
    columns: [...document.querySelectorAll('[data-testid=column]')].map((el) => Math.round(r(el).x)),
    lanes: [...document.querySelectorAll('[data-testid=lane]')].map((el) => ({ id: el.dataset.lane, y: Math.round(r(el).y) })),
    boxes: [...document.querySelectorAll('[data-testid=box]')].map((el) => {
      const b = r(el);
      return { id: el.dataset.box, lane: el.dataset.lane, column: el.dataset.column, state: el.dataset.state, x: Math.round(b.x), y: Math.round(b.y), width: Math.round(b.width), height: Math.round(b.height) };
    }),
  };
})()`;

interface Shape {
  columns: number[];
  lanes: { id: string; y: number }[];
  boxes: { id: string; lane: string; column: string; state: string; x: number; y: number; width: number; height: number }[];
}

/** The diagram's structure as drawn: column header x, lane label y, every box's place and state. */
async function shapeOf(p: Page): Promise<Shape> {
  return p.evaluate<Shape>(SHAPE);
}

/** A grid: each column's boxes share the header's x, each lane's boxes share its label's y, in order. */
function assertGrid(s: Shape, lanes: number): void {
  assert.equal(s.columns.length, 4, 'four stage columns');
  assert.ok(s.columns.every((x, i) => i === 0 || x > (s.columns[i - 1] ?? 0)), `columns left to right: ${s.columns.join(',')}`);
  assert.equal(s.lanes.length, lanes);
  assert.ok(s.lanes.every((l, i) => i === 0 || l.y > (s.lanes[i - 1]?.y ?? 0)), 'lanes top to bottom');
  for (const l of s.lanes) {
    const row = s.boxes.filter((b) => b.lane === l.id && b.column !== 'prism');
    assert.equal(row.length, 4, `lane ${l.id} has a box per stage`);
    for (const b of row) {
      assert.ok(Math.abs(b.y - l.y) <= 1, `box ${b.id} sits in its lane (y ${b.y} vs ${l.y})`);
      assert.ok(Math.abs(b.x - (s.columns[Number(b.column)] ?? -1)) <= 1, `box ${b.id} sits in its column`);
    }
  }
}

/** Runs a test body; a failure also says what the page showed (header, every box's state). */
function showing(body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (e) {
      const header = await page.getByTestId('session-status').innerText({ timeout: 1000 }).catch(() => '(no session header)');
      const boxes = await shapeOf(page).then((sh) => sh.boxes.map((b) => `${b.id}=${b.state}`).join(' '), () => '(no boxes)');
      if (e instanceof Error) e.message += `\npage ${page.url()}: ${header}\n${boxes}`;
      throw e;
    }
  };
}

const box = (p: Page, lane: string, column: number | 'prism'): ReturnType<Page['locator']> => p.locator(`[data-testid=box][data-box="${lane}/${column}"]`);
const stateOf = (p: Page, lane: string, column: number | 'prism'): Promise<string | null> => box(p, lane, column).getAttribute('data-state');
const verdict = async (p: Page, v: string, timeout: number): Promise<void> => {
  await p.locator(`[data-testid=session-status][data-verdict="${v}"]`).waitFor({ timeout });
};

let flowShape: Shape;

test('the wizard deploys 3 nodes with their cluster; the flow diagram shows each node through the four stages to done', showing(async () => {
  const serials = [0, 1, 2].map((i) => t.tr.node(i).serial);
  const { file } = await testBundle();
  await page.goto(`${url}/`);
  // 1 discover: every rack node, the first three kept
  await page.locator('[data-testid=discovered] tbody tr').nth(37).waitFor();
  for (let i = 3; i < 38; i++) await page.getByLabel(`deploy ${t.tr.node(i).serial}`).uncheck();
  assert.match(await page.locator('.wizard-main').innerText(), /38 node\(s\) found, 3 selected/);
  await page.getByTestId('next').click();
  // 2 validate
  await page.locator('[data-testid=validation] tbody tr').nth(2).waitFor();
  for (const s of serials) assert.match(await page.locator(`[data-testid=validation] tr[data-serial="${s}"]`).innerText(), /PASS/);
  await page.getByTestId('next').click();
  // 3 network: the Next button waits for a checked plan
  assert.equal(await page.getByTestId('next').isDisabled(), true);
  await page.locator('input[name=clusterName]').fill('lab');
  await page.locator('input[name=hostStart]').fill('127.82.0.1');
  await page.locator('input[name=cvmStart]').fill('127.82.1.1');
  await page.locator('input[name=gateway]').fill('127.82.255.254');
  await page.getByTestId('check-plan').click();
  await page.locator('[data-testid=plan] tbody tr').nth(2).waitFor();
  assert.match(await page.getByTestId('plan').innerText(), new RegExp(`${serials[2]}\\s+node-3\\s+\\S+\\s+127\\.82\\.0\\.3\\s+127\\.82\\.1\\.3`));
  await page.screenshot({ path: `${IMAGES}/foundation-wizard.png` });
  await page.getByTestId('next').click();
  // 4 software: the bundle uploaded through the page, a cluster at RF2
  await page.getByTestId('upload').setInputFiles(file);
  await page.getByTestId('uploaded').waitFor();
  assert.equal(await page.locator('select[name=bundle]').inputValue(), 'converge-1.0.0.tar.gz');
  assert.equal(await page.locator('input[name=createCluster]').isChecked(), true);
  assert.equal(await page.locator('select[name=rf]').inputValue(), '2');
  await page.getByTestId('next').click();
  // 5 review, 6 deploy
  assert.match(await page.getByTestId('review').innerText(), /lab, RF2, created and validated after imaging/);
  await page.getByTestId('next').click();
  await page.getByTestId('deploy').click();
  await page.waitForURL(/#\/session\/[^/]+$/);
  const sid = decodeURIComponent(page.url().split('#/session/')[1] ?? '');
  assert.equal(await page.getByTestId('session-id').innerText(), sid);

  await verdict(page, 'succeeded', 60_000);
  const shape = await shapeOf(page);
  assertGrid(shape, 4);
  assert.deepEqual(shape.lanes.map((l) => l.id), [...serials.map((s) => `node:${s}`), 'cluster:lab']);
  assert.equal(shape.boxes.length, 17, '4 lanes × 4 stages and the cluster\'s Prism box');
  // every node went through imaging and bootstrap while the page watched, in stage order, and ended done
  const history = await page.evaluate<{ id: string; state: string }[]>('window.__states');
  for (const s of serials) {
    const lane = `node:${s}`;
    const running = history.filter((h) => h.id.startsWith(`${lane}/`) && h.state === 'running').map((h) => Number(h.id.split('/')[1]));
    assert.ok(running.includes(1) && running.includes(2), `${s} was seen imaging and bootstrapping: ${running.join(',')}`);
    assert.deepEqual(running, [...running].sort((a, b) => a - b), `${s} moved through the stages in order`);
    const starts: number[] = [];
    for (const col of [0, 1, 2, 3]) {
      assert.equal(await stateOf(page, lane, col), 'done', `${s} stage ${col + 1}`);
      assert.equal(await box(page, lane, col).getAttribute('data-percent'), '100');
      starts.push(Number(await box(page, lane, col).getAttribute('data-started-at')));
    }
    assert.ok(starts.every((v, i) => v > 0 && (i === 0 || v >= (starts[i - 1] ?? 0))), `${s}: each stage started after the one before: ${starts.join(',')}`);
    assert.match(await box(page, lane, 0).getByTestId('box-message').innerText(), new RegExp(`host 127\\.82\\.0\\.${serials.indexOf(s) + 1}`));
    assert.match(await box(page, lane, 1).getByTestId('box-elapsed').innerText(), /^\d+ s$|^\d+:\d\d$/);
  }
  for (const col of [0, 1, 2, 3]) assert.equal(await stateOf(page, 'cluster:lab', col), 'done');
  assert.deepEqual(await box(page, 'cluster:lab', 3).locator('.box-checks li').allInnerTexts(), ['✔ host-cvm-link', '✔ store-quorum', '✔ cvm-services', '✔ storage-pool', '✔ data-path', '✔ prism']);
  assert.equal(await stateOf(page, 'cluster:lab', 'prism'), 'done', 'Prism answered Foundation\'s check');
  // every edge of the flow carried work to done: 3 per lane, 3 joins into the cluster, and on to Prism
  assert.equal(await page.locator('.react-flow__edge.edge-done').count(), 4 * 3 + 3 + 1);
  assert.equal(await page.locator('.react-flow__edge.edge-done.edge-join').count(), 3);
  assert.match(await page.getByTestId('session-status').innerText(), /100% · succeeded · 3\/3 nodes done/);
  // a box's log: the node's events from node_log
  await box(page, `node:${serials[1]}`, 1).click();
  await page.locator('[data-testid=log-text]', { hasText: 'CVM up' }).waitFor();
  const log = await page.getByTestId('log-text').innerText();
  assert.match(log, /\[installing \d+%\]/);
  assert.ok(!log.includes(serials[0] ?? '?'), 'only that node\'s log');
  await page.locator('[aria-label="close the log"]').click();
  await page.screenshot({ path: `${IMAGES}/foundation-flow.png` });
  flowShape = shape;
}));

test('an installer crash fails one node with its reason while the others go on; the state survives a reload; Abort, then Retry from the UI completes it', showing(async () => {
  const [a, bad, c] = [3, 4, 5].map((i) => t.tr.node(i).serial);
  await t.tr.rack.setFaults(bad ?? '', { installerCrashAtPercent: 40 });
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.83', [3, 4, 5], {
    clusters: [{ cluster_name: 'lab2', cluster_members: ['127.83.1.4', '127.83.1.5', '127.83.1.6'], cluster_init_now: true, redundancy_factor: 2 }],
  }));
  assert.equal(r.status, 200, r.text);
  const sid = r.json.session_id as string;
  await page.goto(`${url}/#/session/${sid}`);
  const failed = box(page, `node:${bad}`, 1);
  await page.locator(`[data-testid=box][data-box="node:${bad}/1"][data-state=failed]`).waitFor({ timeout: 30_000 });
  assert.match(await failed.getByTestId('box-message').innerText(), /the installer crashed/);
  await verdict(page, 'stopped', 30_000);
  for (const s of [a, c]) {
    for (const col of [0, 1]) assert.equal(await stateOf(page, `node:${s}`, col), 'done', `${s} went on`);
    assert.equal(await stateOf(page, `node:${s}`, 2), 'pending', `${s}'s cluster waits for the failed member`);
  }
  assert.equal(await stateOf(page, `node:${bad}`, 0), 'done');
  assert.equal(await stateOf(page, `node:${bad}`, 2), 'pending');
  assert.equal(await stateOf(page, 'cluster:lab2', 1), 'failed');
  assert.match(await box(page, 'cluster:lab2', 2).getByTestId('box-message').innerText(), /waiting: a member node failed imaging \(retry it\)/);
  // (the edges are drawn a frame after the boxes' states: wait for them)
  await page.waitForFunction("document.querySelectorAll('.react-flow__edge.edge-failed').length >= 2", null, { timeout: 5000 }).catch(() => undefined);
  assert.equal(await page.locator('.react-flow__edge.edge-failed').count(), 2, 'the edges into the failed box and the cluster\'s summary');
  await page.screenshot({ path: `${IMAGES}/foundation-flow-failed.png` });
  const shape = await shapeOf(page);
  assertGrid(shape, 4);
  // the same layout as the successful deployment: same columns, same box sizes
  assert.deepEqual(shape.columns, flowShape.columns);
  assert.deepEqual(shape.boxes.map((b) => [b.column, b.x, b.width, b.height]), flowShape.boxes.map((b) => [b.column, b.x, b.width, b.height]));

  // a reload rebuilds the same diagram from progress and the replayed log, timings included
  const before = shape.boxes.map((b) => `${b.id}:${b.state}`);
  const elapsedBefore = await failed.getAttribute('data-elapsed-ms');
  await page.reload();
  await page.locator('[data-testid=connection][data-connection=live]').waitFor();
  await page.locator(`[data-testid=box][data-box="node:${bad}/1"][data-state=failed]`).waitFor();
  assert.deepEqual((await shapeOf(page)).boxes.map((b) => `${b.id}:${b.state}`), before);
  assert.equal(await failed.getAttribute('data-elapsed-ms'), elapsedBefore, 'a finished box keeps its time');
  assert.match(await failed.getByTestId('box-message').innerText(), /the installer crashed/);
  await failed.click();
  await page.locator('[data-testid=log-reason]', { hasText: 'the installer crashed' }).waitFor();
  await page.locator('[data-testid=log-text]', { hasText: 'fatal: the installer crashed' }).waitFor();
  await page.locator('[aria-label="close the log"]').click();

  // Abort from the failed box: the session says so; Retry clears it and the node completes
  await failed.getByRole('button', { name: 'Abort' }).click();
  await page.getByTestId('aborted-banner').waitFor();
  await verdict(page, 'aborted', 5_000);
  assert.equal((await t.call('GET', `/foundation/progress?session_id=${sid}`)).json.abort_session, true);
  await t.tr.rack.clearFaults(bad ?? '');
  await failed.getByRole('button', { name: 'Retry' }).click();
  await verdict(page, 'running', 5_000);
  await verdict(page, 'succeeded', 60_000);
  for (const s of [a, bad, c]) for (const col of [0, 1, 2, 3]) assert.equal(await stateOf(page, `node:${s}`, col), 'done', `${s} stage ${col + 1}`);
  assert.equal(await stateOf(page, 'cluster:lab2', 3), 'done');
  const p = (await t.call('GET', `/foundation/progress?session_id=${sid}`)).json;
  assert.equal(p.aggregate_percent_complete, 100);
}));

test('32 nodes: compact lanes that scroll and zoom; Abort from the header stops the session', showing(async () => {
  const indexes = Array.from({ length: 32 }, (_x, i) => i + 6);
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.84', indexes, { max_parallel: 2 }));
  assert.equal(r.status, 200, r.text);
  const sid = r.json.session_id as string;
  await page.goto(`${url}/#/session/${sid}`);
  await page.locator('[data-testid=flow][data-compact=true]').waitFor();
  await page.locator('[data-testid=box][data-column="1"][data-state=running]').first().waitFor({ timeout: 20_000 });
  const shape = await shapeOf(page);
  assertGrid(shape, 32);
  const first = shape.boxes.find((b) => b.id === `node:${t.tr.node(6).serial}/0`);
  const normal = flowShape.boxes[0];
  assert.ok(first && normal && first.height < normal.height * 0.75, `compact lanes (${first?.height} px vs ${normal?.height} px)`);
  // the first view fits the width: the four columns are on screen, the lower lanes below the fold
  const view = page.viewportSize() ?? { width: 0, height: 0 };
  assert.ok(shape.columns.every((x) => x >= 0 && x < view.width), 'all four stages visible');
  const last = shape.lanes[shape.lanes.length - 1];
  assert.ok(last && last.y > view.height, 'the diagram is taller than the window');
  await page.screenshot({ path: `${IMAGES}/foundation-flow-32.png` });
  // scroll down to the last lane, then zoom out
  await page.mouse.move(700, 500);
  for (let i = 0; i < 6; i++) await page.mouse.wheel(0, 600);
  await page.waitForFunction(`(() => { const l = document.querySelectorAll('[data-testid=lane]'); return l[l.length - 1].getBoundingClientRect().y < ${view.height}; })()`);
  const width = (await box(page, `node:${t.tr.node(6).serial}`, 0).boundingBox())?.width ?? 0;
  await page.locator('.react-flow__controls-zoomout').click();
  await page.waitForFunction(`document.querySelector('[data-testid=box]').getBoundingClientRect().width < ${width - 1}`);
  // Abort from the header: the pending nodes never start
  await page.getByTestId('abort-session').click();
  await verdict(page, 'aborted', 10_000);
  const p = (await t.call('GET', `/foundation/progress?session_id=${sid}`)).json;
  assert.equal(p.abort_session, true);
  const lastSerial = t.tr.node(37).serial;
  assert.equal(await stateOf(page, `node:${lastSerial}`, 0), 'aborted');
  assert.equal(p.nodes.find((n: any) => n.node_serial === lastSerial).percent_complete, 0, 'never started');
}));
