/**
 * The peer's graphs of the light encoders at their real shapes, made from graphs we have
 * (no torch or onnx package on this machine): ONNX files are protobuf, and the edits are to
 * tensor shapes only, so a small field-level reader and writer does it.
 *
 * - MobileSAM (TinyViT-5M): ../shared/fixtures/mobilesam/encoder.onnx has every TinyViT tensor
 *   at the released shape, its weights external data inside mobilesam.pth, but a neck 32 wide
 *   (the fixture's narrow decoder). `widenNeck` makes the neck's six tensors 256 wide, as
 *   released, with their data in a second external file.
 * - SlimSAM-77 (uniform): a ViT-B with embed 168, 12 heads of head_dim 14 and MLP 696, same
 *   depth, windows and global blocks. `narrowVit` rewrites the shape-only ViT-B graph
 *   (../shared/fixtures/bench/: every weight a ConstantOfShape of an int64 shape tensor) at
 *   those widths: the weights' shape tensors and the two constants that spell the width.
 *
 * Values mean nothing in either (timing only). ONNX field numbers are those of onnx.proto:
 * ModelProto.graph 7; GraphProto node 1, initializer 5, output 12, value_info 13;
 * NodeProto op_type 4, attribute 5; AttributeProto t 5; TensorProto dims 1, data_type 2,
 * name 8, raw_data 9, external_data 13 (key 1, value 2); ValueInfoProto name 1, type 2.
 */
import type { PeerGraph } from "./ort_peer.ts";

/** One protobuf field: number, wire type, and its value (varint, or the bytes). */
export interface PbField {
  field: number;
  wire: number;
  value: bigint | Uint8Array;
}

function readVarint(b: Uint8Array, i: number): [bigint, number] {
  let r = 0n, shift = 0n;
  for (;;) {
    const x = b[i++];
    if (x === undefined) throw new Error("truncated protobuf varint");
    r |= BigInt(x & 0x7f) << shift;
    shift += 7n;
    if (x < 0x80) return [r, i];
  }
}

function writeVarint(out: number[], v: bigint): void {
  if (v < 0n) v &= (1n << 64n) - 1n; // negative int64: ten bytes, two's complement
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? byte | 0x80 : byte);
  } while (v);
}

/** The fields of one message, in order. */
export function readFields(b: Uint8Array): PbField[] {
  const out: PbField[] = [];
  let i = 0;
  while (i < b.length) {
    const [key, j] = readVarint(b, i);
    const field = Number(key >> 3n), wire = Number(key & 7n);
    i = j;
    if (wire === 0) {
      const [v, k] = readVarint(b, i);
      out.push({ field, wire, value: v });
      i = k;
    } else if (wire === 2) {
      const [n, k] = readVarint(b, i);
      out.push({ field, wire, value: b.subarray(k, k + Number(n)) });
      i = k + Number(n);
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      out.push({ field, wire, value: b.subarray(i, i + n) });
      i += n;
    } else throw new Error(`protobuf wire type ${wire} not handled`);
  }
  return out;
}

export function writeFields(fields: readonly PbField[]): Uint8Array {
  const head: number[] = [];
  const chunks: Uint8Array[] = [];
  const flush = () => {
    if (head.length) chunks.push(Uint8Array.from(head.splice(0)));
  };
  for (const f of fields) {
    writeVarint(head, BigInt(f.field << 3 | f.wire));
    if (f.wire === 0) writeVarint(head, f.value as bigint);
    else {
      const v = f.value as Uint8Array;
      if (f.wire === 2) writeVarint(head, BigInt(v.length));
      flush();
      chunks.push(v);
    }
  }
  flush();
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) (out.set(c, o), o += c.length);
  return out;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);
const bytesOf = (f: PbField) => f.value as Uint8Array;

/** Rewrites the graph of a model; `edit` gets and returns the graph's fields. */
function editGraph(model: Uint8Array, edit: (graph: PbField[]) => PbField[]): Uint8Array {
  return writeFields(
    readFields(model).map((f) =>
      f.field === 7 ? { ...f, value: writeFields(edit(readFields(bytesOf(f)))) } : f
    ),
  );
}

/** A graph output of float type with no shape (the edits change its width). */
function shapelessOutput(f: PbField): PbField {
  const vi = readFields(bytesOf(f)).filter((x) => x.field !== 2);
  const type = writeFields([{
    field: 1,
    wire: 2,
    value: writeFields([{ field: 1, wire: 0, value: 1n }]),
  }]);
  return { ...f, value: writeFields([...vi, { field: 2, wire: 2, value: type }]) };
}

