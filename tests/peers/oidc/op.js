// A real OpenID Provider (panva/oidc-provider, OpenID Certified) used as a test peer by
// Vestibule's integration tests. It listens on 127.0.0.1 only, keeps everything in memory,
// and prints exactly one line to stdout once it is listening:
//
//   {"port":N,"issuer":"http://127.0.0.1:N","kid":"..."}
//
// Everything else (oidc-provider's notices and warnings, request errors) goes to stderr.
// Configuration is by environment variables; see README.md.

import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

// oidc-provider prints its "you SHOULD change ..." notices with console.info (stdout). Keep
// stdout for the single ready line so a parent process can read it and then ignore the pipe.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const { default: Provider, interactionPolicy } = await import('oidc-provider');

const env = process.env;

function list(value, fallback) {
  const raw = value === undefined ? fallback : value;
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

function intEnv(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number.parseInt(raw, 10);
  if (!Number.isFinite(n) || n < 0 || String(n) !== raw.trim()) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const PORT = intEnv('PORT', 0);
const CLIENT_ID = env.CLIENT_ID || 'vestibule';
const CLIENT_SECRET = env.CLIENT_SECRET || 'vestibule-test-secret';
const REDIRECT_URIS = list(env.REDIRECT_URIS, 'http://127.0.0.1:8080/_vestibule/oidc/callback');
const POST_LOGOUT_REDIRECT_URIS = list(env.POST_LOGOUT_REDIRECT_URIS, '');
const ID_TOKEN_TTL = intEnv('ID_TOKEN_TTL', 3600);
const ACCESS_TOKEN_TTL = intEnv('ACCESS_TOKEN_TTL', 3600);
const REFRESH_TOKEN_TTL = intEnv('REFRESH_TOKEN_TTL', 14 * 24 * 3600);
const EMAIL_DOMAIN = env.EMAIL_DOMAIN || 'contoso.example';
const HD = env.HD || undefined;
// CONFORM_ID_TOKEN=1: scope-granted claims (email, profile) only from userinfo, as
// oidc-provider, Okta and Keycloak can be configured to do.
const CONFORM_ID_TOKEN = env.CONFORM_ID_TOKEN === '1';
// BACKCHANNEL_LOGOUT_URI: the client's OpenID Connect Back-Channel Logout endpoint; ending a
// session at /session/end then POSTs a logout token (with sid) there.
const BACKCHANNEL_LOGOUT_URI = env.BACKCHANNEL_LOGOUT_URI || undefined;
const UNVERIFIED_LOGINS = new Set(list(env.UNVERIFIED_LOGINS, ''));
// ROTATE_REFRESH_TOKENS=1: every refresh returns a new refresh token and consumes the old one;
// presenting a consumed one again revokes the whole grant (oidc-provider's reuse detection),
// so two refreshes racing with one token show up as a failure.
const ROTATE_REFRESH_TOKENS = env.ROTATE_REFRESH_TOKENS === '1';
// CERT_CLIENT_ID + CERT_CLIENT_FILE (a PEM certificate): a second client with the same redirect
// URIs that authenticates with RFC 7523 private_key_jwt, signed by that certificate's key (an
// Azure AD certificate credential), at the token and revocation endpoints.
const CERT_CLIENT_ID = env.CERT_CLIENT_ID || undefined;
const CERT_CLIENT_FILE = env.CERT_CLIENT_FILE || undefined;
// SWITCH_ON_LOGIN_HINT=1: an authorization request whose login_hint names another account than
// the one signed in here asks for the login again, as Google's and Azure AD's account choosers
// do (the demo: Alice, signed in, connects the shared Drive as the system user).
const SWITCH_ON_LOGIN_HINT = env.SWITCH_ON_LOGIN_HINT === '1';
const GOOGLE_ACCESS_TYPE = env.GOOGLE_ACCESS_TYPE === '1';

// ---------------------------------------------------------------------------------------
// Signing key
// ---------------------------------------------------------------------------------------

// RFC 7638 thumbprint, used as kid when a key file's JWK has none.
function thumbprint(jwk) {
  const members = {
    RSA: ['e', 'kty', 'n'],
    EC: ['crv', 'kty', 'x', 'y'],
    OKP: ['crv', 'kty', 'x'],
  }[jwk.kty];
  if (!members) throw new Error(`unsupported key type ${jwk.kty}`);
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])));
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

function algFor(jwk) {
  if (jwk.alg) return jwk.alg;
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  throw new Error(`cannot tell the signing alg of a ${jwk.kty} ${jwk.crv || ''} key; set "alg" in the JWK`);
}

