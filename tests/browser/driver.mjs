// Drives Debian's Chromium (playwright-core, no browser download) through one scenario
// against the real gateway and the real identity-provider peers; started by
// tests/gateway/browser.rs, which owns the servers and checks the outcome.
//
//   node driver.mjs '<scenario JSON>'
//
// Scenario fields:
//   flow           "wsfed" | "oidc"
//   start          the protected CRM URL the browser opens first
//   expect         "signed-in" (default) | "https-required"
//   login          OpenID provider login name (oidc; default alice)
//   hosts          names mapped to 127.0.0.1 (--host-resolver-rules)
//   cleanupUrl     after sign-in, load this URL in an iframe of a cross-site HTTPS page, as
//                  Azure AD and ADFS do on sign-out
//   logout         after sign-in, sign out with the CRM's Sign out button (and, for OIDC,
//                  confirm at the provider)
//   artifacts      directory for a screenshot when the scenario fails
//   name           file name of that screenshot
//   tls            {cert, key}: for the cross-site page's HTTPS server
//   blockThirdPartyCookies  run with third-party cookies blocked (Safari's, Firefox's and
//                  private windows' behaviour)
//
// Prints one JSON object: the cookies when the browser left for the provider and after
// sign-in (every attribute), whether the browser is
// still signed in after each step, the pages' final URLs and texts. Exits 1 with {"error": ...} when a step fails.
//
// Each run is a fresh browser profile. Third-party cookies are allowed in it, as they are in
// Chrome's default settings; Chromium's own default (and every private window) blocks them,
// which no cookie design can get through: see docs/security.md.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

const scenario = JSON.parse(process.argv[2] || '{}');
const out = { steps: [] };
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-browser-'));
fs.mkdirSync(path.join(profile, 'Default'));
fs.writeFileSync(
  path.join(profile, 'Default', 'Preferences'),
  JSON.stringify({
    profile: scenario.blockThirdPartyCookies
      ? { cookie_controls_mode: 1, block_third_party_cookies: true }
      : { cookie_controls_mode: 0, block_third_party_cookies: false },
  }),
);

const hostRules = (scenario.hosts || []).map((h) => `MAP ${h} 127.0.0.1`).join(', ');
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    // The gateway's and the cross-site page's development certificates are not trusted.
    '--ignore-certificate-errors',
    ...(hostRules ? [`--host-resolver-rules=${hostRules}`] : []),
  ],
});
const page = context.pages()[0] || (await context.newPage());
let crossSite;

// Whether the browser is signed in: from a page on the CRM's origin (a reserved path that
// needs no session), fetch the protected page without following redirects, with exactly the
// cookies this browser sends: "signed-in" (200), "signed-out" (a redirect to sign-in, or the
// 401 a script gets), or the status.
async function sessionStatus() {
  const origin = new URL(scenario.start).origin;
  const probe = await context.newPage();
  try {
    await probe.goto(`${origin}/_vestibule/health`);
    return await probe.evaluate(async (url) => {
      const r = await fetch(url, { redirect: 'manual', credentials: 'same-origin' });
      if (r.type === 'opaqueredirect' || r.status === 401) return 'signed-out';
      return r.status === 200 ? 'signed-in' : String(r.status);
    }, scenario.start);
  } finally {
    await probe.close();
  }
}

async function text() {
  return (await page.textContent('body')) || '';
}

async function signIn() {
  // While the browser is at the identity provider, the login binding cookie is there (it
  // is cleared once sign-in completes): record the cookies as stored then. For WS-Fed, when
  // the provider's form posts back (held until recorded); for OIDC, on the login form.
  const crm = new URL(scenario.start).origin;
  // Every cookie of the CRM's host, whatever its path.
  const crmCookies = async () =>
    (await context.cookies()).filter((c) => c.domain === new URL(crm).hostname);
  await context.route(`${crm}/_vestibule/wsfed`, async (route) => {
    out.cookiesAtProvider ??= await crmCookies();
    await route.continue();
  });
  await page.goto(scenario.start);
  if (scenario.expect === 'https-required') {
    out.page = { url: page.url(), text: await text() };
    return;
  }
  if (scenario.flow === 'oidc') {
    await page.waitForSelector('input[name="login"]', { timeout: 15000 });
    out.cookiesAtProvider = await crmCookies();
    await page.fill('input[name="login"]', scenario.login || 'alice');
    await page.fill('input[name="password"]', 'any');
    await Promise.all([page.waitForLoadState('load'), page.click('button[type="submit"]')]);
    // Consent, when the provider asks for it.
    if (page.url().includes('/interaction/')) {
      await Promise.all([page.waitForLoadState('load'), page.click('button[type="submit"]')]);
    }
  }
  await page.waitForURL(scenario.start, { timeout: 15000 });
  out.signedIn = { url: page.url(), text: await text() };
  out.cookies = await context.cookies();
  out.steps.push({ after: 'sign-in', status: await sessionStatus() });
}

async function cleanupFromCrossSiteFrame() {
  crossSite = https.createServer(
    { cert: fs.readFileSync(scenario.tls.cert), key: fs.readFileSync(scenario.tls.key) },
    (req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><title>Signed out</title><p>Signing you out of every application.</p>
<iframe id="rp" src="${scenario.cleanupUrl.replace(/"/g, '&quot;')}"></iframe>`);
    },
  );
  await new Promise((resolve) => crossSite.listen(0, '127.0.0.1', resolve));
  const url = `https://idp-signout.example:${crossSite.address().port}/`;
  const answered = page.waitForResponse((r) => r.url().startsWith(scenario.cleanupUrl));
  await page.goto(url);
  const response = await answered;
  out.cleanup = { status: response.status(), frameText: await page.frameLocator('#rp').locator('body').textContent() };
  out.steps.push({ after: 'cleanup', status: await sessionStatus() });
}

async function logout() {
  const origin = new URL(scenario.start).origin;
  await page.goto(`${origin}/_vestibule/logout`);
  out.logoutPage = await text();
  await Promise.all([page.waitForLoadState('load'), page.click('button[type="submit"]')]);
  if (scenario.flow === 'oidc') {
    // The provider asks whether to end its session too.
    await page.waitForSelector('button[name="logout"]', { timeout: 15000 });
    await Promise.all([page.waitForLoadState('load'), page.click('button[name="logout"]')]);
  }
  await page.waitForURL(`${origin}/_vestibule/signed-out`, { timeout: 15000 });
  out.signedOut = { url: page.url(), text: await text() };
  out.steps.push({ after: 'logout', status: await sessionStatus() });
}

try {
  await signIn();
  if (scenario.cleanupUrl) await cleanupFromCrossSiteFrame();
  if (scenario.logout) await logout();
  process.stdout.write(`${JSON.stringify(out)}\n`);
} catch (error) {
  let screenshot;
  if (scenario.artifacts) {
    fs.mkdirSync(scenario.artifacts, { recursive: true });
    screenshot = path.join(scenario.artifacts, `${scenario.name || 'browser'}.png`);
    await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  }
  process.stdout.write(`${JSON.stringify({ ...out, error: String(error), url: page.url(), screenshot })}\n`);
  process.exitCode = 1;
} finally {
  crossSite?.close();
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
