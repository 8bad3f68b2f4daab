/**
 * GpuContext records kernel dispatches into one command encoder and submits them in
 * batches, so a whole encoder forward pass costs a handful of submits, not hundreds.
 *
 * Kernel parameters go into one uniform arena per batch (a slice of 256 bytes each) that
 * is written once at submit. Every batch runs inside a validation error scope; an error is
 * rethrown at the next sync point with the names of the kernels in that batch.
 */
import { getDevice, type GpuDevice } from "./device.ts";

/** How a kernel's binding is used; binding 0 is the uniform block when the kernel has one. */
export type BindingKind = "uniform" | "read" | "write";

/** A named kernel variant: the WGSL and the layout of its bindings. Cached by `name`. */
export interface KernelSpec {
  /** Unique per shader variant, e.g. "linear_gelu_f32"; the pipeline cache key. */
  readonly name: string;
  /** Builds the WGSL source; called once per name. */
  readonly code: () => string;
  /** Binding kinds in binding order (@binding(0), @binding(1), ...). */
  readonly bindings: readonly BindingKind[];
}

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment on every adapter we target
const ARENA_SLOTS = 1024;
/** WebGPU's maxComputeWorkgroupsPerDimension default; larger grids fold into y. */
export const MAX_WORKGROUPS_PER_DIM = 65535;

export class GpuContext {
  readonly device: GPUDevice;
  readonly gpu: GpuDevice;
  private readonly pipelines = new Map<string, CachedPipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private batchKernels = new Set<string>();
  private readonly arena: GPUBuffer;
  private readonly arenaData = new ArrayBuffer(UNIFORM_SLOT * ARENA_SLOTS);
  private arenaUsed = 0;
  private pendingErrors: Promise<void>[] = [];
  private errors: string[] = [];
  private timestampQuery: { set: GPUQuerySet; resolve: GPUBuffer } | null = null;
  private timedPasses = 0;
  private timings: GPUBuffer[] = [];