function normalizeKey(jwk, source) {
  if (!jwk || !jwk.d) throw new Error(`${source}: not a private key`);
  const out = { ...jwk, use: 'sig' };
  out.alg = algFor(out);
  out.kid = out.kid || thumbprint(out);
  return out;
}

// Returns the keys to publish; the first one signs. A JWKS file may hold several keys
// (e.g. the new key first, the previous one after it, to test a rollover).
function loadSigningKeys() {
  if (env.KEY_FILE) {
    const text = fs.readFileSync(env.KEY_FILE, 'utf8');
    if (text.trimStart().startsWith('{')) {
      const parsed = JSON.parse(text);
      const keys = Array.isArray(parsed.keys) ? parsed.keys : [parsed];
      if (keys.length === 0) throw new Error(`KEY_FILE ${env.KEY_FILE}: empty JWKS`);
      return keys.map((k) => normalizeKey(k, `KEY_FILE ${env.KEY_FILE}`));
    }
    return [normalizeKey(crypto.createPrivateKey(text).export({ format: 'jwk' }), `KEY_FILE ${env.KEY_FILE}`)];
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return [{
    ...privateKey.export({ format: 'jwk' }),
    use: 'sig',
    alg: 'RS256',
    kid: crypto.randomBytes(12).toString('base64url'),
  }];
}

const signingKeys = loadSigningKeys();
const signingKey = signingKeys[0];

// ---------------------------------------------------------------------------------------
// Accounts: any login is accepted (devInteractions); the login name is `sub`.
// ---------------------------------------------------------------------------------------

function accountClaims(login) {
  const email = login.includes('@') ? login : `${login}@${EMAIL_DOMAIN}`;
  const local = email.split('@')[0];
  const claims = {
    sub: login,
    email,
    email_verified: !UNVERIFIED_LOGINS.has(login),
    name: local.charAt(0).toUpperCase() + local.slice(1),
  };
  if (HD) claims.hd = HD;
  // Azure AD's object and tenant ids, as its ID tokens carry them: the object id derived from
  // the e-mail address exactly as the WS-Federation peer derives it from `login_hint`, so one
  // person signed in at both peers is recognisably the same person.
  // AZURE_CLAIMS=0: a provider that is not Azure AD (the demo's "Google"), no oid or tid.
  if (env.AZURE_CLAIMS === '0') return claims;
  const hex = crypto.createHash('sha1').update(email).digest('hex');
  claims.oid = [hex.slice(0, 8), hex.slice(8, 12), '4' + hex.slice(13, 16), '8' + hex.slice(17, 20), hex.slice(20, 32)].join('-');
  claims.tid = env.TID || '0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9';
  return claims;
}

async function findAccount(_ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return accountClaims(sub);
    },
  };
}

// ---------------------------------------------------------------------------------------
// Pages without external resources (the stock ones @import Google Fonts).
// ---------------------------------------------------------------------------------------

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

