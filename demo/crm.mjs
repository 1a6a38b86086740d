// The demo's sample CRM: the upstream behind the gateway, for both demo tenants. Its page
// shows what the gateway told it about the signed-in user — the identity headers, whether the
// signed assertion (X-Vestibule-Assertion) verifies against the gateway's JWKS, the CRM user
// the directory matched — and, under /documents/, the document token: its status, expiry, and
// whether the token server accepts it (its userinfo endpoint, as a CRM would call Graph or
// Drive with it). A sign-out button. Loopback only.
//
//   TOKEN_SERVERS=localhost=http://127.0.0.1:P,drive.localhost=http://127.0.0.1:Q \
//     node demo/crm.mjs PORT GATEWAY_PORT

import http from 'node:http';
import crypto from 'node:crypto';

const [port, gatewayPort] = process.argv.slice(2).map(Number);
if (!port || !gatewayPort) {
  console.error('usage: node demo/crm.mjs PORT GATEWAY_PORT');
  process.exit(2);
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const b64url = (s) => Buffer.from(s, 'base64url');

// Verifies a compact JWS against the gateway's JWKS (fetched directly from the gateway on
// loopback; the Host names the tenant). Returns { ok, claims, why }.
async function verify(jwt, host) {
  if (!jwt) return { ok: false, why: 'no X-Vestibule-Assertion header' };
  const [h, p, s] = jwt.split('.');
  try {
    const header = JSON.parse(b64url(h));
    const res = await fetch(`http://127.0.0.1:${gatewayPort}/_vestibule/jwks.json`, { headers: { host } });
    const { keys } = await res.json();
    const jwk = keys.find((k) => k.kid === header.kid);
    if (!jwk) return { ok: false, why: `no key ${header.kid} in the JWKS` };
    const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    const data = Buffer.from(`${h}.${p}`);
    const ok = header.alg === 'ES256'
      ? crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, b64url(s))
      : header.alg === 'EdDSA' && crypto.verify(null, data, key, b64url(s));
    const claims = JSON.parse(b64url(p));
    const fresh = claims.exp * 1000 > Date.now();
    return { ok: ok && fresh, claims, why: ok ? (fresh ? '' : 'expired') : 'bad signature' };
  } catch (e) {
    return { ok: false, why: String(e.message || e) };
  }
}

// Which token server issued a host's document tokens (to try them against).
const tokenServers = new Map((process.env.TOKEN_SERVERS || '').split(',').filter(Boolean)
  .map((entry) => entry.split('=')));

// Asks the token server who the document token belongs to: { ok, who, why }.
async function tryToken(token, hostname) {
  const issuer = tokenServers.get(hostname);
  if (!issuer) return { ok: false, why: 'no token server known for this site' };
  try {
    const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
    const res = await fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) return { ok: false, why: `the token server answered ${res.status}` };
    const info = await res.json();
    return { ok: true, who: `${info.sub}${info.name ? ` (${info.name})` : ''}` };
  } catch (e) {
    return { ok: false, why: String(e.message || e) };
  }
}

// What X-Vestibule-Document-Token-Status tells a CRM (docs/documents.md).
const STATUS_HELP = {
  ok: 'the token is attached; call the document API with it',
  'consent-required': 'the user must grant document access (again): send them to /_vestibule/documents/connect',
  unavailable: 'no usable token right now (not connected yet, expired and not refreshed, provider or store down)',
  'unsupported-sign-in': 'this account is not an Office 365 account; documents here need an Office 365 sign-in',
};

const TENANTS = {
  'contoso-crm': { title: 'Contoso CRM', documents: 'Office 365 (a token per user, granted by each user once)' },
  'fabrikam-crm': { title: 'Fabrikam CRM', documents: 'Google Drive (one shared token, granted by the system user)' },
};