  constructor(gpu: GpuDevice) {
    this.gpu = gpu;
    this.device = gpu.device;
    this.arena = this.device.createBuffer({
      label: "wgsam uniform arena",
      size: this.arenaData.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  /** Number of pipelines compiled so far (one per kernel variant name). */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /** Returns the cached pipeline for a kernel variant, compiling it on first use. */
  pipeline(spec: KernelSpec): CachedPipeline {
    let cached = this.pipelines.get(spec.name);
    if (cached) return cached;
    this.beginBatch();
    this.batchKernels.add(spec.name);
    const module = this.device.createShaderModule({ label: spec.name, code: spec.code() });
    const layout = this.device.createBindGroupLayout({
      label: spec.name,
      entries: spec.bindings.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: {
          type: kind === "uniform" ? "uniform" : kind === "read" ? "read-only-storage" : "storage",
        },
      })),
    });
    const pipeline = this.device.createComputePipeline({
      label: spec.name,
      layout: this.device.createPipelineLayout({ label: spec.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    cached = { pipeline, layout };
    this.pipelines.set(spec.name, cached);
    return cached;
  }

  /**
   * Records one dispatch. `buffers` are the storage bindings in order (after the uniform
   * block, when `params` is given). `workgroups` beyond 65535 in x must be folded by the
   * caller (see `grid`).
   */
  dispatch(
    spec: KernelSpec,
    params: ArrayBuffer | null,
    buffers: readonly GPUBuffer[],
    workgroups: readonly [number, number?, number?],
  ): void {
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0 || n > MAX_WORKGROUPS_PER_DIM) {
        throw new Error(`${spec.name}: bad workgroup count ${workgroups.join("x")}`);
      }
    }
    const { pipeline, layout } = this.pipeline(spec);
    if (params && params.byteLength > UNIFORM_SLOT) {
      throw new Error(
        `${spec.name}: uniform block of ${params.byteLength} bytes > ${UNIFORM_SLOT}`,
      );
    }
    if (params && this.arenaUsed === ARENA_SLOTS) this.submit();
    this.beginBatch();
    this.batchKernels.add(spec.name);
    const entries: GPUBindGroupEntry[] = [];
    if (params) {
      const slot = this.arenaUsed++;
      new Uint8Array(this.arenaData, slot * UNIFORM_SLOT, params.byteLength).set(
        new Uint8Array(params),
      );
      entries.push({
        binding: 0,
        resource: { buffer: this.arena, offset: slot * UNIFORM_SLOT, size: UNIFORM_SLOT },
      });
    }
    const first = entries.length;
    buffers.forEach((buffer, i) => entries.push({ binding: first + i, resource: { buffer } }));
    const bindGroup = this.device.createBindGroup({ label: spec.name, layout, entries });
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
  }

  /** Records a buffer copy (ends the open compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  /** Submits everything recorded so far. */
  submit(): void {
    if (!this.encoder) return;
    this.endPass();
    this.onBeforeSubmit?.();
    if (this.arenaUsed > 0) {
      this.device.queue.writeBuffer(
        this.arena,
        0,
        this.arenaData,
        0,
        this.arenaUsed * UNIFORM_SLOT,
      );
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.arenaUsed = 0;
    const names = [...this.batchKernels];
    this.batchKernels.clear();
    this.pendingErrors.push(
      // Kept as a value, not a rejected promise, so nothing goes unhandled before sync.
      this.device.popErrorScope().then((error) => {
        if (error) {
          this.errors.push(`GPU error in kernel(s) ${names.join(", ")}: ${error.message}`);
        }
      }),
    );
  }

  /** Submits and waits for the GPU; throws the first validation error of any batch. */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
  }

  /** Copies a buffer range back to the CPU. */
  async read(
    buffer: GPUBuffer,
    byteOffset = 0,
    byteLength: number = buffer.size - byteOffset,
  ): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({
      label: "wgsam readback",
      size: byteLength,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    try {
      this.copy(buffer, byteOffset, staging, 0, byteLength);
      this.submit();
      await this.checkErrors();
      await staging.mapAsync(GPUMapMode.READ);
      return staging.getMappedRange().slice(0);
    } finally {
      staging.destroy();
    }
  }

  /**
   * Runs `work` with GPU timestamps around every compute pass it records and returns the
   * GPU milliseconds spent, or null where the adapter has no timestamp queries.
   */
  async timeGpu(work: () => void | Promise<void>): Promise<number | null> {
    if (!this.gpu.hasTimestamps) {
      await work();
      await this.sync();
      return null;
    }
    this.submit();
    this.timestampQuery ??= {
      set: this.device.createQuerySet({ type: "timestamp", count: 2 * 256 }),
      resolve: this.device.createBuffer({
        size: 8 * 2 * 256,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      }),
    };
    this.timedPasses = 0;
    this.timings = [];
    const collect = () => this.collectTimestamps();
    this.onBeforeSubmit = collect;
    try {
      await work();
      this.submit();
    } finally {
      this.onBeforeSubmit = null;
    }
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
    let ns = 0;
    for (const buf of this.timings) {
      await buf.mapAsync(GPUMapMode.READ);
      const stamps = new BigUint64Array(buf.getMappedRange());
      for (let i = 0; i + 1 < stamps.length; i += 2) ns += Number(stamps[i + 1] - stamps[i]);
      buf.destroy();
    }
    this.timings = [];
    return ns / 1e6;
  }

  private onBeforeSubmit: (() => void) | null = null;

  private collectTimestamps(): void {
    if (!this.timestampQuery || this.timedPasses === 0 || !this.encoder) return;
    const n = this.timedPasses * 2;
    const out = this.device.createBuffer({
      size: 8 * n,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.encoder.resolveQuerySet(this.timestampQuery.set, 0, n, this.timestampQuery.resolve, 0);
    this.encoder.copyBufferToBuffer(this.timestampQuery.resolve, 0, out, 0, 8 * n);
    this.timings.push(out);
    this.timedPasses = 0;
  }

  private async checkErrors(): Promise<void> {
    const pending = this.pendingErrors;
    this.pendingErrors = [];
    await Promise.all(pending);
    if (this.errors.length > 0) {
      const message = this.errors.join("\n");
      this.errors = [];
      throw new Error(message);
    }
  }

  private beginBatch(): void {
    if (this.encoder) return;
    this.device.pushErrorScope("validation");
    this.encoder = this.device.createCommandEncoder({ label: "wgsam batch" });
  }

  private commandEncoder(): GPUCommandEncoder {
    this.beginBatch();
    return this.encoder!;
  }

  private computePass(): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    const encoder = this.commandEncoder();
    let timestampWrites: GPUComputePassTimestampWrites | undefined;
    if (this.onBeforeSubmit && this.timestampQuery && this.timedPasses < 256) {
      const i = this.timedPasses++;
      timestampWrites = {
        querySet: this.timestampQuery.set,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      };
    }
    this.pass = encoder.beginComputePass({ label: "wgsam pass", timestampWrites });
    return this.pass;
  }

  private endPass(): void {
    if (!this.pass) return;
    this.pass.end();
    this.pass = null;
    if (this.onBeforeSubmit && this.timedPasses >= 255) this.onBeforeSubmit();
  }
}

let contextPromise: Promise<GpuContext> | null = null;

/** The process-wide context on the process-wide device. */
export function getContext(): Promise<GpuContext> {
  contextPromise ??= getDevice().then((gpu) => new GpuContext(gpu)).catch((err) => {
    contextPromise = null;
    throw err;
  });
  return contextPromise;
}

/**
 * Splits `count` workgroups into an (x, y) grid within WebGPU's per-dimension limit.
 * Shaders recover the flat index as `wg.x + wg.y * num_workgroups.x`.
 */
export function grid(count: number): [number, number] {
  if (count <= MAX_WORKGROUPS_PER_DIM) return [Math.max(count, 0), 1];
  const y = Math.ceil(count / MAX_WORKGROUPS_PER_DIM);
  return [Math.ceil(count / y), y];
}