async function logoutSource(ctx, form) {
  ctx.body = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Logout Request</title></head>
<body>
<h1>Do you want to sign-out from ${escapeHtml(ctx.host)}?</h1>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>
</body></html>`;
}

async function postLogoutSuccessSource(ctx) {
  const display = ctx.oidc.client?.clientName || ctx.oidc.client?.clientId;
  ctx.body = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-out Success</title></head>
<body><h1>Sign-out Success</h1><p>Your sign-out${display ? ` with ${escapeHtml(display)}` : ''} was successful.</p></body></html>`;
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>oops! something went wrong</title></head>
<body><h1>oops! something went wrong</h1>
${Object.entries(out).map(([k, v]) => `<pre><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</pre>`).join('\n')}
</body></html>`;
}

// ---------------------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------------------

function interactionsPolicy() {
  const policy = interactionPolicy.base();
  if (SWITCH_ON_LOGIN_HINT) {
    const { Check } = interactionPolicy;
    policy.get('login').checks.add(new Check('login_hint', 'login_hint names another account', (ctx) => {
      const hint = ctx.oidc.params.login_hint;
      const account = ctx.oidc.session.accountId;
      if (!hint || !account || ctx.oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      return accountClaims(account).email.toLowerCase() === String(hint).toLowerCase()
        ? Check.NO_NEED_TO_PROMPT
        : Check.REQUEST_PROMPT;
    }));
  }
  return policy;
}

function configuration() {
  return {
    interactions: { policy: interactionsPolicy() },
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: REDIRECT_URIS,
        post_logout_redirect_uris: POST_LOGOUT_REDIRECT_URIS,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: signingKey.alg,
        ...(BACKCHANNEL_LOGOUT_URI
          ? { backchannel_logout_uri: BACKCHANNEL_LOGOUT_URI, backchannel_logout_session_required: true }
          : {}),
      },
      ...(CERT_CLIENT_ID
        ? [{
          client_id: CERT_CLIENT_ID,
          redirect_uris: REDIRECT_URIS,
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'private_key_jwt',
          id_token_signed_response_alg: signingKey.alg,
          jwks: {
            keys: [{
              ...crypto.createPublicKey(fs.readFileSync(CERT_CLIENT_FILE)).export({ format: 'jwk' }),
              use: 'sig',
            }],
          },
        }]
        : []),
    ],
    jwks: { keys: signingKeys },
    findAccount,
    claims: {
      openid: ['sub', 'hd', 'oid', 'tid'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // Put the scope-granted claims into the ID token as well, not only into userinfo
    // (unless CONFORM_ID_TOKEN=1).
    conformIdTokenClaims: CONFORM_ID_TOKEN,
    // offline_access gives a refresh token (also needs prompt=consent in the request).
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    pkce: { required: () => true },
    ...(ROTATE_REFRESH_TOKENS ? { rotateRefreshToken: () => true } : {}),
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      backchannelLogout: { enabled: Boolean(BACKCHANNEL_LOGOUT_URI) },
      revocation: { enabled: true },
      introspection: { enabled: false },
    },
    cookies: {
      keys: [crypto.randomBytes(32).toString('base64url')],
    },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: ID_TOKEN_TTL,
      RefreshToken: REFRESH_TOKEN_TTL,
      Grant: REFRESH_TOKEN_TTL,
      Session: 24 * 3600,
      Interaction: 3600,
    },
    clientBasedCORS: () => false,
    // The built-in in-memory adapter keeps 1,000 records and evicts the oldest: a storm of
    // hundreds of concurrent sign-ins (benches/load/run storm) lost grants and codes to it.
    // Same adapter, room for a million records (the peer lives for one test run).
    adapter: (model) => new MemoryAdapter(model, STORE),
    // oidc-provider refuses outgoing requests to special-use addresses (SSRF protection);
    // this test peer's only outgoing request is the back-channel logout POST to the gateway
    // on 127.0.0.1, so the check is dropped here.
    fetch: (url, options) => {
      const { dispatcher: _ssrfGuard, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    renderError,
  };
}

let handler = (_req, res) => {
  res.statusCode = 503;
  res.end('starting');
};

const STORE = new LRU({ maxSize: 1_000_000 });

// Requests per kind, for tests that count what the gateway fetches: GET /__stats.
const stats = { discovery: 0, jwks: 0, token: 0, userinfo: 0, revocation: 0 };
// Faults for the token endpoint, for tests of the gateway's back-off: POST
// /__token_faults?status=429&retry_after=120&times=2&body={"error":"..."} answers the next
// `times` token requests with that status (and Retry-After, and body) instead of the
// provider's; they still count in stats.token. POST /__token_faults with no status clears.
let tokenFault = null;
const server = http.createServer((req, res) => {
  const [path, query = ''] = (req.url || '').split('?');
  if (path === '/__stats') {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify(stats));
  }
  if (path === '/__token_faults' && req.method === 'POST') {
    const q = new URLSearchParams(query);
    tokenFault = q.get('status') || q.get('delay_ms') || q.get('hold_response_ms')
      ? {
        delayMs: Number(q.get('delay_ms') || '0'),
        holdResponseMs: Number(q.get('hold_response_ms') || '0'),
        status: q.get('status') ? Number(q.get('status')) : null,
        retryAfter: q.get('retry_after'),
        body: q.get('body') || '{"error":"temporarily_unavailable"}',
        times: Number(q.get('times') || '1'),
      }
      : null;
    res.statusCode = 204;
    return res.end();
  }
  // GOOGLE_ACCESS_TYPE=1: Google's way of asking for a refresh token, access_type=offline,
  // is read as the offline_access scope (the demo's "Google").
  if (GOOGLE_ACCESS_TYPE && path.endsWith('/auth')) {
    const q = new URLSearchParams(query);
    const scopes = (q.get('scope') || '').split(' ').filter(Boolean);
    if (q.get('access_type') === 'offline' && !scopes.includes('offline_access')) {
      q.set('scope', [...scopes, 'offline_access'].join(' '));
      req.url = `${path}?${q}`;
    }
  }
  if (path.endsWith('/.well-known/openid-configuration')) stats.discovery += 1;
  else if (path.endsWith('/jwks')) stats.jwks += 1;
  else if (path.endsWith('/token')) {
    stats.token += 1;
    if (tokenFault && tokenFault.times > 0) {
      tokenFault.times -= 1;
      const fault = tokenFault;
      if (fault.holdResponseMs > 0) {
        // Processed now (a refresh token rotates), answered later: a client that dies
        // meanwhile never learns the new tokens.
        const end = res.end.bind(res);
        res.end = (...args) => {
          setTimeout(() => end(...args), fault.holdResponseMs);
          return res;
        };
        return handler(req, res);
      }
      if (fault.status === null) {
        // Held, then answered by the provider itself.
        setTimeout(() => handler(req, res), fault.delayMs);
        return undefined;
      }
      req.resume();
      setTimeout(() => {
        res.statusCode = fault.status;
        res.setHeader('content-type', 'application/json');
        if (fault.retryAfter) res.setHeader('retry-after', fault.retryAfter);
        res.end(fault.body);
      }, fault.delayMs);
      return undefined;
    }
  } else if (path.endsWith('/token/revocation')) stats.revocation += 1;
  else if (path.endsWith('/me')) stats.userinfo += 1;
  return handler(req, res);
});
server.on('clientError', (_err, socket) => socket.destroy());

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});

const { port } = server.address();
const issuer = env.ISSUER || `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, configuration());

