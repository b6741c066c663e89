export * from "./config.js";
export * from "./worker.js";
