/** One sample line of Prometheus' text format: `name{label="value",…} 12.5`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A scrape of a `/metrics` endpoint, parsed, with lookups by name and labels. */
export class Scrape {
  constructor(
    readonly text: string,
    readonly contentType: string,
    readonly samples: readonly Sample[],
  ) {}

  /**
   * The value of the sample `name` whose labels are exactly `labels`; 0 when there is none
   * (prom-client prints a labelled counter only once it counted something).
   */
  get(name: string, labels: Record<string, string> = {}): number {
    const want = Object.entries(labels);
    const match = this.samples.find(
      (s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v),
    );
    return match?.value ?? 0;
  }

  /** The sum over every sample of `name` whatever its labels. */
  sum(name: string): number {
    return this.samples.filter((s) => s.name === name).reduce((n, s) => n + s.value, 0);
  }

  has(name: string): boolean {
    return this.samples.some((s) => s.name === name);
  }
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus' text exposition format (comments and blank lines skipped). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL))
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    // Go's ParseFloat, as Prometheus reads it: NaN and Inf in any case (prom-client prints "Nan").
    const raw = (m[3] as string).toLowerCase();
    const value = raw === "nan" ? NaN : raw === "+inf" || raw === "inf" ? Infinity : raw === "-inf" ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== "nan") throw new Error(`not a sample value: ${line}`);
    samples.push({ name: m[1] as string, labels, value });
  }
  return samples;
}

/** GETs `url` (a `/metrics` endpoint) and parses it; anything but 200 is an error. */
export async function scrapeMetrics(url: string): Promise<Scrape> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 200)}`);
  return new Scrape(text, res.headers.get("content-type") ?? "", parsePrometheus(text));
}