/** int64 values of a raw_data TensorProto, or null. */
function int64Values(tensor: PbField[]): BigInt64Array | null {
  const dt = tensor.find((x) => x.field === 2)?.value;
  const raw = tensor.find((x) => x.field === 9)?.value as Uint8Array | undefined;
  if (dt !== 7n || !raw) return null;
  return new BigInt64Array(raw.slice().buffer);
}

function withInt64Values(tensor: PbField[], values: BigInt64Array): PbField[] {
  return tensor.map((x) => x.field === 9 ? { ...x, value: new Uint8Array(values.buffer) } : x);
}

export interface VitWidths {
  embedDim: number;
  headDim: number;
  mlpDim: number;
}

/**
 * The shape-only ViT-B graph at other widths (same depth, heads, windows, global blocks): every
 * int64 shape tensor of a weight and the int64 constants holding the width are rewritten;
 * `from` are ViT-B's widths. Returns the new graph and how many tensors changed.
 */
export function narrowVit(
  vitB: Uint8Array,
  to: VitWidths,
  from: VitWidths = { embedDim: 768, headDim: 64, mlpDim: 3072 },
): { graph: Uint8Array; changed: number } {
  const map = new Map<bigint, bigint>([
    [BigInt(from.embedDim), BigInt(to.embedDim)],
    [BigInt(3 * from.embedDim), BigInt(3 * to.embedDim)],
    [BigInt(from.mlpDim), BigInt(to.mlpDim)],
  ]);
  let changed = 0;
  const rewrite = (tensor: PbField[], name: string): PbField[] => {
    const v = int64Values(tensor);
    if (!v) return tensor;
    const out = BigInt64Array.from(v);
    if (/rel_pos_[hw]__shape$/.test(name)) {
      // (2 * window - 1, head_dim): only the head_dim changes.
      if (out[1] !== BigInt(from.headDim)) throw new Error(`${name}: head_dim ${out[1]}`);
      out[1] = BigInt(to.headDim);
    } else if (name.endsWith("__shape") || !name) {
      // A weight's shape, or a Constant's value (the width, and window_partition's view).
      for (let i = 0; i < out.length; i++) out[i] = map.get(out[i]) ?? out[i];
      // The neck's output width (256) and the grid (64) are not in the map: kept.
    }
    if (out.some((x, i) => x !== v[i])) changed++;
    return withInt64Values(tensor, out);
  };
  const graph = editGraph(vitB, (g) =>
    g.map((f) => {
      if (f.field === 5) {
        const t = readFields(bytesOf(f));
        const name = text((t.find((x) => x.field === 8)?.value as Uint8Array) ?? new Uint8Array());
        return { ...f, value: writeFields(rewrite(t, name)) };
      }
      if (f.field === 1) {
        const node = readFields(bytesOf(f));
        const op = node.find((x) => x.field === 4);
        if (!op || text(bytesOf(op)) !== "Constant") return f;
        return {
          ...f,
          value: writeFields(node.map((a) => {
            if (a.field !== 5) return a;
            const attr = readFields(bytesOf(a));
            return {
              ...a,
              value: writeFields(attr.map((x) =>
                x.field === 5
                  ? { ...x, value: writeFields(rewrite(readFields(bytesOf(x)), "")) }
                  : x
              )),
            };
          })),
        };
      }
      if (f.field === 12) {
        return shapelessOutput(f);
      }
      if (f.field === 13) {
        return null; // value_info: shapes at the old widths
      }
      return f;
    }).filter((f): f is PbField =>
      f !== null
    ));
  return { graph, changed };
}

/**
 * MobileSAM's fixture graph with the neck `width` wide (released: 256): the six neck tensors get
 * that width and their data from `location` (a second external file, made by this function:
 * a small deterministic pattern). Returns the graph and that file's bytes.
 */
