// A tiny, valid llama-architecture GGUF with random f32 weights, for tests that need a real
// model (loading, tokenizing, sampling, aborting) without downloading one: an SPM vocab of
// 546 unique pieces (specials, 256 byte tokens, characters, word prefixes), a ChatML chat
// template, 2 layers, embedding 64, about 0.6 MB. Weights come from a seeded PRNG, so the same options give the same bytes.
// It says nothing sensible; tests compare token sequences, not meaning.

import { writeFile } from "node:fs/promises";
import { GgufType, arr, bool, encodeGguf, f32, str, u32, type GgufTensor, type GgufValue } from "./gguf.js";

export interface TinyGgufOptions {
  /** PRNG seed for the weights (default 1). */
  seed?: number;
  /** Transformer blocks, 1 or 2 (default 2). */
  layers?: number;
  /** Embedding width, 32..64 and a multiple of `heads` (default 64). */
  embedding?: number;
  /** Trained context length written to the file (default 4096). */
  contextLength?: number;
  /** general.name (default "unbroken-tiny"). */
  name?: string;
}

/** ChatML, which node-llama-cpp recognises; the model's own template is used. */
export const TINY_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// llama.cpp token types.
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const BYTE = 6;

/** The first vocab entries, all special. */
const SPECIALS = 5;

const WORDS = (
  "the a an and or but of to in on at for with from by as is are was were be been it this that " +
  "you we they he she i my your our their not no yes so if then than when what which who how why " +
  "river valley mountain water stone light night day time story word world answer question model " +
  "token stream steer resume write tell about short long more less very good new old small large"
).split(" ");

/** Unique vocab: specials, 256 byte tokens, characters, then every prefix of "▁word". */
export function tinyVocab(): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens: string[] = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"];
  const types: number[] = [UNKNOWN, CONTROL, CONTROL, CONTROL, CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(BYTE);
  }
  const seen = new Set(tokens);
  const add = (piece: string): void => {
    if (seen.has(piece)) return;
    seen.add(piece);
    tokens.push(piece);
    types.push(NORMAL);
  };
  const chars = "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()";
  for (const c of chars) add(c);
  for (const c of ["é", "ü", "ß", "—", "…", "日", "本", "語", "🙂"]) add(c);
  add("▁café");
  add("▁日本語");
  for (const word of WORDS) {
    const piece = `▁${word}`;
    for (let i = 2; i <= [...piece].length; i++) add([...piece].slice(0, i).join(""));
  }
  // SPM merges prefer higher scores: longer pieces first, earlier pieces on ties.
  const scores = tokens.map((t, i) => (types[i] === NORMAL ? [...t].length * 10 - i / 1000 : 0));
  return { tokens, scores, types };
}

