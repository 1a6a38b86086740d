// Drives a full authorization code flow against a running op.js without a browser: plain
// HTTP with fetch (redirect: 'manual') and a small path-aware cookie jar. This is the
// reference for the interaction steps the Rust tests reimplement with reqwest.
//
//   ISSUER=http://127.0.0.1:N node drive.js
//
// Environment: ISSUER (required), CLIENT_ID, CLIENT_SECRET, REDIRECT_URI (must be one of the
// OP's REDIRECT_URIS), LOGIN (default alice), SCOPE (default "openid email profile
// offline_access"), PROMPT (default consent; PROMPT= sends no prompt parameter), SKIP_RENDER=1 (do not GET the interaction pages,
// only POST to them), LOGOUT=1 (also run RP-initiated logout), TRACE=1 (log every request to
// stderr), SECOND_PROMPT=consent or SECOND_PROMPT= (a second sign-in reusing the OP
// session). Prints one JSON object with the results to stdout; exits non-zero on failure.

import * as crypto from 'node:crypto';
import { strict as assert } from 'node:assert';

const env = process.env;
const ISSUER = env.ISSUER;
if (!ISSUER) {
  console.error('set ISSUER to the URL op.js printed');
  process.exit(2);
}
const CLIENT_ID = env.CLIENT_ID || 'vestibule';
const CLIENT_SECRET = env.CLIENT_SECRET || 'vestibule-test-secret';
const REDIRECT_URI = env.REDIRECT_URI || 'http://127.0.0.1:8080/_vestibule/oidc/callback';
const LOGIN = env.LOGIN || 'alice';
const SCOPE = env.SCOPE || 'openid email profile offline_access';
const PROMPT = env.PROMPT === undefined ? 'consent' : env.PROMPT; // PROMPT= omits the parameter
const TRACE = env.TRACE === '1';

// ---------------------------------------------------------------------------------------
// Cookie jar: name + path, sent when the request path is under the cookie path.
// ---------------------------------------------------------------------------------------

const jar = new Map(); // `${path}\n${name}` -> { name, value, path }

function storeCookies(res, url) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
    let expired = false;
    for (const attr of attrs) {
      const [k, v = ''] = attr.split('=');
      if (k.toLowerCase() === 'path') path = v || '/';
      if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
    }
    const key = `${path}\n${name}`;
    if (expired || value === '') jar.delete(key);
    else jar.set(key, { name, value, path });
  }
}

