/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors, format spec in
 * its README): an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the
 * byte buffer, which the tensors must cover exactly (no holes, no overlaps).
 *
 * The writer pads the header with spaces to a multiple of 8 bytes and lays tensors out by
 * element size, largest first, so every tensor starts at a multiple of its element size: an
 * all-float32 file can be uploaded to GPU buffers straight from its bytes.
 */
import { DTYPE_SIZE, type LazyTensor, numel } from "./lazy.ts";
import type { DType, HostTensor, StateDict } from "./types.ts";
import { readAt } from "./zip.ts";

/**
 * The limit on the JSON header. The spec allows 100 MB, but parsing JSON costs ~15 times its
 * size in memory (a 59 MB header took 878 MB) while a SAM checkpoint's header is ~100 KB:
 * 4 MiB describes some 30,000 tensors.
 */
export const MAX_HEADER_BYTES = 4 << 20;

const TO_SAFETENSORS: Readonly<Record<DType, string>> = {
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  float64: "F64",
  int64: "I64",
  int32: "I32",
  uint8: "U8",
};
/** A Map: a dtype named "constructor" or "toString" must not find Object.prototype's. */
const FROM_SAFETENSORS: ReadonlyMap<string, DType> = new Map(
  Object.entries(TO_SAFETENSORS).map(([ours, theirs]) => [theirs, ours as DType]),
);

/** One tensor's header entry, offsets relative to the start of the byte buffer. */
export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In byte-buffer order. */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
}

