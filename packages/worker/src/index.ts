export * from "./config.js";
export * from "./generator.js";
export * from "./openai.js";
export * from "./scripted.js";
export * from "./scripted-text.js";
export * from "./worker.js";
export * from "./llama.js";
