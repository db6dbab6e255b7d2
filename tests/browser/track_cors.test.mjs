// POST /v1/track from a web page on another origin, as a site embeds it (spec public-api.md §2 and
// README §9): with the public key the browser's CORS preflight and the request succeed and the
// event is stored. The public key anywhere else gets 403 INVALID_KEY_TYPE: on /v1/send the page
// can read that answer (every /v1/* response carries CORS headers); dashboard paths send no CORS
// headers at all, so the browser refuses the call before the page sees anything, and the same
// request made outside a browser gets the 403. Environment (set by crates/local/tests/browser.rs):
// PLUNK_BASE_URL, PLUNK_SECRET_KEY, PLUNK_PUBLIC_KEY.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, baseUrl, env, launch, otherOrigin } from './harness.mjs';

const secretKey = env('PLUNK_SECRET_KEY');
const publicKey = env('PLUNK_PUBLIC_KEY');

test('fetch from another origin: /v1/track works with the public key, other endpoints are 403', async (t) => {
  const site = await otherOrigin('<!doctype html><title>shop</title><p>A shop on another origin</p>');
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await site.close();
  });
  const { page } = browser;
  await page.goto(site.url);
  assert.notEqual(new URL(site.url).origin, new URL(baseUrl()).origin, 'a different origin');

  // JSON with an Authorization header: the browser sends a CORS preflight first.
  const tracked = await page.evaluate(
    async ({ base, key }) => {
      const res = await fetch(`${base}/v1/track`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ event: 'viewed_pricing', email: 'browser@example.com', data: { plan: 'team' } }),
      });
      return { status: res.status, body: await res.json() };
    },
    { base: baseUrl(), key: publicKey },
  );
  assert.equal(tracked.status, 200, JSON.stringify(tracked.body));
  assert.equal(tracked.body.success, true);
  const eventId = tracked.body.data.event;

  const stored = await api('GET', `/events/${eventId}`, { key: secretKey });
  assert.equal(stored.status, 200);
  assert.equal(stored.json.data.name, 'viewed_pricing');
  assert.equal(stored.json.data.contactEmail, 'browser@example.com');
  assert.deepEqual(stored.json.data.data, { plan: 'team' });

  const call = ({ base, key, method, path, body }) =>
    fetch(`${base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(
      async (res) => ({ status: res.status, body: await res.json() }),
      (error) => ({ blocked: String(error) }),
    );
  const send = { to: 'a@example.com', subject: 'x', body: 'y' };
  const refused = await page.evaluate(call, { base: baseUrl(), key: publicKey, method: 'POST', path: '/v1/send', body: send });
  assert.equal(refused.status, 403, JSON.stringify(refused));
  assert.equal(refused.body.error.code, 'INVALID_KEY_TYPE');

  const dashboard = await page.evaluate(call, { base: baseUrl(), key: publicKey, method: 'GET', path: '/contacts' });
  assert.match(dashboard.blocked ?? '', /Failed to fetch/, 'no CORS outside /v1/*: the browser refuses');
  const direct = await api('GET', '/contacts', { key: publicKey });
  assert.equal(direct.status, 403);
  assert.equal(direct.json.error.code, 'INVALID_KEY_TYPE');
});