export function widenNeck(
  graph: Uint8Array,
  width: number,
  location: string,
): { graph: Uint8Array; data: Uint8Array; changed: number } {
  const pieces: Float32Array[] = [];
  let offset = 0, changed = 0;
  const out = editGraph(graph, (g) =>
    g.map((f) => {
      if (f.field === 12) return shapelessOutput(f);
      if (f.field !== 5) return f;
      const t = readFields(bytesOf(f));
      const name = text((t.find((x) => x.field === 8)?.value as Uint8Array) ?? new Uint8Array());
      if (!/(^|\.)neck\.[0-3]\.(weight|bias)$/.test(name)) return f;
      const dims = t.filter((x) => x.field === 1).map((x) => Number(x.value as bigint));
      // neck.0: (W, Cin, 1, 1); neck.2: (W, W, 3, 3); neck.1 / neck.3 (LayerNorm2d): (W).
      const newDims = dims.length === 1
        ? [width]
        : name.includes("neck.2.")
        ? [width, width, dims[2], dims[3]]
        : [width, dims[1], dims[2], dims[3]];
      const n = newDims.reduce((a, b) => a * b, 1);
      const values = new Float32Array(n);
      const isScale = dims.length === 1 && name.endsWith(".weight");
      for (let i = 0; i < n; i++) values[i] = isScale ? 1 : ((i * 40503) % 997) / 997e2 - 5e-3;
      pieces.push(values);
      const ext = (k: string, v: string) => ({
        field: 13,
        wire: 2,
        value: writeFields([
          { field: 1, wire: 2, value: bytes(k) },
          { field: 2, wire: 2, value: bytes(v) },
        ]),
      });
      const rebuilt: PbField[] = [
        ...newDims.map((d) => ({ field: 1, wire: 0, value: BigInt(d) })),
        ...t.filter((x) => x.field !== 1 && x.field !== 13),
        ext("location", location),
        ext("offset", String(offset)),
        ext("length", String(4 * n)),
      ];
      offset += 4 * n;
      changed++;
      return { ...f, value: writeFields(rebuilt) };
    }));
  const data = new Uint8Array(offset);
  let o = 0;
  for (const p of pieces) (data.set(new Uint8Array(p.buffer), o), o += p.byteLength);
  return { graph: out, data, changed };
}

/** SlimSAM-77-uniform's encoder widths (its released checkpoint's tensor shapes). */
export const SLIMSAM_77_WIDTHS: VitWidths = { embedDim: 168, headDim: 14, mlpDim: 696 };

const FIXTURES = new URL("../../../shared/fixtures/", import.meta.url).pathname;

/**
 * Writes the MobileSAM and SlimSAM-77 graphs at real shapes into `dir` and returns them as
 * peer graphs, or for each the reason it could not be made (a fixture missing).
 */
export async function edgePeerGraphs(
  dir: string,
  fixtures = FIXTURES,
): Promise<Record<"mobilesam" | "slimsam_77", PeerGraph | string>> {
  const read = async (rel: string) => {
    try {
      return await Deno.readFile(fixtures + rel);
    } catch {
      return null;
    }
  };
  const out: Record<"mobilesam" | "slimsam_77", PeerGraph | string> = {
    mobilesam: "../shared/fixtures/mobilesam/encoder.onnx is missing",
    slimsam_77: `../shared/fixtures/${BENCH_VIT_B} is missing`,
  };
  const mobile = await read("mobilesam/encoder.onnx");
  if (mobile) {
    const pth = fixtures + "mobilesam/mobilesam.pth";
    const w = widenNeck(mobile, 256, "neck256.bin");
    if (w.changed !== 6) out.mobilesam = `mobilesam/encoder.onnx: ${w.changed} neck tensors, not 6`;
    else {
      await Deno.writeFile(`${dir}/mobilesam_encoder.real-shapes.onnx`, w.graph);
      await Deno.writeFile(`${dir}/neck256.bin`, w.data);
      out.mobilesam = {
        id: "mobilesam",
        kind: "encoder",
        path: `${dir}/mobilesam_encoder.real-shapes.onnx`,
        externalData: [
          { location: "mobilesam.pth", path: pth },
          { location: "neck256.bin", path: `${dir}/neck256.bin` },
        ],
      };
    }
  }
  const vitB = await read(BENCH_VIT_B);
  if (vitB) {
    const s = narrowVit(vitB, SLIMSAM_77_WIDTHS);
    await Deno.writeFile(`${dir}/slimsam_77_encoder.shape-only.onnx`, s.graph);
    out.slimsam_77 = {
      id: "slimsam_77",
      kind: "encoder",
      path: `${dir}/slimsam_77_encoder.shape-only.onnx`,
    };
  }
  return out;
}

const BENCH_VIT_B = "bench/sam_vit_b_encoder.shape-only.onnx";
