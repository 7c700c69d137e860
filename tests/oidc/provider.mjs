// A real OpenID Connect provider for the identity tests: oidc-provider (installed by
// scripts/install-oidc-provider.sh) configured from a JSON file named on the command line:
//   {"port": 40123, "audience": "https://headwater.test", "jwks": {"keys": [<private JWKs>]},
//    "ui_client": {"client_id", "client_secret", "redirect_uris": [...]},
//    "service_clients": [{"client_id", "client_secret", "groups": [...]}],
//    "accounts": {"alice": {"groups": ["data-eng"]}}}
// It listens on 127.0.0.1:<port> with issuer http://127.0.0.1:<port>, and prints "listening <issuer>" once it does.
//   - authorization code + PKCE (S256) for the UI's client, with the dev login and consent forms;
//   - client credentials for service clients;
//   - resource indicators: access tokens for the Headwater audience are JWTs (RFC 9068) signed with the
//     keys of `jwks`, carrying the account's or client's groups;
//   - ID tokens carry preferred_username and groups (scope profile).
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const accounts = config.accounts || {};
const serviceGroups = Object.fromEntries((config.service_clients || []).map((c) => [c.client_id, c.groups || []]));
const groupsOf = (accountId) => (accounts[accountId] && accounts[accountId].groups) || [];

const clients = [
  {
    client_id: config.ui_client.client_id,
    client_secret: config.ui_client.client_secret,
    redirect_uris: config.ui_client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  },
  ...(config.service_clients || []).map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  })),
];

const provider = new Provider(issuer, {
  clients,
  jwks: config.jwks,
  cookies: { keys: ['headwater-test-provider-cookie-key'] },
  pkce: { required: () => true },
  conformIdTokenClaims: false, // the ID token itself carries the profile claims (and groups)
  claims: { openid: ['sub'], profile: ['preferred_username', 'name', 'groups'] },
  ttl: { AccessToken: 600, ClientCredentials: 600, IdToken: 600 },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, groups: groupsOf(id) };
      },
    };
  },
  async extraTokenClaims(ctx, token) {
    if (token.kind === 'ClientCredentials') return { groups: serviceGroups[token.clientId] || [] };
    if (token.accountId) return { preferred_username: token.accountId, groups: groupsOf(token.accountId) };
    return undefined;
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== config.audience) throw new Error(`unknown resource ${resource}`);
        return { scope: 'api', audience: config.audience, accessTokenFormat: 'jwt', accessTokenTTL: 600 };
      },
    },
  },
});
provider.proxy = false;

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
