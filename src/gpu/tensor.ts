/**
 * A float32 tensor living in a GPU storage buffer: a buffer plus a row-major shape.
 */
import type { GpuContext } from "./context.ts";

export class Tensor {
  /** The buffer's pool lease when the tensor was made (see GpuContext.acquireStorage). */
  private readonly lease: number;

  constructor(
    readonly ctx: GpuContext,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly label = "",
  ) {
    const bytes = this.size * 4;
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
    return new Tensor(this.ctx, this.buffer, shape, this.label);
  }

  /** Reads the tensor back to the CPU. */
  async read(): Promise<Float32Array> {
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
export function emptyTensor(ctx: GpuContext, shape: readonly number[], label = ""): Tensor {
  const size = Math.max(4, numel(shape) * 4);
  const maxSize = ctx.device.limits.maxStorageBufferBindingSize;
  if (size > maxSize) {
    throw new Error(
      `tensor ${label} [${
        shape.join(", ")
      }] is ${size} bytes, over the device's storage binding limit of ${maxSize}`,
    );
  }
  const { buffer } = ctx.acquireStorage(align4(size), label);
  return new Tensor(ctx, buffer, shape, label);
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
  return t;
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
