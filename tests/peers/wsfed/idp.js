#!/usr/bin/env node
'use strict';

// WS-Federation identity provider peer for Vestibule's integration tests.
//
// Listens on 127.0.0.1 only. On start it prints exactly one line to stdout,
// `{"port": N}`, once it is listening; everything else goes to stderr.
//
// SAML 1.1 tokens are issued by auth0's `wsfed` middleware unchanged (its own
// minimal RSTR wrapper). SAML 2.0 tokens are made by `saml`'s Saml20.create
// (the library wsfed itself uses) and wrapped in an RSTR shaped like Azure
// AD's WS-Federation answer. See README.md for the configuration.

const crypto = require('crypto');
const fs = require('fs');
const express = require('express');
const wsfed = require('wsfed');
const Saml20 = require('saml').Saml20;

const HOST = '127.0.0.1'; // fixed on purpose: the peer never listens elsewhere

const NS_TRUST = 'http://schemas.xmlsoap.org/ws/2005/02/trust';
const NS_WSU = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd';
const NS_WSP = 'http://schemas.xmlsoap.org/ws/2004/09/policy';
const NS_WSA = 'http://www.w3.org/2005/08/addressing';
const NS_WSSE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd';
const NS_WSSE11 = 'http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd';
const SAML2_TOKEN_PROFILE = 'http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1';

const CLAIM = {
  upn: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
  name: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name',
  email: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
  oid: 'http://schemas.microsoft.com/identity/claims/objectidentifier',
  tid: 'http://schemas.microsoft.com/identity/claims/tenantid',
};

function fail(msg) {
  process.stderr.write('wsfed-idp: ' + msg + '\n');
  process.exit(2);
}

function env(name, dflt) {
  const v = process.env[name];
  return v === undefined || v === '' ? dflt : v;
}

function readPem(varName) {
  const p = env(varName);
  if (!p) fail(varName + ' (path to a PEM file) is required');
  try {
    return fs.readFileSync(p);
  } catch (e) {
    fail('cannot read ' + varName + '=' + p + ': ' + e.message);
  }
}

// ---- configuration -------------------------------------------------------

const port = Number(env('PORT', '0'));
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('PORT must be an integer in 0..65535');

const cert = readPem('CERT');
const key = readPem('KEY');
if (!/-----BEGIN CERTIFICATE-----/.test(cert.toString())) fail('CERT is not a PEM certificate');

const issuer = env('ISSUER', 'https://sts.test/tenant-a/');

const tokenKind = env('TOKEN', 'saml11');
if (tokenKind !== 'saml11' && tokenKind !== 'saml20') fail('TOKEN must be saml11 or saml20');

const sigAlg = env('SIG_ALG', 'rsa-sha256');
if (sigAlg !== 'rsa-sha256' && sigAlg !== 'rsa-sha1') fail('SIG_ALG must be rsa-sha256 or rsa-sha1');
// The digest follows the signature algorithm unless DIGEST_ALG says otherwise.
const digestAlg = env('DIGEST_ALG', sigAlg === 'rsa-sha1' ? 'sha1' : 'sha256');
if (digestAlg !== 'sha256' && digestAlg !== 'sha1') fail('DIGEST_ALG must be sha256 or sha1');

const lifetime = Number(env('LIFETIME_SECONDS', '3600'));
// 0 is refused: both libraries treat a falsy lifetime as "default" (wsfed: 8 hours).
if (!Number.isInteger(lifetime) || lifetime === 0) fail('LIFETIME_SECONDS must be a non-zero integer');

// t:TokenType of the SAML 2.0 RSTR. Azure AD itself sends the WSS SAML token
// profile URI (SAML2_TOKEN_PROFILE + '#SAMLV2.0'); ADFS sends the assertion URN.
const saml20TokenType = env('RSTR_TOKEN_TYPE', 'urn:oasis:names:tc:SAML:2.0:assertion');