const server = http.createServer(async (req, res) => {
  const vestibule = Object.entries(req.headers).filter(([k]) => k.startsWith('x-vestibule-'));
  const host = req.headers.host || 'localhost';
  const hostname = host.replace(/:\d+$/, '');
  const tenant = TENANTS[req.headers['x-vestibule-tenant']] || { title: 'Demo CRM', documents: 'none' };
  const other = hostname === 'localhost'
    ? { url: `http://drive.localhost:${gatewayPort}/`, title: TENANTS['fabrikam-crm'].title }
    : { url: `http://localhost:${gatewayPort}/`, title: TENANTS['contoso-crm'].title };
  const assertion = await verify(req.headers['x-vestibule-assertion'], host);
  const rows = vestibule
    .filter(([k]) => k !== 'x-vestibule-assertion' && !k.startsWith('x-vestibule-document-token'))
    .map(([k, v]) => `<tr><th scope="row"><code>${esc(k)}</code></th><td>${esc(v)}</td></tr>`)
    .join('');
  const onDocuments = req.url.startsWith('/documents/');
  let documents = `<p>Document tokens reach the CRM only under <a href="/documents/">/documents/</a>.</p>`;
  if (onDocuments) {
    const token = req.headers['x-vestibule-document-token'];
    const status = req.headers['x-vestibule-document-token-status'] || 'no header';
    const tried = token ? await tryToken(token, hostname) : null;
    documents = `<dl>
<dt>Status</dt><dd><span id="document-status">${esc(status)}</span>${STATUS_HELP[status] ? ` — ${esc(STATUS_HELP[status])}` : ''}</dd>
<dt>Token</dt><dd>${token ? `<code>${esc(token.slice(0, 6))}…</code> (${token.length} characters)` : 'none'}</dd>
<dt>Expires</dt><dd>${esc(req.headers['x-vestibule-document-token-expires'] || '—')}</dd>
<dt>Tried at the token server</dt><dd id="document-check" class="${tried && tried.ok ? 'ok' : 'bad'}">${tried
  ? (tried.ok ? `accepted: the token belongs to ${esc(tried.who)}` : `refused: ${esc(tried.why)}`)
  : 'no token to try'}</dd>
</dl>`;
  }
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(tenant.title)} (demo)</title>
<style>body{font:1rem/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#1f2328}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #d0d7de;vertical-align:top;word-break:break-all}
dt{font-weight:600}dd{margin:0 0 .5rem 1rem;word-break:break-all}nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
a{color:#0550ae}.ok{color:#116329}.bad{color:#a40e26}button{font:inherit;padding:.4rem 1rem}</style></head>
<body><header><p><strong>${esc(tenant.title)}</strong> — a sample application behind Vestibule; documents in ${esc(tenant.documents)}</p>
<nav aria-label="Demo"><ul><li><a href="/">Home</a></li><li><a href="/documents/">Documents</a></li>
${req.headers['x-vestibule-tenant'] === 'fabrikam-crm' ? '<li><a href="/_vestibule/admin/documents">Shared Drive connection</a></li>' : ''}
<li><a href="${esc(other.url)}">${esc(other.title)}</a></li></ul></nav></header><main>
<h1>Signed in as ${esc(req.headers['x-vestibule-name'] || req.headers['x-vestibule-user'] || 'nobody')}</h1>
<p>CRM user matched by the directory: <strong id="crm-user">${esc(req.headers['x-vestibule-crm-user'] || 'none')}</strong></p>
<h2>Signed assertion</h2>
<p id="assertion" class="${assertion.ok ? 'ok' : 'bad'}">${assertion.ok ? 'JWT verified' : `JWT not verified: ${esc(assertion.why)}`} against <code>/_vestibule/jwks.json</code></p>
${assertion.claims ? `<pre id="claims">${esc(JSON.stringify(assertion.claims, null, 2))}</pre>` : ''}
<h2>Identity headers from the gateway</h2>
<table>${rows}</table>
<h2>Document token</h2>
${documents}
<form method="post" action="/_vestibule/logout"><button type="submit">Sign out</button></form>
</main></body></html>
`;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
});
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ port })));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
