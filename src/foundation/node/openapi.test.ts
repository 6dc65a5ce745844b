import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OPENAPI } from './openapi.ts';

test('every JSON POST endpoint describes its body with the schema it is validated with (generated, not written by hand)', () => {
  const posts = Object.entries(OPENAPI.paths).flatMap(([path, ops]) => ('post' in ops ? [{ path, op: ops.post as Record<string, unknown> }] : []));
  const json = posts.filter((p) => p.path !== '/foundation/upload');
  assert.ok(json.length >= 7);
  for (const { path, op } of json) {
    const schema = (op['requestBody'] as { content?: Record<string, { schema?: Record<string, unknown> }> } | undefined)?.content?.['application/json']?.schema;
    assert.equal(schema?.['type'], 'object', `${path}: a generated object schema`);
  }
  // the limits the routes enforce are in the document: e.g. image_nodes' blocks and a node's addresses
  const img = JSON.stringify((OPENAPI.paths['/foundation/image_nodes'].post as { requestBody: unknown }).requestBody);
  assert.match(img, /"blocks"/);
  assert.match(img, /"maxItems"/);
});
