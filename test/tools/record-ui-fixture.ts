/**
 * Records the event stream and progress of a real session for the web UI's model tests
 * (web/src/model/fixtures/): 3 nodes with a cluster, the second node's installer crashing at 40 %,
 * then that node retried to the end. Run: node --import tsx test/tools/record-ui-fixture.ts (rack on 127.88, hosts and CVMs on 127.87)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestFoundation } from '../drivers/foundation-driver.ts';

const out = new URL('../../web/src/model/fixtures/', import.meta.url).pathname;
const t = await TestFoundation.start('127.88', 18088, 3);
try {
  await t.upload();
  const crashing = t.tr.node(1).serial;
  await t.tr.rack.setFaults(crashing, { installerCrashAtPercent: 40 });
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.87', [0, 1, 2], {
    clusters: [{ cluster_name: 'lab', cluster_members: ['127.87.1.1', '127.87.1.2', '127.87.1.3'], cluster_init_now: true, redundancy_factor: 2 }],
  }));
  if (r.status !== 200) throw new Error(r.text);
  const sid = r.json.session_id as string;
  const failed = await t.waitStopped(sid);
  writeFileSync(join(out, 'crash-retry.progress-failed.json'), JSON.stringify(failed, null, 1) + '\n');
  await t.tr.rack.clearFaults(crashing);
  await t.call('POST', `/foundation/retry_node?session_id=${sid}&serial=${crashing}`);
  const done = await t.tr.until(async () => {
    const p = (await t.call('GET', `/foundation/progress?session_id=${sid}`)).json;
    return p.imaging_stopped && p.aggregate_percent_complete === 100 ? p : undefined;
  }, 120_000, 'the retried session to finish');
  writeFileSync(join(out, 'crash-retry.progress-final.json'), JSON.stringify(done, null, 1) + '\n');
  writeFileSync(join(out, 'crash-retry.events.jsonl'), readFileSync(join(t.dir, 'foundation', 'sessions', sid, 'events.jsonl'), 'utf8'));
  process.stdout.write(`recorded session ${sid} into ${out}\n`);
} finally {
  await t.stop();
}
