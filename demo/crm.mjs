// The demo's sample CRM: the upstream behind the gateway. Its one page shows what the gateway
// told it about the signed-in user — the identity headers, whether the signed assertion
// (X-Vestibule-Assertion) verifies against the gateway's JWKS, the CRM user the directory
// matched and the document-token headers — and a sign-out button. Loopback only.
//
//   node demo/crm.mjs PORT GATEWAY_PORT

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

const server = http.createServer(async (req, res) => {
  const vestibule = Object.entries(req.headers).filter(([k]) => k.startsWith('x-vestibule-'));
  const host = req.headers.host || 'localhost';
  const assertion = await verify(req.headers['x-vestibule-assertion'], host);
  const rows = vestibule
    .filter(([k]) => k !== 'x-vestibule-assertion')
    .map(([k, v]) => `<tr><th scope="row"><code>${esc(k)}</code></th><td>${esc(v)}</td></tr>`)
    .join('');
  const documents = vestibule.filter(([k]) => k.startsWith('x-vestibule-document-token'));
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo CRM</title>
<style>body{font:1rem/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#1f2328}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #d0d7de;vertical-align:top;word-break:break-all}
.ok{color:#116329}.bad{color:#a40e26}button{font:inherit;padding:.4rem 1rem}</style></head>
<body><header><p><strong>Demo CRM</strong> — a sample application behind Vestibule</p></header><main>
<h1>Signed in as ${esc(req.headers['x-vestibule-name'] || req.headers['x-vestibule-user'] || 'nobody')}</h1>
<p>CRM user matched by the directory: <strong id="crm-user">${esc(req.headers['x-vestibule-crm-user'] || 'none')}</strong></p>
<h2>Signed assertion</h2>
<p id="assertion" class="${assertion.ok ? 'ok' : 'bad'}">${assertion.ok ? 'JWT verified' : `JWT not verified: ${esc(assertion.why)}`} against <code>/_vestibule/jwks.json</code></p>
${assertion.claims ? `<pre id="claims">${esc(JSON.stringify(assertion.claims, null, 2))}</pre>` : ''}
<h2>Identity headers from the gateway</h2>
<table>${rows}</table>
<h2>Document tokens</h2>
<p id="documents">${documents.length ? 'Document-token headers present on this path.' : 'No document-token headers on this path.'}</p>
<form method="post" action="/_vestibule/logout"><button type="submit">Sign out</button></form>
</main></body></html>
`;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
});
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ port })));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
