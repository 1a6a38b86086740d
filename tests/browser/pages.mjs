// Opens each of the gateway's own pages in Debian's Chromium (playwright-core, fresh profile),
// runs axe-core on it (every rule axe runs by default: WCAG 2.x A/AA and best practices), and
// takes a screenshot at a phone's and a desktop's width; started by tests/gateway/pages.rs,
// which owns the servers and checks the outcome.
//
//   node pages.mjs '<JSON>'
//
// Input: { pages: [{ name, url, method?, form? }], hosts: [names mapped to 127.0.0.1],
//          artifacts: directory for the screenshots }
// A page with `form` is reached by submitting that form (a POST from a page of ours).
// Prints one JSON object: per page its HTTP status, title, text, the external requests it
// made, and axe's violations (rule id, impact, help, the offending nodes).

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const input = JSON.parse(process.argv[2] || '{}');
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vestibule-pages-'));
const hostRules = (input.hosts || []).map((h) => `MAP ${h} 127.0.0.1`).join(', ');
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    ...(hostRules ? [`--host-resolver-rules=${hostRules}`] : []),
  ],
});
const out = { pages: [] };
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ...out, error: 'timed out after 60 s' }));
  process.exit(1);
}, 60_000);

try {
  fs.mkdirSync(input.artifacts, { recursive: true });
  for (const spec of input.pages) {
    const page = await context.newPage();
    // What the final document loads from elsewhere (the identity provider's pages on the
    // way to a sign-in answer are not the gateway's), and that document's status.
    let external = [];
    let status = null;
    page.on('response', (r) => {
      if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) {
        status = r.status();
        external = [];
      }
    });
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (!r.isNavigationRequest() && u.origin !== new URL(spec.url).origin) external.push(r.url());
    });
    if (spec.form) {
      // A same-origin form POST, as the page's own button sends it.
      await page.goto(new URL('/_vestibule/health', spec.url).href);
      await Promise.all([
        page.waitForNavigation(),
        page.evaluate(({ url, form }) => {
          const f = document.createElement('form');
          f.method = 'post';
          f.action = url;
          for (const [k, v] of Object.entries(form)) {
            const i = document.createElement('input');
            i.type = 'hidden';
            i.name = k;
            i.value = v;
            f.appendChild(i);
          }
          document.body.appendChild(f);
          f.submit();
        }, spec),
      ]);
    } else {
      await page.goto(spec.url);
    }
    await page.waitForLoadState('load');
    await page.addScriptTag({ content: axeSource });
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document);
      return r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => n.html),
      }));
    });
    for (const [label, width] of [['phone', 390], ['desktop', 1280]]) {
      await page.setViewportSize({ width, height: 800 });
      await page.screenshot({ path: path.join(input.artifacts, `${spec.name}-${label}.png`), fullPage: true });
    }
    out.pages.push({
      name: spec.name,
      url: page.url(),
      status,
      title: await page.title(),
      text: (await page.textContent('body')) || '',
      external,
      violations: result,
    });
    await page.close();
  }
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ ...out, error: String(e && e.stack ? e.stack : e) }));
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
