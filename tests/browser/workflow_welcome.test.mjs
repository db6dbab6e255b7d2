// A welcome workflow started from a web page: a page on another origin tracks `signed_up` with the
// public key (the browser's CORS preflight first), the event starts the workflow `signed_up` →
// SEND_EMAIL → CONDITION on data.plan → SEND_EMAIL ("yes") or UPDATE_CONTACT ("no"), the first
// email is sent within seconds, the execution shows every step with its output, and a second
// sign-up of the same contact starts nothing (no re-entry). The DELAY of the README walkthrough is
// left out: it lasts at least a minute. Environment (set by crates/local/tests/browser.rs):
// PLUNK_BASE_URL, PLUNK_SECRET_KEY, PLUNK_PUBLIC_KEY; the server's domain acme.io is verified.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, baseUrl, env, launch, otherOrigin } from './harness.mjs';

const secretKey = env('PLUNK_SECRET_KEY');
const publicKey = env('PLUNK_PUBLIC_KEY');

/** A dashboard call that must succeed; its `data`. */
async function ok(method, path, body) {
  const res = await api(method, path, { key: secretKey, body });
  assert.ok(res.status >= 200 && res.status < 300, `${method} ${path}: ${res.status} ${res.text}`);
  return res.json.data;
}

/** Polls `probe` every 200 ms until it returns a value, for at most `seconds`. */
async function eventually(probe, seconds, what) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not within ${seconds} s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test('a page tracks signed_up with the public key; the welcome workflow runs once', async (t) => {
  const template = await ok('POST', '/templates', {
    name: 'Welcome', subject: 'Welcome, {{ data.firstName ?? "friend" }}', type: 'TRANSACTIONAL',
    body: '<p>Thanks for signing up ({{ event.source }}).</p>', from: 'hello@acme.io',
  });
  const workflow = await ok('POST', '/workflows', { name: 'welcome', eventName: 'signed_up' });
  const steps = `/workflows/${workflow.id}/steps`;
  const step = async (body) => (await ok('POST', steps, body)).step.id;
  await step({ type: 'SEND_EMAIL', name: 'Welcome', position: { x: 0, y: 100 }, templateId: template.id, autoConnect: true });
  const condition = await step({ type: 'CONDITION', name: 'Pro?', position: { x: 0, y: 200 }, autoConnect: true,
    config: { field: 'data.plan', operator: 'equals', value: 'pro' } });
  const yes = await step({ type: 'SEND_EMAIL', name: 'Pro tips', position: { x: -100, y: 300 }, templateId: template.id });
  const no = await step({ type: 'UPDATE_CONTACT', name: 'Nurture', position: { x: 100, y: 300 },
    config: { updates: { stage: 'nurture' } } });
  for (const [to, branch] of [[yes, 'yes'], [no, 'no']]) {
    await ok('POST', `/workflows/${workflow.id}/transitions`, { fromStepId: condition, toStepId: to, condition: { branch } });
  }
  await ok('PATCH', `/workflows/${workflow.id}`, { enabled: true });

  const site = await otherOrigin('<!doctype html><title>sign up</title><p>Sign up on another origin</p>');
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await site.close();
  });
  const { page } = browser;
  await page.goto(site.url);
  const signUp = () =>
    page.evaluate(
      async ({ base, key }) => {
        const res = await fetch(`${base}/v1/track`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ event: 'signed_up', email: 'sam@example.com', data: { plan: 'free', source: 'landing page' } }),
        });
        return { status: res.status, body: await res.json() };
      },
      { base: baseUrl(), key: publicKey },
    );
  const started = Date.now();
  const tracked = await signUp();
  assert.equal(tracked.status, 200, JSON.stringify(tracked.body));

  // The execution runs to its end on the "no" branch, every step recorded with its output.
  const executions = `/workflows/${workflow.id}/executions`;
  const done = await eventually(async () => {
    const list = await ok('GET', executions);
    return list.items.find((e) => e.status === 'COMPLETED');
  }, 20, 'the execution completed');
  const detail = await ok('GET', `${executions}/${done.id}`);
  assert.deepEqual(detail.steps.map((s) => [s.type, s.status]), [
    ['TRIGGER', 'COMPLETED'],
    ['SEND_EMAIL', 'COMPLETED'],
    ['CONDITION', 'COMPLETED'],
    ['UPDATE_CONTACT', 'COMPLETED'],
  ], JSON.stringify(detail.steps));
  assert.equal(detail.steps[2].output.branch, 'no');
  assert.deepEqual(detail.context, { plan: 'free', source: 'landing page' });

  // The first email was sent (the outbox mailer) within seconds of the page's call.
  const emailId = detail.steps[1].output.emailId;
  const email = await eventually(async () => {
    const res = await api('GET', `/emails/${emailId}`, { key: secretKey });
    return res.status === 200 && ['SENT', 'DELIVERED'].includes(res.json.data.status) && res.json.data;
  }, 10, 'the welcome email sent');
  assert.equal(email.sourceType, 'WORKFLOW');
  assert.equal(email.workflowExecutionId, done.id);
  const seconds = (Date.now() - started) / 1000;
  assert.ok(seconds < 15, `sent ${seconds} s after the page's call`);
  const contact = await ok('GET', `/contacts/${email.contactId}`);
  assert.equal(contact.data.stage, 'nurture');

  // A second sign-up of the same contact starts nothing: allowReentry is false.
  assert.equal((await signUp()).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal((await ok('GET', executions)).items.length, 1);
});
