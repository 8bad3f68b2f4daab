/**
 * Builders for hand-made checkpoints: a small ZIP writer (stored or deflated entries,
 * optionally forced into ZIP64 form), a pickle opcode writer, and a .pth maker on top of
 * both, so tests can produce well-formed, broken and hostile files byte by byte.
 */
import { crc32 } from "../../src/weights/zip.ts";

export interface ZipFile {
  name: string;
  data: Uint8Array;
  /** 0 = stored (default), 8 = deflate. */
  method?: 0 | 8;
  /** The entry's bytes as written, instead of `data` deflated (for bombs: `data` is then only
   * what the headers declare, its size and CRC). */
  compressed?: Uint8Array;
  /** A central-directory entry under `name` for an earlier file's local header and data (an
   * alias of it, as hostile archives make); `data`, `method` and `compressed` are ignored. */
  aliasOf?: string;
}

export interface ZipOptions {
  /** Write ZIP64 records and extra fields even though nothing needs them. */
  zip64?: boolean;
  /** Pad local headers (with an extra field) so each entry's data starts at a multiple. */
  alignData?: number;
}

/** Deflated `total` zero bytes (~1/1000 of that), made without holding them in memory. */
export async function deflateZeros(
  total: number,
  format: "deflate" | "deflate-raw",
): Promise<Uint8Array> {
  const zeros = new Uint8Array(Math.min(total, 1 << 20));
  const stream = new CompressionStream(format);
  const writer = stream.writable.getWriter();
  const out = new Response(stream.readable).arrayBuffer();
  for (let done = 0; done < total; done += zeros.length) {
    await writer.write(zeros.subarray(0, Math.min(zeros.length, total - done)));
  }
  await writer.close();
  return new Uint8Array(await out);
}

async function deflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

class ByteWriter {
  private parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 0xff);
    return this;
  }
  u16(v: number) {
    return this.u8(v).u8(v >>> 8);
  }
  u32(v: number) {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  u64(v: number) {
    return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32));
  }
  bytes(b: Uint8Array) {
    for (const x of b) this.parts.push(x);
    return this;
  }
  get length() {
    return this.parts.length;
  }
  done(): Uint8Array {
    return new Uint8Array(this.parts);
  }
}

/** A complete ZIP archive holding `files`, in order. */
export async function buildZip(files: ZipFile[], options: ZipOptions = {}): Promise<Uint8Array> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const z64 = options.zip64 ?? false;
  const sat32 = (v: number) => (z64 ? 0xffffffff : v);
  const written = new Map<
    string,
    { offset: number; method: number; stored: number; size: number; crc: number }
  >();
  for (const f of files) {
    const method = f.method ?? 0;
    const name = enc.encode(f.name);
    const crc = crc32(f.data);
    const alias = f.aliasOf === undefined ? undefined : written.get(f.aliasOf);
    if (alias) {
      central.push(
        new ByteWriter()
          .u32(0x02014b50).u16(20).u16(20).u16(0).u16(alias.method).u16(0).u16(0)
          .u32(alias.crc).u32(alias.stored).u32(alias.size).u16(name.length)
          .u16(0).u16(0).u16(0).u16(0).u32(0).u32(alias.offset).bytes(name).done(),
      );
      continue;
    }
    const stored = f.compressed ?? (method === 8 ? await deflateRaw(f.data) : f.data);
    written.set(f.name, { offset, method, stored: stored.length, size: f.data.length, crc });
    let pad = 0;
    if (options.alignData) {
      const dataAt = offset + 30 + name.length + 4;
      pad = (options.alignData - (dataAt % options.alignData)) % options.alignData;
    }
    const local = new ByteWriter()
      .u32(0x04034b50).u16(z64 ? 45 : 20).u16(0).u16(method).u16(0).u16(0)
      .u32(crc).u32(stored.length).u32(f.data.length).u16(name.length)
      .u16(options.alignData ? 4 + pad : 0).bytes(name);
    // A private extra field (id 0xcafe) whose payload is the padding.
    if (options.alignData) local.u16(0xcafe).u16(pad).bytes(new Uint8Array(pad));
    const localBytes = local.done();
    parts.push(localBytes, stored);
    const extra = z64
      ? new ByteWriter().u16(0x0001).u16(24).u64(f.data.length).u64(stored.length).u64(offset)
        .done()
      : new Uint8Array(0);
    central.push(
      new ByteWriter()
        .u32(0x02014b50).u16(z64 ? 45 : 20).u16(z64 ? 45 : 20).u16(0).u16(method).u16(0).u16(0)
        .u32(crc).u32(sat32(stored.length)).u32(sat32(f.data.length)).u16(name.length)
        .u16(extra.length).u16(0).u16(0).u16(0).u32(0).u32(sat32(offset)).bytes(name)
        .bytes(extra).done(),
    );
    offset += localBytes.length + stored.length;
  }
  const cd = concat(central);
  const cdOffset = offset;
  const tail = new ByteWriter();
  if (z64) {
    const eocd64At = cdOffset + cd.length;
    tail.u32(0x06064b50).u64(44).u16(45).u16(45).u32(0).u32(0)
      .u64(files.length).u64(files.length).u64(cd.length).u64(cdOffset);
    tail.u32(0x07064b50).u32(0).u64(eocd64At).u32(1);
  }
  tail.u32(0x06054b50).u16(0).u16(0)
    .u16(z64 ? 0xffff : files.length).u16(z64 ? 0xffff : files.length)
    .u32(sat32(cd.length)).u32(sat32(cdOffset)).u16(0);
  return concat([...parts, cd, tail.done()]);
}

