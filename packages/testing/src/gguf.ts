// A minimal GGUF v3 encoder: metadata key/values and f32 tensors, laid out as in
// https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (little-endian):
//
//   header      magic "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count
//   metadata    per key: string key, u32 value_type, value
//   tensor info per tensor: string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset
//   padding     to general.alignment, then the tensor data (each tensor at an aligned
//               offset counted from the start of the data section)
//
// A string is a u64 byte length then UTF-8 bytes (no terminator). ne[0] is the innermost,
// contiguous dimension (ggml order: a PyTorch [rows, cols] matrix is ne = [cols, rows]).

export const GGUF_MAGIC = "GGUF";
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value types. */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
type ScalarType = Exclude<(typeof GgufType)[keyof typeof GgufType], 9>;

export type GgufValue =
  | { type: ScalarType; value: number | bigint | boolean | string }
  | { type: 9; itemType: ScalarType; items: ReadonlyArray<number | bigint | boolean | string> };

export const u32 = (value: number): GgufValue => ({ type: GgufType.UINT32, value });
export const i32 = (value: number): GgufValue => ({ type: GgufType.INT32, value });
export const f32 = (value: number): GgufValue => ({ type: GgufType.FLOAT32, value });
export const bool = (value: boolean): GgufValue => ({ type: GgufType.BOOL, value });
export const str = (value: string): GgufValue => ({ type: GgufType.STRING, value });
export const arr = (itemType: ScalarType, items: ReadonlyArray<number | bigint | boolean | string>): GgufValue => ({
  type: GgufType.ARRAY,
  itemType,
  items,
});

export interface GgufTensor {
  name: string;
  /** ggml order: ne[0] is the contiguous dimension. */
  ne: number[];
  /** f32 data, product(ne) values. */
  data: Float32Array;
}

/** The ggml type id of f32. */
const GGML_TYPE_F32 = 0;

/** An append-only little-endian byte buffer. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  u8(v: number): void {
    this.room(1);
    this.length = this.buf.writeUInt8(v, this.length);
  }
  i8(v: number): void {
    this.room(1);
    this.length = this.buf.writeInt8(v, this.length);
  }
  u16(v: number): void {
    this.room(2);
    this.length = this.buf.writeUInt16LE(v, this.length);
  }
  i16(v: number): void {
    this.room(2);
    this.length = this.buf.writeInt16LE(v, this.length);
  }
  u32(v: number): void {
    this.room(4);
    this.length = this.buf.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.room(4);
    this.length = this.buf.writeInt32LE(v, this.length);
  }
  f32(v: number): void {
    this.room(4);
    this.length = this.buf.writeFloatLE(v, this.length);
  }
  f64(v: number): void {
    this.room(8);
    this.length = this.buf.writeDoubleLE(v, this.length);
  }
  u64(v: number | bigint): void {
    this.room(8);
    this.length = this.buf.writeBigUInt64LE(BigInt(v), this.length);
  }
  i64(v: number | bigint): void {
    this.room(8);
    this.length = this.buf.writeBigInt64LE(BigInt(v), this.length);
  }
  string(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.bytes(new Uint8Array(n));
  }
  done(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(w: ByteWriter, type: ScalarType, v: number | bigint | boolean | string): void {
  switch (type) {
    case GgufType.UINT8: {
      w.u8(Number(v));
      return;
    }
    case GgufType.INT8: {
      w.i8(Number(v));
      return;
    }
    case GgufType.UINT16: {
      w.u16(Number(v));
      return;
    }
    case GgufType.INT16: {
      w.i16(Number(v));
      return;
    }
    case GgufType.UINT32: {
      w.u32(Number(v));
      return;
    }
    case GgufType.INT32: {
      w.i32(Number(v));
      return;
    }
    case GgufType.FLOAT32: {
      w.f32(Number(v));
      return;
    }
    case GgufType.BOOL: {
      w.u8(v ? 1 : 0);
      return;
    }
    case GgufType.STRING: {
      w.string(String(v));
      return;
    }
    case GgufType.UINT64: {
      w.u64(typeof v === "bigint" ? v : Number(v));
      return;
    }
    case GgufType.INT64: {
      w.i64(typeof v === "bigint" ? v : Number(v));
      return;
    }
    case GgufType.FLOAT64: {
      w.f64(Number(v));
      return;
    }
  }
}

export interface GgufContents {
  /** In file order; include general.alignment if it is not the default 32. */
  metadata: Array<[string, GgufValue]>;
  tensors: GgufTensor[];
  alignment?: number;
}

/** Encodes a complete GGUF v3 file. */
export function encodeGguf({ metadata, tensors, alignment = GGUF_DEFAULT_ALIGNMENT }: GgufContents): Buffer {
  const w = new ByteWriter();
  w.bytes(Buffer.from(GGUF_MAGIC, "ascii"));
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, v] of metadata) {
    w.string(key);
    w.u32(v.type);
    if (v.type === GgufType.ARRAY) {
      w.u32(v.itemType);
      w.u64(v.items.length);
      for (const item of v.items) writeScalar(w, v.itemType, item);
    } else writeScalar(w, v.type, v.value);
  }
  let offset = 0;
  for (const t of tensors) {
    const count = t.ne.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${t.name}: ne ${t.ne.join("x")} != ${t.data.length} values`);
    w.string(t.name);
    w.u32(t.ne.length);
    for (const n of t.ne) w.u64(n);
    w.u32(GGML_TYPE_F32);
    w.u64(offset);
    offset += Math.ceil((t.data.length * 4) / alignment) * alignment;
  }
  w.pad(alignment);
  for (const t of tensors) {
    const bytes = Buffer.alloc(t.data.length * 4);
    for (let i = 0; i < t.data.length; i++) bytes.writeFloatLE(t.data[i] as number, i * 4);
    w.bytes(bytes);
    w.pad(alignment);
  }
  return w.done();
}
