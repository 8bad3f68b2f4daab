/**
 * A tensor living in a GPU storage buffer: a buffer plus a row-major shape and an element
 * type, float32 (everything by default) or float16 (weights and some activations under
 * `precision: "f16"`; only the kernels that name an f16 variant read or write them).
 */
import type { GpuContext } from "./context.ts";

/** Element type of a GPU tensor. */
export type TensorDType = "f32" | "f16";

/** Bytes of one element. */
export function dtypeBytes(dtype: TensorDType): number {
  return dtype === "f16" ? 2 : 4;
}

export class Tensor {
  /** The buffer's pool lease when the tensor was made (see GpuContext.acquireStorage). */
  private readonly lease: number;

  constructor(
    readonly ctx: GpuContext,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly label = "",
    readonly dtype: TensorDType = "f32",
  ) {
    const bytes = this.size * dtypeBytes(dtype);
    if (bytes > buffer.size) {
      throw new Error(
        `tensor ${label} of shape [${
          shape.join(", ")
        }] needs ${bytes} bytes, buffer has ${buffer.size}`,
      );
    }
    this.lease = ctx.leaseOf(buffer);
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Same buffer, another shape of the same element count (a view, no copy). */
  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(`cannot reshape [${this.shape.join(", ")}] to [${shape.join(", ")}]`);
    }
    return new Tensor(this.ctx, this.buffer, shape, this.label, this.dtype);
  }

  /** Bytes of the elements (size * 2 for f16, size * 4 for f32). */
  get byteLength(): number {
    return this.size * dtypeBytes(this.dtype);
  }

  /** Reads the tensor back to the CPU (f16 widened to float32). */
  async read(): Promise<Float32Array> {
    if (this.dtype === "f16") {
      // Padded to 4 bytes: copies are in whole words.
      const raw = await this.ctx.read(this.buffer, 0, align4(this.byteLength));
      return f16ToF32(new Uint16Array(raw, 0, this.size));
    }
    return new Float32Array(await this.ctx.read(this.buffer, 0, this.size * 4));
  }

  /** Frees the buffer, or gives it back to the context's pool when it came from there. */
  destroy(): void {
    this.ctx.releaseStorage(this.buffer, this.lease);
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Allocates a tensor: zero-filled by WebGPU, except inside `ctx.pooled`, where its buffer may
 * be a reused one with stale contents (kernel outputs there are written in full).
 */
export function emptyTensor(
  ctx: GpuContext,
  shape: readonly number[],
  label = "",
  dtype: TensorDType = "f32",
): Tensor {
  const size = Math.max(4, numel(shape) * dtypeBytes(dtype));
  const maxSize = ctx.device.limits.maxStorageBufferBindingSize;
  if (size > maxSize) {
    throw new Error(
      `tensor ${label} [${
        shape.join(", ")
      }] is ${size} bytes, over the device's storage binding limit of ${maxSize}`,
    );
  }
  const { buffer } = ctx.acquireStorage(align4(size), label);
  return new Tensor(ctx, buffer, shape, label, dtype);
}

/** Uploads a Float32Array as a tensor of the given shape. */
export function tensorFrom(
  ctx: GpuContext,
  data: Float32Array,
  shape: readonly number[],
  label = "",
): Tensor {
  if (data.length !== numel(shape)) {
    throw new Error(`${label}: ${data.length} values for shape [${shape.join(", ")}]`);
  }
  const t = emptyTensor(ctx, shape, label);
  ctx.device.queue.writeBuffer(t.buffer, 0, data as Float32Array<ArrayBuffer>);
  ctx.counters.uploadedBytes += data.byteLength;
  return t;
}

/**
 * Uploads float32 values as a float16 tensor (rounded to nearest even; beyond +-65504 they
 * become +-Infinity, as in torch's .half()). Half the bytes of tensorFrom.
 */
export function tensorFromF16(
  ctx: GpuContext,
  data: Float32Array,
  shape: readonly number[],
  label = "",
): Tensor {
  if (data.length !== numel(shape)) {
    throw new Error(`${label}: ${data.length} values for shape [${shape.join(", ")}]`);
  }
  const t = emptyTensor(ctx, shape, label, "f16");
  // writeBuffer needs a multiple of 4 bytes: an odd count gets one zero of padding.
  const half = new Uint16Array(data.length + (data.length % 2));
  half.set(new Uint16Array(new Float16Array(data).buffer));
  ctx.device.queue.writeBuffer(t.buffer, 0, half);
  ctx.counters.uploadedBytes += half.byteLength;
  return t;
}

/** Throws a clear error where the device has no `shader-f16` (f16 tensors need it). */
export function requireShaderF16(ctx: GpuContext, op: string): void {
  if (!ctx.gpu.hasF16) {
    throw new Error(
      `${op}: f16 tensors need the WebGPU feature "shader-f16", which this adapter ` +
        `(${ctx.gpu.description}) does not offer; use precision "f32"`,
    );
  }
}

/** Widens float16 bit patterns to float32. */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const copy = new Uint16Array(bits); // its own aligned buffer
  return Float32Array.from(new Float16Array(copy.buffer, 0, copy.length));
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/**
 * Packs a kernel's uniform block. WGSL uniform structs of u32/i32/f32 scalars are laid
 * out 4 bytes apart; the block is padded to 16 bytes as uniform buffers require.
 */
export class Params {
  private readonly words: number[] = [];
  private readonly kinds: ("u" | "i" | "f")[] = [];
  u32(...values: number[]): this {
    for (const v of values) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`bad u32 param ${v}`);
      this.words.push(v);
      this.kinds.push("u");
    }
    return this;
  }
  i32(...values: number[]): this {
    for (const v of values) {
      if (!Number.isInteger(v)) throw new Error(`bad i32 param ${v}`);
      this.words.push(v);
      this.kinds.push("i");
    }
    return this;
  }
  f32(...values: number[]): this {
    for (const v of values) {
      this.words.push(v);
      this.kinds.push("f");
    }
    return this;
  }
  build(): ArrayBuffer {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const u = new Uint32Array(buf);
    const i = new Int32Array(buf);
    const f = new Float32Array(buf);
    this.words.forEach((w, k) => {
      if (this.kinds[k] === "u") u[k] = w;
      else if (this.kinds[k] === "i") i[k] = w;
      else f[k] = w;
    });
    return buf;
  }
}