/** Emits pickle opcodes (protocol 2 subset plus STACK_GLOBAL) into a byte string. */
export class PickleWriter {
  private w = new ByteWriter();
  private enc = new TextEncoder();
  op(code: number) {
    this.w.u8(code);
    return this;
  }
  proto(v = 2) {
    return this.op(0x80).op(v);
  }
  global(module: string, name: string) {
    this.op(0x63);
    this.w.bytes(this.enc.encode(`${module}\n${name}\n`));
    return this;
  }
  stackGlobal() {
    return this.op(0x93);
  }
  str(s: string) {
    const b = this.enc.encode(s);
    this.op(0x58);
    this.w.u32(b.length).bytes(b);
    return this;
  }
  shortStr(s: string) {
    const b = this.enc.encode(s);
    this.op(0x8c);
    this.w.u8(b.length).bytes(b);
    return this;
  }
  int(n: number) {
    if (n >= 0 && n < 256) return this.op(0x4b).op(n);
    if (n >= 0 && n < 65536) {
      this.op(0x4d);
      this.w.u16(n);
      return this;
    }
    this.op(0x4a);
    this.w.u32(n >>> 0);
    return this;
  }
  mark() {
    return this.op(0x28);
  }
  tuple() {
    return this.op(0x74);
  }
  emptyTuple() {
    return this.op(0x29);
  }
  emptyDict() {
    return this.op(0x7d);
  }
  reduce() {
    return this.op(0x52);
  }
  setitem() {
    return this.op(0x73);
  }
  setitems() {
    return this.op(0x75);
  }
  build() {
    return this.op(0x62);
  }
  persid() {
    return this.op(0x51);
  }
  bool(v: boolean) {
    return this.op(v ? 0x88 : 0x89);
  }
  stop() {
    return this.op(0x2e);
  }
  done(): Uint8Array {
    return this.w.done();
  }
}

export interface FakeTensor {
  name: string;
  /** torch storage class name, e.g. "FloatStorage". */
  storageType?: string;
  /** Storage key (zip entry `<prefix>/data/<key>`). */
  key: string;
  /** Elements the persistent id claims the storage has. */
  storageNumel: number;
  offset?: number;
  shape: number[];
  /** Defaults to contiguous. */
  stride?: number[];
}

function contiguousStride(shape: number[]): number[] {
  const stride = new Array(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    stride[d] = s;
    s *= shape[d];
  }
  return stride;
}

/** An OrderedDict-of-tensors pickle as torch.save writes it (with `_metadata` via BUILD). */
export function stateDictPickle(tensors: FakeTensor[], withMetadata = true): Uint8Array {
  const p = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
  p.mark();
  for (const t of tensors) {
    p.str(t.name).global("torch._utils", "_rebuild_tensor_v2").mark();
    p.mark().str("storage").global("torch", t.storageType ?? "FloatStorage").str(t.key)
      .str("cpu").int(t.storageNumel).tuple().persid();
    p.int(t.offset ?? 0);
    p.mark();
    for (const d of t.shape) p.int(d);
    p.tuple().mark();
    for (const s of t.stride ?? contiguousStride(t.shape)) p.int(s);
    p.tuple().bool(false).global("collections", "OrderedDict").emptyTuple().reduce();
    p.tuple().reduce();
  }
  p.setitems();
  if (withMetadata) {
    // state = {'_metadata': OrderedDict({'': {'version': 1}})}
    p.emptyDict().str("_metadata").global("collections", "OrderedDict").emptyTuple().reduce()
      .str("").emptyDict().str("version").int(1).setitem().setitem().setitem().build();
  }
  return p.stop().done();
}

/** A .pth zip: `<prefix>/data.pkl`, `<prefix>/data/<key>` for each storage, `version`. */
export async function buildPth(
  pickle: Uint8Array,
  storages: Record<string, Uint8Array>,
  options: ZipOptions & { prefix?: string; method?: 0 | 8 } = {},
): Promise<Uint8Array> {
  const prefix = options.prefix ?? "archive";
  const files: ZipFile[] = [{ name: `${prefix}/data.pkl`, data: pickle, method: options.method }];
  for (const [key, data] of Object.entries(storages)) {
    files.push({ name: `${prefix}/data/${key}`, data, method: options.method });
  }
  files.push({ name: `${prefix}/version`, data: new TextEncoder().encode("3\n") });
  return await buildZip(files, options);
}

/** Little-endian float32 bytes of the values. */
export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** A temporary directory, removed after `fn`. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-weights-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes bytes to `<dir>/<name>` and returns the path. */
export async function writeTemp(dir: string, name: string, bytes: Uint8Array): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, bytes);
  return path;
}
