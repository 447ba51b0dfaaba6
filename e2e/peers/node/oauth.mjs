// The TypeScript SDK's OAuth flow against a route, up to the point where a browser would be
// sent to the authorization server: the SDK meets the route's 401, follows its
// `resource_metadata` (RFC 9728), reads the authorization server's metadata, and builds the
// authorization URL (PKCE, RFC 8707 resource, scopes). Prints one JSON line with what it saw.
//
// Usage: node oauth.mjs --url URL

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.argv[process.argv.indexOf("--url") + 1];
const redirectUrl = "http://localhost:9/callback";
let verifier;
let redirected = null;
let discovery = null;

const provider = {
  get redirectUrl() {
    return redirectUrl;
  },
  get clientMetadata() {
    return { client_name: "manifold-e2e", redirect_uris: [redirectUrl] };
  },
  // Pre-registered: no dynamic registration with the authorization server.
  clientInformation: () => ({ client_id: "e2e-client" }),
  saveClientInformation: () => {},
  tokens: () => undefined,
  saveTokens: () => {},
  saveCodeVerifier: (v) => {
    verifier = v;
  },
  codeVerifier: () => verifier,
  redirectToAuthorization: (authorizationUrl) => {
    redirected = authorizationUrl.toString();
  },
  saveDiscoveryState: (state) => {
    discovery = state;
  },
};

const client = new Client({ name: "manifold-e2e-oauth", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
try {
  await client.connect(transport);
  process.stdout.write(JSON.stringify({ connected: true }) + "\n");
} catch (error) {
  process.stdout.write(
    JSON.stringify({ error: `${error.name}: ${error.message}`, redirected, discovery }) + "\n",
  );
}
process.exit(0);
