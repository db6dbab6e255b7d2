// The hosted unsubscribe pages in a real browser (spec feedback-and-unsubscribe.md §4), on a link
// taken from a List-Unsubscribe header the local server really sent. Environment (set by
// crates/local/tests/browser.rs): PLUNK_BASE_URL, PLUNK_SECRET_KEY, PLUNK_CONTACT_ID,
// PLUNK_EMAIL_ID, PLUNK_UNSUBSCRIBE_URL; optional PLUNK_BROWSER_SCREENSHOTS, a folder that
// receives a PNG of each page shown.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { api, baseUrl, env, launch } from './harness.mjs';

const key = env('PLUNK_SECRET_KEY');
const contactId = env('PLUNK_CONTACT_ID');
const emailId = env('PLUNK_EMAIL_ID');
const unsubscribeUrl = env('PLUNK_UNSUBSCRIBE_URL');
const manageUrl = unsubscribeUrl.replace('/unsubscribe/', '/manage/');

/** Saves a screenshot when PLUNK_BROWSER_SCREENSHOTS names a folder. */
async function snapshot(page, name) {
  const dir = process.env.PLUNK_BROWSER_SCREENSHOTS;
  if (dir) await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

async function subscribed() {
  const { status, json } = await api('GET', `/contacts/${contactId}`, { key });
  assert.equal(status, 200);
  return json.data.subscribed;
}

async function setSubscribed(value) {
  const { status } = await api('PATCH', `/contacts/${contactId}`, { key, body: { subscribed: value } });
  assert.equal(status, 200);
}

async function lastSubscriptionEvent() {
  const { json } = await api('GET', `/contacts/${contactId}/events?limit=100`, { key });
  return json.data.items.find((e) => e.name.startsWith('contact.'));
}

test('hosted pages in Chromium', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const { page } = browser;

  await t.test('the unsubscribe page shows the masked address and GET changes nothing', async () => {
    assert.equal(await subscribed(), true);
    const res = await page.goto(unsubscribeUrl);
    assert.equal(res.status(), 200);
    assert.equal(res.headers()['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.headers()['cache-control'], 'no-store');
    assert.equal(res.headers()['referrer-policy'], 'no-referrer');
    assert.ok(res.headers()['x-request-id']);
    assert.equal(res.headers()['set-cookie'], undefined);
    const text = await page.textContent('main');
    assert.match(text, /a\*\*\*@example\.org/);
    assert.doesNotMatch(text, /ada@example\.org/);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal((await browser.context.cookies()).length, 0);
    await snapshot(page, 'unsubscribe');
    assert.equal(await subscribed(), true, 'GET did not unsubscribe');
  });

  await t.test('clicking the button posts the form and unsubscribes', async () => {
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Unsubscribe', exact: true }).click(),
    ]);
    assert.equal(response.status(), 200);
    await page.waitForLoadState();
    assert.equal((await page.textContent('h1')).trim(), 'You have been unsubscribed.');
    await snapshot(page, 'unsubscribed');
    assert.equal(await subscribed(), false);
    const event = await lastSubscriptionEvent();
    assert.equal(event.name, 'contact.unsubscribed');
    assert.equal(event.data.source, 'unsubscribe_page');
    assert.equal(event.emailId, emailId);
  });

  await t.test('the manage page resubscribes with its subscribe button', async () => {
    await page.getByRole('link', { name: 'Manage preferences' }).click();
    await page.waitForLoadState();
    assert.equal(page.url(), manageUrl);
    assert.match(await page.textContent('main'), /is unsubscribed from marketing emails/);
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Subscribe', exact: true }).click(),
    ]);
    await page.waitForLoadState();
    assert.match(await page.textContent('main'), /Your preferences have been saved\./);
    await snapshot(page, 'manage-saved');
    assert.equal(await subscribed(), true);
    assert.equal((await lastSubscriptionEvent()).data.source, 'manage_page');
  });

  await t.test('a one-click POST unsubscribes', async () => {
    const res = await fetch(unsubscribeUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
      redirect: 'manual',
    });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /You have been unsubscribed\./);
    assert.equal(res.headers.get('set-cookie'), null);
    assert.equal(await subscribed(), false);
    const event = await lastSubscriptionEvent();
    assert.equal(event.data.source, 'one_click');
    assert.equal(event.data.emailId, emailId);
  });

  await t.test('GET of the same URL, by a browser or a link scanner, does not change state', async () => {
    await setSubscribed(true);
    assert.equal((await page.goto(unsubscribeUrl)).status(), 200);
    assert.equal((await fetch(unsubscribeUrl)).status, 200);
    assert.equal((await fetch(manageUrl)).status, 200);
    assert.equal(await subscribed(), true);
  });

  await t.test('a tampered token shows the 404 page', async () => {
    const token = unsubscribeUrl.split('/').pop();
    const flipped = (token[5] === 'A' ? 'B' : 'A');
    const tampered = unsubscribeUrl.replace(token, token.slice(0, 5) + flipped + token.slice(6));
    const res = await page.goto(tampered);
    assert.equal(res.status(), 404);
    assert.equal((await page.textContent('h1')).trim(), 'This link is no longer valid');
    await snapshot(page, 'invalid');
    assert.equal(await subscribed(), true);
  });

  await t.test('nothing was loaded from anywhere but the server under test', () => {
    const origin = new URL(baseUrl()).origin;
    const elsewhere = browser.requests.filter((u) => new URL(u).origin !== origin);
    assert.deepEqual(elsewhere, []);
  });
});
