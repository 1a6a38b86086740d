// Walks through the demo (scripts/demo) in Debian's Chromium (playwright-core, fresh profile),
// as a newcomer would, and runs axe-core on every page it sees (the gateway's, the sample
// CRM's and the development identity providers'). Started by tests/gateway/demo.rs.
//
// Contoso CRM (http://localhost:P/, documents in "Office 365"):
//   Office 365 (demo) as Alice → straight on to her document grant at "Microsoft identity
//   platform (demo)" (pick Alice, allow) → the CRM page (identity, assertion verified, CRM
//   user) → Documents: her token, which the token server accepts → sign out → the
//   CRM asks for sign-in again; Google (demo) as Bob → the CRM page → Documents: no grant is
//   offered to a Google account ("unsupported-sign-in"), and the connect address says why
//   (403) → sign out.
// Fabrikam CRM (http://drive.localhost:P/, documents in "Google Drive"):
//   Google (demo) as Alice, a document admin → Documents: unavailable (not connected) → the
//   shared Drive connection page → Connect → the provider asks for the system user (pick
//   "Drive system user", allow) → Connected → Documents: the shared token, which the token
//   server says belongs to the system user → sign out.
// And Office 365 (demo) as Mallory with a SAML 1.1 token: not a CRM user → the 403 page.
// A screenshot of every step goes to the artifacts folder.
//
//   node demo.mjs '{"url": "http://localhost:8080/", "artifacts": "target/browser-artifacts/demo"}'
//
// Prints one JSON object: { ok, steps: [{ name, url, screenshot, violations }], error? }.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const input = JSON.parse(process.argv[2] || '{}');
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const contoso = input.url;
const fabrikam = contoso.replace('//localhost:', '//drive.localhost:');
const out = { steps: [] };
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-demo-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // axe-core is injected as an inline script, which the gateway's admin page's CSP refuses.
  bypassCSP: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ...out, error: 'timed out after 150 s' }));
  process.exit(1);
}, 150_000);
const page = context.pages()[0] || (await context.newPage());
// Only this run's screenshots.
fs.rmSync(input.artifacts, { recursive: true, force: true });
fs.mkdirSync(input.artifacts, { recursive: true });
let n = 0;

// Screenshot, axe-core, then the page's own check.
async function step(name, check) {
  await page.waitForLoadState('load');
  const text = (await page.textContent('body')) || '';
  const file = path.join(input.artifacts, `${String(++n).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await page.addScriptTag({ content: axeSource });
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document);
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((x) => x.html).slice(0, 3) }));
  });
  out.steps.push({ name, url: page.url(), screenshot: file, violations });
  if (!check(text)) throw new Error(`${name}: unexpected page at ${page.url()}: ${text.slice(0, 600)}`);
}

// Clicks and waits for the page it leads to.
async function follow(selector) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(selector)]);
}

// oidc-provider's consent page, when it asks ("Continue").
async function allowIfAsked(name) {
  await page.waitForLoadState('load');
  const consent = page.locator('button[type=submit]:has-text("Continue")');
  if (await consent.count()) {
    await step(name, (t) => /development identity provider/i.test(t));
    await follow('button[type=submit]:has-text("Continue")');
  }
}

async function signIn(site, provider, who, label = who.toLowerCase(), token = 'saml20') {
  await page.goto(site);
  await step(`chooser-${label}`, (t) => t.includes('Office 365 (demo)') && t.includes('Google (demo)'));
  await follow(`text=${provider}`);
  await step(`idp-${label}`, (t) => /development identity provider/i.test(t));
  if (provider.startsWith('Office')) {
    await follow(token === 'saml11' ? `#saml11 a:has-text("${who}")` : `a:has-text("${who}")`);
  } else {
    await follow(`button:has-text("${who}")`);
    await allowIfAsked(`consent-${label}`);
  }
  await page.waitForLoadState('networkidle');
}