function isDim(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates a header against a byte buffer of `dataLength` bytes: JSON, dtypes,
 * shapes, offsets in range, sizes matching shape x dtype, and exact non-overlapping cover.
 */
export function parseSafetensorsHeader(json: Uint8Array, dataLength: number): SafetensorsHeader {
  if (json.length > MAX_HEADER_BYTES) {
    throw new Error(
      `safetensors: header length ${json.length} is over the limit of ${MAX_HEADER_BYTES} bytes`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  } catch {
    throw new Error("safetensors: header is not valid UTF-8");
  }
  if (!text.startsWith("{")) throw new Error("safetensors: header does not start with '{'");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`safetensors: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("safetensors: header is not a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new Error("safetensors: __metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") {
          throw new Error(`safetensors: __metadata__ value '${k}' is not a string`);
        }
        // Defined, not assigned: a "__proto__" key is data, not the object's prototype.
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== "object" || info === null) {
      throw new Error(`safetensors: entry '${name}' is not an object`);
    }
    const dtype = typeof info.dtype === "string" ? FROM_SAFETENSORS.get(info.dtype) : undefined;
    if (!dtype) {
      throw new Error(`safetensors: tensor '${name}' has unsupported dtype ${String(info.dtype)}`);
    }
    if (!Array.isArray(info.shape) || !info.shape.every(isDim)) {
      throw new Error(`safetensors: tensor '${name}' has a bad shape`);
    }
    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isDim)) {
      throw new Error(`safetensors: tensor '${name}' has bad data_offsets`);
    }
    const [begin, end] = offsets as number[];
    if (end < begin || end > dataLength) {
      throw new Error(
        `safetensors: tensor '${name}' data_offsets [${begin}, ${end}] are out of range ` +
          `(byte buffer is ${dataLength} bytes)`,
      );
    }
    const shape = info.shape as number[];
    const expected = numel(shape) * DTYPE_SIZE[dtype];
    if (end - begin !== expected) {
      throw new Error(
        `safetensors: tensor '${name}' spans ${end - begin} bytes but shape [${shape}] of ` +
          `${dtype} needs ${expected}`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  // Zero-size tensors sort before a tensor starting at the same offset; ties keep header order.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous = "";
  for (const e of entries) {
    if (e.begin < covered) {
      throw new Error(
        `safetensors: tensor '${e.name}' [${e.begin}, ${e.end}] overlaps '${previous}' ` +
          `(which ends at ${covered})`,
      );
    }
    if (e.begin > covered) {
      throw new Error(`safetensors: bytes [${covered}, ${e.begin}) belong to no tensor (a hole)`);
    }
    covered = e.end;
    previous = e.name;
  }
  if (covered !== dataLength) {
    throw new Error(
      `safetensors: tensors cover ${covered} bytes but the byte buffer holds ${dataLength}`,
    );
  }
  return { entries, metadata };
}

/** An open safetensors file: header parsed and validated, tensor bytes read on request. */
export class SafetensorsFile {
  private constructor(
    private readonly file: Deno.FsFile,
    readonly metadata: Record<string, string>,
    /** In file order. */
    readonly tensors: LazyTensor[],
  ) {}

  static async open(path: string | URL): Promise<SafetensorsFile> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      if (size < 8) throw new Error(`safetensors: ${path} is ${size} bytes, too small`);
      const lenBytes = await readAt(file, 0, 8, "safetensors");
      const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (headerLen > BigInt(size - 8)) {
        throw new Error(
          `safetensors: header length ${headerLen} is larger than the file allows ` +
            `(${size - 8} bytes after the length field)`,
        );
      }
      // Refused before a byte of it is read.
      if (headerLen > BigInt(MAX_HEADER_BYTES)) {
        throw new Error(
          `safetensors: header length ${headerLen} is over the limit of ${MAX_HEADER_BYTES} ` +
            `bytes`,
        );
      }
      const n = Number(headerLen);
      const header = parseSafetensorsHeader(
        await readAt(file, 8, n, "safetensors header"),
        size - 8 - n,
      );
      const base = 8 + n;
      const tensors = header.entries.map((e): LazyTensor => ({
        name: e.name,
        dtype: e.dtype,
        shape: e.shape,
        byteLength: e.end - e.begin,
        read: () => readAt(file, base + e.begin, e.end - e.begin, `safetensors: '${e.name}'`),
      }));
      return new SafetensorsFile(file, header.metadata, tensors);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  close(): void {
    this.file.close();
  }
}

/** Reads a whole safetensors file into memory. */
export async function readSafetensors(
  path: string | URL,
): Promise<{ sd: StateDict; metadata: Record<string, string> }> {
  const f = await SafetensorsFile.open(path);
  try {
    const sd: StateDict = new Map();
    for (const t of f.tensors) {
      sd.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, bytes: await t.read() });
    }
    return { sd, metadata: f.metadata };
  } finally {
    f.close();
  }
}

/** Something the writer can take tensors from: a HostTensor or a lazily read one. */
export type TensorSource = LazyTensor | HostTensor;

async function bytesOf(t: TensorSource): Promise<Uint8Array> {
  return "bytes" in t ? t.bytes : await t.read();
}

export interface WriteProgress {
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** The tensor just written. */
  name: string;
}

/** The header bytes (JSON padded with spaces to a multiple of 8) and the buffer layout. */
export function layoutSafetensors(
  tensors: readonly { name: string; dtype: DType; shape: readonly number[] }[],
  metadata: Record<string, string> = {},
): { header: Uint8Array; order: number[]; offsets: [number, number][] } {
  // Largest element size first keeps every tensor aligned to its own element size.
  const order = tensors.map((_, i) => i).sort((a, b) =>
    DTYPE_SIZE[tensors[b].dtype] - DTYPE_SIZE[tensors[a].dtype] || a - b
  );
  const offsets: [number, number][] = new Array(tensors.length);
  let at = 0;
  for (const i of order) {
    const t = tensors[i];
    const size = numel(t.shape) * DTYPE_SIZE[t.dtype];
    offsets[i] = [at, at + size];
    at += size;
  }
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  const seen = new Set<string>();
  tensors.forEach((t, i) => {
    if (t.name === "__metadata__" || seen.has(t.name)) {
      throw new Error(`safetensors: cannot write tensor name '${t.name}' (reserved or repeated)`);
    }
    seen.add(t.name);
    json[t.name] = { dtype: TO_SAFETENSORS[t.dtype], shape: t.shape, data_offsets: offsets[i] };
  });
  const text = new TextEncoder().encode(JSON.stringify(json));
  const padded = Math.ceil(text.length / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(text, 8);
  return { header, order, offsets };
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/**
 * Writes tensors (read one at a time from `tensors`) and string metadata to `path`. The file
 * appears only when complete: it is written to `<path>.partial` and renamed.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorSource[],
  metadata: Record<string, string> = {},
  onProgress?: (p: WriteProgress) => void,
): Promise<void> {
  const { header, order, offsets } = layoutSafetensors(tensors, metadata);
  const bytesTotal = offsets.reduce((s, [b, e]) => s + e - b, 0);
  const partial = `${path}.partial`;
  const file = await Deno.open(partial, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, header);
    let bytesDone = 0;
    for (let k = 0; k < order.length; k++) {
      const t = tensors[order[k]];
      const bytes = await bytesOf(t);
      const [begin, end] = offsets[order[k]];
      if (bytes.length !== end - begin) {
        throw new Error(
          `safetensors: tensor '${t.name}' has ${bytes.length} bytes, shape [${t.shape}] of ` +
            `${t.dtype} needs ${end - begin}`,
        );
      }
      await writeAll(file, bytes);
      bytesDone += bytes.length;
      onProgress?.({
        tensorsDone: k + 1,
        tensorsTotal: order.length,
        bytesDone,
        bytesTotal,
        name: t.name,
      });
    }
  } catch (e) {
    file.close();
    await Deno.remove(partial).catch(() => {});
    throw e;
  }
  file.close();
  await Deno.rename(partial, path);
}
