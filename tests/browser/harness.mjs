// Shared harness of the browser tests: Debian's Chromium driven by playwright-core (no browser
// download), a fresh profile per launch, JSON calls to the API under test, and a second local
// origin for cross-origin checks. The server under test is started by the caller (the Rust test
// crates/local/tests/browser.rs starts `plunk serve` and passes its URL and key in the
// environment: PLUNK_BASE_URL, PLUNK_SECRET_KEY, PLUNK_PUBLIC_KEY, and for the sent email
// PLUNK_CONTACT_ID, PLUNK_EMAIL_ID, PLUNK_UNSUBSCRIBE_URL), so every test file here is a plain
// `node --test` file, and a new `*.test.mjs` file runs with the others against the same server.
//
//   import { launch, api, env, otherOrigin } from './harness.mjs';
//   const browser = await launch();              // { context, page, requests, close() }
//   const { status, json } = await api('GET', '/contacts', { key: env('PLUNK_SECRET_KEY') });
//   const other = await otherOrigin();           // { url, close() }: http://127.0.0.1:<port>/

import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The browser: Debian's package (`make tools` installs it), or PLUNK_CHROMIUM. */
export const CHROMIUM = process.env.PLUNK_CHROMIUM || '/usr/bin/chromium';

/** Flags for a quiet, sandbox-free headless run that talks to nothing but the pages under test. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A required environment variable. */
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (the Rust test that runs this file sets it)`);
  return value;
}

/**
 * Starts Chromium with a fresh profile directory (Playwright passes it as --user-data-dir).
 * `requests` collects every URL the browser asked for, so a test can check that nothing left the
 * server under test. `close()` stops the browser and removes the profile.
 */
export async function launch() {
  const profile = await mkdtemp(join(tmpdir(), 'plunk-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  return {
    context,
    page,
    requests,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** The base URL of the server under test (PLUNK_BASE_URL), without a trailing slash. */
export function baseUrl() {
  return env('PLUNK_BASE_URL').replace(/\/+$/, '');
}

/**
 * One API call from Node (not the browser): `{ status, headers, json }`; `json` is null for a
 * body that is not JSON.
 */
export async function api(method, path, { key, body, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const res = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, json, text };
}

/**
 * A second origin on 127.0.0.1 serving `html` at every path, for cross-origin checks (a page
 * there can `fetch` the server under test). `close()` stops it.
 */
export async function otherOrigin(html = '<!doctype html><title>other origin</title>') {
  const server = createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