const user = {
  upn: env('USER_UPN', 'alice@contoso.example'),
  email: env('USER_EMAIL', 'alice@contoso.example'),
  name: env('USER_NAME', 'Alice Example'),
  oid: env('USER_OID', '6f1c3c5e-8a2b-4d7e-9f10-2b3c4d5e6f70'),
  tid: env('USER_TID', '0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9'),
};

// The person signing in: the configured user, or the one named by `login_hint` on the
// sign-in URL (the account a person picks at the provider; tests sign several people in
// through one peer). Object ids are derived from the name, so one person keeps one.
function currentUser(req) {
  const hint = req && queryString(req, 'login_hint');
  if (!hint) return user;
  const hex = crypto.createHash('sha1').update(hint).digest('hex');
  return {
    upn: hint,
    email: hint,
    name: hint.split('@')[0],
    oid: [hex.slice(0, 8), hex.slice(8, 12), '4' + hex.slice(13, 16), '8' + hex.slice(17, 20), hex.slice(20, 32)].join('-'),
    tid: user.tid,
  };
}

function userClaims(u) {
  u = u || user;
  const c = {};
  c[CLAIM.upn] = u.upn;
  c[CLAIM.name] = u.name;
  c[CLAIM.email] = u.email;
  c[CLAIM.oid] = u.oid;
  c[CLAIM.tid] = u.tid;
  return c;
}

// wsfed profile mapper: Azure AD / ADFS claim types, NameIdentifier = UPN.
function ClaimsMapper(u) {
  if (!(this instanceof ClaimsMapper)) return new ClaimsMapper(u);
  this.user = u;
}
ClaimsMapper.prototype.getClaims = function () {
  return userClaims(this.user);
};
ClaimsMapper.prototype.getNameIdentifier = function () {
  return { nameIdentifier: (this.user || user).upn };
};
// Used by wsfed.metadata for fed:ClaimTypesOffered.
ClaimsMapper.prototype.metadata = [
  { id: CLAIM.upn, optional: true, displayName: 'UPN', description: 'The user principal name of the user' },
  { id: CLAIM.name, optional: true, displayName: 'Name', description: 'The unique name of the user' },
  { id: CLAIM.email, optional: true, displayName: 'E-Mail Address', description: 'The e-mail address of the user' },
  { id: CLAIM.oid, optional: true, displayName: 'Object Identifier', description: 'The object identifier of the user' },
  { id: CLAIM.tid, optional: true, displayName: 'Tenant Identifier', description: 'The tenant identifier of the user' },
];

// ---- helpers -------------------------------------------------------------

