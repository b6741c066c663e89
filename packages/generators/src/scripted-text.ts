import { hashText, prng } from "./prng.js";
import { CLOSERS, WORDS } from "./words.js";

/**
 * Deterministic prose: the same prompt and seed give the same tokens, and so do the same
 * steers at the same positions. That makes a scripted response reproducible from its log.
 */
export class ScriptedText {
  private rand: () => number;
  private vocabulary: readonly string[] = WORDS;
  private sentenceStart = true;
  private wordsInSentence = 0;
  private emitted = 0;

  constructor(private readonly seed: number) {
    this.rand = prng(seed);
  }

  /** The next token: a word with its leading space, maybe with punctuation or a new paragraph. */
  next(): string {
    const lead = this.emitted === 0 ? "" : this.sentenceStart && this.rand() < 0.12 ? "\n\n" : " ";
    let word = this.vocabulary[Math.floor(this.rand() * this.vocabulary.length)] as string;
    if (this.sentenceStart) word = word.charAt(0).toUpperCase() + word.slice(1);
    this.sentenceStart = false;
    this.wordsInSentence++;
    this.emitted++;
    if (this.wordsInSentence > 4 && this.rand() < 0.14) {
      const closer = CLOSERS[Math.floor(this.rand() * CLOSERS.length)] as string;
      word += closer;
      if (closer !== "," && closer !== ";") {
        this.sentenceStart = true;
        this.wordsInSentence = 0;
      }
    }
    return lead + word;
  }

  /** What follows depends on the instruction: reseeded by it, and its own words weave in. */
  steer(instruction: string): void {
    this.rand = prng(hashText(instruction, this.seed ^ this.emitted));
    const own = instruction.toLowerCase().match(/[a-z]{3,}/g) ?? [];
    this.vocabulary = own.length > 0 ? [...WORDS, ...Array.from({ length: 40 }, (_, i) => own[i % own.length] as string)] : WORDS;
  }
}

/** "write 300 words" in the prompt asks for about that many tokens; otherwise 60–200. */
export function naturalLength(prompt: string, rand: () => number): number {
  const asked = /(\d{1,5})\s*(?:words|tokens)/i.exec(prompt);
  if (asked) return Math.max(1, Math.min(20_000, Number(asked[1])));
  return 60 + Math.floor(rand() * 141);
}