/** mulberry32: a small, fast, seeded PRNG in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Dims {
  vocab: number;
  embd: number;
  ff: number;
  heads: number;
  headsKv: number;
  layers: number;
  ctx: number;
}

function dimsOf(opts: TinyGgufOptions, vocab: number): Dims {
  const embd = opts.embedding ?? 64;
  const layers = opts.layers ?? 2;
  if (embd < 32 || embd > 64 || embd % 4 !== 0) throw new Error("embedding must be 32..64 and a multiple of 4");
  if (layers < 1 || layers > 2) throw new Error("layers must be 1 or 2");
  return { vocab, embd, ff: embd * 2, heads: 4, headsKv: 2, layers, ctx: opts.contextLength ?? 4096 };
}

function metadataOf(d: Dims, name: string, vocab: ReturnType<typeof tinyVocab>): Array<[string, GgufValue]> {
  const headDim = d.embd / d.heads;
  return [
    ["general.architecture", str("llama")],
    ["general.name", str(name)],
    ["general.alignment", u32(32)],
    ["general.file_type", u32(0)], // all f32
    ["llama.context_length", u32(d.ctx)],
    ["llama.embedding_length", u32(d.embd)],
    ["llama.block_count", u32(d.layers)],
    ["llama.feed_forward_length", u32(d.ff)],
    ["llama.attention.head_count", u32(d.heads)],
    ["llama.attention.head_count_kv", u32(d.headsKv)],
    ["llama.rope.dimension_count", u32(headDim)],
    ["llama.rope.freq_base", f32(10000)],
    ["llama.attention.layer_norm_rms_epsilon", f32(1e-5)],
    ["llama.vocab_size", u32(d.vocab)],
    ["tokenizer.ggml.model", str("llama")],
    ["tokenizer.ggml.tokens", arr(GgufType.STRING, vocab.tokens)],
    ["tokenizer.ggml.scores", arr(GgufType.FLOAT32, vocab.scores)],
    ["tokenizer.ggml.token_type", arr(GgufType.INT32, vocab.types)],
    ["tokenizer.ggml.unknown_token_id", u32(0)],
    ["tokenizer.ggml.bos_token_id", u32(1)],
    ["tokenizer.ggml.eos_token_id", u32(2)],
    ["tokenizer.ggml.add_bos_token", bool(true)],
    ["tokenizer.ggml.add_eos_token", bool(false)],
    ["tokenizer.chat_template", str(TINY_CHAT_TEMPLATE)],
  ];
}

function tensorsOf(d: Dims, rand: () => number): GgufTensor[] {
  const headDim = d.embd / d.heads;
  const kv = d.headsKv * headDim;
  // Uniform in [-a, a] has standard deviation a/sqrt(3); `scale` is that deviation.
  const random = (name: string, ne: number[], scale: number): GgufTensor => {
    const data = new Float32Array(ne.reduce((a, b) => a * b, 1));
    const a = scale * Math.sqrt(3);
    for (let i = 0; i < data.length; i++) data[i] = (rand() * 2 - 1) * a;
    return { name, ne, data };
  };
  const ones = (name: string, n: number): GgufTensor => ({ name, ne: [n], data: new Float32Array(n).fill(1) });
  const fanIn = (n: number): number => 1 / Math.sqrt(n);
  const tensors: GgufTensor[] = [random("token_embd.weight", [d.embd, d.vocab], 1)];
  for (let l = 0; l < d.layers; l++) {
    const p = `blk.${l}`;
    tensors.push(
      ones(`${p}.attn_norm.weight`, d.embd),
      random(`${p}.attn_q.weight`, [d.embd, d.embd], fanIn(d.embd) * 2),
      random(`${p}.attn_k.weight`, [d.embd, kv], fanIn(d.embd) * 2),
      random(`${p}.attn_v.weight`, [d.embd, kv], fanIn(d.embd)),
      random(`${p}.attn_output.weight`, [d.embd, d.embd], fanIn(d.embd)),
      ones(`${p}.ffn_norm.weight`, d.embd),
      random(`${p}.ffn_gate.weight`, [d.embd, d.ff], fanIn(d.embd)),
      random(`${p}.ffn_up.weight`, [d.embd, d.ff], fanIn(d.embd)),
      random(`${p}.ffn_down.weight`, [d.ff, d.embd], fanIn(d.ff)),
    );
  }
  // The final norm makes the hidden state's RMS 1, so logits have deviation
  // sqrt(embd) * scale: about 2.5 here, enough spread for sampling to pick varied tokens.
  const output = random("output.weight", [d.embd, d.vocab], 0.3);
  // Special tokens (<unk>, <s>, </s>, <|im_start|>, <|im_end|>) get zero weights, so logit 0
  // against the others' spread: the model rarely ends an answer or opens a turn by itself,
  // and tests decide where answers end (max_tokens, stop sequences, cancel).
  output.data.fill(0, 0, SPECIALS * d.embd);
  tensors.push(ones("output_norm.weight", d.embd), output);
  return tensors;
}

/** The bytes of a tiny valid GGUF v3 (see the top of this file). */
export function tinyGguf(opts: TinyGgufOptions = {}): Buffer {
  const vocab = tinyVocab();
  const d = dimsOf(opts, vocab.tokens.length);
  const rand = prng(opts.seed ?? 1);
  return encodeGguf({ metadata: metadataOf(d, opts.name ?? "unbroken-tiny", vocab), tensors: tensorsOf(d, rand) });
}

export async function writeTinyGguf(file: string, opts: TinyGgufOptions = {}): Promise<void> {
  await writeFile(file, tinyGguf(opts));
}

/**
 * Ways to break the tiny model:
 * - `truncated`: a valid header and tensor table, then the tensor data cut short;
 * - `shape`: token_embd.weight has a shape that disagrees with the vocab and embedding;
 * - `heads`: attention.head_count 0; llama.cpp derives a tensor shape with a zero dimension
 *   from it and trips GGML_ASSERT(ne >= 1) while loading: abort(), the process dies (SIGABRT).
 * - `garbage`: the GGUF magic followed by random bytes.
 */
export type CorruptKind = "truncated" | "shape" | "heads" | "garbage";

export function corruptGguf(kind: CorruptKind, opts: TinyGgufOptions = {}): Buffer {
  const vocab = tinyVocab();
  const d = dimsOf(opts, vocab.tokens.length);
  const rand = prng(opts.seed ?? 1);
  const metadata = metadataOf(d, opts.name ?? "unbroken-tiny-corrupt", vocab);
  const tensors = tensorsOf(d, rand);
  if (kind === "truncated") {
    const whole = encodeGguf({ metadata, tensors });
    return whole.subarray(0, Math.floor(whole.length * 0.6));
  }
  if (kind === "shape") {
    const embd = tensors[0] as GgufTensor;
    tensors[0] = { ...embd, ne: [d.vocab, d.embd] };
    return encodeGguf({ metadata, tensors });
  }
  if (kind === "heads") {
    const at = metadata.findIndex(([k]) => k === "llama.attention.head_count");
    metadata[at] = ["llama.attention.head_count", u32(0)];
    return encodeGguf({ metadata, tensors });
  }
  const junk = Buffer.alloc(4096);
  for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(rand() * 256);
  junk.write("GGUF", 0, "ascii");
  junk.writeUInt32LE(3, 4);
  return junk;
}

export async function writeCorruptGguf(file: string, kind: CorruptKind, opts: TinyGgufOptions = {}): Promise<void> {
  await writeFile(file, corruptGguf(kind, opts));
}