function esc(s) {
  return String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function isHttpUrl(s) {
  return typeof s === 'string' && /^https?:\/\//i.test(s);
}

function queryString(req, name) {
  const v = req.query[name];
  return typeof v === 'string' ? v : undefined;
}

// One input per line, attributes in a fixed order, values HTML-escaped.
function renderForm(res, postUrl, wctx, wresult) {
  const lines = [
    '<!DOCTYPE html>',
    '<html><head><title>Working...</title></head><body>' + banner(),
    '<form method="POST" name="hiddenform" action="' + esc(postUrl) + '">',
    '<input type="hidden" name="wa" value="wsignin1.0">',
    '<input type="hidden" name="wresult" value="' + esc(wresult) + '">',
  ];
  if (wctx !== undefined) lines.push('<input type="hidden" name="wctx" value="' + esc(wctx) + '">');
  lines.push(
    '<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit"></noscript>',
    '</form>',
    '<script>window.setTimeout(function () { document.forms[0].submit(); }, 0);</script>',
    '</body></html>',
    ''
  );
  res.status(200).set('Content-Type', 'text/html; charset=utf-8').set('Cache-Control', 'no-store').send(lines.join('\n'));
}

function sendRstr(res, _postUrl, _wctx, wresult) {
  res.status(200).set('Content-Type', 'text/xml; charset=utf-8').set('Cache-Control', 'no-store').send(wresult);
}

// SAML 1.1: wsfed issues the token (signed saml:Assertion inside its own
// <t:RequestSecurityTokenResponse Context="wctx"> wrapper) and hands the
// wresult to the response handler.
function saml11Issuer(responseHandler) {
  return wsfed.auth({
    issuer: issuer,
    cert: cert,
    key: key,
    signatureAlgorithm: sigAlg,
    digestAlgorithm: digestAlg,
    lifetimeInSeconds: lifetime,
    profileMapper: ClaimsMapper,
    getUserFromRequest: currentUser,
    getPostURL: function (wtrealm, wreply, req, cb) {
      cb(null, wreply || wtrealm || 'about:blank');
    },
    responseHandler: responseHandler,
  });
}

const saml11Form = saml11Issuer(renderForm);
const saml11Raw = saml11Issuer(sendRstr);

function isoMillis(d) {
  return d.toISOString(); // YYYY-MM-DDTHH:mm:ss.SSSZ, like the assertion's own instants
}

// SAML 2.0: signed assertion from `saml`, wrapped like Azure AD's RSTR
// (see shared/fixtures/microsoft/aad-wsfed-rstr-saml2-2017-04-23.xml).
function saml20Rstr(realm, u) {
  const created = new Date();
  const expires = new Date(created.getTime() + lifetime * 1000);
  const assertion = Saml20.create({
    cert: cert,
    key: key,
    issuer: issuer,
    lifetimeInSeconds: lifetime,
    audiences: realm,
    attributes: userClaims(u),
    includeAttributeNameFormat: false, // Azure AD sends Name only
    nameIdentifier: u.upn,
    nameIdentifierFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
    authnContextClassRef: 'urn:oasis:names:tc:SAML:2.0:ac:classes:Password',
    signatureAlgorithm: sigAlg,
    digestAlgorithm: digestAlg,
  });
  if (typeof assertion !== 'string') throw new Error('Saml20.create returned no assertion');
  const id = /^<saml:Assertion\b[^>]*\sID="([^"]+)"/.exec(assertion);
  if (!id) throw new Error('cannot find the assertion ID');
  const tokenRef =
    '<SecurityTokenReference d3p1:TokenType="' + SAML2_TOKEN_PROFILE + '#SAMLV2.0" xmlns:d3p1="' + NS_WSSE11 + '" xmlns="' + NS_WSSE + '">' +
    '<KeyIdentifier ValueType="' + SAML2_TOKEN_PROFILE + '#SAMLID">' + id[1] + '</KeyIdentifier>' +
    '</SecurityTokenReference>';
  return (
    '<t:RequestSecurityTokenResponse xmlns:t="' + NS_TRUST + '">' +
    '<t:Lifetime>' +
    '<wsu:Created xmlns:wsu="' + NS_WSU + '">' + isoMillis(created) + '</wsu:Created>' +
    '<wsu:Expires xmlns:wsu="' + NS_WSU + '">' + isoMillis(expires) + '</wsu:Expires>' +
    '</t:Lifetime>' +
    '<wsp:AppliesTo xmlns:wsp="' + NS_WSP + '">' +
    '<wsa:EndpointReference xmlns:wsa="' + NS_WSA + '"><wsa:Address>' + esc(realm) + '</wsa:Address></wsa:EndpointReference>' +
    '</wsp:AppliesTo>' +
    '<t:RequestedSecurityToken>' + assertion + '</t:RequestedSecurityToken>' +
    '<t:RequestedAttachedReference>' + tokenRef + '</t:RequestedAttachedReference>' +
    '<t:RequestedUnattachedReference>' + tokenRef + '</t:RequestedUnattachedReference>' +
    '<t:TokenType>' + esc(saml20TokenType) + '</t:TokenType>' +
    '<t:RequestType>' + NS_TRUST + '/Issue</t:RequestType>' +
    '<t:KeyType>http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey</t:KeyType>' +
    '</t:RequestSecurityTokenResponse>'
  );
}

