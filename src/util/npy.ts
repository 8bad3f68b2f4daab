/**
 * Reader (and a small writer) for NumPy .npy files, format versions 1-3, little-endian,
 * C order. Used for the golden tensors and for the embedding download endpoint.
 */

export type NpyData = Float32Array | Uint8Array | Int32Array | Float64Array | BigInt64Array;

export interface Npy {
  shape: number[];
  dtype: string;
  data: NpyData;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

export function parseNpy(bytes: Uint8Array): Npy {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) {
    throw new Error("npy: not a .npy file (bad magic)");
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number, headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new Error(`npy: unsupported version ${major}`);
  }
  const header = new TextDecoder().decode(bytes.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`npy: bad header ${header}`);
  if (fortran === "True") throw new Error("npy: Fortran order is not supported");
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const start = headerStart + headerLen;
  const ctors: Record<string, [new (b: ArrayBuffer) => NpyData, number]> = {
    "<f4": [Float32Array, 4],
    "|u1": [Uint8Array, 1],
    "<i4": [Int32Array, 4],
    "<f8": [Float64Array, 8],
    "<i8": [BigInt64Array, 8],
  };
  const entry = ctors[descr];
  if (!entry) throw new Error(`npy: unsupported dtype ${descr}`);
  const [Ctor, itemSize] = entry;
  if (bytes.length < start + count * itemSize) {
    throw new Error(`npy: truncated, need ${count * itemSize} data bytes`);
  }
  // Copy into a fresh, aligned buffer.
  const data = new Ctor(bytes.slice(start, start + count * itemSize).buffer);
  return { shape, dtype: descr, data };
}

export async function readNpy(path: string | URL): Promise<Npy> {
  return parseNpy(await Deno.readFile(path));
}

/** Writes a float32 array as .npy version 1.0. */
export function encodeNpyF32(data: Float32Array, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad so that the data starts on a 64-byte boundary, newline-terminated.
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}
