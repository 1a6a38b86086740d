// Walks through the demo (scripts/demo) in Debian's Chromium (playwright-core, fresh profile):
// Office 365 (demo) as Alice → the CRM page with her identity, the assertion verified and her
// CRM user → sign out → the CRM asks for sign-in again; Google (demo) as Bob → the CRM page →
// sign out; Office 365 (demo) as Mallory, who is not a CRM user → the 403 page. A screenshot of
// every step goes to the artifacts folder. Started by tests/gateway/demo.rs.
//
//   node demo.mjs '{"url": "http://localhost:8080/", "artifacts": "target/browser-artifacts/demo"}'

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const input = JSON.parse(process.argv[2] || '{}');
const out = { steps: [] };
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-demo-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ...out, error: 'timed out after 80 s' }));
  process.exit(1);
}, 80_000);
const page = context.pages()[0] || (await context.newPage());
fs.mkdirSync(input.artifacts, { recursive: true });
let n = 0;

async function step(name, check) {
  await page.waitForLoadState('load');
  const text = (await page.textContent('body')) || '';
  const file = path.join(input.artifacts, `${String(++n).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  out.steps.push({ name, url: page.url(), screenshot: file });
  if (!check(text)) throw new Error(`${name}: unexpected page at ${page.url()}: ${text.slice(0, 600)}`);
}

async function signIn(provider, who) {
  await page.goto(input.url);
  await step(`chooser-${who}`, (t) => t.includes('Office 365 (demo)') && t.includes('Google (demo)'));
  await page.click(`text=${provider}`);
  await step(`idp-${who}`, (t) => t.includes('Development identity provider'));
  if (provider.startsWith('Office')) {
    await page.click(`a:has-text("${who}")`);
  } else {
    await page.click(`button:has-text("${who}")`);
    await page.waitForLoadState('load');
    // oidc-provider's consent page, when it asks.
    const consent = page.locator('button[type=submit]:has-text("Continue")');
    if (await consent.count()) await consent.first().click();
  }
}

async function signOut(who) {
  await page.click('button:has-text("Sign out")');
  await page.waitForLoadState('load');
  // The OpenID provider asks to confirm an RP-initiated logout.
  const confirm = page.locator('button:has-text("Yes")');
  if (await confirm.count()) await confirm.first().click();
  await step(`signed-out-${who}`, (t) => t.includes('signed out'));
  await page.goto(input.url);
  await step(`asks-again-${who}`, (t) => t.includes('Office 365 (demo)') && t.includes('Google (demo)'));
}

try {
  await signIn('Office 365 (demo)', 'Alice');
  await step('crm-alice', (t) => t.includes('JWT verified') && t.includes('crm-1') && t.includes('alice@contoso.example'));
  await signOut('alice');
  await signIn('Google (demo)', 'Bob');
  await step('crm-bob', (t) => t.includes('JWT verified') && t.includes('crm-2') && t.includes('bob@contoso.example'));
  await signOut('bob');
  await signIn('Office 365 (demo)', 'Mallory');
  await step('not-a-crm-user', (t) => t.includes('mallory@contoso.example is not a user of demo-crm'));
  out.ok = true;
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ ...out, error: String(e && e.stack ? e.stack : e) }));
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
