// One real OpenID Connect sign-in through Apache httpd + mod_auth_openidc (the relying
// party) against the test OpenID Provider (tests/peers/oidc/op.js), with plain HTTP: fetch
// (node:http, no redirects followed) and a small path-aware cookie jar, following the interaction
// sequence documented in tests/peers/oidc/README.md (and drive.js). Used by benches/load/run
// to get a genuine mod_auth_openidc session cookie for the load test.
//
//   START=http://127.0.0.1:A/oidc/ REDIRECT_URI=http://127.0.0.1:A/oidc/redirect_uri \
//     node benches/load/oidc_login.mjs
//
// Environment: START (a protected URL on Apache), REDIRECT_URI (mod_auth_openidc's
// OIDCRedirectURI), LOGIN (default bench-user@contoso.example), COOKIE_PREFIX (default
// mod_auth_openidc_session), TRACE=1 (log every request to stderr).
//
// Prints one JSON line: {"cookie":"<Cookie header value with the session cookie(s)>",
// "names":[...],"bytes":N,"status":200,"body":"<first 200 bytes of the protected page>"}.
// Exits non-zero on any unexpected step. Every URL must be on 127.0.0.1.

import * as http from 'node:http';

const env = process.env;
const START = env.START;
const REDIRECT_URI = env.REDIRECT_URI;
const LOGIN = env.LOGIN || 'bench-user@contoso.example';
const PREFIX = env.COOKIE_PREFIX || 'mod_auth_openidc_session';
const TRACE = env.TRACE === '1';

function fail(message) {
  console.error(`oidc_login: ${message}`);
  process.exit(1);
}

if (!START || !REDIRECT_URI) fail('set START and REDIRECT_URI');

// Cookie jar keyed by name and path. Like a browser, cookies are not isolated by port, so
// the OP's and Apache's cookies share the jar (their names differ).
const jar = new Map();

function storeCookies(setCookie, url) {
  for (const line of setCookie) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
    let expired = false;
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const k = (i < 0 ? attr : attr.slice(0, i)).toLowerCase();
      const v = i < 0 ? '' : attr.slice(i + 1);
      if (k === 'path') path = v || '/';
      if (k === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      if (k === 'max-age' && Number(v) <= 0) expired = true;
    }
    const key = `${path}\n${name}`;
    if (expired || value === '') jar.delete(key);
    else jar.set(key, { name, value, path });
  }
}

function matching(url) {
  const { pathname } = new URL(url);
  const found = [...jar.values()].filter(
    (c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
  );
  found.sort((a, b) => b.path.length - a.path.length);
  return found;
}

// node:http rather than fetch: fetch always sends `Sec-Fetch-Mode: cors`, and
// mod_auth_openidc answers such (non-navigation) requests with 401 instead of redirecting
// to the OP. Returns { status, headers, setCookie, text, location }.
function send(method, url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout: 20000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        setCookie: res.headers['set-cookie'] || [],
        text: Buffer.concat(chunks).toString('utf8'),
      }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', (e) => { if (TRACE && e.rawPacket) console.error(e.rawPacket.toString()); reject(e); });
    if (body) req.write(body);
    req.end();
  });
}

async function request(method, url, form) {
  const u = new URL(url);
  if (u.hostname !== '127.0.0.1' || u.protocol !== 'http:') fail(`refusing to contact ${u.origin}: only http://127.0.0.1 is allowed`);
  // What a browser sends for a top-level navigation.
  const headers = { accept: 'text/html', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };
  const cookie = matching(url).map((c) => `${c.name}=${c.value}`).join('; ');
  if (cookie) headers.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['content-length'] = Buffer.byteLength(body);
  }
  const res = await send(method, url, headers, body);
  storeCookies(res.setCookie, url);
  const location = res.headers.location;
  if (TRACE) {
    console.error(`> ${method} ${url}`);
    console.error(`< ${res.status}${location ? ` Location: ${location}` : ''}`);
    console.error(`    set-cookie: ${res.setCookie.map((l) => l.split('=')[0]).join(', ') || '-'}`);
  }
  return { res, location: location && new URL(location, url).href };
}

// 1. The protected page: mod_auth_openidc answers with a redirect to the OP's
//    authorization endpoint and sets its state cookie.
let { res, location } = await request('GET', START);
if (res.status !== 302 && res.status !== 303) fail(`GET ${START} -> ${res.status}, expected a redirect to the OP`);
if (!location || !new URL(location).pathname.endsWith('/auth')) fail(`expected a redirect to the OP's /auth, got ${location}`);

// 2. The OP's interactions: login, then consent, each followed by the resume at /auth/<uid>,
//    until the OP redirects back to the relying party's redirect URI with a code.
({ res, location } = await request('GET', location));
for (let step = 0; step < 6 && location && !location.startsWith(REDIRECT_URI); step += 1) {
  if (res.status !== 303) fail(`OP answered ${res.status} at step ${step}`);
  if (/\/interaction\/[^/]+$/.test(new URL(location).pathname)) {
    const page = await request('GET', location);
    if (page.res.status !== 200) fail(`interaction page -> ${page.res.status}`);
    const html = page.res.text;
    const m = html.match(/name="prompt" value="([a-z]+)"/);
    if (!m) fail('no prompt in the interaction page');
    const form = m[1] === 'login' ? { prompt: 'login', login: LOGIN, password: 'x' } : { prompt: m[1] };
    ({ res, location } = await request('POST', location, form));
  } else {
    ({ res, location } = await request('GET', location));
  }
}
if (!location || !location.startsWith(REDIRECT_URI)) fail(`the OP did not redirect to ${REDIRECT_URI}: ${location}`);
if (!new URL(location).searchParams.get('code')) fail(`no code in ${location}`);

// 3. The redirect URI: mod_auth_openidc redeems the code at the OP's token endpoint,
//    verifies the ID token, sets its session cookie and redirects to the original URL.
({ res, location } = await request('GET', location));
if (res.status !== 302 && res.status !== 303) {
  fail(`redirect URI -> ${res.status}: ${res.text.slice(0, 300)}`);
}
if (!location || !location.startsWith(START)) fail(`expected a redirect back to ${START}, got ${location}`);

// 4. The protected page again, now with the session: proxied to the upstream.
({ res } = await request('GET', START));
const text = res.text;
if (res.status !== 200) fail(`GET ${START} with the session -> ${res.status}: ${text.slice(0, 300)}`);

const session = matching(START).filter((c) => c.name.startsWith(PREFIX));
if (session.length === 0) fail(`no ${PREFIX}* cookie in the jar: ${[...jar.values()].map((c) => c.name).join(', ')}`);
const cookie = session.map((c) => `${c.name}=${c.value}`).join('; ');
console.log(JSON.stringify({
  cookie,
  names: session.map((c) => c.name),
  bytes: cookie.length,
  status: res.status,
  body: text.slice(0, 200),
}));
