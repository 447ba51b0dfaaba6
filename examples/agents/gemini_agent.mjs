// A Gemini agent whose tools are a Manifold route, on the TypeScript SDKs: @google/genai calls
// the route's tools itself (automatic function calling) through `mcpToTool(client)`, the client
// being @modelcontextprotocol/sdk's over Streamable HTTP.
//
// Run it against Gemini (Node 20+, `npm install @google/genai@3.1.0 @modelcontextprotocol/sdk@1.32.2`):
//
//   MANIFOLD_URL=https://mcp.example.com/acme/tools/mcp MANIFOLD_TOKEN=<route key or JWT> \
//   GEMINI_API_KEY=<key> node gemini_agent.mjs "What is the weather in Oslo?"
//
// GEMINI_BASE_URL points it at another endpoint, GEMINI_MODEL picks the model.
// Watch for: this SDK sends each tool's raw JSON Schema (`parametersJsonSchema`), and stops
// reading `tools/list` pages once it holds 100 tools (a route with `spec.compatibility` lists
// up to 1000 tools in one page, all of which it then reads).

import { GoogleGenAI, mcpToTool } from "@google/genai";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { pathToFileURL } from "node:url";

function routeHeaders() {
  const token = process.env.MANIFOLD_TOKEN;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function run(prompt) {
  const baseUrl = process.env.GEMINI_BASE_URL;
  const ai = new GoogleGenAI({
    apiKey: process.env.GEMINI_API_KEY,
    ...(baseUrl ? { httpOptions: { baseUrl } } : {}),
  });
  const transport = new StreamableHTTPClientTransport(new URL(process.env.MANIFOLD_URL), {
    requestInit: { headers: routeHeaders() },
  });
  const client = new Client({ name: "gemini-agent", version: "1.0.0" });
  await client.connect(transport);
  try {
    const response = await ai.models.generateContent({
      model: process.env.GEMINI_MODEL ?? "gemini-2.5-flash",
      contents: prompt,
      config: { tools: [mcpToTool(client)] },
    });
    return response.text ?? "";
  } finally {
    await client.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  run(process.argv.slice(2).join(" ") || "Which tools do you have?").then(
    (answer) => console.log(answer),
    (error) => {
      console.error(`${error.name}: ${error.message}`);
      process.exit(1);
    },
  );
}