async function signOut(site, who) {
  await follow('button:has-text("Sign out")');
  // The OpenID provider asks to confirm an RP-initiated logout.
  const confirm = page.locator('button:has-text("Yes")');
  if (await confirm.count()) await follow('button:has-text("Yes")');
  await step(`signed-out-${who}`, (t) => t.includes('signed out'));
  await page.goto(site);
  await step(`asks-again-${who}`, (t) => t.includes('Office 365 (demo)') && t.includes('Google (demo)'));
}

try {
  // Contoso: Office 365 sign-in and Alice's own document grant.
  // Sign-in goes straight on to her document grant (she has none yet).
  await signIn(contoso, 'Office 365 (demo)', 'Alice');
  await step('grant-idp-alice', (t) => /development identity provider/i.test(t) && t.includes('Microsoft identity platform'));
  await follow('button:has-text("Alice")');
  await allowIfAsked('grant-consent-alice');
  await page.waitForLoadState('networkidle');
  await step('crm-alice', (t) => t.includes('Contoso CRM') && t.includes('JWT verified') && t.includes('crm-1') && t.includes('alice@contoso.example'));
  await follow('a:has-text("Documents")');
  await step('documents-alice', (t) => t.includes('Status') && (new URL(page.url()).pathname === '/documents/')
    && t.includes('accepted: the token belongs to alice@contoso.example'));
  out.office365Status = await page.textContent('#document-status');
  await signOut(contoso, 'alice');

  // Contoso: a Google account cannot hold Office 365 documents: told so, never sent to a grant.
  await signIn(contoso, 'Google (demo)', 'Bob');
  await step('crm-bob', (t) => t.includes('JWT verified') && t.includes('crm-2') && t.includes('bob@contoso.example'));
  await follow('a:has-text("Documents")');
  await step('documents-bob', (t) => new URL(page.url()).pathname === '/documents/');
  out.googleOnOffice365Status = await page.textContent('#document-status');
  const refused = await page.goto(new URL('/_vestibule/documents/connect?rd=%2Fdocuments%2F', contoso).href);
  out.connectRefusedStatus = refused.status();
  await step('connect-refused-bob', (t) => t.includes('Office 365 sign-in needed'));
  await page.goto(contoso);
  await signOut(contoso, 'bob');

  // Fabrikam: the shared Google Drive grant, connected by a document admin as the system user.
  await signIn(fabrikam, 'Google (demo)', 'Alice', 'fabrikam-alice');
  await step('crm-fabrikam-alice', (t) => t.includes('Fabrikam CRM') && t.includes('crm-1'));
  await follow('a:has-text("Documents")');
  await step('documents-not-connected', (t) => t.includes('unavailable'));
  await follow('a:has-text("Shared Drive connection")');
  await step('drive-not-connected', (t) => t.includes('Not connected'));
  await follow('button:has-text("Connect")');
  await page.waitForLoadState('networkidle');
  await step('grant-idp-system-user', (t) => /development identity provider/i.test(t) && t.includes('Drive system user'));
  await follow('button:has-text("Drive system user")');
  await allowIfAsked('grant-consent-system-user');
  await page.waitForLoadState('networkidle');
  await step('drive-connected', (t) => t.includes('Connected.'));
  await page.goto(new URL('/documents/', fabrikam).href);
  await step('documents-drive', (t) => t.includes('accepted: the token belongs to drive@contoso.example'));
  out.driveStatus = await page.textContent('#document-status');
  await page.goto(fabrikam);
  await signOut(fabrikam, 'fabrikam-alice');

  // Contoso: Mallory can sign in at the provider (a SAML 1.1 token this time, as ADFS sends)
  // but is not a CRM user.
  await signIn(contoso, 'Office 365 (demo)', 'Mallory', 'mallory', 'saml11');
  await step('not-a-crm-user', (t) => t.includes('mallory@contoso.example is not a user of contoso-crm'));
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
