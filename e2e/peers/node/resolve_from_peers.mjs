// Lets a script outside e2e/peers/node (the examples in examples/agents/) import the npm peers
// installed here, as a user's project would import its own: `node --import <this file> script.mjs`.
// A bare specifier the script's own folder cannot resolve is resolved from this folder.

import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

// Module hooks run on a thread of their own, where this same file is loaded as the hooks.
if (isMainThread) register(import.meta.url);

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    if (error.code !== "ERR_MODULE_NOT_FOUND" || specifier.startsWith(".") || specifier.startsWith("/")) throw error;
    return next(specifier, { ...context, parentURL: import.meta.url });
  }
}