function cookieHeader(url) {
  const { pathname } = new URL(url);
  const matching = [...jar.values()].filter(
    (c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
  );
  // Longer paths first, as browsers do.
  matching.sort((a, b) => b.path.length - a.path.length);
  return matching.map((c) => `${c.name}=${c.value}`).join('; ');
}

async function request(method, url, { form, headers = {} } = {}) {
  const h = { ...headers };
  const cookie = cookieHeader(url);
  if (cookie) h.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
  storeCookies(res, url);
  const location = res.headers.get('location');
  if (TRACE) {
    const set = res.headers.getSetCookie().map((l) => {
      const [pair, ...attrs] = l.split(';').map((s) => s.trim());
      const p = attrs.find((a) => a.toLowerCase().startsWith('path=')) || '';
      return `${pair.split('=')[0]}(${p})${pair.endsWith('=') ? '[cleared]' : ''}`;
    });
    console.error(`> ${method} ${url}${form ? ` form=${JSON.stringify(form)}` : ''}`);
    console.error(`    cookies sent: ${cookie ? cookie.split('; ').map((c) => c.split('=')[0]).join(', ') : '-'}`);
    console.error(`< ${res.status}${location ? ` Location: ${location}` : ''}`);
    console.error(`    set-cookie: ${set.join(', ') || '-'}`);
  }
  return { res, location: location && new URL(location, url).href };
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function decodeJwt(jwt) {
  const [h, p, s] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

function verifyJwt(jwt, jwks) {
  const { header, signingInput, signature } = decodeJwt(jwt);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `no JWKS key with kid ${header.kid}`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const algs = {
    RS256: ['sha256', {}],
    PS256: ['sha256', { padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
    ES256: ['sha256', { dsaEncoding: 'ieee-p1363' }],
    EdDSA: [null, {}],
  };
  const [hash, opts] = algs[header.alg];
  return crypto.verify(hash, Buffer.from(signingInput), { key, ...opts }, signature);
}

function basicAuth() {
  // RFC 6749 2.3.1: form-urlencode id and secret before base64.
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(CLIENT_ID)}:${enc(CLIENT_SECRET)}`).toString('base64')}`;
}

async function getJson(url, headers) {
  const { res } = await request('GET', url, { headers });
  assert.equal(res.status, 200, `GET ${url} -> ${res.status}`);
  return res.json();
}

// ---------------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------------

const discovery = await getJson(new URL('.well-known/openid-configuration', ISSUER.endsWith('/') ? ISSUER : `${ISSUER}/`).href);
assert.equal(discovery.issuer, ISSUER, 'discovery issuer must equal the URL used');
const jwks = await getJson(discovery.jwks_uri);

// One authorization request and its interactions, up to the redirect back with a code.
// `knownPrompts`: when the interaction pages are not rendered (SKIP_RENDER=1), which prompt
// each interaction is expected to be.
async function authorize(promptParam, knownPrompts = ['login', 'consent']) {
  const state = b64url(crypto.randomBytes(16));
  const nonce = b64url(crypto.randomBytes(16));
  const codeVerifier = b64url(crypto.randomBytes(32));
  const codeChallenge = b64url(crypto.createHash('sha256').update(codeVerifier).digest());

  const authUrl = new URL(discovery.authorization_endpoint);
  authUrl.search = new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    ...(promptParam ? { prompt: promptParam } : {}),
    state,
    nonce,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
  }).toString();

  // 1. Authorization request: 303 to /interaction/<uid> (or, with an SSO session and an
  //    existing grant, straight to the redirect URI).
  let { res, location } = await request('GET', authUrl.href);
  assert.equal(res.status, 303, `authorization request -> ${res.status}`);

  const prompts = [];
  // 2..n. Each interaction: (GET the page), POST the form, GET the /auth/<uid> resume URL.
  for (let step = 0; step < 4 && !location.startsWith(REDIRECT_URI); step += 1) {
    const m = new URL(location).pathname.match(/\/interaction\/([^/]+)$/);
    assert.ok(m, `expected a redirect to /interaction/<uid>, got ${location}`);
    const interactionUrl = location;

    let prompt = knownPrompts[prompts.length];
    if (env.SKIP_RENDER !== '1') {
      const page = await request('GET', interactionUrl);
      assert.equal(page.res.status, 200);
      const html = await page.res.text();
      prompt = html.match(/name="prompt" value="([a-z]+)"/)[1];
    }
    prompts.push(prompt);

    const form = prompt === 'login' ? { prompt, login: LOGIN, password: 'x' } : { prompt };
    ({ res, location } = await request('POST', interactionUrl, { form }));
    assert.equal(res.status, 303, `POST ${interactionUrl} -> ${res.status}`);
    assert.match(new URL(location).pathname, /\/auth\/[^/]+$/);

    ({ res, location } = await request('GET', location));
    assert.equal(res.status, 303, `resume -> ${res.status}`);
  }

  // Last: 303 to the redirect URI with code, state and iss.
  assert.ok(location.startsWith(REDIRECT_URI), `expected the redirect URI, got ${location}`);
  const cb = Object.fromEntries(new URL(location).searchParams);
  assert.ok(cb.code, `no code in ${location}`);
  assert.equal(cb.state, state);
  assert.equal(cb.iss, ISSUER);
  return { prompts, cb, nonce, codeVerifier };
}

const { prompts, cb, nonce, codeVerifier } = await authorize(PROMPT);
let res;

// Token request: client_secret_basic + code_verifier.
({ res } = await request('POST', discovery.token_endpoint, {
  headers: { authorization: basicAuth() },
  form: {
    grant_type: 'authorization_code',
    code: cb.code,
    redirect_uri: REDIRECT_URI,
    code_verifier: codeVerifier,
  },
}));
const tokens = await res.json();
assert.equal(res.status, 200, `token endpoint -> ${res.status} ${JSON.stringify(tokens)}`);

const idToken = decodeJwt(tokens.id_token);
const signatureValid = verifyJwt(tokens.id_token, jwks);
assert.ok(signatureValid, 'ID token signature does not verify against the JWKS');
assert.equal(idToken.payload.nonce, nonce);
assert.equal(idToken.payload.iss, ISSUER);
assert.equal(idToken.payload.aud, CLIENT_ID);

const userinfo = await getJson(discovery.userinfo_endpoint, { authorization: `Bearer ${tokens.access_token}` });

// Refresh: proves the refresh token works.
let refreshed = null;
if (tokens.refresh_token) {
  ({ res } = await request('POST', discovery.token_endpoint, {
    headers: { authorization: basicAuth() },
    form: { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
  }));
  const body = await res.json();
  assert.equal(res.status, 200, `refresh -> ${res.status} ${JSON.stringify(body)}`);
  refreshed = {
    id_token_claims: body.id_token ? decodeJwt(body.id_token).payload : null,
    refresh_token_rotated: body.refresh_token !== undefined && body.refresh_token !== tokens.refresh_token,
  };
}

// Optional second sign-in with the same cookie jar (the OP's SSO session):
// SECOND_PROMPT=consent or SECOND_PROMPT= (no prompt parameter).
let second = null;
if (env.SECOND_PROMPT !== undefined) {
  const r = await authorize(env.SECOND_PROMPT, ['consent']);
  ({ res } = await request('POST', discovery.token_endpoint, {
    headers: { authorization: basicAuth() },
    form: {
      grant_type: 'authorization_code', code: r.cb.code, redirect_uri: REDIRECT_URI, code_verifier: r.codeVerifier,
    },
  }));
  const body = await res.json();
  assert.equal(res.status, 200, `second token request -> ${res.status} ${JSON.stringify(body)}`);
  second = {
    prompt_param: env.SECOND_PROMPT || null,
    prompts: r.prompts,
    scope: body.scope,
    refresh_token_issued: Boolean(body.refresh_token),
    sub: decodeJwt(body.id_token).payload.sub,
  };
}

// Optional RP-initiated logout.
let logout = null;
if (env.LOGOUT === '1') {
  const endUrl = new URL(discovery.end_session_endpoint);
  const logoutState = b64url(crypto.randomBytes(8));
  endUrl.search = new URLSearchParams({
    id_token_hint: tokens.id_token,
    client_id: CLIENT_ID,
    ...(env.POST_LOGOUT_REDIRECT_URI ? { post_logout_redirect_uri: env.POST_LOGOUT_REDIRECT_URI, state: logoutState } : {}),
  }).toString();
  const page = await request('GET', endUrl.href);
  assert.equal(page.res.status, 200, `end_session -> ${page.res.status}`);
  const html = await page.res.text();
  const action = html.match(/<form id="op.logoutForm" method="post" action="([^"]+)"/)[1];
  const xsrf = html.match(/name="xsrf" value="([^"]+)"/)[1];
  const done = await request('POST', action, { form: { xsrf, logout: 'yes' } });
  assert.equal(done.res.status, 303, `logout confirm -> ${done.res.status}`);
  logout = { confirm_url: action, redirected_to: done.location, session_cookie_left: [...jar.values()].some((c) => c.name === '_session') };
}

console.log(JSON.stringify({
  prompts,
  callback: { ...cb, code: `${cb.code.slice(0, 8)}...` },
  token_type: tokens.token_type,
  scope: tokens.scope,
  refresh_token_issued: Boolean(tokens.refresh_token),
  id_token_header: idToken.header,
  id_token_claims: idToken.payload,
  id_token_signature_valid: signatureValid,
  userinfo,
  refreshed,
  second,
  logout,
}, null, 2));
