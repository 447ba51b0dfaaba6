// Downstream MCP client driver on the official TypeScript SDK, for Manifold's end-to-end tests.
//
// Usage: node client.mjs --url URL
//
// Reads a JSON array of operations from stdin and runs them in order in ONE session
// (Streamable HTTP, the initialize handshake), printing one JSON line per operation, as
// e2e/peers/client.py does:
//   {"op": "list", "kind": "tools|prompts|resources|templates"} -> {"items": [...], "pages": n}
//   {"op": "call", "name": N, "arguments": {...}, "progress": bool} -> CallToolResult (+ "progress": [...])
//   {"op": "read", "uri": U} -> ReadResourceResult
//   {"op": "get_prompt", "name": N, "arguments": {...}} -> GetPromptResult
//   {"op": "seen"} -> {"requests": [<methods the server asked>], "notifications": [<methods received>]}
// The client answers sampling with "sampled: <prompt>", elicitation by accepting with a value
// for every requested field, and roots/list with file:///e2e. A failed operation prints
// {"error": {"code", "message"}}; a failed connection prints {"fatal": message} and exits 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const url = process.argv[process.argv.indexOf("--url") + 1];
const emit = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const requests = [];
const notifications = [];

function answerFor(schema) {
  const content = {};
  for (const [name, prop] of Object.entries(schema?.properties ?? {})) {
    if (prop.enum) content[name] = prop.enum[0];
    else if (prop.oneOf) content[name] = prop.oneOf[0].const;
    else content[name] = { string: "e2e", number: 1, integer: 1, boolean: true }[prop.type] ?? "e2e";
  }
  return content;
}

const client = new Client(
  { name: "manifold-e2e-ts", version: "0.0.0" },
  { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
);
client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
  requests.push("sampling/createMessage");
  const first = request.params.messages[0]?.content;
  return { role: "assistant", content: { type: "text", text: `sampled: ${first?.text ?? ""}` }, model: "e2e-model", stopReason: "endTurn" };
});
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  requests.push("elicitation/create");
  return { action: "accept", content: answerFor(request.params.requestedSchema) };
});
client.setRequestHandler(ListRootsRequestSchema, async () => {
  requests.push("roots/list");
  return { roots: [{ uri: "file:///e2e", name: "e2e" }] };
});
client.fallbackNotificationHandler = async (notification) => {
  notifications.push(notification.method);
};

async function list(kind) {
  const [method, field] = {
    tools: ["listTools", "tools"],
    prompts: ["listPrompts", "prompts"],
    resources: ["listResources", "resources"],
    templates: ["listResourceTemplates", "resourceTemplates"],
  }[kind];
  const items = [];
  let cursor;
  let pages = 0;
  do {
    const page = await client[method](cursor ? { cursor } : {});
    pages += 1;
    items.push(...page[field]);
    cursor = page.nextCursor;
  } while (cursor);
  return { items, pages };
}

async function run(op) {
  switch (op.op) {
    case "list":
      return list(op.kind);
    case "call": {
      const progress = [];
      const options = op.progress ? { onprogress: (p) => progress.push(p), resetTimeoutOnProgress: true } : {};
      const result = await client.callTool({ name: op.name, arguments: op.arguments ?? {} }, undefined, options);
      return op.progress ? { ...result, progress } : result;
    }
    case "read":
      return client.readResource({ uri: op.uri });
    case "get_prompt":
      return client.getPrompt({ name: op.name, arguments: op.arguments ?? {} });
    case "seen":
      return { requests, notifications };
    default:
      throw new Error(`unknown op: ${op.op}`);
  }
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const ops = JSON.parse(input);
try {
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
} catch (error) {
  emit({ fatal: String(error) });
  process.exit(1);
}
for (const op of ops) {
  try {
    emit(await run(op));
  } catch (error) {
    emit({ error: { code: error.code ?? null, message: String(error.message ?? error) } });
  }
}
await client.close();
