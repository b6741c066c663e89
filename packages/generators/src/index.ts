// Inference backends behind one interface (generator.ts). The worker runs them; tests and the
// bench import them from here.
export * from "./generator.js";
export * from "./config.js";
export * from "./create.js";
export * from "./scripted.js";
export * from "./scripted-text.js";
export * from "./openai.js";
export * from "./llama.js";
