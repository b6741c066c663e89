#!/usr/bin/env node
// unbroken dev | edge | worker
const COMMANDS: Record<string, string> = {
  dev: "./dev.js",
  edge: "./edge.js",
  worker: "./worker.js",
};

const command = process.argv[2];
const module = command === undefined ? undefined : COMMANDS[command];
if (module === undefined) {
  process.stderr.write(
    [
      "usage: unbroken <command>",
      "  dev      nats-server (unless NATS_URL is set) + a worker + an edge on this machine (npm start)",
      "  edge     one edge (WebSocket and HTTP), configured by the environment (npm run edge)",
      "  worker   one worker, configured by the environment (npm run worker)",
      "configuration: docs/configuration.md",
      "",
    ].join("\n"),
  );
  process.exit(command === undefined || command === "help" || command === "--help" ? 0 : 2);
}
await import(module);
