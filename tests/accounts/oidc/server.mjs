// A real OpenID provider (npm oidc-provider, pinned in package.json) for Tessera's SSO tests and bench/sso.
//
//   node server.mjs '{"port": 0, "clients": [...], "accounts": {...}}'
//
// Prints one JSON line {"issuer": ..., "port": ...} once listening. Its dev interactions are the log-in
// page: any `login` is accepted as the account id (the password is ignored), then a consent page.
// Accounts are the claims each `login` gets (email, email_verified, name, groups).
//
// A test hook under /__test/ (not part of any real IdP) lets a test replace accounts and make the
// token endpoint hand out a forged ID token, as a compromised network or a hostile IdP would:
//   POST /__test/accounts {sub: claims}    POST /__test/tamper {"mode": "..."}    GET /__test/keys
// tamper modes: expired, wrong_aud, alg_none, unknown_key, wrong_issuer, replay (the previous ID
// token again), foreign:<id token> (a token from another provider), "" (off; each mode is used once).
import http from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const options = JSON.parse(process.argv[2] || '{}');
let accounts = options.accounts || {};
let tamper = '';
let lastIdToken = '';

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: 'tessera-test-key', alg: 'RS256', use: 'sig' };
const strangerKey = (await jose.generateKeyPair('RS256', { extractable: true })).privateKey;

const server = http.createServer();
await new Promise((resolve) => server.listen(options.port || 0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: options.clients || [],
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['tessera-test-cookie-key'] },
  conformIdTokenClaims: false, // the ID token carries email/groups, not only the userinfo endpoint
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: options.accessTokenTtl || 3600,
    IdToken: options.idTokenTtl || 3600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  async findAccount(ctx, id) {
    const known = accounts[id];
    if (!known) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...known }; } };
  },
});

async function forge(idToken) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const sign = (body, key = privateKey, kid = 'tessera-test-key') =>
    new jose.SignJWT(body).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
  switch (tamper) {
    case 'expired': return sign({ ...claims, iat: now - 7200, exp: now - 3600 });
    case 'wrong_aud': return sign({ ...claims, aud: 'someone-else' });
    case 'wrong_issuer': return sign({ ...claims, iss: 'http://127.0.0.1:1' });
    case 'unknown_key': return sign(claims, strangerKey);
    case 'alg_none': return new jose.UnsecuredJWT(claims).encode();
    case 'replay': return lastIdToken;
    default:
      if (tamper.startsWith('foreign:')) return tamper.slice('foreign:'.length);
      return idToken;
  }
}

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.body && typeof ctx.body === 'object' && ctx.body.id_token) {
    const genuine = ctx.body.id_token;
    if (tamper) {
      ctx.body = { ...ctx.body, id_token: await forge(genuine) };
      tamper = '';
    }
    lastIdToken = genuine;
  }
});

const callback = provider.callback();
const readJson = (req) => new Promise((resolve) => {
  let text = '';
  req.on('data', (chunk) => { text += chunk; });
  req.on('end', () => resolve(text ? JSON.parse(text) : {}));
});

server.on('request', async (req, res) => {
  if (!req.url.startsWith('/__test/')) {
    callback(req, res);
    return;
  }
  const reply = (body) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
  if (req.url === '/__test/accounts' && req.method === 'POST') {
    accounts = { ...accounts, ...(await readJson(req)) };
    reply({ ok: true });
  } else if (req.url === '/__test/tamper' && req.method === 'POST') {
    tamper = (await readJson(req)).mode || '';
    reply({ ok: true });
  } else if (req.url === '/__test/last-id-token') {
    reply({ id_token: lastIdToken });
  } else {
    res.writeHead(404);
    res.end();
  }
});

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
