/**
 * GpuContext records kernel dispatches into one command encoder and submits them in
 * batches, so a whole encoder forward pass costs a handful of submits, not hundreds.
 *
 * Kernel parameters go into one uniform arena per batch (a slice of 256 bytes each) that
 * is written once at submit. Every batch runs inside a validation error scope; an error is
 * rethrown at the next sync point with the names of the kernels in that batch.
 *
 * Reading back: `Readback` gathers every range an answer needs into one staging buffer that
 * is mapped once (one GPU round trip: Deno's WebGPU resolves a map no sooner than ~11 ms
 * after the GPU is done, so each extra one costs that much). Staging buffers come from a
 * small pool keyed by size. `counters` tells dispatches, submits and readbacks apart for
 * benches and tests.
 *
 * Host work per dispatch is kept small for per-prompt work (a decoder pass is ~60 small
 * dispatches): bind groups are cached by kernel and buffers (the uniform block is bound at a
 * dynamic offset into the arena, so it is not part of the key), and inside `pooled` the
 * storage buffers of new tensors come from a pool keyed by size that `Tensor.destroy` refills
 * (see acquireStorage), so a warm prompt creates no buffers and, its buffers being the same
 * ones as the prompt before, no bind groups.
 */
import { getDevice, type GpuChoice, type GpuDevice } from "./device.ts";

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
/** Bind groups kept (least recently used dropped first). */
const BIND_GROUP_CACHE = 4096;
/** Storage bytes the pool keeps for reuse at most; a released buffer beyond it is destroyed. */
const STORAGE_POOL_BYTES = 512 * 1024 * 1024;
const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
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
  /** Free staging buffers by size (see Readback). */
  private readonly stagingPool = new Map<number, GPUBuffer[]>();
  private stagingPooledBytes = 0;
  /** Bind groups by "kernel|buffer ids", least recently used first. */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  /** Storage pool (see acquireStorage): free buffers by size, and those released since the last submit. */
  private readonly storageFree = new Map<number, GPUBuffer[]>();
  private storageReleased: GPUBuffer[] = [];
  private storagePooledBytes = 0;
  /** Pool-made buffers: the lease of their current owner (0 while in the pool). */
  private readonly leases = new WeakMap<GPUBuffer, number>();
  private nextLease = 1;
  private poolDepth = 0;
  /** Tests: fill every reused storage buffer with NaN, so a kernel that relies on zeros shows. */
  poisonReused = false;
  /**
   * Work recorded so far: dispatches, queue submits and mapped readbacks; and the bytes that
   * tensorFrom / tensorFromF16 uploaded (weights, mostly: f16 halves them).
   */
  readonly counters = { dispatches: 0, submits: 0, readbacks: 0, uploadedBytes: 0 };

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

  /** Names of the kernel variants compiled so far (tests: which variants a pass ran). */
  get pipelineNames(): string[] {
    return [...this.pipelines.keys()];
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
        buffer: kind === "uniform"
          // The arena slot is a dynamic offset, so one bind group serves every slot.
          ? { type: "uniform", hasDynamicOffset: true }
          : { type: kind === "read" ? "read-only-storage" : "storage" },
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
    const bindGroup = this.bindGroup(spec, layout, params !== null, buffers);
    const pass = this.computePass();
    this.counters.dispatches++;
    pass.setPipeline(pipeline);
    if (params) {
      const slot = this.arenaUsed++;
      new Uint8Array(this.arenaData, slot * UNIFORM_SLOT, params.byteLength).set(
        new Uint8Array(params),
      );
      pass.setBindGroup(0, bindGroup, [slot * UNIFORM_SLOT]);
    } else {
      pass.setBindGroup(0, bindGroup);
    }
    pass.dispatchWorkgroups(x, y, z);
  }

  /** The bind group of `spec` on `buffers` (and the arena), cached. */
  private bindGroup(
    spec: KernelSpec,
    layout: GPUBindGroupLayout,
    uniform: boolean,
    buffers: readonly GPUBuffer[],
  ): GPUBindGroup {
    let key = spec.name;
    for (const b of buffers) {
      let id = this.bufferIds.get(b);
      if (id === undefined) this.bufferIds.set(b, id = this.nextBufferId++);
      key += `|${id}`;
    }
    const hit = this.bindGroups.get(key);
    if (hit) {
      this.bindGroups.delete(key); // re-inserted: most recently used
      this.bindGroups.set(key, hit);
      return hit;
    }
    const entries: GPUBindGroupEntry[] = [];
    if (uniform) {
      entries.push({ binding: 0, resource: { buffer: this.arena, offset: 0, size: UNIFORM_SLOT } });
    }
    const first = entries.length;
    buffers.forEach((buffer, i) => entries.push({ binding: first + i, resource: { buffer } }));
    const group = this.device.createBindGroup({ label: spec.name, layout, entries });
    this.bindGroups.set(key, group);
    // A destroyed buffer's id never comes back, so its groups are only ever evicted here.
    if (this.bindGroups.size > BIND_GROUP_CACHE) {
      this.bindGroups.delete(this.bindGroups.keys().next().value!);
    }
    return group;
  }

  /**
   * Runs `record` with the storage pool on: tensors made inside take their buffers from it
   * (see acquireStorage). For per-prompt work whose kernels write every element they own.
   */
  pooled<T>(record: () => T): T {
    if (this.poolDepth === 0) {
      // Free buffers handed out lowest id first, whatever order they were released in: the
      // same work gets the same buffers as last time, so its cached bind groups hit.
      const id = (b: GPUBuffer) => this.bufferIds.get(b) ?? 0;
      for (const list of this.storageFree.values()) list.sort((a, b) => id(b) - id(a));
    }
    this.poolDepth++;
    try {
      return record();
    } finally {
      this.poolDepth--;
    }
  }

  /**
   * A storage buffer of `size` bytes and its lease (0: not pooled). Inside `pooled` it comes
   * from the pool when one of that size is free (its contents are stale, not zero), else it is
   * created and will return to the pool; `Tensor.destroy` hands it back (releaseStorage).
   */
  acquireStorage(size: number, label: string): { buffer: GPUBuffer; lease: number } {
    if (this.poolDepth === 0) {
      return { buffer: this.device.createBuffer({ label, size, usage: STORAGE_USAGE }), lease: 0 };
    }
    const lease = this.nextLease++;
    const buffer = this.storageFree.get(size)?.pop();
    if (buffer) {
      this.storagePooledBytes -= size;
      this.leases.set(buffer, lease);
      if (this.poisonReused) {
        this.device.queue.writeBuffer(buffer, 0, new Float32Array(size / 4).fill(NaN));
      }
      return { buffer, lease };
    }
    const created = this.device.createBuffer({ label, size, usage: STORAGE_USAGE });
    this.leases.set(created, lease);
    this.bufferIds.set(created, this.nextBufferId++);
    return { buffer: created, lease };
  }

  /** The current lease of `buffer` (0 when it is not a pooled buffer or is in the pool). */
  leaseOf(buffer: GPUBuffer): number {
    return this.leases.get(buffer) ?? 0;
  }

  /**
   * Gives back a buffer of `acquireStorage`: a pooled one joins the pool at the next submit
   * (work recorded before may still read it), or is destroyed when the pool is full; one
   * released again under an old lease (a stale view) is left alone; others are destroyed.
   */
  releaseStorage(buffer: GPUBuffer, lease: number): void {
    const current = this.leases.get(buffer);
    if (lease === 0 || current === undefined) {
      buffer.destroy();
      return;
    }
    if (current !== lease) return; // already released: the buffer may have a new owner
    if (this.storagePooledBytes + buffer.size > STORAGE_POOL_BYTES) {
      this.leases.delete(buffer);
      this.submit(); // recorded work may still read it
      buffer.destroy();
      return;
    }
    this.leases.set(buffer, 0);
    this.storagePooledBytes += buffer.size;
    this.storageReleased.push(buffer);
    if (!this.encoder) this.freeReleased(); // nothing recorded is left to read it
  }

  /**
   * Released buffers are free once the work reading them is submitted: later work and writes
   * (queue.writeBuffer) come after it in queue order.
   */
  private freeReleased(): void {
    for (const b of this.storageReleased.splice(0)) {
      const list = this.storageFree.get(b.size);
      if (list) list.push(b);
      else this.storageFree.set(b.size, [b]);
    }
  }

  /** Destroys the pool's buffers (a model's dispose: its temporaries are not needed again). */
  trimStoragePool(): void {
    this.submit(); // released buffers join the free lists once their readers are submitted
    for (const list of this.storageFree.values()) {
      for (const b of list) {
        this.leases.delete(b);
        b.destroy();
      }
    }
    this.storageFree.clear();
    this.storagePooledBytes = 0;
  }

  /** Bytes of storage buffers the pool holds (free or released since the last submit). */
  get pooledStorageBytes(): number {
    return this.storagePooledBytes;
  }

  /** Records a buffer copy (ends the open compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  /** Submits everything recorded so far. */
  submit(): void {
    if (!this.encoder) {
      this.freeReleased();
      return;
    }
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
    this.counters.submits++;
    this.encoder = null;
    this.arenaUsed = 0;
    this.freeReleased();
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

  /** Copies a buffer range back to the CPU (one readback; see `Readback` for several). */
  async read(
    buffer: GPUBuffer,
    byteOffset = 0,
    byteLength: number = buffer.size - byteOffset,
  ): Promise<ArrayBuffer> {
    const rb = new Readback(this, byteLength);
    rb.copy(buffer, byteOffset, byteLength);
    const [data] = await rb.map();
    return data;
  }

  /** A staging buffer (MAP_READ | COPY_DST) of exactly `size` bytes, pooled. */
  acquireStaging(size: number): GPUBuffer {
    const free = this.stagingPool.get(size);
    const pooled = free?.pop();
    if (pooled) {
      this.stagingPooledBytes -= size;
      return pooled;
    }
    return this.device.createBuffer({
      label: "wgsam readback",
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Gives an unmapped staging buffer back; the pool keeps a few, up to 64 MiB. */
  releaseStaging(buffer: GPUBuffer): void {
    const size = buffer.size;
    const list = this.stagingPool.get(size) ?? [];
    if (list.length >= 2 || this.stagingPooledBytes + size > STAGING_POOL_BYTES) {
      buffer.destroy();
      return;
    }
    list.push(buffer);
    this.stagingPool.set(size, list);
    this.stagingPooledBytes += size;
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

  /** Throws the GPU errors of every batch submitted so far (waits for their scopes). */
  async checkErrors(): Promise<void> {
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

/** Staging bytes kept for reuse at most (see GpuContext.releaseStaging). */
const STAGING_POOL_BYTES = 64 * 1024 * 1024;
/** One staging buffer of a Readback holds this much at most; more spills into another. */
const READBACK_SEGMENT_BYTES = 256 * 1024 * 1024;

/**
 * One GPU-to-CPU readback of several buffer ranges: `copy` records each range into a staging
 * buffer (in recorded order with the work that writes it), `map` submits, maps and returns
 * the ranges as separate ArrayBuffers, in `copy` order: one wait on the GPU. Buffers passed to
 * `destroyAfterSubmit` are freed once the copies are submitted.
 *
 * The ranges share one staging buffer up to READBACK_SEGMENT_BYTES (or the device's buffer
 * size limit); beyond it (logits of many prompts at a photo's size) they spill into more
 * staging buffers, mapped together.
 */
export class Readback {
  private readonly segments: { buffer: GPUBuffer; used: number }[] = [];
  private readonly ranges: { segment: number; offset: number; size: number }[] = [];
  private readonly doomed: { destroy(): void }[] = [];
  private readonly segmentLimit: number;
  private left: number;
  private mapped = false;

  /**
   * `capacity`: the sum of the ranges' sizes (each rounded up to 4 bytes). `segmentBytes`
   * lowers the size of one staging buffer (tests).
   */
  constructor(
    private readonly ctx: GpuContext,
    readonly capacity: number,
    segmentBytes = READBACK_SEGMENT_BYTES,
  ) {
    this.left = align4(capacity);
    this.segmentLimit = Math.min(segmentBytes, ctx.device.limits.maxBufferSize);
  }

  /** Records a copy of `size` bytes of `buffer` from `offset`; returns its range index. */
  copy(buffer: GPUBuffer, offset: number, size: number): number {
    if (this.mapped) throw new Error("Readback: copy after map");
    const padded = align4(size);
    if (padded > this.left) {
      throw new Error(`Readback: ${size} more bytes overflow its ${this.capacity} bytes`);
    }
    let segment = this.segments.length - 1;
    const last = this.segments[segment];
    if (padded > 0 && (!last || last.used + padded > last.buffer.size)) {
      if (padded > this.ctx.device.limits.maxBufferSize) {
        throw new Error(
          `Readback: one range of ${size} bytes is over the device's buffer size limit`,
        );
      }
      const bytes = Math.max(padded, Math.min(this.left, this.segmentLimit));
      this.segments.push({ buffer: this.ctx.acquireStaging(bytes), used: 0 });
      segment = this.segments.length - 1;
    }
    const seg = this.segments[segment];
    const at = seg?.used ?? 0;
    if (padded > 0) {
      this.ctx.copy(buffer, offset, seg.buffer, at, padded);
      seg.used += padded;
      this.left -= padded;
    }
    this.ranges.push({ segment, offset: at, size });
    return this.ranges.length - 1;
  }

  /** Frees `x` right after the submit that carries the copies (it may still be read by them). */
  destroyAfterSubmit(x: { destroy(): void }): void {
    this.doomed.push(x);
  }

  /** Gives up an unmapped readback (its recorded copies still run; the staging goes after). */
  discard(): void {
    if (this.mapped) return;
    this.mapped = true;
    this.ctx.submit();
    for (const x of this.doomed.splice(0)) x.destroy();
    for (const s of this.segments) s.buffer.destroy();
  }

  /**
   * Submits what is recorded, maps the staging buffers (one wait) and returns the ranges. GPU
   * errors of any batch submitted so far are thrown here, naming their kernels.
   */
  async map(): Promise<ArrayBuffer[]> {
    if (this.mapped) throw new Error("Readback: mapped twice");
    this.mapped = true;
    const ctx = this.ctx;
    ctx.submit();
    for (const x of this.doomed.splice(0)) x.destroy();
    const segments = this.segments;
    if (segments.length === 0) {
      await ctx.checkErrors();
      return this.ranges.map(() => new ArrayBuffer(0));
    }
    ctx.counters.readbacks++;
    // The maps and the error scopes are awaited together: one wait, not several in a row.
    const settled = await Promise.allSettled([
      ctx.checkErrors(),
      ...segments.map((s) => s.buffer.mapAsync(GPUMapMode.READ, 0, s.used)),
    ]);
    const failed = settled.find((r) => r.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) {
      segments.forEach((s, i) => {
        if (settled[i + 1].status === "fulfilled") s.buffer.unmap();
        s.buffer.destroy();
      });
      throw failed.reason;
    }
    const views = segments.map((s) => s.buffer.getMappedRange(0, s.used));
    const out = this.ranges.map((r) =>
      r.size === 0 ? new ArrayBuffer(0) : views[r.segment].slice(r.offset, r.offset + r.size)
    );
    for (const s of segments) {
      s.buffer.unmap();
      ctx.releaseStaging(s.buffer);
    }
    return out;
  }
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

const contexts = new WeakMap<GPUDevice, GpuContext>();

/**
 * The process-wide context on the process-wide device of a provider (default: $WGSAM_GPU,
 * else "auto"; see getDevice).
 */
export async function getContext(choice?: GpuChoice | string): Promise<GpuContext> {
  const gpu = await getDevice(choice);
  let ctx = contexts.get(gpu.device);
  if (!ctx) {
    ctx = new GpuContext(gpu);
    contexts.set(gpu.device, ctx);
  }
  return ctx;
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