provider.on('server_error', (_ctx, err) => console.error('server_error', err));
provider.on('backchannel.error', (_client, err) => console.error('backchannel.error', err.message));

// The dev interaction pages @import Google Fonts; strip that so a headless browser pointed at
// this peer makes no request off 127.0.0.1. (Registered before `provider.callback()`, which
// compiles the middleware list once.)
provider.use(async (ctx, next) => {
  await next();
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    ctx.body = ctx.body.replace(/@import url\(https?:\/\/[^)]*\);?/g, '');
    // The demo: every page says it is a development provider, and the login page offers
    // PICK_USERS ("login:Name,...") as one-click sign-ins (the dev login form stays).
    if (env.DEV_BANNER === '1') {
      // The stock pages, made to pass axe-core as the demo's other pages do: a language, the
      // banner in a header and the rest in a main landmark, readable contrast, and nested lists
      // inside their item.
      const banner = `<p role="note" style="background:#fff3cd;color:#4d3800;padding:.6rem 1rem;margin:0 0 1rem;font:600 1rem system-ui,sans-serif">${env.DISPLAY_NAME ? `${escapeHtml(env.DISPLAY_NAME)} — d` : 'D'}evelopment identity provider: for trying Vestibule on this machine, never for production.</p>`;
      ctx.body = ctx.body
        .replace(/<html\s*>/, '<html lang="en">')
        .replace('</head>', '<style>.login-submit{background-color:#1a5fb4}.login-card a{color:#3d3d3d;opacity:1}.grant-debug{color:#595959}</style></head>')
        .replace(/<body([^>]*)>/, `<body$1><header>${banner}</header><main>`)
        .replace('</body>', '</main></body>')
        .replace(/<li>([^<]*):<\/li>(\s*)<ul>([\s\S]*?)<\/ul>/g, '<li>$1:$2<ul>$3</ul></li>');
    }
    // The login prompt's form (the consent prompt has another).
    const action = ctx.body.includes('name="prompt" value="login"')
      && /<form[^>]*action="([^"]*)"/.exec(ctx.body);
    if (env.PICK_USERS && action) {
      const buttons = env.PICK_USERS.split(',').filter(Boolean).map((entry) => {
        const [login, name = login] = entry.split(':');
        return `<form method="post" action="${escapeHtml(action[1])}" autocomplete="off"><input type="hidden" name="prompt" value="login"><input type="hidden" name="login" value="${escapeHtml(login)}"><input type="hidden" name="password" value="demo"><button type="submit">${escapeHtml(name)} (${escapeHtml(login)})</button></form>`;
      });
      ctx.body = ctx.body.replace(/(<form[^>]*action=")/, `<h2>Pick an account</h2>${buttons.join('')}<h2>Or type one</h2>$1`);
    }
  }
});

// Mount below the issuer's path, if it has one (ISSUER=http://127.0.0.1:N/some/path).
const mountPath = new URL(issuer).pathname.replace(/\/$/, '');
const callback = provider.callback();
handler = mountPath
  ? (req, res) => {
    if (req.url === mountPath || req.url.startsWith(`${mountPath}/`) || req.url.startsWith(`${mountPath}?`)) {
      req.originalUrl = req.url;
      req.url = req.url.slice(mountPath.length) || '/';
      if (req.url.startsWith('?')) req.url = `/${req.url}`;
      return callback(req, res);
    }
    res.statusCode = 404;
    return res.end();
  }
  : callback;

process.stdout.write(`${JSON.stringify({ port, issuer, kid: signingKey.kid })}\n`);

// EXIT_ON_STDIN_EOF=1: exit when stdin closes, so a test process that dies without killing its
// child (SIGKILL, abort) does not leave this server behind. Spawn with a piped stdin for this.
if (env.EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
