export * from "./config.js";
export * from "./auth.js";
export * from "./server.js";
export * from "./session.js";