// Issue a token for this request and hand it to `handler`
// (renderForm or sendRstr). wtrealm is required: it becomes the audience.
function issue(req, res, next, handler, postUrl) {
  const wtrealm = queryString(req, 'wtrealm');
  if (!wtrealm) return res.status(400).type('text/plain').send('wtrealm is required\n');
  const wctx = queryString(req, 'wctx');
  // The demo's picker lets a person choose the token kind for one sign-in (token=saml11|saml20).
  const picked = pickUsers.length > 0 ? queryString(req, 'token') : undefined;
  const kind = picked === 'saml11' || picked === 'saml20' ? picked : tokenKind;
  if (kind === 'saml11') {
    return (handler === renderForm ? saml11Form : saml11Raw)(req, res, next);
  }
  let rstr;
  try {
    rstr = saml20Rstr(wtrealm, currentUser(req));
  } catch (e) {
    return next(e);
  }
  return handler(res, postUrl, wctx, rstr);
}

// ---- routes --------------------------------------------------------------

const app = express();
app.disable('x-powered-by');
app.set('etag', false);

// DEV_BANNER=1 (the demo): every page says it is a development identity provider (named
// DISPLAY_NAME).
const displayName = env('DISPLAY_NAME', '');
function banner() {
  if (env('DEV_BANNER', '0') !== '1') return '';
  return '<header><p role="note" style="background:#fff3cd;color:#4d3800;padding:.6rem 1rem;margin:0 0 1rem;font:600 1rem system-ui,sans-serif">' +
    (displayName ? esc(displayName) + ' — d' : 'D') +
    'evelopment identity provider: for trying Vestibule on this machine, never for production.</p></header>';
}

// PICK_USERS (the demo): "upn:Display name,..." — a sign-in without login_hint shows these
// people to choose from; the choice comes back as login_hint.
const pickUsers = env('PICK_USERS', '')
  .split(',')
  .filter(Boolean)
  .map(function (entry) {
    const i = entry.indexOf(':');
    return i < 0 ? { upn: entry, name: entry } : { upn: entry.slice(0, i), name: entry.slice(i + 1) };
  });

function renderPicker(req, res) {
  const links = function (token) {
    return pickUsers
      .map(function (u) {
        const q = new URLSearchParams(req.query);
        q.set('login_hint', u.upn);
        q.set('token', token);
        return '<li><a href="/wsfed?' + esc(q.toString()) + '">' + esc(u.name) + ' <small>(' + esc(u.upn) + ')</small></a></li>';
      })
      .join('');
  };
  const title = esc(displayName || 'WS-Federation IdP');
  res.status(200).set('Content-Type', 'text/html; charset=utf-8').set('Cache-Control', 'no-store').send(
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
      '<title>Sign in · ' + title + '</title></head><body style="font:1rem/1.5 system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem">' +
      banner() + '<main><h1>' + title + ': pick an account</h1>' +
      '<h2>With a SAML 2.0 token (as Azure AD sends)</h2><ul>' + links('saml20') + '</ul>' +
      '<h2>With a SAML 1.1 token (as ADFS sends)</h2><ul id="saml11">' + links('saml11') + '</ul>' +
      '<p>Tokens are signed with this machine\'s demo key; the federation metadata is signed too.</p></main></body></html>\n'
  );
}

