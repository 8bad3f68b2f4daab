/**
 * A fixed set of named activation buffers, sized once from a model's plan and reused by every
 * forward pass (the way SAM 1's encoder keeps its activations), handed out as tensor views.
 */
import type { GpuContext } from "../gpu/context.ts";
import { numel, Tensor } from "../gpu/tensor.ts";

export class BufferSet<Name extends string> {
  private buffers: Record<Name, GPUBuffer> | null = null;

  constructor(
    private readonly ctx: GpuContext,
    private readonly label: string,
    /** Elements (float32) of each buffer. */
    readonly sizes: Record<Name, number>,
  ) {}

  /** Bytes of all buffers together. */
  get bytes(): number {
    return 4 * Object.values<number>(this.sizes).reduce((a, b) => a + b, 0);
  }

  /** A view of buffer `name` as `shape` (allocating the set on first use). */
  view(name: Name, shape: readonly number[]): Tensor {
    if (!this.buffers) {
      const limit = this.ctx.device.limits.maxStorageBufferBindingSize;
      for (const [k, n] of Object.entries<number>(this.sizes)) {
        if (4 * n > limit) {
          throw new Error(
            `${this.label}: activation '${k}' needs ${4 * n} bytes, over this device's ` +
              `storage binding limit of ${limit} (a smaller image size or another adapter)`,
          );
        }
      }
      const entries = Object.entries<number>(this.sizes).map(([k, n]) => [
        k,
        this.ctx.device.createBuffer({
          label: `${this.label}.${k}`,
          size: Math.max(16, Math.ceil(n) * 4),
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        }),
      ]);
      this.buffers = Object.fromEntries(entries);
    }
    if (numel(shape) > this.sizes[name]) {
      throw new Error(`${this.label}: buffer '${name}' is too small for [${shape}] (a plan bug)`);
    }
    return new Tensor(this.ctx, this.buffers![name], shape, `${this.label}.${name}`);
  }

  /** Frees the buffers (after submitting recorded work); the next view reallocates them. */
  release(): void {
    if (!this.buffers) return;
    this.ctx.submit();
    for (const b of Object.values<GPUBuffer>(this.buffers)) b.destroy();
    this.buffers = null;
  }
}
