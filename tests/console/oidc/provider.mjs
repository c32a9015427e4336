// A real OpenID provider (panva's certified oidc-provider) for the console's SSO tests.
//
// Env: OIDC_REDIRECT_URI (the console's /oidc/callback), OIDC_CLIENT_SECRET,
// OIDC_ACCOUNTS (JSON: login name -> the value of its accesswatch_role claim; a name
// not listed signs in with no role claim), OIDC_HOST (the issuer's host name,
// default localhost: another site than the console's 127.0.0.1, as in a force).
// Listens on 127.0.0.1 on a free port and prints one JSON line: {"issuer": ...}.
// The browser signs in on the dev login form (any password) and clicks Continue.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import http from "node:http";
import Provider from "oidc-provider";

const env = (name, fallback) => process.env[name] ?? fallback;
const accounts = JSON.parse(env("OIDC_ACCOUNTS", "{}"));
const roleClaim = env("OIDC_ROLE_CLAIM", "accesswatch_role");
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;

const server = http.createServer();
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://${env("OIDC_HOST", "localhost")}:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: env("OIDC_CLIENT_ID", "accesswatch-console"),
      client_secret: env("OIDC_CLIENT_SECRET", "console-test-secret"),
      redirect_uris: [env("OIDC_REDIRECT_URI", "http://127.0.0.1:8080/oidc/callback")],
      response_types: ["code"],
      grant_types: ["authorization_code"],
      id_token_signed_response_alg: env("OIDC_ID_TOKEN_ALG", "RS256"),
    }],
    jwks: { keys: [{ ...rsa.export({ format: "jwk" }), kid: "rsa-1", use: "sig" },
                   { ...ec.export({ format: "jwk" }), kid: "ec-1", use: "sig" }] },
    claims: { openid: ["sub"], profile: ["preferred_username", roleClaim] },
    // Put the profile claims in the ID token too (many forces' providers do).
    conformIdTokenClaims: false,
    cookies: { keys: [randomBytes(32).toString("hex")] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          const role = Object.hasOwn(accounts, id) ? { [roleClaim]: accounts[id] } : {};
          return { sub: id, preferred_username: id, ...role };
        },
      };
    },
  });
  provider.on("server_error", (ctx, err) => console.error("oidc-provider:", err));
  server.on("request", provider.callback());
  console.log(JSON.stringify({ issuer }));
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
