/**
 * A host tensor's values as float32. Free of Deno APIs: the decoder uses it on the server and
 * in the page's bundle (src/web/decoder/).
 */
import { DTYPE_SIZE, numel } from "./lazy.ts";
import type { HostTensor } from "./types.ts";

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * The tensor's values as float32 (float16, bfloat16 and float64 are converted; integer
 * tensors are refused). For a float32 tensor with 4-byte-aligned bytes this is a view that
 * shares memory with `t.bytes`.
 */
export function tensorF32(t: HostTensor): Float32Array {
  const n = numel(t.shape);
  const size = DTYPE_SIZE[t.dtype];
  if (t.bytes.length !== n * size) {
    throw new Error(
      `tensorF32: tensor '${t.name}' has ${t.bytes.length} bytes, shape [${t.shape}] of ` +
        `${t.dtype} needs ${n * size}`,
    );
  }
  const b = t.bytes;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (t.dtype) {
    case "float32":
      if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, n);
      return new Float32Array(b.slice().buffer);
    case "float16": {
      // Table over all 65536 halves would cost 256 KB; direct decoding is fast enough here.
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      return out;
    }
    case "bfloat16": {
      // bfloat16 is the top half of a float32.
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case "float64": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    }
    default:
      throw new Error(
        `tensorF32: tensor '${t.name}' has integer dtype ${t.dtype}; refusing to read it as float32`,
      );
  }
}