app.get('/wsfed', function (req, res, next) {
  const wa = queryString(req, 'wa');
  const wreply = queryString(req, 'wreply');
  if (wa === 'wsignin1.0' && pickUsers.length > 0 && !queryString(req, 'login_hint')) {
    return renderPicker(req, res);
  }
  if (wa === 'wsignin1.0') {
    const wtrealm = queryString(req, 'wtrealm');
    const postUrl = wreply || (isHttpUrl(wtrealm) ? wtrealm : undefined);
    if (wtrealm && !postUrl) {
      return res.status(400).type('text/plain').send('wreply is required when wtrealm is not an http(s) URL\n');
    }
    return issue(req, res, next, renderForm, postUrl);
  }
  if (wa === 'wsignout1.0' || wa === 'wsignoutcleanup1.0') {
    if (wreply) return res.redirect(302, wreply);
    return res
      .status(200)
      .type('text/html; charset=utf-8')
      .send('<!DOCTYPE html>\n<html lang="en"><head><title>Signed out</title></head><body>' + banner() + '<main><p>You have been signed out.</p></main></body></html>\n');
  }
  return res.status(400).type('text/plain').send('unsupported wa: ' + (wa === undefined ? '(missing)' : wa) + '\n');
});

app.get('/token', function (req, res, next) {
  return issue(req, res, next, sendRstr, undefined);
});

const metadata = wsfed.metadata({
  issuer: issuer,
  cert: cert,
  profileMapper: ClaimsMapper,
  endpointPath: '/wsfed',
});

// SIGN_METADATA=1: the document is signed as Azure AD signs its own — an ID on the
// EntityDescriptor, an enveloped exclusive-c14n RSA-SHA256 signature as its first child, by
// the token signing key — so that a relying party can pin the signer (metadata_signing_certificate).
function signMetadata(xml) {
  const SignedXml = require('xml-crypto').SignedXml;
  const id = '_' + crypto.randomUUID();
  const withId = xml.replace(/^(\s*<EntityDescriptor\b)/, '$1 ID="' + id + '"');
  if (withId === xml) throw new Error('metadata does not start with an EntityDescriptor');
  const sig = new SignedXml();
  sig.signatureAlgorithm = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
  sig.canonicalizationAlgorithm = 'http://www.w3.org/2001/10/xml-exc-c14n#';
  sig.addReference(
    "//*[local-name(.)='EntityDescriptor']",
    ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'],
    'http://www.w3.org/2001/04/xmlenc#sha256'
  );
  sig.signingKey = key;
  const der = cert.toString().replace(/-----[^-]+-----|\s/g, '');
  sig.keyInfoProvider = { getKeyInfo: () => '<X509Data><X509Certificate>' + der + '</X509Certificate></X509Data>' };
  sig.computeSignature(withId, { location: { reference: "//*[local-name(.)='EntityDescriptor']", action: 'prepend' } });
  return sig.getSignedXml();
}

app.get(
  '/federationmetadata/2007-06/federationmetadata.xml', // express routing is case-insensitive
  function (req, res, next) {
    if (env('SIGN_METADATA', '0') !== '1') return metadata(req, res, next);
    // wsfed writes the document with res.send: take it, sign it, send that.
    const send = res.send.bind(res);
    res.send = function (body) {
      try {
        return send(signMetadata(String(body)));
      } catch (e) {
        return next(e);
      }
    };
    return metadata(req, res, next);
  }
);

app.use(function (req, res) {
  res.status(404).type('text/plain').send('not found\n');
});

// eslint-disable-next-line no-unused-vars
app.use(function (err, req, res, next) {
  process.stderr.write('wsfed-idp: error: ' + (err && err.stack ? err.stack : err) + '\n');
  res.status(500).type('text/plain').send('internal error: ' + (err && err.message ? err.message : err) + '\n');
});

// ---- start ---------------------------------------------------------------

const server = app.listen(port, HOST, function () {
  process.stdout.write('{"port": ' + server.address().port + '}\n');
});
server.on('error', function (e) {
  fail('cannot listen on ' + HOST + ':' + port + ': ' + e.message);
});

function shutdown() {
  server.close(function () { process.exit(0); });
  if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
  setTimeout(function () { process.exit(0); }, 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

// Opt-in: exit when stdin reaches EOF, so a caller that holds a pipe to our
// stdin never leaves the peer running after it dies.
if (env('EXIT_ON_STDIN_EOF', '') === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
