// src/gpu/device.ts
function isSoftwareAdapter(info) {
  return !!info.isFallbackAdapter || /llvmpipe|lavapipe|softpipe|swiftshader|software|warp/i.test(info.description ?? "");
}

// src/gpu/context.ts
var UNIFORM_SLOT = 256;
var ARENA_SLOTS = 1024;
var BIND_GROUP_CACHE = 4096;
var STORAGE_POOL_BYTES = 512 * 1024 * 1024;
var STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
var MAX_WORKGROUPS_PER_DIM = 65535;
var GpuContext = class {
  device;
  gpu;
  pipelines = /* @__PURE__ */ new Map();
  encoder = null;
  pass = null;
  batchKernels = /* @__PURE__ */ new Set();
  arena;
  arenaData = new ArrayBuffer(UNIFORM_SLOT * ARENA_SLOTS);
  arenaUsed = 0;
  pendingErrors = [];
  errors = [];
  timestampQuery = null;
  timedPasses = 0;
  timings = [];
  /** Free staging buffers by size (see Readback). */
  stagingPool = /* @__PURE__ */ new Map();
  stagingPooledBytes = 0;
  /** Bind groups by "kernel|buffer ids", least recently used first. */
  bindGroups = /* @__PURE__ */ new Map();
  bufferIds = /* @__PURE__ */ new WeakMap();
  nextBufferId = 1;
  /** Storage pool (see acquireStorage): free buffers by size, and those released since the last submit. */
  storageFree = /* @__PURE__ */ new Map();
  storageReleased = [];
  storagePooledBytes = 0;
  /** Pool-made buffers: the lease of their current owner (0 while in the pool). */
  leases = /* @__PURE__ */ new WeakMap();
  nextLease = 1;
  poolDepth = 0;
  /** Tests: fill every reused storage buffer with NaN, so a kernel that relies on zeros shows. */
  poisonReused = false;
  /**
   * Work recorded so far: dispatches, queue submits and mapped readbacks; and the bytes that
   * tensorFrom / tensorFromF16 uploaded (weights, mostly: f16 halves them).
   */
  counters = {
    dispatches: 0,
    submits: 0,
    readbacks: 0,
    uploadedBytes: 0
  };
  constructor(gpu) {
    this.gpu = gpu;
    this.device = gpu.device;
    this.arena = this.device.createBuffer({
      label: "wgsam uniform arena",
      size: this.arenaData.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
    });
  }
  /** Number of pipelines compiled so far (one per kernel variant name). */
  get pipelineCount() {
    return this.pipelines.size;
  }
  /** Names of the kernel variants compiled so far (tests: which variants a pass ran). */
  get pipelineNames() {
    return [
      ...this.pipelines.keys()
    ];
  }
  /** Returns the cached pipeline for a kernel variant, compiling it on first use. */
  pipeline(spec4) {
    let cached2 = this.pipelines.get(spec4.name);
    if (cached2) return cached2;
    this.beginBatch();
    this.batchKernels.add(spec4.name);
    const module = this.device.createShaderModule({
      label: spec4.name,
      code: spec4.code()
    });
    const layout = this.device.createBindGroupLayout({
      label: spec4.name,
      entries: spec4.bindings.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: kind === "uniform" ? {
          type: "uniform",
          hasDynamicOffset: true
        } : {
          type: kind === "read" ? "read-only-storage" : "storage"
        }
      }))
    });
    const pipeline = this.device.createComputePipeline({
      label: spec4.name,
      layout: this.device.createPipelineLayout({
        label: spec4.name,
        bindGroupLayouts: [
          layout
        ]
      }),
      compute: {
        module,
        entryPoint: "main"
      }
    });
    cached2 = {
      pipeline,
      layout
    };
    this.pipelines.set(spec4.name, cached2);
    return cached2;
  }
  /**
   * Records one dispatch. `buffers` are the storage bindings in order (after the uniform
   * block, when `params` is given). `workgroups` beyond 65535 in x must be folded by the
   * caller (see `grid`).
   */
  dispatch(spec4, params, buffers, workgroups) {
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    for (const n of [
      x,
      y,
      z
    ]) {
      if (!Number.isInteger(n) || n < 0 || n > MAX_WORKGROUPS_PER_DIM) {
        throw new Error(`${spec4.name}: bad workgroup count ${workgroups.join("x")}`);
      }
    }
    const { pipeline, layout } = this.pipeline(spec4);
    if (params && params.byteLength > UNIFORM_SLOT) {
      throw new Error(`${spec4.name}: uniform block of ${params.byteLength} bytes > ${UNIFORM_SLOT}`);
    }
    if (params && this.arenaUsed === ARENA_SLOTS) this.submit();
    this.beginBatch();
    this.batchKernels.add(spec4.name);
    const bindGroup = this.bindGroup(spec4, layout, params !== null, buffers);
    const pass = this.computePass();
    this.counters.dispatches++;
    pass.setPipeline(pipeline);
    if (params) {
      const slot = this.arenaUsed++;
      new Uint8Array(this.arenaData, slot * UNIFORM_SLOT, params.byteLength).set(new Uint8Array(params));
      pass.setBindGroup(0, bindGroup, [
        slot * UNIFORM_SLOT
      ]);
    } else {
      pass.setBindGroup(0, bindGroup);
    }
    pass.dispatchWorkgroups(x, y, z);
  }
  /** The bind group of `spec` on `buffers` (and the arena), cached. */
  bindGroup(spec4, layout, uniform, buffers) {
    let key = spec4.name;
    for (const b of buffers) {
      let id = this.bufferIds.get(b);
      if (id === void 0) this.bufferIds.set(b, id = this.nextBufferId++);
      key += `|${id}`;
    }
    const hit = this.bindGroups.get(key);
    if (hit) {
      this.bindGroups.delete(key);
      this.bindGroups.set(key, hit);
      return hit;
    }
    const entries = [];
    if (uniform) {
      entries.push({
        binding: 0,
        resource: {
          buffer: this.arena,
          offset: 0,
          size: UNIFORM_SLOT
        }
      });
    }
    const first = entries.length;
    buffers.forEach((buffer, i) => entries.push({
      binding: first + i,
      resource: {
        buffer
      }
    }));
    const group = this.device.createBindGroup({
      label: spec4.name,
      layout,
      entries
    });
    this.bindGroups.set(key, group);
    if (this.bindGroups.size > BIND_GROUP_CACHE) {
      this.bindGroups.delete(this.bindGroups.keys().next().value);
    }
    return group;
  }
  /**
   * Runs `record` with the storage pool on: tensors made inside take their buffers from it
   * (see acquireStorage). For per-prompt work whose kernels write every element they own.
   */
  pooled(record) {
    if (this.poolDepth === 0) {
      const id = (b) => this.bufferIds.get(b) ?? 0;
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
  acquireStorage(size, label) {
    if (this.poolDepth === 0) {
      return {
        buffer: this.device.createBuffer({
          label,
          size,
          usage: STORAGE_USAGE
        }),
        lease: 0
      };
    }
    const lease = this.nextLease++;
    const buffer = this.storageFree.get(size)?.pop();
    if (buffer) {
      this.storagePooledBytes -= size;
      this.leases.set(buffer, lease);
      if (this.poisonReused) {
        this.device.queue.writeBuffer(buffer, 0, new Float32Array(size / 4).fill(NaN));
      }
      return {
        buffer,
        lease
      };
    }
    const created = this.device.createBuffer({
      label,
      size,
      usage: STORAGE_USAGE
    });
    this.leases.set(created, lease);
    this.bufferIds.set(created, this.nextBufferId++);
    return {
      buffer: created,
      lease
    };
  }
  /** The current lease of `buffer` (0 when it is not a pooled buffer or is in the pool). */
  leaseOf(buffer) {
    return this.leases.get(buffer) ?? 0;
  }
  /**
   * Gives back a buffer of `acquireStorage`: a pooled one joins the pool at the next submit
   * (work recorded before may still read it), or is destroyed when the pool is full; one
   * released again under an old lease (a stale view) is left alone; others are destroyed.
   */
  releaseStorage(buffer, lease) {
    const current = this.leases.get(buffer);
    if (lease === 0 || current === void 0) {
      buffer.destroy();
      return;
    }
    if (current !== lease) return;
    if (this.storagePooledBytes + buffer.size > STORAGE_POOL_BYTES) {
      this.leases.delete(buffer);
      this.submit();
      buffer.destroy();
      return;
    }
    this.leases.set(buffer, 0);
    this.storagePooledBytes += buffer.size;
    this.storageReleased.push(buffer);
    if (!this.encoder) this.freeReleased();
  }
  /**
   * Released buffers are free once the work reading them is submitted: later work and writes
   * (queue.writeBuffer) come after it in queue order.
   */
  freeReleased() {
    for (const b of this.storageReleased.splice(0)) {
      const list = this.storageFree.get(b.size);
      if (list) list.push(b);
      else this.storageFree.set(b.size, [
        b
      ]);
    }
  }
  /** Destroys the pool's buffers (a model's dispose: its temporaries are not needed again). */
  trimStoragePool() {
    this.submit();
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
  get pooledStorageBytes() {
    return this.storagePooledBytes;
  }
  /** Records a buffer copy (ends the open compute pass). */
  copy(src, srcOffset, dst, dstOffset, size) {
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }
  /** Submits everything recorded so far. */
  submit() {
    if (!this.encoder) {
      this.freeReleased();
      return;
    }
    this.endPass();
    this.onBeforeSubmit?.();
    if (this.arenaUsed > 0) {
      this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, this.arenaUsed * UNIFORM_SLOT);
    }
    this.device.queue.submit([
      this.encoder.finish()
    ]);
    this.counters.submits++;
    this.encoder = null;
    this.arenaUsed = 0;
    this.freeReleased();
    const names = [
      ...this.batchKernels
    ];
    this.batchKernels.clear();
    this.pendingErrors.push(this.device.popErrorScope().then((error) => {
      if (error) {
        this.errors.push(`GPU error in kernel(s) ${names.join(", ")}: ${error.message}`);
      }
    }));
  }
  /** Submits and waits for the GPU; throws the first validation error of any batch. */
  async sync() {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
  }
  /** Copies a buffer range back to the CPU (one readback; see `Readback` for several). */
  async read(buffer, byteOffset = 0, byteLength = buffer.size - byteOffset) {
    const rb = new Readback(this, byteLength);
    rb.copy(buffer, byteOffset, byteLength);
    const [data] = await rb.map();
    return data;
  }
  /** A staging buffer (MAP_READ | COPY_DST) of exactly `size` bytes, pooled. */
  acquireStaging(size) {
    const free = this.stagingPool.get(size);
    const pooled = free?.pop();
    if (pooled) {
      this.stagingPooledBytes -= size;
      return pooled;
    }
    return this.device.createBuffer({
      label: "wgsam readback",
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST
    });
  }
  /** Gives an unmapped staging buffer back; the pool keeps a few, up to 64 MiB. */
  releaseStaging(buffer) {
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
  async timeGpu(work) {
    if (!this.gpu.hasTimestamps) {
      await work();
      await this.sync();
      return null;
    }
    this.submit();
    this.timestampQuery ??= {
      set: this.device.createQuerySet({
        type: "timestamp",
        count: 2 * 256
      }),
      resolve: this.device.createBuffer({
        size: 8 * 2 * 256,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC
      })
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
  onBeforeSubmit = null;
  collectTimestamps() {
    if (!this.timestampQuery || this.timedPasses === 0 || !this.encoder) return;
    const n = this.timedPasses * 2;
    const out = this.device.createBuffer({
      size: 8 * n,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST
    });
    this.encoder.resolveQuerySet(this.timestampQuery.set, 0, n, this.timestampQuery.resolve, 0);
    this.encoder.copyBufferToBuffer(this.timestampQuery.resolve, 0, out, 0, 8 * n);
    this.timings.push(out);
    this.timedPasses = 0;
  }
  /** Throws the GPU errors of every batch submitted so far (waits for their scopes). */
  async checkErrors() {
    const pending = this.pendingErrors;
    this.pendingErrors = [];
    await Promise.all(pending);
    if (this.errors.length > 0) {
      const message = this.errors.join("\n");
      this.errors = [];
      throw new Error(message);
    }
  }
  beginBatch() {
    if (this.encoder) return;
    this.device.pushErrorScope("validation");
    this.encoder = this.device.createCommandEncoder({
      label: "wgsam batch"
    });
  }
  commandEncoder() {
    this.beginBatch();
    return this.encoder;
  }
  computePass() {
    if (this.pass) return this.pass;
    const encoder = this.commandEncoder();
    let timestampWrites;
    if (this.onBeforeSubmit && this.timestampQuery && this.timedPasses < 256) {
      const i = this.timedPasses++;
      timestampWrites = {
        querySet: this.timestampQuery.set,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1
      };
    }
    this.pass = encoder.beginComputePass({
      label: "wgsam pass",
      timestampWrites
    });
    return this.pass;
  }
  endPass() {
    if (!this.pass) return;
    this.pass.end();
    this.pass = null;
    if (this.onBeforeSubmit && this.timedPasses >= 255) this.onBeforeSubmit();
  }
};
var STAGING_POOL_BYTES = 64 * 1024 * 1024;
var READBACK_SEGMENT_BYTES = 256 * 1024 * 1024;
var Readback = class {
  ctx;
  capacity;
  segments;
  ranges;
  doomed;
  segmentLimit;
  left;
  mapped;
  /**
   * `capacity`: the sum of the ranges' sizes (each rounded up to 4 bytes). `segmentBytes`
   * lowers the size of one staging buffer (tests).
   */
  constructor(ctx, capacity, segmentBytes = READBACK_SEGMENT_BYTES) {
    this.ctx = ctx;
    this.capacity = capacity;
    this.segments = [];
    this.ranges = [];
    this.doomed = [];
    this.mapped = false;
    this.left = align4(capacity);
    this.segmentLimit = Math.min(segmentBytes, ctx.device.limits.maxBufferSize);
  }
  /** Records a copy of `size` bytes of `buffer` from `offset`; returns its range index. */
  copy(buffer, offset, size) {
    if (this.mapped) throw new Error("Readback: copy after map");
    const padded = align4(size);
    if (padded > this.left) {
      throw new Error(`Readback: ${size} more bytes overflow its ${this.capacity} bytes`);
    }
    let segment = this.segments.length - 1;
    const last = this.segments[segment];
    if (padded > 0 && (!last || last.used + padded > last.buffer.size)) {
      if (padded > this.ctx.device.limits.maxBufferSize) {
        throw new Error(`Readback: one range of ${size} bytes is over the device's buffer size limit`);
      }
      const bytes = Math.max(padded, Math.min(this.left, this.segmentLimit));
      this.segments.push({
        buffer: this.ctx.acquireStaging(bytes),
        used: 0
      });
      segment = this.segments.length - 1;
    }
    const seg = this.segments[segment];
    const at = seg?.used ?? 0;
    if (padded > 0) {
      this.ctx.copy(buffer, offset, seg.buffer, at, padded);
      seg.used += padded;
      this.left -= padded;
    }
    this.ranges.push({
      segment,
      offset: at,
      size
    });
    return this.ranges.length - 1;
  }
  /** Frees `x` right after the submit that carries the copies (it may still be read by them). */
  destroyAfterSubmit(x) {
    this.doomed.push(x);
  }
  /** Gives up an unmapped readback (its recorded copies still run; the staging goes after). */
  discard() {
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
  async map() {
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
    const settled = await Promise.allSettled([
      ctx.checkErrors(),
      ...segments.map((s) => s.buffer.mapAsync(GPUMapMode.READ, 0, s.used))
    ]);
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) {
      segments.forEach((s, i) => {
        if (settled[i + 1].status === "fulfilled") s.buffer.unmap();
        s.buffer.destroy();
      });
      throw failed.reason;
    }
    const views = segments.map((s) => s.buffer.getMappedRange(0, s.used));
    const out = this.ranges.map((r) => r.size === 0 ? new ArrayBuffer(0) : views[r.segment].slice(r.offset, r.offset + r.size));
    for (const s of segments) {
      s.buffer.unmap();
      ctx.releaseStaging(s.buffer);
    }
    return out;
  }
};
function align4(n) {
  return Math.ceil(n / 4) * 4;
}
function grid(count) {
  if (count <= MAX_WORKGROUPS_PER_DIM) return [
    Math.max(count, 0),
    1
  ];
  const y = Math.ceil(count / MAX_WORKGROUPS_PER_DIM);
  return [
    Math.ceil(count / y),
    y
  ];
}

// src/gpu/browser_device.ts
async function requestGpuDevice(gpu) {
  const adapter = await gpu.requestAdapter({
    powerPreference: "high-performance"
  });
  if (!adapter) return null;
  const a = adapter.limits;
  const requiredLimits = {
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage
  };
  const device = await adapter.requestDevice({
    requiredLimits
  });
  return gpuDeviceFrom(adapter, device);
}
function gpuDeviceFrom(adapter, device) {
  const info = adapter.info;
  const description = info.description || [
    info.vendor,
    info.architecture,
    info.device
  ].filter(Boolean).join(" ") || "unknown adapter";
  const software = isSoftwareAdapter({
    description,
    isFallbackAdapter: info.isFallbackAdapter
  });
  return {
    adapter,
    device,
    provider: "browser",
    description,
    info,
    hasTimestamps: false,
    software,
    hasF16: device.features.has("shader-f16"),
    hasSubgroups: device.features.has("subgroups")
  };
}

// src/gpu/tensor.ts
function dtypeBytes(dtype) {
  return dtype === "f16" ? 2 : 4;
}
var Tensor = class _Tensor {
  ctx;
  buffer;
  shape;
  label;
  dtype;
  /** The buffer's pool lease when the tensor was made (see GpuContext.acquireStorage). */
  lease;
  constructor(ctx, buffer, shape, label = "", dtype = "f32") {
    this.ctx = ctx;
    this.buffer = buffer;
    this.shape = shape;
    this.label = label;
    this.dtype = dtype;
    const bytes = this.size * dtypeBytes(dtype);
    if (bytes > buffer.size) {
      throw new Error(`tensor ${label} of shape [${shape.join(", ")}] needs ${bytes} bytes, buffer has ${buffer.size}`);
    }
    this.lease = ctx.leaseOf(buffer);
  }
  /** Number of elements. */
  get size() {
    return numel(this.shape);
  }
  /** Same buffer, another shape of the same element count (a view, no copy). */
  reshape(shape) {
    if (numel(shape) !== this.size) {
      throw new Error(`cannot reshape [${this.shape.join(", ")}] to [${shape.join(", ")}]`);
    }
    return new _Tensor(this.ctx, this.buffer, shape, this.label, this.dtype);
  }
  /** Bytes of the elements (size * 2 for f16, size * 4 for f32). */
  get byteLength() {
    return this.size * dtypeBytes(this.dtype);
  }
  /** Reads the tensor back to the CPU (f16 widened to float32). */
  async read() {
    if (this.dtype === "f16") {
      const raw = await this.ctx.read(this.buffer, 0, align42(this.byteLength));
      return f16ToF32(new Uint16Array(raw, 0, this.size));
    }
    return new Float32Array(await this.ctx.read(this.buffer, 0, this.size * 4));
  }
  /** Frees the buffer, or gives it back to the context's pool when it came from there. */
  destroy() {
    this.ctx.releaseStorage(this.buffer, this.lease);
  }
};
function numel(shape) {
  return shape.reduce((a, b) => a * b, 1);
}
function emptyTensor(ctx, shape, label = "", dtype = "f32") {
  const size = Math.max(4, numel(shape) * dtypeBytes(dtype));
  const maxSize = ctx.device.limits.maxStorageBufferBindingSize;
  if (size > maxSize) {
    throw new Error(`tensor ${label} [${shape.join(", ")}] is ${size} bytes, over the device's storage binding limit of ${maxSize}`);
  }
  const { buffer } = ctx.acquireStorage(align42(size), label);
  return new Tensor(ctx, buffer, shape, label, dtype);
}
function tensorFrom(ctx, data, shape, label = "") {
  if (data.length !== numel(shape)) {
    throw new Error(`${label}: ${data.length} values for shape [${shape.join(", ")}]`);
  }
  const t = emptyTensor(ctx, shape, label);
  ctx.device.queue.writeBuffer(t.buffer, 0, data);
  ctx.counters.uploadedBytes += data.byteLength;
  return t;
}
function tensorFromF16(ctx, data, shape, label = "") {
  if (data.length !== numel(shape)) {
    throw new Error(`${label}: ${data.length} values for shape [${shape.join(", ")}]`);
  }
  const t = emptyTensor(ctx, shape, label, "f16");
  const half = new Uint16Array(data.length + data.length % 2);
  half.set(new Uint16Array(new Float16Array(data).buffer));
  ctx.device.queue.writeBuffer(t.buffer, 0, half);
  ctx.counters.uploadedBytes += half.byteLength;
  return t;
}
function requireShaderF16(ctx, op) {
  if (!ctx.gpu.hasF16) {
    throw new Error(`${op}: f16 tensors need the WebGPU feature "shader-f16", which this adapter (${ctx.gpu.description}) does not offer; use precision "f32"`);
  }
}
function f16ToF32(bits) {
  const copy = new Uint16Array(bits);
  return Float32Array.from(new Float16Array(copy.buffer, 0, copy.length));
}
function align42(n) {
  return Math.ceil(n / 4) * 4;
}
var Params = class {
  words = [];
  kinds = [];
  u32(...values) {
    for (const v of values) {
      if (!Number.isInteger(v) || v < 0 || v > 4294967295) throw new Error(`bad u32 param ${v}`);
      this.words.push(v);
      this.kinds.push("u");
    }
    return this;
  }
  i32(...values) {
    for (const v of values) {
      if (!Number.isInteger(v)) throw new Error(`bad i32 param ${v}`);
      this.words.push(v);
      this.kinds.push("i");
    }
    return this;
  }
  f32(...values) {
    for (const v of values) {
      this.words.push(v);
      this.kinds.push("f");
    }
    return this;
  }
  build() {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const u = new Uint32Array(buf);
    const i = new Int32Array(buf);
    const f3 = new Float32Array(buf);
    this.words.forEach((w, k) => {
      if (this.kinds[k] === "u") u[k] = w;
      else if (this.kinds[k] === "i") i[k] = w;
      else f3[k] = w;
    });
    return buf;
  }
};

// src/kernels/activation.ts
var ACTIVATION_WGSL = (
  /* wgsl */
  `
// erf on |z| < 1 from its Maclaurin series, Horner in z^2.
fn erf_small_f32(z: f32) -> f32 {
  let z2 = z * z;
  var q = -1.2290555240213052e-09;
  q = q * z2 + 1.4807192805221803e-08;
  q = q * z2 - 1.6365844146548625e-07;
  q = q * z2 + 1.6462114444948384e-06;
  q = q * z2 - 1.4925650248187594e-05;
  q = q * z2 + 0.00012055332626914605;
  q = q * z2 - 0.0008548327023163438;
  q = q * z2 + 0.005223977845162153;
  q = q * z2 - 0.02686617150902748;
  q = q * z2 + 0.11283791810274124;
  q = q * z2 - 0.37612637877464294;
  q = q * z2 + 1.128379225730896;
  return z * q;
}

// erfc(z) for z >= 0.
fn erfc_pos_f32(z: f32) -> f32 {
  if (z < 1.0) { return 1.0 - erf_small_f32(z); }
  let t = 1.0 / (1.0 + 0.5 * z);
  var p = -0.0645255520939827;
  p = p * t + 0.3156639337539673;
  p = p * t - 0.5555782914161682;
  p = p * t + 0.3575119972229004;
  p = p * t - 0.08125431090593338;
  p = p * t + 0.22589655220508575;
  p = p * t + 0.23699799180030823;
  p = p * t + 0.2833343744277954;
  p = p * t + 0.28200486302375793;
  p = p * t + 2.8556346478580963e-06;
  let zh = bitcast<f32>(bitcast<u32>(z) & 0xfffff000u);
  return exp(-zh * zh) * exp(-(z - zh) * (z + zh)) * p;
}

fn erf_f32(z: f32) -> f32 {
  let a = abs(z);
  var r: f32;
  if (a < 1.0) { r = erf_small_f32(a); } else { r = 1.0 - erfc_pos_f32(a); }
  return select(r, -r, z < 0.0);
}

// torch nn.GELU(): 0.5 x (1 + erf(x / sqrt(2))) = 0.5 x erfc(-x / sqrt(2)).
fn gelu_f32(x: f32) -> f32 {
  let z = x * 0.7071067811865476;
  if (x < 0.0) { return 0.5 * x * erfc_pos_f32(-z); }
  return x - 0.5 * x * erfc_pos_f32(z);
}

fn relu_f32(x: f32) -> f32 { return max(x, 0.0); }
`
);
function activationExpr(kind, v) {
  return kind === "gelu" ? `gelu_f32(${v})` : kind === "relu" ? `relu_f32(${v})` : v;
}
var WG = 256;
function unarySpec(name, expr, prelude = "") {
  return {
    name,
    bindings: [
      "uniform",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
${prelude}
struct P { n: u32, s: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  out[i] = ${expr("x[i]")};
}`
    )
  };
}
function unary(ctx, spec4, op, x, s, out) {
  const y = out ?? emptyTensor(ctx, x.shape, `${op}.out`);
  if (y.size !== x.size) throw new Error(`${op}: out has ${y.size} elements, need ${x.size}`);
  if (y.buffer === x.buffer) throw new Error(`${op}: out must not alias x`);
  const params = new Params().u32(x.size).f32(s).build();
  ctx.dispatch(spec4, params, [
    x.buffer,
    y.buffer
  ], grid(Math.ceil(x.size / WG)));
  return y;
}
var SPECS = {
  gelu: unarySpec("gelu_f32", (x) => activationExpr("gelu", x), ACTIVATION_WGSL),
  relu: unarySpec("relu_f32", (x) => activationExpr("relu", x), ACTIVATION_WGSL)
};
function activation(ctx, x, kind, out) {
  const spec4 = SPECS[kind];
  if (!spec4) throw new Error(`activation: unknown kind ${kind}`);
  return unary(ctx, spec4, kind, x, 0, out);
}

// src/kernels/add.ts
var WG2 = 256;
function binarySpec(name, expr) {
  return {
    name,
    bindings: [
      "uniform",
      "read",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
struct P { n: u32, nb: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG2})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG2}u;
  if (i >= p.n) { return; }
  // b repeats over a's leading dims.
  out[i] = ${expr("a[i]", "b[i % p.nb]")};
}`
    )
  };
}
function broadcastBinary(ctx, spec4, op, a, b, out) {
  if (b.size === 0 || a.size % b.size !== 0) {
    throw new Error(`${op}: sizes differ, [${a.shape}] vs [${b.shape}], and b's ${b.size} elements do not divide a's ${a.size} (b may only repeat over a's leading dims)`);
  }
  const y = out ?? emptyTensor(ctx, a.shape, `${op}.out`);
  if (y.size !== a.size) throw new Error(`${op}: out has ${y.size} elements, need ${a.size}`);
  if (y.buffer === a.buffer || y.buffer === b.buffer) {
    throw new Error(`${op}: out must not alias an input`);
  }
  const params = new Params().u32(a.size, b.size).build();
  ctx.dispatch(spec4, params, [
    a.buffer,
    b.buffer,
    y.buffer
  ], grid(Math.ceil(a.size / WG2)));
  return y;
}
var ADD = binarySpec("add_f32", (a, b) => `${a} + ${b}`);
function add(ctx, a, b, out) {
  return broadcastBinary(ctx, ADD, "add", a, b, out);
}

// src/kernels/gemm_epilogue.ts
function gemmUsesF16(v) {
  return !!(v.aF16 || v.bF16 || v.outF16);
}
function gemmF16Letters(v) {
  return `f16${v.aF16 ? "a" : ""}${v.bF16 ? "w" : ""}${v.outF16 ? "o" : ""}`;
}
function gemmLoad(v, which, expr, vec) {
  const half = which === "a" ? v.aF16 : v.bF16;
  if (!half) return expr;
  return vec ? `vec4<f32>(${expr})` : `f32(${expr})`;
}
function gemmBindingDecls(v) {
  const elem = (half) => half ? "f16" : "f32";
  const vecType = (vec, half) => vec ? `vec4<${elem(half)}>` : elem(half);
  let binding = 1;
  const decls = [
    `@group(0) @binding(${binding++}) var<storage, read> a: array<${vecType(v.vecA, v.aF16)}>;`,
    `@group(0) @binding(${binding++}) var<storage, read> b: array<${vecType(v.vecB, v.bF16)}>;`
  ];
  if (v.bias) decls.push(`@group(0) @binding(${binding++}) var<storage, read> bias: array<f32>;`);
  if (v.residual) {
    decls.push(`@group(0) @binding(${binding++}) var<storage, read> residual: array<f32>;`);
  }
  decls.push(`@group(0) @binding(${binding++}) var<storage, read_write> out: array<${elem(v.outF16)}>;`);
  return decls.join("\n");
}
function gemmEpilogueExpr(v, acc) {
  let value = acc;
  if (v.bias) value = `(${value} + bias[n])`;
  value = activationExpr(v.activation, value);
  if (v.residual) value = `${value} + residual[o]`;
  return v.outF16 ? `f16(${value})` : value;
}
var specs = /* @__PURE__ */ new Map();
function cachedGemmSpec(prefix, v, tileName, code) {
  const parts = [
    prefix
  ];
  if (v.bias) parts.push("bias");
  if (v.activation !== "none") parts.push(v.activation);
  if (v.residual) parts.push("residual");
  parts.push("f32");
  if (gemmUsesF16(v)) {
    parts.push(`f16${v.aF16 ? "a" : ""}${v.bF16 ? "w" : ""}${v.outF16 ? "o" : ""}`);
  }
  if (v.vecA) parts.push("a4");
  if (v.vecB) parts.push("b4");
  parts.push(tileName);
  const name = parts.join("_");
  let spec4 = specs.get(name);
  if (!spec4) {
    const bindings = [
      "uniform",
      "read",
      "read",
      ...v.bias ? [
        "read"
      ] : [],
      ...v.residual ? [
        "read"
      ] : [],
      "write"
    ];
    const half = gemmUsesF16(v);
    spec4 = {
      name,
      bindings,
      code: half ? () => `enable f16;
${code()}` : code
    };
    specs.set(name, spec4);
  }
  return spec4;
}

// src/kernels/gemm_register.ts
function registerBlock(t) {
  return t.lanes === "m" ? {
    bm: t.rm * t.wg,
    bn: t.rn
  } : {
    bm: t.rm,
    bn: t.rn * t.wg
  };
}
function registerTileName(t) {
  return `${t.lanes}${t.rm}x${t.rn}w${t.wg}`;
}
function parseRegisterTile(name) {
  const m = /^([mn])(\d+)x(\d+)w(\d+)$/.exec(name);
  if (!m) return null;
  const [rm, rn, wg] = [
    Number(m[2]),
    Number(m[3]),
    Number(m[4])
  ];
  const ok = (x, max) => Number.isInteger(x) && x >= 1 && x <= max;
  if (!ok(rm, 16) || !ok(rn, 32) || !ok(wg, 256)) return null;
  return {
    lanes: m[1],
    rm,
    rn,
    wg
  };
}
var range = (n) => Array.from({
  length: n
}, (_, i) => i);
function registerGemmCode(v) {
  const t = v.tile;
  const R = range(t.rm);
  const C = range(t.rn);
  const value = gemmEpilogueExpr(v, "acc");
  const origin = t.lanes === "m" ? `let m0 = (wg.y * ${t.wg}u + lid) * ${t.rm}u;
  let n0 = wg.x * ${t.rn}u;` : `let m0 = wg.y * ${t.rm}u;
  let n0 = (wg.x * ${t.wg}u + lid) * ${t.rn}u;`;
  const rowBases = R.map((i) => `let ra${i} = a_base + min(m0 + ${i}u, p.M - 1u) * p.K;`);
  const acc = R.map((i) => C.map((j) => `var c${i}_${j} = 0.0;`).join(" "));
  const aLoad = (i) => gemmLoad(v, "a", v.vecA ? `a[(ra${i} + k) / 4u][k % 4u]` : `a[ra${i} + k]`, false);
  const bLoadNk = (j) => gemmLoad(v, "b", v.vecB ? `b[(rb${j} + k) / 4u][k % 4u]` : `b[rb${j} + k]`, false);
  let body;
  if (v.bLayout === "nk") {
    const colBases = C.map((j) => `let rb${j} = b_base + min(n0 + ${j}u, p.N - 1u) * p.K;`);
    if (v.vecA && v.vecB) {
      body = `${colBases.join("\n  ")}
  for (var k = 0u; k < p.K; k += 4u) {
    ${R.map((i) => `let x${i} = ${gemmLoad(v, "a", `a[(ra${i} + k) / 4u]`, true)};`).join(" ")}
    ${C.map((j) => `let y${j} = ${gemmLoad(v, "b", `b[(rb${j} + k) / 4u]`, true)};`).join(" ")}
    ${R.map((i) => C.map((j) => `c${i}_${j} += dot(x${i}, y${j});`).join(" ")).join("\n    ")}
  }`;
    } else {
      body = `${colBases.join("\n  ")}
  for (var k = 0u; k < p.K; k++) {
    ${R.map((i) => `let x${i} = ${aLoad(i)};`).join(" ")}
    ${C.map((j) => `let y${j} = ${bLoadNk(j)};`).join(" ")}
    ${R.map((i) => C.map((j) => `c${i}_${j} = fma(x${i}, y${j}, c${i}_${j});`).join(" ")).join("\n    ")}
  }`;
    }
  } else {
    const colIdx = C.map((j) => `let cn${j} = min(n0 + ${j}u, p.N - 1u);`);
    const bLoad = (j) => gemmLoad(v, "b", v.vecB ? `b[(b_base + k * p.N + cn${j}) / 4u][(cn${j}) % 4u]` : `b[b_base + k * p.N + cn${j}]`, false);
    body = `${colIdx.join("\n  ")}
  for (var k = 0u; k < p.K; k++) {
    ${R.map((i) => `let x${i} = ${aLoad(i)};`).join(" ")}
    ${C.map((j) => `let y${j} = ${bLoad(j)};`).join(" ")}
    ${R.map((i) => C.map((j) => `c${i}_${j} = fma(x${i}, y${j}, c${i}_${j});`).join(" ")).join("\n    ")}
  }`;
  }
  const stores = R.map((i) => C.map((j) => `store(o_base, m0 + ${i}u, n0 + ${j}u, c${i}_${j});`).join(" "));
  return (
    /* wgsl */
    `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, stride_out: u32 }
@group(0) @binding(0) var<uniform> p: P;
${gemmBindingDecls(v)}

fn store(o_base: u32, m: u32, n: u32, acc: f32) {
  if (m < p.M && n < p.N) {
    let o = o_base + m * p.N + n;
    out[o] = ${value};
  }
}

@compute @workgroup_size(${t.wg})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let a_base = wg.z * p.stride_a;
  let b_base = wg.z * p.stride_b;
  let o_base = wg.z * p.stride_out;
  ${origin}
  ${rowBases.join("\n  ")}
  ${acc.join("\n  ")}
  ${body}
  ${stores.join("\n  ")}
}`
  );
}
function registerGemmSpec(prefix, v) {
  const variant = {
    ...v,
    tile: {
      ...v.tile
    }
  };
  return cachedGemmSpec(prefix, v, `reg_${registerTileName(v.tile)}`, () => registerGemmCode(variant));
}

// src/kernels/gemm_splitk.ts
var SPLITK_SLICES = [
  4,
  8
];
function parseSplitKName(name) {
  const m = /^splitk(\d+)$/.exec(name);
  if (!m) return null;
  const s = Number(m[1]);
  return SPLITK_SLICES.includes(s) ? s : null;
}
var BM = 16;
var BN = 64;
var range2 = (n) => Array.from({
  length: n
}, (_, i) => i);
function partialCode(v, vecK) {
  const R = range2(4);
  const elem = (vec) => vec ? "vec4<f32>" : "f32";
  const at = (buf, vec, i) => vec ? `${buf}[(${i}) / 4u][(${i}) % 4u]` : `${buf}[${i}]`;
  const rowA = R.map((i) => `let ra${i} = a_base + min(m0 + ${i}u, p.M - 1u) * p.K;`).join("\n  ");
  let body;
  if (v.bLayout === "nk") {
    const rowB = R.map((j) => `let rb${j} = b_base + min(n0 + ${j}u, p.N - 1u) * p.K;`).join("\n  ");
    body = vecK ? `${rowB}
  for (var k = k0; k < k1; k += 4u) {
    ${R.map((i) => `let x${i} = a[(ra${i} + k) / 4u];`).join(" ")}
    ${R.map((j) => `let y${j} = b[(rb${j} + k) / 4u];`).join(" ")}
    ${R.map((i) => R.map((j) => `c${i}_${j} += dot(x${i}, y${j});`).join(" ")).join("\n    ")}
  }` : `${rowB}
  for (var k = k0; k < k1; k++) {
    ${R.map((i) => `let x${i} = ${at("a", v.vecA, `ra${i} + k`)};`).join(" ")}
    ${R.map((j) => `let y${j} = ${at("b", v.vecB, `rb${j} + k`)};`).join(" ")}
    ${R.map((i) => R.map((j) => `c${i}_${j} = fma(x${i}, y${j}, c${i}_${j});`).join(" ")).join("\n    ")}
  }`;
  } else {
    const cols = R.map((j) => `let cn${j} = min(n0 + ${j}u, p.N - 1u);`).join("\n  ");
    body = `${cols}
  for (var k = k0; k < k1; k++) {
    ${R.map((i) => `let x${i} = ${at("a", v.vecA, `ra${i} + k`)};`).join(" ")}
    ${R.map((j) => `let y${j} = ${at("b", v.vecB, `b_base + k * p.N + cn${j}`)};`).join(" ")}
    ${R.map((i) => R.map((j) => `c${i}_${j} = fma(x${i}, y${j}, c${i}_${j});`).join(" ")).join("\n    ")}
  }`;
  }
  const stores = R.map((i) => R.map((j) => `if (m0 + ${i}u < p.M && n0 + ${j}u < p.N) { part[pb + (m0 + ${i}u) * p.N + n0 + ${j}u] = c${i}_${j}; }`).join("\n  ")).join("\n  ");
  return (
    /* wgsl */
    `
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, batch: u32, S: u32, kLen: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<${elem(v.vecA)}>;
@group(0) @binding(2) var<storage, read> b: array<${elem(v.vecB)}>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let bi = wg.z / p.S;
  let s = wg.z % p.S;
  let k0 = s * p.kLen;
  let k1 = min(k0 + p.kLen, p.K);
  let n0 = wg.x * ${BN}u + (lid % 16u) * 4u;
  let m0 = wg.y * ${BM}u + (lid / 16u) * 4u;
  let a_base = bi * p.stride_a;
  let b_base = bi * p.stride_b;
  let pb = (s * p.batch + bi) * p.M * p.N;
  ${rowA}
  ${R.map((i) => R.map((j) => `var c${i}_${j} = 0.0;`).join(" ")).join("\n  ")}
  ${body}
  ${stores}
}`
  );
}
function reduceCode(v) {
  let binding = 2;
  const decls = [];
  if (v.bias) decls.push(`@group(0) @binding(${binding++}) var<storage, read> bias: array<f32>;`);
  if (v.residual) {
    decls.push(`@group(0) @binding(${binding++}) var<storage, read> residual: array<f32>;`);
  }
  decls.push(`@group(0) @binding(${binding++}) var<storage, read_write> out: array<f32>;`);
  return (
    /* wgsl */
    `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct R { total: u32, N: u32, S: u32 }
@group(0) @binding(0) var<uniform> p: R;
@group(0) @binding(1) var<storage, read> part: array<f32>;
${decls.join("\n")}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let o = (wg.x + wg.y * nwg.x) * 64u + lid;
  if (o >= p.total) { return; }
  var acc = 0.0;
  for (var s = 0u; s < p.S; s++) { acc += part[s * p.total + o]; }
  let n = o % p.N;
  out[o] = ${gemmEpilogueExpr(v, "acc")};
}`
  );
}
var specs2 = /* @__PURE__ */ new Map();
function cached(name, bindings, code) {
  let spec4 = specs2.get(name);
  if (!spec4) {
    spec4 = {
      name,
      bindings,
      code
    };
    specs2.set(name, spec4);
  }
  return spec4;
}
function partialSpec(prefix, v, vecK) {
  const name = `${prefix}_splitk_partial_${v.bLayout}_f32${v.vecA ? "_a4" : ""}${v.vecB ? "_b4" : ""}${vecK ? "_k4" : ""}`;
  const variant = {
    ...v
  };
  return cached(name, [
    "uniform",
    "read",
    "read",
    "write"
  ], () => partialCode(variant, vecK));
}
function reduceSpec(prefix, v) {
  const parts = [
    prefix,
    "splitk_reduce"
  ];
  if (v.bias) parts.push("bias");
  if (v.activation !== "none") parts.push(v.activation);
  if (v.residual) parts.push("residual");
  parts.push("f32");
  const variant = {
    ...v
  };
  return cached(parts.join("_"), [
    "uniform",
    "read",
    ...v.bias ? [
      "read"
    ] : [],
    ...v.residual ? [
      "read"
    ] : [],
    "write"
  ], () => reduceCode(variant));
}
var scratch = /* @__PURE__ */ new WeakMap();
function scratchFor(ctx, elements) {
  const have = scratch.get(ctx);
  if (have && have.size >= elements) return have;
  if (have) {
    ctx.submit();
    have.destroy();
  }
  const t = emptyTensor(ctx, [
    elements
  ], "gemm.splitk.partial");
  scratch.set(ctx, t);
  return t;
}
function splitKFits(d, slices) {
  return Math.ceil(d.N / BN) <= MAX_WORKGROUPS_PER_DIM && Math.ceil(d.M / BM) <= MAX_WORKGROUPS_PER_DIM && d.batch * slices <= MAX_WORKGROUPS_PER_DIM;
}
function runSplitK(ctx, prefix, v, d, buffers, slices) {
  const S = Math.max(1, Math.min(slices, Math.ceil(d.K / 4)));
  const kLen = 4 * Math.ceil(d.K / S / 4);
  const vecK = v.bLayout === "nk" && v.vecA && v.vecB;
  const total = d.batch * d.M * d.N;
  const part = scratchFor(ctx, S * total);
  const [a, b, ...rest] = buffers;
  const p1 = new Params().u32(d.M, d.N, d.K, d.strideA, d.strideB, d.batch, S, kLen).build();
  ctx.dispatch(partialSpec(prefix, v, vecK), p1, [
    a,
    b,
    part.buffer
  ], [
    Math.ceil(d.N / BN),
    Math.ceil(d.M / BM),
    d.batch * S
  ]);
  const p2 = new Params().u32(total, d.N, S).build();
  ctx.dispatch(reduceSpec(prefix, v), p2, [
    part.buffer,
    ...rest
  ], grid(Math.ceil(total / 64)));
}

// src/kernels/gemm_kstage.ts
var TILE64 = {
  bm: 64,
  bn: 64,
  bk: 16,
  tm: 4
};
var TILE128 = {
  bm: 128,
  bn: 64,
  bk: 16,
  tm: 8
};
var KSTAGE_VARIANTS = {
  tile64k: {
    tile: TILE64,
    prefetch: false
  },
  tile64p: {
    tile: TILE64,
    prefetch: true
  },
  tile128k: {
    tile: TILE128,
    prefetch: false
  },
  tile128p: {
    tile: TILE128,
    prefetch: true
  }
};
function parseKStageName(name) {
  return Object.hasOwn(KSTAGE_VARIANTS, name) ? KSTAGE_VARIANTS[name] : null;
}
var TN = 4;
var range3 = (n) => Array.from({
  length: n
}, (_, i) => i);
function loader(v, which, fn, vec, rowLimit, colLimit, rowLen) {
  const head = `fn ${fn}(base: u32, row: u32, col: u32) -> vec4<f32> {`;
  if (vec) {
    return `${head}
  if (row >= ${rowLimit} || col >= ${colLimit}) { return vec4<f32>(0.0); }
  return ${gemmLoad(v, which, `${which}[(base + row * ${rowLen} + col) / 4u]`, true)};
}`;
  }
  const lanes = range3(4).map((j) => `if (col + ${j}u < ${colLimit}) { v[${j}] = ${gemmLoad(v, which, `${which}[start + col + ${j}u]`, false)}; }`);
  return `${head}
  var v = vec4<f32>(0.0);
  if (row >= ${rowLimit}) { return v; }
  let start = base + row * ${rowLen};
  ${lanes.join("\n  ")}
  return v;
}`;
}
function kStageCode(v) {
  const t = v.tile;
  const TX = t.bn / TN;
  const TY = t.bm / t.tm;
  const nt = TX * TY;
  const KQ = t.bk / 4;
  const S = KQ + 1;
  const nk = v.bLayout === "nk";
  const R = range3(t.tm);
  const C = range3(TN);
  const aSlots = range3(t.bm * KQ / nt);
  const bSlots = range3(t.bn * KQ / nt);
  const slotIdx = [
    ...aSlots.map((s) => `let ar${s} = (tid + ${s * nt}u) / ${KQ}u; let ak${s} = (tid + ${s * nt}u) % ${KQ}u;`),
    ...bSlots.map((s) => nk ? `let br${s} = (tid + ${s * nt}u) / ${KQ}u; let bk${s} = (tid + ${s * nt}u) % ${KQ}u;` : `let br${s} = (tid + ${s * nt}u) / ${TX}u; let bk${s} = (tid + ${s * nt}u) % ${TX}u;`)
  ];
  const readA = (s, k) => `load_a(a_base, m0 + ar${s}, ${k} + ak${s} * 4u)`;
  const readB = (s, k) => nk ? `load_b(b_base, n0 + br${s}, ${k} + bk${s} * 4u)` : `load_b(b_base, ${k} + br${s}, n0 + bk${s} * 4u)`;
  const putA = (s, val) => `As[ar${s} * ${S}u + ak${s}] = ${val};`;
  const putB = (s, val) => nk ? `Bs[br${s} * ${S}u + bk${s}] = ${val};` : `Bs[br${s} * ${TX}u + bk${s}] = ${val};`;
  let stage;
  let loopHead;
  let prefetch = "";
  if (v.prefetch) {
    loopHead = [
      ...aSlots.map((s) => `var pa${s} = ${readA(s, "0u")};`),
      ...bSlots.map((s) => `var pb${s} = ${readB(s, "0u")};`)
    ].join("\n  ");
    stage = [
      ...aSlots.map((s) => putA(s, `pa${s}`)),
      ...bSlots.map((s) => putB(s, `pb${s}`))
    ].join("\n    ");
    prefetch = `// Tile k+1 into registers while this one is computed; stored after the barrier.
    if (k0 + ${t.bk}u < p.K) {
      ${aSlots.map((s) => `pa${s} = ${readA(s, `k0 + ${t.bk}u`)};`).join("\n      ")}
      ${bSlots.map((s) => `pb${s} = ${readB(s, `k0 + ${t.bk}u`)};`).join("\n      ")}
    }`;
  } else {
    loopHead = "";
    stage = [
      ...aSlots.map((s) => putA(s, readA(s, "k0"))),
      ...bSlots.map((s) => putB(s, readB(s, "k0")))
    ].join("\n    ");
  }
  const rowOff = R.map((i) => `let ao${i} = (ty + ${i * TY}u) * ${S}u;`);
  const colOff = nk ? C.map((j) => `let bo${j} = (tx + ${j * TX}u) * ${S}u;`) : [];
  let accDecl;
  let compute;
  let stores;
  if (nk) {
    accDecl = R.map((i) => C.map((j) => `var c${i}_${j} = 0.0;`).join(" ")).join("\n  ");
    compute = `${R.map((i) => `let x${i} = As[ao${i} + kq];`).join(" ")}
      ${C.map((j) => `let y${j} = Bs[bo${j} + kq];`).join(" ")}
      ${R.map((i) => C.map((j) => `c${i}_${j} += dot(x${i}, y${j});`).join(" ")).join("\n      ")}`;
    stores = R.map((i) => C.map((j) => `store(o_base, m0 + ty + ${i * TY}u, n0 + tx + ${j * TX}u, c${i}_${j});`).join(" ")).join("\n  ");
  } else {
    accDecl = R.map((i) => `var c${i} = vec4<f32>(0.0);`).join("\n  ");
    const steps = range3(4).map((kk) => `let y${kk} = Bs[(kq * 4u + ${kk}u) * ${TX}u + tx];
      ${R.map((i) => `c${i} = fma(vec4<f32>(x${i}[${kk}]), y${kk}, c${i});`).join(" ")}`);
    compute = `${R.map((i) => `let x${i} = As[ao${i} + kq];`).join(" ")}
      ${steps.join("\n      ")}`;
    stores = R.map((i) => C.map((j) => `store(o_base, m0 + ty + ${i * TY}u, n0 + tx * 4u + ${j}u, c${i}[${j}]);`).join(" ")).join("\n  ");
  }
  const loadB = nk ? loader(v, "b", "load_b", v.vecB, "p.N", "p.K", "p.K") : loader(v, "b", "load_b", v.vecB, "p.K", "p.N", "p.N");
  return (
    /* wgsl */
    `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, stride_out: u32 }
@group(0) @binding(0) var<uniform> p: P;
${gemmBindingDecls(v)}

// As[m * ${S} + k/4]: K contiguous, rows padded by one vec4.
var<workgroup> As: array<vec4<f32>, ${t.bm * S}>;
// ${nk ? `Bs[n * ${S} + k/4]: as As` : `Bs[k * ${TX} + n/4]: N contiguous, as B is stored`}.
var<workgroup> Bs: array<vec4<f32>, ${nk ? t.bn * S : t.bk * TX}>;

${loader(v, "a", "load_a", v.vecA, "p.M", "p.K", "p.K")}
${loadB}

fn store(o_base: u32, m: u32, n: u32, acc: f32) {
  if (m < p.M && n < p.N) {
    let o = o_base + m * p.N + n;
    out[o] = ${gemmEpilogueExpr(v, "acc")};
  }
}

@compute @workgroup_size(${nt})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let n0 = wg.x * ${t.bn}u;
  let m0 = wg.y * ${t.bm}u;
  let a_base = wg.z * p.stride_a;
  let b_base = wg.z * p.stride_b;
  let o_base = wg.z * p.stride_out;
  let tx = tid % ${TX}u;
  let ty = tid / ${TX}u;
  ${slotIdx.join("\n  ")}
  ${rowOff.join(" ")}
  ${colOff.join(" ")}
  ${accDecl}
  ${loopHead}
  for (var k0 = 0u; k0 < p.K; k0 += ${t.bk}u) {
    ${stage}
    workgroupBarrier();
    ${prefetch}
    for (var kq = 0u; kq < ${KQ}u; kq++) {
      ${compute}
    }
    workgroupBarrier();
  }
  ${stores}
}`
  );
}
function kStageGemmSpec(prefix, v) {
  const t = v.tile;
  const variant = {
    ...v,
    tile: {
      ...t
    }
  };
  return cachedGemmSpec(prefix, v, `k${v.prefetch ? "p" : ""}${t.bm}x${t.bn}x${t.bk}t${t.tm}`, () => kStageCode(variant));
}

// src/kernels/tuning.ts
var tables = /* @__PURE__ */ new WeakMap();
function tuningDisabled() {
  if (typeof Deno === "undefined") return false;
  try {
    return Deno.env.get("WGSAM_TUNE")?.toLowerCase() === "off";
  } catch {
    return false;
  }
}
var recordings = /* @__PURE__ */ new WeakMap();
var hits = /* @__PURE__ */ new WeakMap();
var reported = /* @__PURE__ */ new Set();
function variantFor(ctx, key, fallback, known) {
  recordings.get(ctx)?.add(key);
  if (tuningDisabled()) return fallback;
  const tuned = tables.get(ctx)?.get(key);
  if (tuned === void 0) return fallback;
  if (!known(tuned)) {
    if (!reported.has(`${key}=${tuned}`)) {
      reported.add(`${key}=${tuned}`);
      console.error(`wgsam: tune cache names an unknown variant "${tuned}" for ${key}; using "${fallback}" (run \`deno task tune\` again)`);
    }
    return fallback;
  }
  hits.set(ctx, (hits.get(ctx) ?? 0) + 1);
  return tuned;
}

// src/kernels/matmul.ts
var TILE_64 = {
  bm: 64,
  bn: 64,
  bk: 16,
  tm: 4
};
var TILE_128 = {
  bm: 128,
  bn: 64,
  bk: 16,
  tm: 8
};
var TILE_16 = {
  bm: 16,
  bn: 64,
  bk: 16,
  tm: 4
};
var TN2 = 4;
function loadKContiguous(v0, t, nt, src, dst, rows, first, limit, base, vec) {
  if (vec) {
    return `for (var i = 0u; i < ${rows * t.bk / 4 / nt}u; i++) {
      let l = tid + i * ${nt}u;
      let r = l / ${t.bk / 4}u;
      let kq = l % ${t.bk / 4}u;
      let row = ${first} + r;
      let k = k0 + kq * 4u;
      var v = vec4<f32>(0.0);
      if (row < ${limit} && k < p.K) { v = ${gemmLoad(v0, src, `${src}[(${base} + row * p.K + k) / 4u]`, true)}; }
      for (var j = 0u; j < 4u; j++) { ${dst}[(kq * 4u + j) * ${rows / 4}u + r / 4u][r % 4u] = v[j]; }
    }`;
  }
  return `for (var i = 0u; i < ${rows * t.bk / nt}u; i++) {
      let l = tid + i * ${nt}u;
      let r = l / ${t.bk}u;
      let kk = l % ${t.bk}u;
      let row = ${first} + r;
      let k = k0 + kk;
      var v = 0.0;
      if (row < ${limit} && k < p.K) { v = ${gemmLoad(v0, src, `${src}[${base} + row * p.K + k]`, false)}; }
      ${dst}[kk * ${rows / 4}u + r / 4u][r % 4u] = v;
    }`;
}
function loadNContiguous(v0, t, nt, vec) {
  if (vec) {
    return `for (var i = 0u; i < ${t.bk * t.bn / 4 / nt}u; i++) {
      let l = tid + i * ${nt}u;
      let kk = l / ${t.bn / 4}u;
      let nq = l % ${t.bn / 4}u;
      let k = k0 + kk;
      let n = n0 + nq * 4u;
      var v = vec4<f32>(0.0);
      if (k < p.K && n < p.N) { v = ${gemmLoad(v0, "b", "b[(b_base + k * p.N + n) / 4u]", true)}; }
      Bs[kk * ${t.bn / 4}u + nq] = v;
    }`;
  }
  return `for (var i = 0u; i < ${t.bk * t.bn / nt}u; i++) {
      let l = tid + i * ${nt}u;
      let kk = l / ${t.bn}u;
      let c = l % ${t.bn}u;
      let k = k0 + kk;
      let n = n0 + c;
      var v = 0.0;
      if (k < p.K && n < p.N) { v = ${gemmLoad(v0, "b", "b[b_base + k * p.N + n]", false)}; }
      Bs[kk * ${t.bn / 4}u + c / 4u][c % 4u] = v;
    }`;
}
function threads(t) {
  return t.bn / TN2 * (t.bm / t.tm);
}
function gemmCode(v) {
  const t = v.tile;
  const tx = t.bn / TN2;
  const nt = threads(t);
  const value = gemmEpilogueExpr(v, "acc[j]");
  const rows = Array.from({
    length: t.tm
  }, (_, i) => i);
  const accDecl = rows.map((i) => `var acc${i} = vec4<f32>(0.0);`).join("\n  ");
  const aReads = Array.from({
    length: t.tm / 4
  }, (_, q) => `let a${q} = As[kk * ${t.bm / 4}u + ty * ${t.tm / 4}u + ${q}u];`).join("\n      ");
  const fmas = rows.map((i) => `acc${i} = fma(vec4<f32>(a${Math.floor(i / 4)}[${i % 4}]), bv, acc${i});`).join("\n      ");
  const stores = rows.map((i) => `store_row(o_base, m_first + ${i}u, n_first, acc${i});`).join("\n  ");
  const loadB = v.bLayout === "nk" ? loadKContiguous(v, t, nt, "b", "Bs", t.bn, "n0", "p.N", "b_base", v.vecB) : loadNContiguous(v, t, nt, v.vecB);
  return (
    /* wgsl */
    `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, stride_out: u32 }
@group(0) @binding(0) var<uniform> p: P;
${gemmBindingDecls(v)}

// K-major staging: As[k * BM/4 + m/4][m % 4], Bs[k * BN/4 + n/4][n % 4].
var<workgroup> As: array<vec4<f32>, ${t.bk * t.bm / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${t.bk * t.bn / 4}>;

fn store_row(o_base: u32, m: u32, n_first: u32, acc: vec4<f32>) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let n = n_first + j;
    if (n < p.N) {
      let o = o_base + m * p.N + n;
      out[o] = ${value};
    }
  }
}

@compute @workgroup_size(${nt})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let n0 = wg.x * ${t.bn}u;
  let m0 = wg.y * ${t.bm}u;
  let a_base = wg.z * p.stride_a;
  let b_base = wg.z * p.stride_b;
  let o_base = wg.z * p.stride_out;
  let tx = tid % ${tx}u;
  let ty = tid / ${tx}u;

  ${accDecl}
  for (var k0 = 0u; k0 < p.K; k0 += ${t.bk}u) {
    ${loadKContiguous(v, t, nt, "a", "As", t.bm, "m0", "p.M", "a_base", v.vecA)}
    ${loadB}
    workgroupBarrier();
    for (var kk = 0u; kk < ${t.bk}u; kk++) {
      ${aReads}
      let bv = Bs[kk * ${t.bn / 4}u + tx];
      ${fmas}
    }
    workgroupBarrier();
  }

  let m_first = m0 + ty * ${t.tm}u;
  let n_first = n0 + tx * ${TN2}u;
  ${stores}
}`
  );
}
function gemmSpec(prefix, v) {
  const t = v.tile;
  const variant = {
    ...v
  };
  return cachedGemmSpec(prefix, v, `${t.bm}x${t.bn}x${t.bk}t${t.tm}`, () => gemmCode(variant));
}
function dispatchGemm(ctx, spec4, tile, d, buffers) {
  const { bm, bn } = tile;
  const tilesN = Math.ceil(d.N / bn);
  const tilesM = Math.ceil(d.M / bm);
  if (tilesN > MAX_WORKGROUPS_PER_DIM || tilesM > MAX_WORKGROUPS_PER_DIM) {
    throw new Error(`${spec4.name}: M=${d.M}, N=${d.N} need ${tilesM} x ${tilesN} tiles of ${bm}x${bn}, over ${MAX_WORKGROUPS_PER_DIM} per dimension`);
  }
  if (d.batch > MAX_WORKGROUPS_PER_DIM) {
    throw new Error(`${spec4.name}: batch ${d.batch} is over ${MAX_WORKGROUPS_PER_DIM}`);
  }
  const params = new Params().u32(d.M, d.N, d.K, d.strideA, d.strideB, d.strideOut).build();
  ctx.dispatch(spec4, params, buffers, [
    tilesN,
    tilesM,
    d.batch
  ]);
}
var TILES = {
  tile16: TILE_16,
  tile64: TILE_64,
  tile128: TILE_128
};
function defaultGemmVariant(software, M) {
  if (!software) return M <= TILE_16.bm ? "tile16" : M >= 512 ? "tile128" : "tile64";
  return M >= 64 ? "reg_m8x8w8" : "reg_n8x4w16";
}
function gemmCandidates(M, f16 = false) {
  const names = [
    "tile16",
    "tile64",
    "tile128",
    "reg_m8x8w8",
    "reg_m8x8w16",
    "reg_m8x16w8"
  ];
  names.push("reg_m4x8w16", "reg_n8x4w16", "reg_n8x4w8", "reg_n4x8w16");
  names.push("tile64k", "tile64p", "tile128k", "tile128p");
  if (M <= 64 && !f16) names.push("splitk4", "splitk8");
  return M <= 16 ? names.filter((n) => !n.startsWith("tile128")) : names;
}
function gemmKey(bLayout, d, v) {
  const key = `gemm|${bLayout}|${d.batch}x${d.M}x${d.N}x${d.K}`;
  return v && gemmUsesF16(v) ? `${key}|${gemmF16Letters(v)}` : key;
}
function runGemm(ctx, prefix, base, d, buffers, variant) {
  if (gemmUsesF16(base)) requireShaderF16(ctx, prefix);
  const name = variant ?? variantFor(ctx, gemmKey(base.bLayout, d, base), defaultGemmVariant(ctx.gpu.software, d.M), (tuned) => gemmCandidates(d.M, gemmUsesF16(base)).includes(tuned));
  const slices = parseSplitKName(name);
  if (slices !== null && !gemmUsesF16(base) && splitKFits(d, slices)) {
    runSplitK(ctx, prefix, base, d, buffers, slices);
    return;
  }
  const tiled = TILES[name] ?? (slices !== null ? TILE_64 : void 0);
  if (tiled) {
    dispatchGemm(ctx, gemmSpec(prefix, {
      ...base,
      tile: tiled
    }), tiled, d, buffers);
    return;
  }
  const kst = parseKStageName(name);
  if (kst) {
    dispatchGemm(ctx, kStageGemmSpec(prefix, {
      ...base,
      ...kst
    }), kst.tile, d, buffers);
    return;
  }
  const reg = name.startsWith("reg_") ? parseRegisterTile(name.slice(4)) : null;
  if (!reg) throw new Error(`${prefix}: unknown GEMM variant "${name}"`);
  const { bm, bn } = registerBlock(reg);
  const tilesN = Math.ceil(d.N / bn);
  const tilesM = Math.ceil(d.M / bm);
  if (tilesN > MAX_WORKGROUPS_PER_DIM || tilesM > MAX_WORKGROUPS_PER_DIM || d.batch > MAX_WORKGROUPS_PER_DIM) {
    dispatchGemm(ctx, gemmSpec(prefix, {
      ...base,
      tile: TILE_128
    }), TILE_128, d, buffers);
    return;
  }
  const params = new Params().u32(d.M, d.N, d.K, d.strideA, d.strideB, d.strideOut).build();
  ctx.dispatch(registerGemmSpec(prefix, {
    ...base,
    tile: reg
  }), params, buffers, [
    tilesN,
    tilesM,
    d.batch
  ]);
}
function matmul(ctx, a, b, opts = {}) {
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new Error(`matmul: need a and b of rank >= 2, got [${a.shape}] and [${b.shape}]`);
  }
  const M = a.shape[a.shape.length - 2];
  const K = a.shape[a.shape.length - 1];
  const [bRows, bCols] = b.shape.slice(-2);
  const [Kb, N] = opts.transposeB ? [
    bCols,
    bRows
  ] : [
    bRows,
    bCols
  ];
  if (Kb !== K) {
    throw new Error(`matmul: inner dims differ: a [${a.shape}] has K=${K}, b [${b.shape}]${opts.transposeB ? " (transposed)" : ""} has K=${Kb}`);
  }
  if (K === 0) throw new Error("matmul: K must be at least 1");
  const batch = M === 0 ? 0 : a.size / (M * K);
  const bBatch = N === 0 ? opts.broadcastB ? 1 : batch : b.size / (K * N);
  if (opts.broadcastB ? bBatch !== 1 : bBatch !== batch) {
    throw new Error(`matmul: b [${b.shape}] has batch ${bBatch}, need ${opts.broadcastB ? 1 : batch} (a [${a.shape}])`);
  }
  const outShape = [
    ...a.shape.slice(0, -2),
    M,
    N
  ];
  const y = opts.out ?? emptyTensor(ctx, outShape, "matmul.out");
  if (y.size !== batch * M * N) {
    throw new Error(`matmul: out has ${y.size} elements, need ${batch * M * N}`);
  }
  if (y.buffer === a.buffer || y.buffer === b.buffer) {
    throw new Error("matmul: out must not alias an input");
  }
  const bLayout = opts.transposeB ? "nk" : "kn";
  runGemm(ctx, opts.transposeB ? "matmul_nt" : "matmul_nn", {
    bLayout,
    vecA: K % 4 === 0,
    vecB: bLayout === "nk" ? K % 4 === 0 : N % 4 === 0,
    bias: false,
    activation: "none",
    residual: false,
    ...a.dtype === "f16" ? {
      aF16: true
    } : {},
    ...b.dtype === "f16" ? {
      bF16: true
    } : {},
    ...y.dtype === "f16" ? {
      outF16: true
    } : {}
  }, {
    batch,
    M,
    N,
    K,
    strideA: M * K,
    strideB: opts.broadcastB ? 0 : K * N,
    strideOut: M * N
  }, [
    a.buffer,
    b.buffer,
    y.buffer
  ], opts.variant);
  return y;
}

// src/kernels/linear.ts
function linear(ctx, x, weight, bias, opts = {}) {
  const activation2 = opts.activation ?? "none";
  if (weight.shape.length !== 2) {
    throw new Error(`linear: weight must be [N, K], got [${weight.shape}]`);
  }
  const [N, K] = weight.shape;
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== K) {
    throw new Error(`linear: x [${x.shape}] must end in K=${K} (weight [${weight.shape}])`);
  }
  if (K === 0) throw new Error("linear: K must be at least 1");
  const M = x.size / K;
  for (const [t, what] of [
    [
      bias,
      "bias"
    ],
    [
      opts.residual,
      "residual"
    ]
  ]) {
    if (t && t.dtype !== "f32") throw new Error(`linear: ${what} must be f32, got ${t.dtype}`);
  }
  if (bias && bias.size !== N) {
    throw new Error(`linear: bias has ${bias.size} elements, need N=${N}`);
  }
  const outShape = [
    ...x.shape.slice(0, -1),
    N
  ];
  const residual = opts.residual;
  if (residual && residual.size !== M * N) {
    throw new Error(`linear: residual [${residual.shape}] has ${residual.size} elements, need ${M * N}`);
  }
  const y = opts.out ?? emptyTensor(ctx, outShape, "linear.out");
  if (y.size !== M * N) throw new Error(`linear: out has ${y.size} elements, need ${M * N}`);
  for (const [t, what] of [
    [
      x,
      "x"
    ],
    [
      weight,
      "weight"
    ],
    [
      bias,
      "bias"
    ],
    [
      residual,
      "residual"
    ]
  ]) {
    if (t && t.buffer === y.buffer) {
      throw new Error(`linear: out must not share a buffer with ${what}`);
    }
  }
  const buffers = [
    x.buffer,
    weight.buffer
  ];
  if (bias) buffers.push(bias.buffer);
  if (residual) buffers.push(residual.buffer);
  buffers.push(y.buffer);
  runGemm(ctx, "linear", {
    bLayout: "nk",
    vecA: K % 4 === 0,
    vecB: K % 4 === 0,
    bias: bias !== null,
    activation: activation2,
    residual: residual !== void 0,
    // precision "f16": f16 operands pick the "_f16..." variant (f32 accumulation).
    ...x.dtype === "f16" ? {
      aF16: true
    } : {},
    ...weight.dtype === "f16" ? {
      bF16: true
    } : {},
    ...y.dtype === "f16" ? {
      outF16: true
    } : {}
  }, {
    batch: 1,
    M,
    N,
    K,
    strideA: 0,
    strideB: 0,
    strideOut: 0
  }, buffers, opts.variant);
  return y;
}

// src/kernels/strided_copy.ts
var WG3 = 256;
var STRIDED_COPY = {
  name: "strided_copy_4d",
  bindings: [
    "uniform",
    "read",
    "write"
  ],
  code: () => (
    /* wgsl */
    `
struct P { n: u32, offset: u32, d1: u32, d2: u32, d3: u32, s0: u32, s1: u32, s2: u32, s3: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(${WG3})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG3}u;
  if (i >= p.n) { return; }
  // Output index i = ((i0 * d1 + i1) * d2 + i2) * d3 + i3.
  let i3 = i % p.d3;
  let r3 = i / p.d3;
  let i2 = r3 % p.d2;
  let r2 = r3 / p.d2;
  let i1 = r2 % p.d1;
  let i0 = r2 / p.d1;
  dst[i] = src[p.offset + i0 * p.s0 + i1 * p.s1 + i2 * p.s2 + i3 * p.s3];
}`
  )
};
function stridedCopy(ctx, x, view, out) {
  const { shape, strides, offset } = view;
  if (shape.length < 1 || shape.length > 4 || strides.length !== shape.length) {
    throw new Error(`stridedCopy: need 1-4 dims with one stride each, got [${shape}] / [${strides}]`);
  }
  const d = [
    ...Array(4 - shape.length).fill(1),
    ...shape
  ];
  const s = [
    ...Array(4 - strides.length).fill(0),
    ...strides
  ];
  const n = d.reduce((a, b) => a * b, 1);
  let last = offset;
  for (let k = 0; k < 4; k++) last += (d[k] - 1) * s[k];
  if (n > 0 && (offset < 0 || last >= x.size)) {
    throw new Error(`stridedCopy: view reaches element ${last} of a tensor of ${x.size} ([${x.shape}])`);
  }
  const y = out ?? emptyTensor(ctx, shape, "strided_copy.out");
  if (y.size !== n) throw new Error(`stridedCopy: out has ${y.size} elements, need ${n}`);
  const params = new Params().u32(n, offset, d[1], d[2], d[3], s[0], s[1], s[2], s[3]).build();
  ctx.dispatch(STRIDED_COPY, params, [
    x.buffer,
    y.buffer
  ], grid(Math.ceil(n / WG3)));
  return y;
}

// src/kernels/conv_transpose2d.ts
var WG4 = 64;
var WGSL_ERF = (
  /* wgsl */
  `
fn erf_f32(x: f32) -> f32 {
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  let r = 1.0 - poly * exp(-a * a);
  return select(r, -r, x < 0.0);
}
fn gelu_f32(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752)); }
`
);
function spec(gelu) {
  return {
    name: gelu ? "conv_transpose2d_k2s2_gelu_f32" : "conv_transpose2d_k2s2_f32",
    bindings: [
      "uniform",
      "read",
      "read",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
struct P { n: u32, h: u32, w: u32, cin: u32, cout: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${WGSL_ERF}
@compute @workgroup_size(${WG4})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  // One invocation per (b, i, j, co); n = B * H * W * Cout.
  let idx = gid.x + gid.y * nwg.x * ${WG4}u;
  if (idx >= p.n) { return; }
  let co = idx % p.cout;
  let pix = idx / p.cout; // (b * H + i) * W + j
  let j = pix % p.w;
  let bi = pix / p.w; // b * H + i
  var acc = vec4<f32>(0.0);
  let xrow = pix * p.cin;
  for (var ci = 0u; ci < p.cin; ci++) {
    acc += x[xrow + ci] * wt[ci * p.cout + co];
  }
  acc += vec4<f32>(bias[co]);
  ${gelu ? "acc = vec4<f32>(gelu_f32(acc.x), gelu_f32(acc.y), gelu_f32(acc.z), gelu_f32(acc.w));" : ""}
  // acc = (di, dj) = (0,0), (0,1), (1,0), (1,1); output row 2i+di of image b is 2*(b*H+i)+di.
  let w2 = 2u * p.w;
  let top = ((2u * bi) * w2 + 2u * j) * p.cout + co;
  let bottom = top + w2 * p.cout;
  y[top] = acc.x;
  y[top + p.cout] = acc.y;
  y[bottom] = acc.z;
  y[bottom + p.cout] = acc.w;
}`
    )
  };
}
var PLAIN = spec(false);
var WITH_GELU = spec(true);
function packConvTranspose2d(ctx, weight, bias, cin, cout, label = "conv_transpose2d") {
  if (weight.length !== cin * cout * 4 || bias.length !== cout) {
    throw new Error(`packConvTranspose2d: need weight [${cin}, ${cout}, 2, 2] and bias [${cout}], got ${weight.length} and ${bias.length} values`);
  }
  const w = new Float32Array(4 * cout * cin);
  const b = new Float32Array(4 * cout);
  for (let k = 0; k < 4; k++) {
    for (let co = 0; co < cout; co++) {
      const row = k * cout + co;
      for (let ci = 0; ci < cin; ci++) w[row * cin + ci] = weight[(ci * cout + co) * 4 + k];
      b[row] = bias[co];
    }
  }
  return {
    weight: tensorFrom(ctx, w, [
      4 * cout,
      cin
    ], `${label}.packed_weight`),
    bias: tensorFrom(ctx, b, [
      4 * cout
    ], `${label}.packed_bias`),
    cin,
    cout
  };
}
function convTranspose2dGemm(ctx, x, packed, opts = {}) {
  if (x.shape.length !== 3 && x.shape.length !== 4) {
    throw new Error(`convTranspose2dGemm: x must be [B, H, W, Cin] or [H, W, Cin], got [${x.shape}]`);
  }
  const [b, h, w, cin] = x.shape.length === 4 ? x.shape : [
    1,
    ...x.shape
  ];
  if (cin !== packed.cin) {
    throw new Error(`convTranspose2dGemm: x has ${cin} channels, the weight expects ${packed.cin}`);
  }
  const cout = packed.cout;
  const y = linear(ctx, x, packed.weight, packed.bias, {
    activation: opts.activation ?? "none"
  });
  if (opts.pixelOrder === "blocks") return y.reshape([
    b,
    h,
    w,
    2,
    2,
    cout
  ]);
  if (opts.temps) opts.temps.push(y);
  const out = stridedCopy(ctx, y, {
    offset: 0,
    shape: [
      b * h,
      2,
      w,
      2 * cout
    ],
    strides: [
      w * 4 * cout,
      2 * cout,
      4 * cout,
      1
    ]
  });
  const outShape = x.shape.length === 4 ? [
    b,
    2 * h,
    2 * w,
    cout
  ] : [
    2 * h,
    2 * w,
    cout
  ];
  return out.reshape(outShape);
}

// src/kernels/softmax.ts
var WG5 = 256;
function rowReduceWgsl(tpr) {
  return (
    /* wgsl */
    `
var<workgroup> red: array<f32, ${WG5}>;

fn row_reduce(tid: u32, lane: u32, value: f32, is_max: bool) -> f32 {
  red[tid] = value;
  workgroupBarrier();
  for (var s = ${tpr / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) {
      let other = red[tid + s];
      red[tid] = select(red[tid] + other, max(red[tid], other), is_max);
    }
    workgroupBarrier();
  }
  let total = red[tid - lane];
  workgroupBarrier();
  return total;
}`
  );
}
function softmaxSpec(tpr) {
  return {
    name: `softmax_t${tpr}_f32`,
    bindings: [
      "uniform",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
struct P { rows: u32, L: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

${rowReduceWgsl(tpr)}
@compute @workgroup_size(${WG5})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) tid: u32) {
  let lane = tid % ${tpr}u;
  let row = (wg.x + wg.y * nwg.x) * ${WG5 / tpr}u + tid / ${tpr}u;
  // Rows past the end still join the barriers (with an empty range).
  let len = select(0u, p.L, row < p.rows);
  let base = row * p.L;
  var m = -3.402823466e+38;
  for (var c = lane; c < len; c += ${tpr}u) { m = max(m, x[base + c]); }
  m = row_reduce(tid, lane, m, true);
  var s = 0.0;
  for (var c = lane; c < len; c += ${tpr}u) { s += exp(x[base + c] - m); }
  s = row_reduce(tid, lane, s, false);
  let inv = 1.0 / s;
  for (var c = lane; c < len; c += ${tpr}u) { out[base + c] = exp(x[base + c] - m) * inv; }
}`
    )
  };
}
var NARROW = softmaxSpec(32);
var WIDE = softmaxSpec(256);

// src/kernels/layer_norm.ts
var WG6 = 256;
var SHAPES = [
  {
    tpr: 32,
    vpt: 8
  },
  {
    tpr: 32,
    vpt: 40
  },
  {
    tpr: 256,
    vpt: 32
  }
];
function layerNormSpec({ tpr, vpt }) {
  return {
    name: `layer_norm_t${tpr}v${vpt}_f32`,
    bindings: [
      "uniform",
      "read",
      "read",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
struct P { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

${rowReduceWgsl(tpr)}

@compute @workgroup_size(${WG6})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) tid: u32) {
  let lane = tid % ${tpr}u;
  let row = (wg.x + wg.y * nwg.x) * ${WG6 / tpr}u + tid / ${tpr}u;
  // Rows past the end still join the barriers.
  let valid = row < p.rows;
  let base = row * p.C;
  var v: array<f32, ${vpt}>;
  var s = 0.0;
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    v[i] = 0.0;
    if (valid && c < p.C) { v[i] = x[base + c]; s += v[i]; }
  }
  let mean = row_reduce(tid, lane, s, false) / f32(p.C);
  var q = 0.0;
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    if (c < p.C) { let d = v[i] - mean; q += d * d; }
  }
  let sd = sqrt(row_reduce(tid, lane, q, false) / f32(p.C) + p.eps);
  if (!valid) { return; }
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    if (c < p.C) { out[base + c] = (v[i] - mean) / sd * weight[c] + bias[c]; }
  }
}`
    )
  };
}
var SPECS2 = SHAPES.map((s) => ({
  ...s,
  spec: layerNormSpec(s)
}));
var ROWS_WG = 64;
var LAYER_NORM_ROWS = {
  name: "layer_norm_rows_f32",
  bindings: [
    "uniform",
    "read",
    "read",
    "read",
    "write"
  ],
  code: () => (
    /* wgsl */
    `
struct P { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${ROWS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * ${ROWS_WG}u;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let pivot = x[base];
  var s = 0.0;
  for (var c = 1u; c < p.C; c++) { s += x[base + c] - pivot; }
  let mean = pivot + s / f32(p.C);
  var q = 0.0;
  for (var c = 0u; c < p.C; c++) { let d = x[base + c] - mean; q += d * d; }
  let sd = sqrt(q / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) {
    out[base + c] = (x[base + c] - mean) / sd * weight[c] + bias[c];
  }
}`
  )
};
var ROWS_V4_STEP = 16;
var LAYER_NORM_ROWS_V4 = {
  name: "layer_norm_rows_v4_f32",
  bindings: [
    "uniform",
    "read",
    "read",
    "read",
    "write"
  ],
  code: () => {
    const I = [
      0,
      1,
      2,
      3
    ];
    const sum = (f3) => I.map(f3).join(" + ");
    return (
      /* wgsl */
      `
struct P { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(${ROWS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * ${ROWS_WG}u;
  if (row >= p.rows) { return; }
  let c4 = p.C / 4u;
  let base = row * c4;
  // Sums relative to the row's first value (as the scalar kernel), against cancellation.
  let pivot = x[base].x;
  var s = vec4<f32>(0.0);
  for (var c = 0u; c < c4; c += 4u) {
    s += ${sum((i) => `(x[base + c + ${i}u] - pivot)`)};
  }
  let mean = pivot + dot(s, vec4<f32>(1.0)) / f32(p.C);
  var q = vec4<f32>(0.0);
  for (var c = 0u; c < c4; c += 4u) {
${I.map((i) => `    let d${i} = x[base + c + ${i}u] - mean;`).join("\n")}
    q += ${sum((i) => `d${i} * d${i}`)};
  }
  let sd = sqrt(dot(q, vec4<f32>(1.0)) / f32(p.C) + p.eps);
  for (var c = 0u; c < c4; c += 4u) {
${I.map((i) => `    out[base + c + ${i}u] = (x[base + c + ${i}u] - mean) / sd * weight[c + ${i}u] + bias[c + ${i}u];`).join("\n")}
  }
}`
    );
  }
};
function defaultLayerNormVariant(software) {
  return software ? "rows" : "warp";
}
function normOutput(ctx, op, x, weight, bias, C, out) {
  if (weight.size !== C || bias.size !== C) {
    throw new Error(`${op}: weight (${weight.size}) and bias (${bias.size}) need C=${C} elements`);
  }
  const y = out ?? emptyTensor(ctx, x.shape, `${op}.out`);
  if (y.size !== x.size) throw new Error(`${op}: out has ${y.size} elements, need ${x.size}`);
  if (y.buffer === x.buffer) throw new Error(`${op}: out must not alias x`);
  return y;
}
function layerNorm(ctx, x, weight, bias, eps, out, variant = defaultLayerNormVariant(ctx.gpu.software)) {
  const C = x.shape[x.shape.length - 1];
  if (!C) throw new Error(`layerNorm: x [${x.shape}] has no last dim to normalise`);
  const chosen = SPECS2.find((s) => C <= s.tpr * s.vpt);
  if (!chosen) {
    const max = SHAPES[SHAPES.length - 1];
    throw new Error(`layerNorm: C=${C} is over the supported ${max.tpr * max.vpt}`);
  }
  const y = normOutput(ctx, "layerNorm", x, weight, bias, C, out);
  const rows = x.size / C;
  const params = new Params().u32(rows, C).f32(eps).build();
  const buffers = [
    x.buffer,
    weight.buffer,
    bias.buffer,
    y.buffer
  ];
  if (variant === "rows") {
    const spec4 = C % ROWS_V4_STEP === 0 ? LAYER_NORM_ROWS_V4 : LAYER_NORM_ROWS;
    ctx.dispatch(spec4, params, buffers, grid(Math.ceil(rows / ROWS_WG)));
    return y;
  }
  const rowsPerGroup = WG6 / chosen.tpr;
  ctx.dispatch(chosen.spec, params, buffers, grid(Math.ceil(rows / rowsPerGroup)));
  return y;
}

// src/weights/lazy.ts
var DTYPE_SIZE = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  uint8: 1
};
function numel2(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

// src/weights/host_tensor.ts
function halfToFloat(h) {
  const sign = h & 32768 ? -1 : 1;
  const exp = h >> 10 & 31;
  const frac = h & 1023;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
function tensorF32(t) {
  const n = numel2(t.shape);
  const size = DTYPE_SIZE[t.dtype];
  if (t.bytes.length !== n * size) {
    throw new Error(`tensorF32: tensor '${t.name}' has ${t.bytes.length} bytes, shape [${t.shape}] of ${t.dtype} needs ${n * size}`);
  }
  const b = t.bytes;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (t.dtype) {
    case "float32":
      if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, n);
      return new Float32Array(b.slice().buffer);
    case "float16": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      return out;
    }
    case "bfloat16": {
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
      throw new Error(`tensorF32: tensor '${t.name}' has integer dtype ${t.dtype}; refusing to read it as float32`);
  }
}

// src/kernels/resize_bilinear.ts
var WG7 = 64;
var WGSL_AXIS = (
  /* wgsl */
  `
struct Axis { i0: u32, i1: u32, l0: f32, l1: f32 }
fn axis(dst: u32, scale: f32, n_in: u32) -> Axis {
  let src = max(scale * (f32(dst) + 0.5) - 0.5, 0.0);
  let i0 = min(u32(src), n_in - 1u);
  let i1 = select(i0, i0 + 1u, i0 < n_in - 1u);
  let l1 = src - f32(i0);
  return Axis(i0, i1, 1.0 - l1, l1);
}
`
);
function resizeScale(nIn, nOut) {
  return Math.fround(Math.fround(nIn) / Math.fround(nOut));
}
function postprocessSpec(bits) {
  const sample = (
    /* wgsl */
    `
fn inter(base: u32, a: u32, b: u32) -> f32 {
  // Value of the (imgSize x imgSize) intermediate at row a, column b (a, b inside the crop).
  let ay = axis(a, p.scale1, p.low);
  let ax = axis(b, p.scale1, p.low);
  let r0 = base + ay.i0 * p.low;
  let r1 = base + ay.i1 * p.low;
  let t0 = x[r0 + ax.i0] * ax.l0 + x[r0 + ax.i1] * ax.l1;
  let t1 = x[r1 + ax.i0] * ax.l0 + x[r1 + ax.i1] * ax.l1;
  return t0 * ay.l0 + t1 * ay.l1;
}
fn pixel(plane: u32, oy: u32, ox: u32) -> f32 {
  let base = (p.first + plane) * p.low * p.low;
  let ay = axis(oy, p.scale2h, p.in_h);
  let ax = axis(ox, p.scale2w, p.in_w);
  let t0 = inter(base, ay.i0, ax.i0) * ax.l0 + inter(base, ay.i0, ax.i1) * ax.l1;
  let t1 = inter(base, ay.i1, ax.i0) * ax.l0 + inter(base, ay.i1, ax.i1) * ax.l1;
  return t0 * ay.l0 + t1 * ay.l1;
}`
  );
  return {
    name: bits ? "sam_postprocess_bits" : "sam_postprocess_f32",
    bindings: [
      "uniform",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
struct P {
  n: u32, low: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32, words: u32, first: u32,
  scale1: f32, scale2h: f32, scale2w: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<${bits ? "u32" : "f32"}>;
${WGSL_AXIS}
${sample}
@compute @workgroup_size(${WG7})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * ${WG7}u;
  if (idx >= p.n) { return; }
  ${bits ? `
  // n = planes * words; word w of a plane holds pixels 32w .. 32w+31.
  let plane = idx / p.words;
  let start = (idx % p.words) * 32u;
  let count = min(32u, p.out_h * p.out_w - start);
  var word = 0u;
  for (var k = 0u; k < count; k++) {
    let q = start + k;
    if (pixel(plane, q / p.out_w, q % p.out_w) > 0.0) { word |= 1u << k; }
  }
  y[idx] = word;` : `
  let ox = idx % p.out_w;
  let oy = (idx / p.out_w) % p.out_h;
  let plane = idx / (p.out_w * p.out_h);
  y[idx] = pixel(plane, oy, ox);`}
}`
    )
  };
}
var POST_LOGITS = postprocessSpec(false);
var POST_BITS = postprocessSpec(true);
function maskWordsPerPlane(originalSize) {
  return Math.ceil(originalSize[0] * originalSize[1] / 32);
}
function samPostprocess(ctx, lowRes, geo, output = "logits", out, planes) {
  const s = lowRes.shape;
  if (s.length < 2 || s[s.length - 1] !== s[s.length - 2]) {
    throw new Error(`samPostprocess: low-res logits must be [..., l, l], got [${s}]`);
  }
  const low = s[s.length - 1];
  const allPlanes = lowRes.size / (low * low);
  const first = planes?.first ?? 0;
  const count = planes?.count ?? allPlanes;
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || first + count > allPlanes) {
    throw new Error(`samPostprocess: planes ${first}..${first + count - 1} outside 0..${allPlanes - 1}`);
  }
  const [inH, inW] = geo.inputSize;
  const [outH, outW] = geo.originalSize;
  for (const v of [
    geo.imgSize,
    inH,
    inW,
    outH,
    outW
  ]) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`samPostprocess: sizes must be positive integers, got ${JSON.stringify(geo)}`);
    }
  }
  if (inH > geo.imgSize || inW > geo.imgSize) {
    throw new Error(`samPostprocess: input size ${inH}x${inW} exceeds imgSize ${geo.imgSize}`);
  }
  const words = maskWordsPerPlane([
    outH,
    outW
  ]);
  const n = output === "bits" ? count * words : count * outH * outW;
  const lead = planes ? [
    count
  ] : s.slice(0, -2);
  const shape = output === "bits" ? [
    ...lead,
    words
  ] : [
    ...lead,
    outH,
    outW
  ];
  const y = out ?? emptyTensor(ctx, shape, `sam_postprocess.${output}`);
  if (y.size !== n) throw new Error(`samPostprocess: out has ${y.size} elements, need ${n}`);
  const params = new Params().u32(n, low, inH, inW, outH, outW, words, first).f32(resizeScale(low, geo.imgSize), resizeScale(inH, outH), resizeScale(inW, outW)).build();
  ctx.dispatch(output === "bits" ? POST_BITS : POST_LOGITS, params, [
    lowRes.buffer,
    y.buffer
  ], grid(Math.ceil(n / WG7)));
  return y;
}

// src/decoder/postprocess.ts
var CHUNK_BYTES = 64 * 1024 * 1024;
function unpackMaskBits(words, pixels) {
  const out = new Uint8Array(pixels);
  for (let q = 0; q < pixels; q++) out[q] = words[q >>> 5] >>> (q & 31) & 1;
  return out;
}
function postprocessReadBytes(planes, originalSize, output) {
  const [h, w] = originalSize;
  return planes * (output === "masks" ? maskWordsPerPlane([
    h,
    w
  ]) * 4 : h * w * 4);
}
function samPostprocessRecord(ctx, lowRes, geo, output, rb) {
  const low = lowRes.shape[lowRes.shape.length - 1];
  const planes = lowRes.size / (low * low);
  const [h, w] = geo.originalSize;
  const useLogits = output !== "masks";
  const words = maskWordsPerPlane([
    h,
    w
  ]);
  const planeBytes = useLogits ? h * w * 4 : words * 4;
  const limit = Math.min(CHUNK_BYTES, ctx.device.limits.maxStorageBufferBindingSize);
  if (planeBytes > ctx.device.limits.maxStorageBufferBindingSize) {
    throw new Error(`postprocess: one ${h}x${w} plane of ${useLogits ? "logits" : "mask bits"} is ${planeBytes} bytes, over the device's storage binding limit`);
  }
  const perChunk = Math.max(1, Math.floor(limit / planeBytes));
  const chunks = [];
  for (let first = 0; first < planes; first += perChunk) {
    const count = Math.min(perChunk, planes - first);
    const y = samPostprocess(ctx, lowRes, geo, useLogits ? "logits" : "bits", void 0, {
      first,
      count
    });
    rb.destroyAfterSubmit(y);
    chunks.push({
      first,
      count,
      range: rb.copy(y.buffer, 0, count * planeBytes)
    });
  }
  return (data, onPlane) => {
    for (const { first, count, range: range4 } of chunks) {
      const bytes = data[range4];
      for (let k = 0; k < count; k++) {
        if (useLogits) {
          const logits = new Float32Array(bytes, k * h * w * 4, h * w);
          let masks = null;
          if (output === "both") {
            masks = new Uint8Array(h * w);
            for (let q = 0; q < h * w; q++) masks[q] = logits[q] > 0 ? 1 : 0;
          }
          onPlane(first + k, masks, logits);
        } else {
          onPlane(first + k, unpackMaskBits(new Uint32Array(bytes, k * words * 4, words), h * w), null);
        }
      }
    }
  };
}
async function samPostprocessRead(ctx, lowRes, geo, output, onPlane) {
  const low = lowRes.shape[lowRes.shape.length - 1];
  const planes = lowRes.size / (low * low);
  const rb = new Readback(ctx, postprocessReadBytes(planes, geo.originalSize, output));
  const finish = samPostprocessRecord(ctx, lowRes, geo, output, rb);
  finish(await rb.map(), onPlane);
}

// src/kernels/im2col.ts
var WG8 = 256;
var IM2COL = {
  name: "im2col_f32",
  bindings: [
    "uniform",
    "read",
    "write"
  ],
  code: () => (
    /* wgsl */
    `
struct P {
  n: u32, cols: u32, wout: u32, kh: u32, kw: u32, h: u32, w: u32, stride: u32,
  padding: u32, sc: u32, sy: u32, sx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(${WG8})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG8}u;
  if (i >= p.n) { return; }
  // i = row * cols + j; row = oy * wout + ox; j = (c * kh + ky) * kw + kx.
  let row = i / p.cols;
  let j = i % p.cols;
  let ox = row % p.wout;
  let oy = row / p.wout;
  let kx = j % p.kw;
  let ky = (j / p.kw) % p.kh;
  let c = j / (p.kw * p.kh);
  // Signed so that padding reaches below zero.
  let iy = i32(oy * p.stride + ky) - i32(p.padding);
  let ix = i32(ox * p.stride + kx) - i32(p.padding);
  var v = 0.0;
  if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
    v = x[c * p.sc + u32(iy) * p.sy + u32(ix) * p.sx];
  }
  cols[i] = v;
}`
  )
};
function convOutSize(size, k, stride, padding) {
  return Math.floor((size + 2 * padding - k) / stride) + 1;
}
function convInputDims(x, layout) {
  const s = x.shape;
  const dims = s.length === 4 && s[0] === 1 ? s.slice(1) : s;
  if (dims.length !== 3) {
    throw new Error(`conv: input must be [${layout.split("").join(", ")}] (3-D), got [${s}]`);
  }
  return layout === "chw" ? {
    cin: dims[0],
    h: dims[1],
    w: dims[2]
  } : {
    cin: dims[2],
    h: dims[0],
    w: dims[1]
  };
}
function im2col(ctx, x, layout, k, out) {
  const { cin, h, w } = convInputDims(x, layout);
  const { kh, kw, stride, padding } = k;
  for (const [name, v] of Object.entries({
    kh,
    kw,
    stride
  })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`im2col: ${name} must be >= 1, got ${v}`);
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new Error(`im2col: padding must be a non-negative integer, got ${padding}`);
  }
  const hout = convOutSize(h, kh, stride, padding);
  const wout = convOutSize(w, kw, stride, padding);
  if (hout < 1 || wout < 1) {
    throw new Error(`im2col: kernel ${kh}x${kw} (padding ${padding}) larger than input ${h}x${w}`);
  }
  const cols = cin * kh * kw;
  const shape = [
    hout * wout,
    cols
  ];
  const y = out ?? emptyTensor(ctx, shape, "im2col.out");
  if (y.size < hout * wout * cols) {
    throw new Error(`im2col: out has ${y.size} elements, need ${hout * wout * cols}`);
  }
  const [sc, sy, sx] = layout === "chw" ? [
    h * w,
    w,
    1
  ] : [
    1,
    w * cin,
    cin
  ];
  const n = hout * wout * cols;
  const params = new Params().u32(n, cols, wout, kh, kw, h, w, stride, padding, sc, sy, sx).build();
  ctx.dispatch(IM2COL, params, [
    x.buffer,
    y.buffer
  ], grid(Math.ceil(n / WG8)));
  return new Tensor(ctx, y.buffer, shape, y.label);
}

// src/kernels/conv2d.ts
function conv2d(ctx, x, layout, weight, bias, opts) {
  const { cin, h, w } = convInputDims(x, layout);
  if (weight.shape.length !== 4) {
    throw new Error(`conv2d: weight must be [Cout, Cin, kh, kw], got [${weight.shape}]`);
  }
  const [cout, wcin, kh, kw] = weight.shape;
  if (wcin !== cin) {
    throw new Error(`conv2d: input has ${cin} channels, weight [${weight.shape}] expects ${wcin}`);
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== cout)) {
    throw new Error(`conv2d: bias must be [${cout}], got [${bias.shape}]`);
  }
  const { stride, padding } = opts;
  const hout = convOutSize(h, kh, stride, padding);
  const wout = convOutSize(w, kw, stride, padding);
  const k = cin * kh * kw;
  const w2 = weight.reshape([
    cout,
    k
  ]);
  let cols;
  if (layout === "hwc" && kh === 1 && kw === 1 && stride === 1 && padding === 0) {
    cols = x.reshape([
      h * w,
      cin
    ]);
  } else {
    cols = im2col(ctx, x, layout, {
      kh,
      kw,
      stride,
      padding
    }, opts.scratch);
    if (!opts.scratch) opts.temps?.push(cols);
  }
  const out = opts.out ? viewAs(opts.out, [
    hout * wout,
    cout
  ]) : void 0;
  const y = linear(ctx, cols, w2, bias, {
    out
  });
  return y.reshape([
    hout,
    wout,
    cout
  ]);
}
function viewAs(t, shape) {
  const n = numel(shape);
  if (t.size === n) return t.reshape(shape);
  if (t.size < n) throw new Error(`conv2d: out has ${t.size} elements, need ${n}`);
  return new Tensor(t.ctx, t.buffer, shape, t.label);
}

// src/decoder/prompt_encoder.ts
var f = Math.fround;
var TWO_PI = f(2 * Math.PI);
var LN2D_EPS = 1e-6;
function sparseTokenCount(p) {
  const points = p.labels ? p.labels.length : 0;
  const hasPoints = points > 0;
  return (hasPoints ? points + (p.box ? 0 : 1) : 0) + (p.box ? 2 : 0);
}
function host(sd, name) {
  const t = sd.get(name);
  if (!t) throw new Error(`prompt encoder: checkpoint has no tensor '${name}'`);
  return tensorF32(t);
}
function uploadWeight(ctx, sd, name, shape) {
  const t = sd.get(name);
  if (!t) throw new Error(`decoder: checkpoint has no tensor '${name}'`);
  return tensorFrom(ctx, tensorF32(t), shape ?? t.shape, name);
}
function uploadMatrix(ctx, sd, name, precision) {
  if (precision !== "f16") return uploadWeight(ctx, sd, name);
  const t = sd.get(name);
  if (!t) throw new Error(`decoder: checkpoint has no tensor '${name}'`);
  return tensorFromF16(ctx, tensorF32(t), t.shape, name);
}
var PromptEncoder = class _PromptEncoder {
  ctx;
  embedDim;
  /** Side of the image embedding (s); mask prompts are 4s x 4s. */
  embedSize;
  imgSize;
  /** positional_encoding_gaussian_matrix [2, D/2]. */
  gaussian;
  /** point_embeddings[0..3]: background, foreground, box corner 0, box corner 1. */
  pointEmbeddings;
  notAPoint;
  noMaskEmbed;
  maskDown;
  densePeTokens;
  noMaskTensor;
  constructor(ctx, sd, arch, p) {
    this.ctx = ctx;
    this.densePeTokens = null;
    this.noMaskTensor = null;
    this.embedDim = arch.promptEmbedDim;
    this.embedSize = arch.imgSize / arch.patchSize;
    this.imgSize = arch.imgSize;
    this.gaussian = host(sd, `${p}pe_layer.positional_encoding_gaussian_matrix`);
    if (this.gaussian.length !== this.embedDim) {
      throw new Error(`prompt encoder: gaussian matrix has ${this.gaussian.length} values, need 2 x ${this.embedDim / 2}`);
    }
    this.pointEmbeddings = [
      0,
      1,
      2,
      3
    ].map((i) => host(sd, `${p}point_embeddings.${i}.weight`));
    this.notAPoint = host(sd, `${p}not_a_point_embed.weight`);
    this.noMaskEmbed = host(sd, `${p}no_mask_embed.weight`);
    const up = (n, shape) => uploadWeight(ctx, sd, `${p}${n}`, shape);
    const conv6 = sd.get(`${p}mask_downscaling.6.weight`);
    this.maskDown = {
      conv0: {
        w: up("mask_downscaling.0.weight"),
        b: up("mask_downscaling.0.bias")
      },
      ln1: {
        w: up("mask_downscaling.1.weight"),
        b: up("mask_downscaling.1.bias")
      },
      conv3: {
        w: up("mask_downscaling.3.weight"),
        b: up("mask_downscaling.3.bias")
      },
      ln4: {
        w: up("mask_downscaling.4.weight"),
        b: up("mask_downscaling.4.bias")
      },
      conv6: {
        // [D, maskInChans, 1, 1] viewed as [D, maskInChans]
        w: up("mask_downscaling.6.weight", [
          conv6.shape[0],
          conv6.shape[1]
        ]),
        b: up("mask_downscaling.6.bias")
      }
    };
  }
  static create(ctx, sd, arch, prefix = "prompt_encoder.") {
    return new _PromptEncoder(ctx, sd, arch, prefix);
  }
  /**
   * PositionEmbeddingRandom._pe_encoding of one point already normalised to [0, 1], written
   * into out[offset .. offset + D): sin of the D/2 projections, then cos.
   */
  peEncode(nx, ny, out, offset) {
    const half = this.embedDim / 2;
    const cx = f(f(2 * nx) - 1), cy = f(f(2 * ny) - 1);
    for (let k = 0; k < half; k++) {
      const proj = f(f(cx * this.gaussian[k]) + f(cy * this.gaussian[half + k]));
      const arg = f(TWO_PI * proj);
      out[offset + k] = f(Math.sin(arg));
      out[offset + half + k] = f(Math.cos(arg));
    }
  }
  /** forward_with_coords for one input-frame point (after the +0.5 shift). */
  peAt(x, y, out, offset) {
    this.peEncode(f(x / this.imgSize), f(y / this.imgSize), out, offset);
  }
  /** get_dense_pe() as (D, s, s), channel-major like the official (1, D, s, s). */
  densePe() {
    const s = this.embedSize, D = this.embedDim;
    const tokens = this.densePeTokenData();
    const out = new Float32Array(D * s * s);
    for (let t = 0; t < s * s; t++) {
      for (let c = 0; c < D; c++) out[c * s * s + t] = tokens[t * D + c];
    }
    return out;
  }
  /** get_dense_pe() token-major: (s*s, D), token t = row * s + col. */
  densePeTokenData() {
    const s = this.embedSize, D = this.embedDim;
    const out = new Float32Array(s * s * D);
    for (let r = 0; r < s; r++) {
      const ny = f(f(r + 0.5) / s);
      for (let c = 0; c < s; c++) this.peEncode(f(f(c + 0.5) / s), ny, out, (r * s + c) * D);
    }
    return out;
  }
  /** The dense PE uploaded once, token-major (s*s, D). */
  densePeGpu() {
    this.densePeTokens ??= tensorFrom(this.ctx, this.densePeTokenData(), [
      this.embedSize * this.embedSize,
      this.embedDim
    ], "prompt_encoder.dense_pe");
    return this.densePeTokens;
  }
  /** no_mask_embed uploaded once: (D), broadcast over the image tokens by `add`. */
  noMaskEmbedGpu() {
    this.noMaskTensor ??= tensorFrom(this.ctx, this.noMaskEmbed, [
      this.embedDim
    ], "prompt_encoder.no_mask_embed");
    return this.noMaskTensor;
  }
  /**
   * Sparse embeddings (N, D) of one prompt, N = sparseTokenCount(p): the points (+0.5,
   * PE, label embedding; label -1 is not_a_point with zero PE), the padding point when there
   * is no box, then the two box corners.
   */
  sparse(p) {
    const D = this.embedDim;
    const n = sparseTokenCount(p);
    const out = new Float32Array(n * D);
    let row = 0;
    const addEmbedding = (w) => {
      for (let c = 0; c < D; c++) out[row * D + c] = f(out[row * D + c] + w[c]);
    };
    const points = p.labels ? p.labels.length : 0;
    if (points > 0) {
      const coords = p.coords;
      const labels = [
        ...Array.from(p.labels),
        ...p.box ? [] : [
          -1
        ]
      ];
      for (let i = 0; i < labels.length; i++, row++) {
        const label = labels[i];
        if (label === -1) {
          addEmbedding(this.notAPoint);
          continue;
        }
        this.peAt(f(coords[2 * i] + 0.5), f(coords[2 * i + 1] + 0.5), out, row * D);
        if (label === 0) addEmbedding(this.pointEmbeddings[0]);
        else if (label === 1) addEmbedding(this.pointEmbeddings[1]);
        else throw new Error(`prompt encoder: point label ${label} is not -1, 0 or 1`);
      }
    }
    if (p.box) {
      for (let corner = 0; corner < 2; corner++, row++) {
        const x = f(p.box[2 * corner] + 0.5), y = f(p.box[2 * corner + 1] + 0.5);
        this.peAt(x, y, out, row * D);
        addEmbedding(this.pointEmbeddings[2 + corner]);
      }
    }
    return out;
  }
  /**
   * _embed_points without padding, for any mix of labels (N, D): -1 not_a_point (zero PE),
   * 0 / 1 background / foreground, 2 / 3 box corners; coordinates in the input frame, +0.5
   * applied here. SAM 2's image predictor gives its box this way, as two points labelled 2
   * and 3 ahead of the clicks.
   */
  embedPoints(coords, labels) {
    const D = this.embedDim;
    const out = new Float32Array(labels.length * D);
    for (let i = 0; i < labels.length; i++) {
      const label = labels[i];
      if (label !== -1) {
        this.peAt(f(coords[2 * i] + 0.5), f(coords[2 * i + 1] + 0.5), out, i * D);
      }
      const w = label === -1 ? this.notAPoint : this.pointEmbeddings[label];
      if (!w) throw new Error(`prompt encoder: point label ${label} is not -1, 0, 1, 2 or 3`);
      for (let c = 0; c < D; c++) out[i * D + c] = f(out[i * D + c] + w[c]);
    }
    return out;
  }
  /**
   * mask_downscaling of one low-res mask prompt (4s x 4s logits) on the GPU, token-major:
   * returns (s*s, D). Intermediates are pushed to `temps` for the caller to destroy once the
   * work is submitted.
   */
  embedMask(mask, temps) {
    const ctx = this.ctx, m = this.maskDown;
    const side = 4 * this.embedSize;
    if (mask.size !== side * side) {
      throw new Error(`prompt encoder: mask input has ${mask.size} values, need ${side}x${side}`);
    }
    const x = mask.reshape([
      1,
      side,
      side
    ]);
    const t = (v) => (temps.push(v), v);
    let h = t(conv2d(ctx, x, "chw", m.conv0.w, m.conv0.b, {
      stride: 2,
      padding: 0,
      temps
    }));
    h = t(layerNorm(ctx, h, m.ln1.w, m.ln1.b, LN2D_EPS));
    h = t(activation(ctx, h, "gelu"));
    h = t(conv2d(ctx, h, "hwc", m.conv3.w, m.conv3.b, {
      stride: 2,
      padding: 0,
      temps
    }));
    h = t(layerNorm(ctx, h, m.ln4.w, m.ln4.b, LN2D_EPS));
    h = t(activation(ctx, h, "gelu"));
    const tokens = h.reshape([
      this.embedSize * this.embedSize,
      h.shape[2]
    ]);
    return linear(ctx, tokens, m.conv6.w, m.conv6.b);
  }
  dispose() {
    for (const part of Object.values(this.maskDown)) {
      part.w.destroy();
      part.b.destroy();
    }
    this.densePeTokens?.destroy();
    this.densePeTokens = null;
    this.noMaskTensor?.destroy();
    this.noMaskTensor = null;
  }
};

// src/decoder/transforms.ts
function preprocessShape(h, w, longSide) {
  const scale = longSide * 1 / Math.max(h, w);
  return [
    Math.trunc(h * scale + 0.5),
    Math.trunc(w * scale + 0.5)
  ];
}
function defaultMultimask(p) {
  return !p.box && (p.points?.length ?? 0) <= 1;
}
function finite(v) {
  return typeof v === "number" && Number.isFinite(v);
}
var COORD_MARGIN = 0.25;
function toFramePrompt(p, originalSize, imgSize, maskSide, index = 0) {
  const where = `prompt ${index}`;
  const [h, w] = originalSize;
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
    throw new RangeError(`decoder: original size must be two positive integers, got [${h}, ${w}]`);
  }
  const [newH, newW] = preprocessShape(h, w, imgSize);
  const sx = newW / w, sy = newH / h;
  const out = {};
  const points = p.points ?? [];
  const labels = p.labels ?? points.map(() => 1);
  const margin = COORD_MARGIN * Math.max(h, w);
  const inRange = (x, y) => x >= -margin && x <= w + margin && y >= -margin && y <= h + margin;
  if (points.length !== labels.length) {
    throw new RangeError(`decoder: ${where} has ${points.length} points and ${labels.length} labels; need one label per point`);
  }
  if (points.length > 0) {
    const coords = new Float32Array(2 * points.length);
    points.forEach((pt, i) => {
      if (!Array.isArray(pt) && !(pt && typeof pt === "object" && "length" in pt)) {
        throw new RangeError(`decoder: ${where} point ${i} is not an [x, y] pair`);
      }
      if (pt.length !== 2 || !finite(pt[0]) || !finite(pt[1])) {
        throw new RangeError(`decoder: ${where} point ${i} must be two finite numbers, got [${pt.join(", ")}]`);
      }
      if (!inRange(pt[0], pt[1])) {
        throw new RangeError(`decoder: ${where} point ${i} [${pt.join(", ")}] lies outside the ${w}x${h} image (more than ${COORD_MARGIN} of its long side beyond an edge)`);
      }
      coords[2 * i] = pt[0] * sx;
      coords[2 * i + 1] = pt[1] * sy;
    });
    labels.forEach((l, i) => {
      if (l !== 0 && l !== 1 && l !== -1) {
        throw new RangeError(`decoder: ${where} label ${i} is ${l}; labels are 1 (foreground), 0 (background) or -1 (padding)`);
      }
    });
    out.coords = coords;
    out.labels = Int32Array.from(labels);
  }
  if (p.box !== void 0) {
    const b = p.box;
    if (!b || b.length !== 4 || !b.every(finite)) {
      throw new RangeError(`decoder: ${where} box must be four finite numbers [x0, y0, x1, y1], got ${JSON.stringify(b)}`);
    }
    if (b[2] < b[0] || b[3] < b[1]) {
      throw new RangeError(`decoder: ${where} box needs x0 <= x1 and y0 <= y1, got [${b.join(", ")}]`);
    }
    if (!inRange(b[0], b[1]) || !inRange(b[2], b[3])) {
      throw new RangeError(`decoder: ${where} box [${b.join(", ")}] lies outside the ${w}x${h} image (more than ${COORD_MARGIN} of its long side beyond an edge)`);
    }
    out.box = Float32Array.from([
      b[0] * sx,
      b[1] * sy,
      b[2] * sx,
      b[3] * sy
    ]);
  }
  if (p.maskInput !== void 0) {
    const m = p.maskInput;
    if (!(m instanceof Float32Array) || m.length !== maskSide * maskSide) {
      throw new RangeError(`decoder: ${where} maskInput must be a Float32Array of ${maskSide}x${maskSide} low-res logits, got ${m instanceof Float32Array ? `${m.length} values` : typeof m}`);
    }
    for (let i = 0; i < m.length; i++) {
      if (!Number.isFinite(m[i])) {
        throw new RangeError(`decoder: ${where} maskInput[${i}] is ${m[i]}, not finite`);
      }
    }
  }
  return out;
}

// src/decoder/image_cache.ts
var PinnedImageCache = class {
  capacity;
  destroy;
  /** Least recently used first. */
  slots;
  constructor(capacity, destroy) {
    this.capacity = capacity;
    this.destroy = destroy;
    this.slots = /* @__PURE__ */ new Map();
  }
  /**
   * The entry of `key`, pinned for one call: from the cache, or made by `make` now (and kept
   * when `cache`, evicting the least recently used beyond the capacity). Pair with `unpin`.
   */
  acquire(key, cache, make) {
    const hit = cache ? this.slots.get(key) : void 0;
    if (hit) {
      this.slots.delete(key);
      this.slots.set(key, hit);
      hit.users++;
      return hit;
    }
    const slot = {
      key,
      entry: make(),
      users: 1,
      dropped: !cache
    };
    if (cache) {
      this.slots.set(key, slot);
      for (const old of this.slots.values()) {
        if (this.slots.size <= this.capacity) break;
        this.drop(old);
      }
    }
    return slot;
  }
  /** Takes an entry out of the cache (a failed call may have filled it); freed once unused. */
  drop(slot) {
    if (this.slots.get(slot.key) === slot) this.slots.delete(slot.key);
    slot.dropped = true;
    if (slot.users === 0) this.destroy(slot.entry);
  }
  /** Ends one call's use of an entry. */
  unpin(slot) {
    slot.users--;
    if (slot.dropped && slot.users === 0) this.destroy(slot.entry);
  }
  /** Forgets the entry of `key`; true when one was kept. */
  release(key) {
    const slot = this.slots.get(key);
    if (!slot) return false;
    this.drop(slot);
    return true;
  }
  has(key) {
    return this.slots.has(key);
  }
  get size() {
    return this.slots.size;
  }
  /** Drops every entry (dispose). */
  clear() {
    for (const slot of [
      ...this.slots.values()
    ]) this.drop(slot);
  }
};

// src/kernels/add_layer_norm.ts
var WG9 = 256;
var SHAPES2 = [
  {
    tpr: 32,
    vpt: 8
  },
  {
    tpr: 32,
    vpt: 40
  }
];
function spec2({ tpr, vpt }, residual, pe) {
  const storage = [
    "x",
    ...residual ? [
      "r"
    ] : [],
    "weight",
    "bias",
    ...pe ? [
      "pe"
    ] : []
  ];
  const outs = [
    "y",
    ...pe ? [
      "y_pe"
    ] : []
  ];
  const decls = [
    ...storage.map((n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}: array<f32>;`),
    ...outs.map((n, i) => `@group(0) @binding(${storage.length + i + 1}) var<storage, read_write> ${n}: array<f32>;`)
  ].join("\n");
  return {
    name: `add_layer_norm_${residual ? "res_" : ""}${pe ? "pe_" : ""}t${tpr}v${vpt}_f32`,
    bindings: [
      "uniform",
      ...storage.map(() => "read"),
      ...outs.map(() => "write")
    ],
    code: () => (
      /* wgsl */
      `
struct P { rows: u32, C: u32, eps: f32, nr: u32, npe: u32 }
@group(0) @binding(0) var<uniform> p: P;
${decls}

${rowReduceWgsl(tpr)}

@compute @workgroup_size(${WG9})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) tid: u32) {
  let lane = tid % ${tpr}u;
  let row = (wg.x + wg.y * nwg.x) * ${WG9 / tpr}u + tid / ${tpr}u;
  // Rows past the end still join the barriers.
  let valid = row < p.rows;
  let base = row * p.C;
  var v: array<f32, ${vpt}>;
  var s = 0.0;
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    v[i] = 0.0;
    if (valid && c < p.C) {
      v[i] = x[base + c]${residual ? " + r[(base + c) % p.nr]" : ""};
      s += v[i];
    }
  }
  let mean = row_reduce(tid, lane, s, false) / f32(p.C);
  var q = 0.0;
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    if (c < p.C) { let d = v[i] - mean; q += d * d; }
  }
  let sd = sqrt(row_reduce(tid, lane, q, false) / f32(p.C) + p.eps);
  if (!valid) { return; }
  for (var i = 0u; i < ${vpt}u; i++) {
    let c = lane + i * ${tpr}u;
    if (c < p.C) {
      let o = (v[i] - mean) / sd * weight[c] + bias[c];
      y[base + c] = o;${pe ? "\n      y_pe[base + c] = o + pe[(base + c) % p.npe];" : ""}
    }
  }
}`
    )
  };
}
function rowsSpec(residual, pe) {
  const storage = [
    "x",
    ...residual ? [
      "r"
    ] : [],
    "weight",
    "bias",
    ...pe ? [
      "pe"
    ] : []
  ];
  const outs = [
    "y",
    ...pe ? [
      "y_pe"
    ] : []
  ];
  const decls = [
    ...storage.map((n, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${n}: array<f32>;`),
    ...outs.map((n, i) => `@group(0) @binding(${storage.length + i + 1}) var<storage, read_write> ${n}: array<f32>;`)
  ].join("\n");
  return {
    name: `add_layer_norm_${residual ? "res_" : ""}${pe ? "pe_" : ""}rows_f32`,
    bindings: [
      "uniform",
      ...storage.map(() => "read"),
      ...outs.map(() => "write")
    ],
    code: () => (
      /* wgsl */
      `
struct P { rows: u32, C: u32, eps: f32, nr: u32, npe: u32 }
@group(0) @binding(0) var<uniform> p: P;
${decls}

fn value(i: u32) -> f32 {
  return x[i]${residual ? " + r[i % p.nr]" : ""};
}

@compute @workgroup_size(${ROWS_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * ${ROWS_WG}u;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  // Deviations from the first value: the f32 sum keeps its digits when the mean is large.
  let pivot = value(base);
  var s = 0.0;
  for (var c = 1u; c < p.C; c++) { s += value(base + c) - pivot; }
  let mean = pivot + s / f32(p.C);
  var q = 0.0;
  for (var c = 0u; c < p.C; c++) { let d = value(base + c) - mean; q += d * d; }
  let sd = sqrt(q / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) {
    let o = (value(base + c) - mean) / sd * weight[c] + bias[c];
    y[base + c] = o;${pe ? "\n    y_pe[base + c] = o + pe[(base + c) % p.npe];" : ""}
  }
}`
    )
  };
}
var specs3 = /* @__PURE__ */ new Map();
function addLayerNorm(ctx, x, weight, bias, eps, opts = {}) {
  const C = x.shape[x.shape.length - 1];
  if (!C) throw new Error(`addLayerNorm: x [${x.shape}] has no last dim to normalise`);
  const shape = SHAPES2.find((s2) => C <= s2.tpr * s2.vpt);
  if (!shape) {
    const max = SHAPES2[SHAPES2.length - 1];
    throw new Error(`addLayerNorm: C=${C} is over the supported ${max.tpr * max.vpt}`);
  }
  const { residual, pe } = opts;
  for (const [t, what] of [
    [
      residual,
      "residual"
    ],
    [
      pe,
      "pe"
    ]
  ]) {
    if (t && (t.size === 0 || x.size % t.size !== 0)) {
      throw new Error(`addLayerNorm: ${what} [${t.shape}] has ${t.size} elements, which do not divide x's ${x.size} ([${x.shape}]): it may only repeat over x's leading dims`);
    }
  }
  const y = normOutput(ctx, "addLayerNorm", x, weight, bias, C);
  const yPe = pe ? emptyTensor(ctx, x.shape, "addLayerNorm.y_pe") : null;
  const rowsVariant = (opts.variant ?? defaultLayerNormVariant(ctx.gpu.software)) === "rows";
  const key = `${rowsVariant ? "rows" : `${shape.tpr}:${shape.vpt}`}:${!!residual}:${!!pe}`;
  let s = specs3.get(key);
  if (!s) {
    specs3.set(key, s = rowsVariant ? rowsSpec(!!residual, !!pe) : spec2(shape, !!residual, !!pe));
  }
  const rows = x.size / C;
  const params = new Params().u32(rows, C).f32(eps).u32(residual?.size ?? 1, pe?.size ?? 1).build();
  const buffers = [
    x.buffer,
    ...residual ? [
      residual.buffer
    ] : [],
    weight.buffer,
    bias.buffer,
    ...pe ? [
      pe.buffer
    ] : [],
    y.buffer,
    ...yPe ? [
      yPe.buffer
    ] : []
  ];
  const rowsPerGroup = rowsVariant ? ROWS_WG : WG9 / shape.tpr;
  ctx.dispatch(s, params, buffers, grid(Math.ceil(rows / rowsPerGroup)));
  return {
    y,
    yPe
  };
}

// src/kernels/attention_wgsl.ts
var ATTENTION_PARAMS_WGSL = `struct P {
  batch: u32, heads: u32, headDim: u32, nq: u32, nk: u32,
  qOff: u32, qStride: u32, kOff: u32, kStride: u32, vOff: u32, vStride: u32,
  scale: f32, nqb: u32, d4n: u32, kH: u32, kW: u32, invKW: f32,
}`;
var NEG_BIG = "-1.0e30";
function unroll(n, f3, sep = "\n") {
  return Array.from({
    length: n
  }, (_, i) => f3(i)).join(sep);
}
function loadVec4(v4, buf, base, d4, ok, half = false) {
  if (v4) {
    const x = `${buf}[(${base}) / 4u + ${d4}]`;
    return `select(vec4<f32>(0.0), ${half ? `vec4<f32>(${x})` : x}, ${ok} && ${d4} * 4u < p.headDim)`;
  }
  return `vec4<f32>(${unroll(4, (e) => {
    const d = `${d4} * 4u + ${e}u`;
    const x = `${buf}[${base} + ${d}]`;
    return `select(0.0, ${half ? `f32(${x})` : x}, ${ok} && ${d} < p.headDim)`;
  }, ", ")})`;
}
function attentionBindings(relPos, biasTable = false) {
  return relPos ? [
    "uniform",
    "read",
    "read",
    "read",
    "read",
    "read",
    "write"
  ] : biasTable ? [
    "uniform",
    "read",
    "read",
    "read",
    "read",
    "write"
  ] : [
    "uniform",
    "read",
    "read",
    "read",
    "write"
  ];
}
function attentionHeader(elem, relPos, biasTable = false, half = false, halfOut = false) {
  const qkvElem = half ? elem.replace("f32", "f16") : elem;
  const outElem = halfOut ? elem.replace("f32", "f16") : elem;
  const rel = relPos ? `@group(0) @binding(4) var<storage, read> relH: array<f32>;
@group(0) @binding(5) var<storage, read> relW: array<f32>;
` : biasTable ? `@group(0) @binding(4) var<storage, read> biasTab: array<f32>;
` : "";
  return `${half || halfOut ? "enable f16;\n" : ""}${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<${qkvElem}>;
@group(0) @binding(2) var<storage, read> kBuf: array<${qkvElem}>;
@group(0) @binding(3) var<storage, read> vBuf: array<${qkvElem}>;
${rel}@group(0) @binding(${relPos ? 6 : biasTable ? 5 : 4}) var<storage, read_write> outBuf: array<${outElem}>;`;
}

// src/kernels/attention_rows.ts
var ROWS_MAX_REL = 64;
function parseRowsName(name) {
  const m = /^rows(\d+)w(\d+)$/.exec(name);
  if (!m) return null;
  const rows = Number(m[1]);
  const wg = Number(m[2]);
  if (![
    1,
    2,
    4,
    8,
    16
  ].includes(rows) || ![
    8,
    16,
    32,
    64
  ].includes(wg)) return null;
  return {
    rows,
    wg
  };
}
function rowsSpecName(v) {
  return `attention_rows${v.rows}w${v.wg}${v.relPos ? "_relpos" : ""}_d${v.dp}${v.v4 ? "_v4" : ""}_f32${v.half ? "_f16qkv" : ""}${v.halfOut ? "_f16o" : ""}`;
}
function attentionRowsSpec(v) {
  const { rows, wg, dp, v4, relPos } = v;
  const half = v.half ?? false;
  const halfOut = v.halfOut ?? false;
  const outValue = (x) => halfOut ? v4 ? `vec4<f16>(${x})` : `f16(${x})` : x;
  const d4 = dp / 4;
  const elem = v4 ? "vec4<f32>" : "f32";
  const R = Array.from({
    length: rows
  }, (_, r) => r);
  const I = Array.from({
    length: d4
  }, (_, i) => i);
  const G = [
    0,
    1,
    2,
    3
  ];
  const bias = (r, g) => relPos ? ` + rh${r}[kh${g}] + rw${r}[kw${g}]` : "";
  const store = (r, i) => v4 ? `if (${4 * i}u < p.headDim) { outBuf[ob${r} / 4u + ${i}u] = ${outValue(`o${r}_${i} * inv${r}`)}; }` : `for (var e = 0u; e < 4u; e++) {
        if (${4 * i}u + e < p.headDim) { outBuf[ob${r} + ${4 * i}u + e] = ${outValue(`o${r}_${i}[e] * inv${r}`)}; }
      }`;
  return {
    name: rowsSpecName(v),
    bindings: attentionBindings(relPos),
    code: () => (
      /* wgsl */
      `
${attentionHeader(elem, relPos, false, half, halfOut)}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wgid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wgid.x + wgid.y * nwg.x;
  let bh = flat / p.nqb;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let b = bh / p.heads;
  let h = bh % p.heads;
  let q0 = (flat % p.nqb) * ${rows * wg}u + lid * ${rows}u;
${R.map((r) => `  let qi${r} = min(q0 + ${r}u, p.nq - 1u);
  let qb${r} = p.qOff + (b * p.nq + qi${r}) * p.qStride + h * p.headDim;
${I.map((i) => `  let q${r}_${i} = ${loadVec4(v4, "qBuf", `qb${r}`, `${i}u`, "true", half)} * p.scale;`).join("\n")}
  var m${r} = ${NEG_BIG};
  var l${r} = 0.0;
${I.map((i) => `  var o${r}_${i} = vec4<f32>(0.0);`).join("\n")}${relPos ? `
  var rh${r}: array<f32, ${ROWS_MAX_REL}>;
  var rw${r}: array<f32, ${ROWS_MAX_REL}>;
  let relRow${r} = bh * p.nq + qi${r};
  for (var t = 0u; t < p.kH; t++) { rh${r}[t] = relH[relRow${r} * p.kH + t]; }
  for (var t = 0u; t < p.kW; t++) { rw${r}[t] = relW[relRow${r} * p.kW + t]; }` : ""}`).join("\n")}

  for (var j0 = 0u; j0 < p.nk; j0 += 4u) {
${G.map((g) => `    let j${g} = min(j0 + ${g}u, p.nk - 1u);
    let kb${g} = p.kOff + (b * p.nk + j${g}) * p.kStride + h * p.headDim;
${I.map((i) => `    let k${g}_${i} = ${loadVec4(v4, "kBuf", `kb${g}`, `${i}u`, "true", half)};`).join("\n")}${relPos ? `
    let kh${g} = j${g} / p.kW;
    let kw${g} = j${g} - kh${g} * p.kW;` : ""}`).join("\n")}
${R.map((r) => `${G.map((g) => `    let s${r}_${g} = select(${NEG_BIG}, ${I.map((i) => `dot(q${r}_${i}, k${g}_${i})`).join(" + ")}${bias(r, g)}, j0 + ${g}u < p.nk);`).join("\n")}
    let mn${r} = max(max(max(m${r}, s${r}_0), max(s${r}_1, s${r}_2)), s${r}_3);
    let corr${r} = exp(m${r} - mn${r});
${G.map((g) => `    let p${r}_${g} = exp(s${r}_${g} - mn${r});`).join("\n")}
    l${r} = l${r} * corr${r} + (p${r}_0 + p${r}_1) + (p${r}_2 + p${r}_3);
    m${r} = mn${r};
${I.map((i) => `    o${r}_${i} *= corr${r};`).join("\n")}`).join("\n")}
${G.map((g) => `    {
      let vb = p.vOff + (b * p.nk + j${g}) * p.vStride + h * p.headDim;
${I.map((i) => `      let v${i} = ${loadVec4(v4, "vBuf", "vb", `${i}u`, "true", half)};`).join("\n")}
${R.map((r) => I.map((i) => `      o${r}_${i} += p${r}_${g} * v${i};`).join("\n")).join("\n")}
    }`).join("\n")}
  }

${R.map((r) => `  if (q0 + ${r}u < p.nq) {
    let inv${r} = 1.0 / l${r};
    let ob${r} = (b * p.nq + q0 + ${r}u) * p.heads * p.headDim + h * p.headDim;
    ${I.map((i) => store(r, i)).join("\n    ")}
  }`).join("\n")}
}`
    )
  };
}

// src/kernels/attention_splitkv.ts
var SPLITKV_SLICES = [
  4,
  8
];
function parseSplitKvName(name) {
  const m = /^splitkv(\d+)$/.exec(name);
  if (!m) return null;
  const s = Number(m[1]);
  return SPLITKV_SLICES.includes(s) ? s : null;
}
var PARAMS_WGSL = `struct P {
  batch: u32, heads: u32, headDim: u32, nq: u32, nk: u32,
  qOff: u32, qStride: u32, kOff: u32, kStride: u32, vOff: u32, vStride: u32,
  scale: f32, nqb: u32, S: u32, kLen: u32, kH: u32, kW: u32,
}`;
function partialSpec2(sh) {
  const { dp, v4, relPos } = sh;
  const d4 = dp / 4;
  const elem = v4 ? "vec4<f32>" : "f32";
  const I = Array.from({
    length: d4
  }, (_, i) => i);
  const name = `attention_splitkv_partial${relPos ? "_relpos" : ""}_d${dp}${v4 ? "_v4" : ""}_f32`;
  const rel = relPos ? `@group(0) @binding(4) var<storage, read> relH: array<f32>;
@group(0) @binding(5) var<storage, read> relW: array<f32>;
@group(0) @binding(6) var<storage, read_write> part: array<vec4<f32>>;` : `@group(0) @binding(4) var<storage, read_write> part: array<vec4<f32>>;`;
  return {
    name,
    bindings: relPos ? [
      "uniform",
      "read",
      "read",
      "read",
      "read",
      "read",
      "write"
    ] : [
      "uniform",
      "read",
      "read",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
${PARAMS_WGSL}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<${elem}>;
@group(0) @binding(2) var<storage, read> kBuf: array<${elem}>;
@group(0) @binding(3) var<storage, read> vBuf: array<${elem}>;
${rel}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wgid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wgid.x + wgid.y * nwg.x;
  let per = p.nqb * p.S;
  let bh = flat / per;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let rem = flat % per;
  let s = rem / p.nqb;
  let qRaw = (rem % p.nqb) * 64u + lid;
  let qi = min(qRaw, p.nq - 1u);
  let b = bh / p.heads;
  let h = bh % p.heads;
  let qb = p.qOff + (b * p.nq + qi) * p.qStride + h * p.headDim;
${unroll(d4, (i) => `  let q${i} = ${loadVec4(v4, "qBuf", "qb", `${i}u`, "true")} * p.scale;`)}
  var m = ${NEG_BIG};
  var l = 0.0;
${unroll(d4, (i) => `  var o${i} = vec4<f32>(0.0);`)}
${relPos ? "  let relRow = bh * p.nq + qi;" : ""}
  let k0 = s * p.kLen;
  let k1 = min(k0 + p.kLen, p.nk);
  for (var j = k0; j < k1; j++) {
    let kb = p.kOff + (b * p.nk + j) * p.kStride + h * p.headDim;
    var sc = ${I.map((i) => `dot(q${i}, ${loadVec4(v4, "kBuf", "kb", `${i}u`, "true")})`).join(" + ")};
${relPos ? `    let kh = j / p.kW;
    sc += relH[relRow * p.kH + kh] + relW[relRow * p.kW + j - kh * p.kW];` : ""}
    let mn = max(m, sc);
    let corr = exp(m - mn);
    let pj = exp(sc - mn);
    l = l * corr + pj;
    m = mn;
    let vb = p.vOff + (b * p.nk + j) * p.vStride + h * p.headDim;
${unroll(d4, (i) => `    o${i} = o${i} * corr + pj * ${loadVec4(v4, "vBuf", "vb", `${i}u`, "true")};`)}
  }
  if (qRaw < p.nq) {
    let at = ((s * p.batch * p.heads + bh) * p.nq + qi) * ${d4 + 1}u;
${unroll(d4, (i) => `    part[at + ${i}u] = o${i};`)}
    part[at + ${d4}u] = vec4<f32>(m, l, 0.0, 0.0);
  }
}`
    )
  };
}
function mergeSpec(sh) {
  const { dp, v4 } = sh;
  const d4 = dp / 4;
  const elem = v4 ? "vec4<f32>" : "f32";
  const store = (i) => v4 ? `  if (${4 * i}u < p.headDim) { outBuf[ob / 4u + ${i}u] = o${i} * inv; }` : `  for (var e = 0u; e < 4u; e++) {
    if (${4 * i}u + e < p.headDim) { outBuf[ob + ${4 * i}u + e] = o${i}[e] * inv; }
  }`;
  return {
    name: `attention_splitkv_merge_d${dp}${v4 ? "_v4" : ""}_f32`,
    bindings: [
      "uniform",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
struct M { bhn: u32, nq: u32, heads: u32, headDim: u32, S: u32 }
@group(0) @binding(0) var<uniform> p: M;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> outBuf: array<${elem}>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wgid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wgid.x + wgid.y * nwg.x) * 64u + lid;
  if (t >= p.bhn) { return; }
  let bh = t / p.nq;
  let q = t % p.nq;
  var mAll = ${NEG_BIG};
  for (var s = 0u; s < p.S; s++) { mAll = max(mAll, part[(s * p.bhn + t) * ${d4 + 1}u + ${d4}u].x); }
  var lAll = 0.0;
${unroll(d4, (i) => `  var o${i} = vec4<f32>(0.0);`)}
  for (var s = 0u; s < p.S; s++) {
    let at = (s * p.bhn + t) * ${d4 + 1}u;
    let ml = part[at + ${d4}u];
    let w = exp(ml.x - mAll);
    lAll += ml.y * w;
${unroll(d4, (i) => `    o${i} += part[at + ${i}u] * w;`)}
  }
  let inv = 1.0 / lAll;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let ob = (b * p.nq + q) * p.heads * p.headDim + h * p.headDim;
${unroll(d4, store)}
}`
    )
  };
}
var specs4 = /* @__PURE__ */ new Map();
function cachedSpec(make, kind, sh) {
  const key = `${kind}/${JSON.stringify(sh)}`;
  let spec4 = specs4.get(key);
  if (!spec4) {
    spec4 = make(sh);
    specs4.set(key, spec4);
  }
  return spec4;
}
var scratch2 = /* @__PURE__ */ new WeakMap();
function scratchFloats(bhn, dp, slices) {
  return slices * bhn * (dp + 4);
}
function splitKvFits(ctx, bhn, headDim, slices) {
  const dp = 16 * Math.ceil(headDim / 16);
  return scratchFloats(bhn, dp, slices) * 4 <= ctx.device.limits.maxStorageBufferBindingSize;
}
function runSplitKv(ctx, c) {
  const sh = {
    dp: 16 * Math.ceil(c.headDim / 16),
    v4: c.v4,
    relPos: c.rel !== void 0
  };
  const S = Math.max(1, Math.min(c.slices, c.nk));
  const kLen = Math.ceil(c.nk / S);
  const bh = c.batch * c.heads;
  const bhn = bh * c.nq;
  const need = scratchFloats(bhn, sh.dp, S);
  let part = scratch2.get(ctx);
  if (!part || part.size < need) {
    if (part) {
      ctx.submit();
      part.destroy();
    }
    part = emptyTensor(ctx, [
      need
    ], "attention.splitkv.partial");
    scratch2.set(ctx, part);
  }
  const nqb = Math.ceil(c.nq / 64);
  const p1 = new Params().u32(c.batch, c.heads, c.headDim, c.nq, c.nk).u32(c.q.offset, c.q.rowStride, c.k.offset, c.k.rowStride, c.v.offset, c.v.rowStride).f32(c.scale).u32(nqb, S, kLen, c.rel?.kH ?? 1, c.rel?.kW ?? 1).build();
  const buffers = [
    c.q.buffer,
    c.k.buffer,
    c.v.buffer
  ];
  if (c.rel) buffers.push(c.rel.relH, c.rel.relW);
  buffers.push(part.buffer);
  ctx.dispatch(cachedSpec(partialSpec2, "partial", sh), p1, buffers, grid(bh * nqb * S));
  const p2 = new Params().u32(bhn, c.nq, c.heads, c.headDim, S).build();
  ctx.dispatch(cachedSpec(mergeSpec, "merge", sh), p2, [
    part.buffer,
    c.out
  ], grid(Math.ceil(bhn / 64)));
}

// src/kernels/attention_padded.ts
var PADDED_VARIANTS = {
  tiledpad: "serial",
  tiledpar: "tree",
  tiledsg: "subgroup"
};
function parsePaddedName(name) {
  return Object.hasOwn(PADDED_VARIANTS, name) ? PADDED_VARIANTS[name] : null;
}
var RS = 9;
function paddedWorkgroupBytes(v) {
  const d4 = 8 * v.c, bq = 8 * v.rows, bk = 8 * v.keys;
  const tiles = 16 * (bq * (d4 + 1) + bk * (d4 + 1)) + 4 * bq * (bk + 1);
  const rowState = v.softmax === "tree" ? 4 * 2 * bq * RS : v.softmax === "subgroup" ? 4 * 3 * bq + 4 : 4 * 2 * bq;
  return tiles + rowState;
}
function paddedRows(nq, v, limitBytes) {
  if (nq <= 8) return 1;
  let best = 0, bestPad = Infinity;
  for (const rows of [
    2,
    3,
    4,
    5
  ]) {
    if (paddedWorkgroupBytes({
      ...v,
      rows
    }) > limitBytes) continue;
    const bq = 8 * rows;
    const pad = Math.ceil(nq / bq) * bq - nq;
    if (pad <= bestPad) [best, bestPad] = [
      rows,
      pad
    ];
  }
  if (best === 0) {
    throw new Error(`attention: no padded tile fits ${limitBytes} bytes of workgroup memory`);
  }
  return best;
}
function paddedSpecName(v) {
  const mode = {
    serial: "pad",
    tree: "par",
    subgroup: "sg"
  }[v.softmax];
  return `attention_tiled${mode}${v.relPos ? "_relpos" : ""}_d${32 * v.c}_q${8 * v.rows}_k${8 * v.keys}${v.v4 ? "_v4" : ""}_f32${v.half ? "_f16qkv" : ""}${v.halfOut ? "_f16o" : ""}`;
}
function attentionPaddedSpec(vt) {
  const { softmax, c, rows, keys, v4, relPos } = vt;
  const half = vt.half ?? false;
  const halfOut = vt.halfOut ?? false;
  if (softmax === "subgroup" && (half || halfOut)) {
    throw new Error("attention: tiledsg is f32 only");
  }
  const d4 = 8 * c;
  const bq = 8 * rows;
  const bk = 8 * keys;
  const elem = v4 ? "vec4<f32>" : "f32";
  const R = Array.from({
    length: rows
  }, (_, r) => r);
  const J = Array.from({
    length: keys
  }, (_, j) => j);
  const I = Array.from({
    length: c
  }, (_, i) => i);
  const forRJ = (f3) => R.map((r) => J.map((j) => f3(r, j)).join("\n")).join("\n");
  const forRI = (f3) => R.map((r) => I.map((i) => f3(r, i)).join("\n")).join("\n");
  const loadTile = (dst, buf, off, stride, tokens, row0, n, scale = "") => `for (var i = lid; i < ${n * d4}u; i += 64u) {
      let t = ${row0} + i / D4;
      var x = vec4<f32>(0.0);
      if (t < ${tokens}) {
        let base = ${off} + (b * ${tokens} + t) * ${stride} + h * p.headDim;
        x = ${loadVec4(v4, buf, "base", "(i % D4)", "true", half)}${scale};
      }
      ${dst}[(i / D4) * TS + i % D4] = x;
    }`;
  const bias = (r, j) => relPos ? ` + relH[rowH${r} + kh${j}] + relW[rowW${r} + k0 + tx + ${8 * j}u - kh${j} * p.kW]` : "";
  const store = (r, i, inv) => v4 ? `    if (${32 * i}u + tx * 4u < p.headDim) { outBuf[base / 4u + tx + ${8 * i}u] = ${halfOut ? `vec4<f16>(o${r}_${i} * ${inv})` : `o${r}_${i} * ${inv}`}; }` : `    { let o = o${r}_${i} * ${inv};
      let d = (tx + ${8 * i}u) * 4u;
      for (var e = 0u; e < 4u; e++) { if (d + e < p.headDim) { outBuf[base + d + e] = ${halfOut ? "f16(o[e])" : "o[e]"}; } } }`;
  const loadV = `${loadTile("kvs", "vBuf", "p.vOff", "p.vStride", "p.nk", "k0", bk)}`;
  const serial = `
${forRJ((r, j) => `    ss[(ty + ${8 * r}u) * SS + tx + ${8 * j}u] = s${r}_${j};`)}
    workgroupBarrier();  // scores complete; kvs free for V
    // One thread per row: new max, rescale factor, probabilities.
    if (lid < BQ) {
      var tmax = m;
      for (var j = 0u; j < kn; j++) { tmax = max(tmax, ss[lid * SS + j]); }
      let corr = exp(m - tmax);
      var sum = 0.0;
      for (var j = 0u; j < kn; j++) {
        let pj = exp(ss[lid * SS + j] - tmax);
        ss[lid * SS + j] = pj;
        sum += pj;
      }
      l = l * corr + sum;
      m = tmax;
      rowCorr[lid] = corr;
    }
    ${loadV}
    workgroupBarrier();
${unroll(rows, (r) => `    let corr${r} = rowCorr[ty + ${8 * r}u];`)}`;
  const tree = `
    // This thread's (max, sum of exp) of each of its rows, over its own keys.
${unroll(rows, (r) => `    let pm${r} = max(${J.map((j) => `s${r}_${j}`).reduce((a, x) => `max(${a}, ${x})`)}, ${NEG_BIG});
    redM[(ty + ${8 * r}u) * RS + tx] = pm${r};
    redL[(ty + ${8 * r}u) * RS + tx] = ${J.map((j) => `select(0.0, exp(s${r}_${j} - pm${r}), k0 + tx + ${8 * j}u < p.nk)`).join(" + ")};`)}
    workgroupBarrier();  // partials written; kvs free for V
    ${loadV}
    // Tree, first level: partials 0..7 of a row -> 0, 1 (slot t merges t, t+2, t+4, t+6).
    for (var i = lid; i < BQ * 2u; i += 64u) {
      let a = (i / 2u) * RS + i % 2u;
      let mm = max(max(redM[a], redM[a + 2u]), max(redM[a + 4u], redM[a + 6u]));
      redL[a] = redL[a] * exp(redM[a] - mm) + redL[a + 2u] * exp(redM[a + 2u] - mm) +
        redL[a + 4u] * exp(redM[a + 4u] - mm) + redL[a + 6u] * exp(redM[a + 6u] - mm);
      redM[a] = mm;
    }
    workgroupBarrier();
    // Last level in registers (every thread of a row computes the same), then the running
    // max / sum, the rescale factor and P from the scores still in registers.
${unroll(rows, (r) => `    let a${r} = (ty + ${8 * r}u) * RS;
    let tm${r} = max(redM[a${r}], redM[a${r} + 1u]);
    let tl${r} = redL[a${r}] * exp(redM[a${r}] - tm${r}) + redL[a${r} + 1u] * exp(redM[a${r} + 1u] - tm${r});
    let mn${r} = max(m${r}, tm${r});
    let corr${r} = exp(m${r} - mn${r});
    l${r} = l${r} * corr${r} + tl${r} * exp(tm${r} - mn${r});
    m${r} = mn${r};
${unroll(keys, (j) => `    ss[(ty + ${8 * r}u) * SS + tx + ${8 * j}u] = exp(s${r}_${j} - mn${r});`)}`)}
    workgroupBarrier();`;
  const subgroup = `
${forRJ((r, j) => `    ss[(ty + ${8 * r}u) * SS + tx + ${8 * j}u] = s${r}_${j};`)}
    workgroupBarrier();  // scores complete; kvs free for V
    // Subgroup sg owns rows sg, sg + nsg, ...; its lanes share each row's keys.
    for (var row = sg; row < BQ; row += nsg) {
      var pm = ${NEG_BIG};
      for (var j = lane; j < kn; j += width) { pm = max(pm, ss[row * SS + j]); }
      var mOld = ${NEG_BIG};
      if (lane == 0u) { mOld = rowM[row]; }  // only lane 0 touches the row's state
      let mn = subgroupMax(max(pm, mOld));
      var ps = 0.0;
      for (var j = lane; j < kn; j += width) {
        let e = exp(ss[row * SS + j] - mn);
        ss[row * SS + j] = e;
        ps += e;
      }
      let sum = subgroupAdd(ps);
      if (lane == 0u) {
        let corr = exp(mOld - mn);
        rowCorr[row] = corr;
        rowL[row] = rowL[row] * corr + sum;
        rowM[row] = mn;
      }
    }
    ${loadV}
    workgroupBarrier();
${unroll(rows, (r) => `    let corr${r} = rowCorr[ty + ${8 * r}u];`)}`;
  const rowState = softmax === "tree" ? `var<workgroup> redM: array<f32, ${bq * RS}>;  // [BQ, RS] partial maxima
var<workgroup> redL: array<f32, ${bq * RS}>;  // [BQ, RS] partial sums` : softmax === "subgroup" ? `var<workgroup> rowM: array<f32, ${bq}>;     // running max per row
var<workgroup> rowL: array<f32, ${bq}>;     // running sum per row
var<workgroup> rowCorr: array<f32, ${bq}>;  // rescale of O for this tile
var<workgroup> sgCount: atomic<u32>;        // subgroups numbered so far` : `var<workgroup> rowCorr: array<f32, ${bq}>;  // rescale of O for this tile
var<workgroup> rowInv: array<f32, ${bq}>;   // 1 / row sum at the end`;
  const init = softmax === "tree" ? R.map((r) => `  var m${r} = ${NEG_BIG};
  var l${r} = 0.0;`).join("\n") : softmax === "subgroup" ? `  // Dense lane and subgroup numbers from subgroup operations (any size, any mapping).
  let lane = subgroupExclusiveAdd(1u);
  let width = subgroupAdd(1u);
  var ticket = 0u;
  if (lane == 0u) { ticket = atomicAdd(&sgCount, 1u); }
  let sg = subgroupMax(ticket);
  for (var i = lid; i < BQ; i += 64u) { rowM[i] = ${NEG_BIG}; rowL[i] = 0.0; }` : `  var m = ${NEG_BIG};  // running max of row lid (threads lid < BQ own one row each)
  var l = 0.0;         // running sum of exp(s - m) of that row`;
  const finish = softmax === "tree" ? unroll(rows, (r) => `  let inv${r} = 1.0 / l${r};`) : `${softmax === "serial" ? "  if (lid < BQ) { rowInv[lid] = 1.0 / l; }\n" : ""}  workgroupBarrier();
${unroll(rows, (r) => `  let inv${r} = ${softmax === "serial" ? "rowInv" : "1.0 / rowL"}[ty + ${8 * r}u];`)}`;
  return {
    name: paddedSpecName(vt),
    bindings: attentionBindings(relPos),
    code: () => (
      /* wgsl */
      `
${softmax === "subgroup" ? "enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n" : ""}${attentionHeader(elem, relPos, false, half, halfOut)}

const D4 = ${d4}u;
const BQ = ${bq}u;
const BK = ${bk}u;
const TS = ${d4 + 1}u;  // Q and K / V tile row stride: padded by one vec4
const SS = ${bk + 1}u;  // score row stride: padded by one
const RS = ${RS}u;
var<workgroup> qs: array<vec4<f32>, ${bq * (d4 + 1)}>;   // [BQ, TS], pre-scaled
var<workgroup> kvs: array<vec4<f32>, ${bk * (d4 + 1)}>;  // [BK, TS], K tile then V tile
var<workgroup> ss: array<f32, ${bq * (bk + 1)}>;         // [BQ, SS], scores, then P
${rowState}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wg.x + wg.y * nwg.x;
  let bh = flat / p.nqb;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let q0 = (flat % p.nqb) * BQ;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let ty = lid / 8u;
  let tx = lid % 8u;
${relPos ? unroll(rows, (r) => `  let rowQ${r} = bh * p.nq + min(q0 + ty + ${8 * r}u, p.nq - 1u);
  let rowH${r} = rowQ${r} * p.kH;
  let rowW${r} = rowQ${r} * p.kW;`) : ""}
${init}

  // Q tile, scaled once here instead of per score.
  ${loadTile("qs", "qBuf", "p.qOff", "p.qStride", "p.nq", "q0", bq, " * p.scale")}
${softmax === "subgroup" ? "  workgroupBarrier();\n  let nsg = atomicLoad(&sgCount);" : ""}
${forRI((r, i) => `  var o${r}_${i} = vec4<f32>(0.0);`)}

  for (var k0 = 0u; k0 < p.nk; k0 += BK) {
    workgroupBarrier();  // the previous tile's P V is done with kvs and ss
    ${loadTile("kvs", "kBuf", "p.kOff", "p.kStride", "p.nk", "k0", bk)}
    workgroupBarrier();
    let kn = min(BK, p.nk - k0);

    // S = Qs Ks^T: each thread a rows x keys block.
${forRJ((r, j) => `    var s${r}_${j} = 0.0;`)}
    for (var d = 0u; d < p.d4n; d++) {
${unroll(rows, (r) => `      let q${r} = qs[(ty + ${8 * r}u) * TS + d];`)}
${unroll(keys, (j) => `      let k${j} = kvs[(tx + ${8 * j}u) * TS + d];`)}
${forRJ((r, j) => `      s${r}_${j} += dot(q${r}, k${j});`)}
    }
${relPos ? unroll(keys, (j) => `    let kh${j} = u32((f32(k0 + tx + ${8 * j}u) + 0.5) * p.invKW);`) : ""}
${forRJ((r, j) => `    s${r}_${j} = select(${NEG_BIG}, s${r}_${j}${bias(r, j)}, k0 + tx + ${8 * j}u < p.nk);`)}
${softmax === "tree" ? tree : softmax === "subgroup" ? subgroup : serial}

    // O = O * corr + P Vs: each thread a rows x c-vec4 block.
${forRI((r, i) => `    o${r}_${i} *= corr${r};`)}
    for (var j = 0u; j < kn; j++) {
${unroll(rows, (r) => `      let p${r} = ss[(ty + ${8 * r}u) * SS + j];`)}
${unroll(c, (i) => `      let v${i} = kvs[j * TS + tx + ${8 * i}u];`)}
${forRI((r, i) => `      o${r}_${i} += p${r} * v${i};`)}
    }
  }

${finish}
${unroll(rows, (r) => `  if (q0 + ty + ${8 * r}u < p.nq) {
    let base = (b * p.nq + q0 + ty + ${8 * r}u) * p.heads * p.headDim + h * p.headDim;
${unroll(c, (i) => store(r, i, `inv${r}`))}
  }`)}
}`
    )
  };
}

// src/kernels/attention.ts
var MAX_HEAD_DIM = 128;
function attentionSpec(vt) {
  const { c, rows, keys, v4, relPos, biasTable } = vt;
  const half = vt.half ?? false;
  const halfOut = vt.halfOut ?? false;
  const d4 = 8 * c;
  const bq = 8 * rows;
  const bk = 8 * keys;
  const name = `attention${relPos ? "_relpos" : ""}${biasTable ? "_bias" : ""}_d${32 * c}_q${bq}_k${bk}${v4 ? "_v4" : ""}_f32${half ? "_f16qkv" : ""}${halfOut ? "_f16o" : ""}`;
  const elem = v4 ? "vec4<f32>" : "f32";
  const R = Array.from({
    length: rows
  }, (_, r) => r);
  const J = Array.from({
    length: keys
  }, (_, j) => j);
  const I = Array.from({
    length: c
  }, (_, i) => i);
  const loadTile = (dst, buf, off, stride, tokens, row0, n, dstStride, scale = "") => `for (var i = lid; i < ${n * d4}u; i += 64u) {
      let t = ${row0} + i / ${d4}u;
      let base = ${off} + (b * ${tokens} + min(t, ${tokens} - 1u)) * ${stride} + h * p.headDim;
      ${dst}[(i / ${d4}u) * ${dstStride}u + i % ${d4}u] =
        ${loadVec4(v4, buf, "base", `(i % ${d4}u)`, `t < ${tokens}`, half)}${scale};
    }`;
  const score = (r, j) => {
    const key = `k0 + tx + ${8 * j}u`;
    const bias = relPos ? ` + relH[rowH${r} + kh${j}] + relW[rowW${r} + ${key} - kh${j} * p.kW]` : biasTable ? ` + biasTab[rowB${r} + min(${key}, p.nk - 1u)]` : "";
    return `ss[(ty + ${8 * r}u) * SS + tx + ${8 * j}u] = select(${NEG_BIG}, s${r}_${j}${bias}, ${key} < p.nk);`;
  };
  const store = (r, i) => v4 ? `    if (${32 * i}u + tx * 4u < p.headDim) { outBuf[base / 4u + tx + ${8 * i}u] = ${halfOut ? `vec4<f16>(o${r}_${i} * inv)` : `o${r}_${i} * inv`}; }` : `    { let o = o${r}_${i} * inv;
      let d = (tx + ${8 * i}u) * 4u;
      for (var e = 0u; e < 4u; e++) { if (d + e < p.headDim) { outBuf[base + d + e] = ${halfOut ? "f16(o[e])" : "o[e]"}; } } }`;
  return {
    name,
    bindings: attentionBindings(relPos, biasTable),
    code: () => (
      /* wgsl */
      `
${attentionHeader(elem, relPos, biasTable, half, halfOut)}

const D4 = ${d4}u;
const BQ = ${bq}u;
const BK = ${bk}u;
// Row strides padded by one so the 8 key rows a warp reads in the score phase, and the
// rows the softmax threads walk, fall in different memory banks.
const KS = ${d4 + 1}u;
const SS = ${bk + 1}u;
var<workgroup> qs: array<vec4<f32>, ${bq * d4}>;         // [BQ, D4], pre-scaled
var<workgroup> kvs: array<vec4<f32>, ${bk * (d4 + 1)}>;  // [BK, KS], K tile then V tile
var<workgroup> ss: array<f32, ${bq * (bk + 1)}>;         // [BQ, SS], scores, then P
var<workgroup> rowCorr: array<f32, ${bq}>;         // per-row rescale of O for this tile
var<workgroup> rowInv: array<f32, ${bq}>;          // 1 / row sum at the end

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wg.x + wg.y * nwg.x;
  let bh = flat / p.nqb;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let q0 = (flat % p.nqb) * BQ;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let ty = lid / 8u;
  let tx = lid % 8u;
${relPos ? unroll(rows, (r) => `  let rowQ${r} = bh * p.nq + min(q0 + ty + ${8 * r}u, p.nq - 1u);
  let rowH${r} = rowQ${r} * p.kH;
  let rowW${r} = rowQ${r} * p.kW;`) : biasTable ? unroll(rows, (r) => `  let rowB${r} = (h * p.nq + min(q0 + ty + ${8 * r}u, p.nq - 1u)) * p.nk;`) : ""}

  // Q tile, scaled once here instead of per score.
  ${loadTile("qs", "qBuf", "p.qOff", "p.qStride", "p.nq", "q0", bq, d4, " * p.scale")}

  var m = ${NEG_BIG};  // running max of row lid (threads lid < BQ own one row each)
  var l = 0.0;         // running sum of exp(s - m) of that row
${R.map((r) => I.map((i) => `  var o${r}_${i} = vec4<f32>(0.0);`).join("\n")).join("\n")}

  for (var k0 = 0u; k0 < p.nk; k0 += BK) {
    workgroupBarrier();  // the previous tile's P V is done with kvs and ss
    ${loadTile("kvs", "kBuf", "p.kOff", "p.kStride", "p.nk", "k0", bk, d4 + 1)}
    workgroupBarrier();

    // S = Qs Ks^T: each thread a rows x keys block, each vec4 read feeding several dots.
${R.map((r) => J.map((j) => `    var s${r}_${j} = 0.0;`).join("\n")).join("\n")}
    for (var d = 0u; d < p.d4n; d++) {
${unroll(rows, (r) => `      let q${r} = qs[(ty + ${8 * r}u) * D4 + d];`)}
${unroll(keys, (j) => `      let k${j} = kvs[(tx + ${8 * j}u) * KS + d];`)}
${R.map((r) => J.map((j) => `      s${r}_${j} += dot(q${r}, k${j});`).join("\n")).join("\n")}
    }
${relPos ? unroll(keys, (j) => `    let kh${j} = u32((f32(k0 + tx + ${8 * j}u) + 0.5) * p.invKW);`) : ""}
${R.map((r) => J.map((j) => `    ${score(r, j)}`).join("\n")).join("\n")}
    workgroupBarrier();  // scores complete; kvs free for V

    // Online softmax, one thread per row: new max, rescale factor, probabilities.
    let kn = min(BK, p.nk - k0);
    if (lid < BQ) {
      var tmax = m;
      for (var j = 0u; j < kn; j++) { tmax = max(tmax, ss[lid * SS + j]); }
      let corr = exp(m - tmax);
      var sum = 0.0;
      for (var j = 0u; j < kn; j++) {
        let pj = exp(ss[lid * SS + j] - tmax);
        ss[lid * SS + j] = pj;
        sum += pj;
      }
      l = l * corr + sum;
      m = tmax;
      rowCorr[lid] = corr;
    }
    ${loadTile("kvs", "vBuf", "p.vOff", "p.vStride", "p.nk", "k0", bk, d4 + 1)}
    workgroupBarrier();

    // O = O * corr + P Vs: each thread a rows x c-vec4 block.
${unroll(rows, (r) => `    let c${r} = rowCorr[ty + ${8 * r}u];
` + unroll(c, (i) => `    o${r}_${i} *= c${r};`))}
    for (var j = 0u; j < kn; j++) {
${unroll(rows, (r) => `      let p${r} = ss[(ty + ${8 * r}u) * SS + j];`)}
${unroll(c, (i) => `      let v${i} = kvs[j * KS + tx + ${8 * i}u];`)}
${R.map((r) => I.map((i) => `      o${r}_${i} += p${r} * v${i};`).join("\n")).join("\n")}
    }
  }

  if (lid < BQ) { rowInv[lid] = 1.0 / l; }
  workgroupBarrier();
${unroll(rows, (r) => `  if (q0 + ty + ${8 * r}u < p.nq) {
    let inv = rowInv[ty + ${8 * r}u];
    let base = (b * p.nq + q0 + ty + ${8 * r}u) * p.heads * p.headDim + h * p.headDim;
${unroll(c, (i) => store(r, i))}
  }`)}
}`
    )
  };
}
var FEW_Q = 8;
var FEW_Q_MAX_DP = 32;
function fewQuerySpec(dp, v4) {
  const d4 = dp / 4;
  const name = `attention_fewq_d${dp}${v4 ? "_v4" : ""}_f32`;
  const elem = v4 ? "vec4<f32>" : "f32";
  const R = Array.from({
    length: FEW_Q
  }, (_, r) => r);
  const I = Array.from({
    length: d4
  }, (_, i) => i);
  const row = (buf, base, i, ok) => loadVec4(v4, buf, base, `${i}u`, ok);
  return {
    name,
    bindings: [
      "uniform",
      "read",
      "read",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<${elem}>;
@group(0) @binding(2) var<storage, read> kBuf: array<${elem}>;
@group(0) @binding(3) var<storage, read> vBuf: array<${elem}>;
@group(0) @binding(4) var<storage, read_write> outBuf: array<${elem}>;

// One row's 64 partial results: max, sum, output vec4s.
var<workgroup> partM: array<f32, 64>;
var<workgroup> partL: array<f32, 64>;
var<workgroup> partO: array<vec4<f32>, ${64 * d4}>;  // [thread, D4]
var<workgroup> rowScale: array<f32, 64>;            // exp(m_t - M) / L per thread

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let bh = wg.x + wg.y * nwg.x;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let b = bh / p.heads;
  let h = bh % p.heads;
${R.map((r) => `  let qb${r} = p.qOff + (b * p.nq + min(${r}u, p.nq - 1u)) * p.qStride + h * p.headDim;
` + I.map((i) => `  let q${r}_${i} = ${row("qBuf", `qb${r}`, i, `${r}u < p.nq`)} * p.scale;`).join("\n") + `
  var m${r} = ${NEG_BIG};
  var l${r} = 0.0;
` + I.map((i) => `  var o${r}_${i} = vec4<f32>(0.0);`).join("\n")).join("\n")}

  for (var j = lid; j < p.nk; j += 64u) {
    let kb = p.kOff + (b * p.nk + j) * p.kStride + h * p.headDim;
    let vb = p.vOff + (b * p.nk + j) * p.vStride + h * p.headDim;
${I.map((i) => `    let k${i} = ${row("kBuf", "kb", i, "true")};`).join("\n")}
${I.map((i) => `    let v${i} = ${row("vBuf", "vb", i, "true")};`).join("\n")}
${R.map((r) => `    {
      let s = ${I.map((i) => `dot(q${r}_${i}, k${i})`).join(" + ")};
      let mn = max(m${r}, s);
      let corr = exp(m${r} - mn);
      let pj = exp(s - mn);
      l${r} = l${r} * corr + pj;
${I.map((i) => `      o${r}_${i} = o${r}_${i} * corr + pj * v${i};`).join("\n")}
      m${r} = mn;
    }`).join("\n")}
  }

  // Merge the 64 partial softmaxes of each query row: M = max m_t, L = sum l_t e^(m_t - M),
  // O = sum o_t e^(m_t - M) / L.
${R.map((r) => `  if (${r}u < p.nq) {
    workgroupBarrier();  // the previous row's merge is done with the partials
    partM[lid] = m${r};
    partL[lid] = l${r};
${I.map((i) => `    partO[lid * ${d4}u + ${i}u] = o${r}_${i};`).join("\n")}
    workgroupBarrier();
    var mAll = ${NEG_BIG};
    for (var t = 0u; t < 64u; t++) { mAll = max(mAll, partM[t]); }
    var lAll = 0.0;
    for (var t = 0u; t < 64u; t++) { lAll += partL[t] * exp(partM[t] - mAll); }
    rowScale[lid] = exp(m${r} - mAll) / lAll;
    workgroupBarrier();
    if (lid < ${d4}u && lid * 4u < p.headDim) {
      var o = vec4<f32>(0.0);
      for (var t = 0u; t < 64u; t++) { o += partO[t * ${d4}u + lid] * rowScale[t]; }
      let base = (b * p.nq + ${r}u) * p.heads * p.headDim + h * p.headDim + lid * 4u;
      ${v4 ? "outBuf[base / 4u] = o;" : "for (var e = 0u; e < 4u; e++) { if (lid * 4u + e < p.headDim) { outBuf[base + e] = o[e]; } }"}
    }
  }`).join("\n")}
}`
    )
  };
}
var SPECS3 = /* @__PURE__ */ new Map();
var FEW_K = 8;
function fewKeySpec(dp, v4) {
  const d4 = dp / 4;
  const name = `attention_fewk_d${dp}${v4 ? "_v4" : ""}_f32`;
  const elem = v4 ? "vec4<f32>" : "f32";
  const J = Array.from({
    length: FEW_K
  }, (_, j) => j);
  const I = Array.from({
    length: d4
  }, (_, i) => i);
  const store = v4 ? I.map((i) => `  if (${4 * i}u < p.headDim) { outBuf[ob / 4u + ${i}u] = o${i} * inv; }`).join("\n") : I.map((i) => `  for (var e = 0u; e < 4u; e++) {
    if (${4 * i}u + e < p.headDim) { outBuf[ob + ${4 * i}u + e] = o${i}[e] * inv; }
  }`).join("\n");
  return {
    name,
    bindings: [
      "uniform",
      "read",
      "read",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qBuf: array<${elem}>;
@group(0) @binding(2) var<storage, read> kBuf: array<${elem}>;
@group(0) @binding(3) var<storage, read> vBuf: array<${elem}>;
@group(0) @binding(4) var<storage, read_write> outBuf: array<${elem}>;

var<workgroup> ks: array<vec4<f32>, ${FEW_K * d4}>;  // [FEW_K, D4], zero past nk
var<workgroup> vs: array<vec4<f32>, ${FEW_K * d4}>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = wg.x + wg.y * nwg.x;
  let bh = flat / p.nqb;
  if (bh >= p.batch * p.heads) { return; }  // workgroup-uniform: padding of the folded grid
  let b = bh / p.heads;
  let h = bh % p.heads;
  for (var i = lid; i < ${FEW_K * d4}u; i += 64u) {
    let t = i / ${d4}u;
    let kb = p.kOff + (b * p.nk + min(t, p.nk - 1u)) * p.kStride + h * p.headDim;
    let vb = p.vOff + (b * p.nk + min(t, p.nk - 1u)) * p.vStride + h * p.headDim;
    ks[i] = ${loadVec4(v4, "kBuf", "kb", `(i % ${d4}u)`, "t < p.nk")};
    vs[i] = ${loadVec4(v4, "vBuf", "vb", `(i % ${d4}u)`, "t < p.nk")};
  }
  workgroupBarrier();
  let n = (flat % p.nqb) * 64u + lid;  // this thread's query
  if (n >= p.nq) { return; }
  let qb = p.qOff + (b * p.nq + n) * p.qStride + h * p.headDim;
${I.map((i) => `  let q${i} = ${loadVec4(v4, "qBuf", "qb", `${i}u`, "true")} * p.scale;`).join("\n")}
${J.map((j) => `  let s${j} = select(${NEG_BIG}, ${I.map((i) => `dot(q${i}, ks[${j * d4 + i}u])`).join(" + ")}, ${j}u < p.nk);`).join("\n")}
  let m = max(${J.map((j) => `s${j}`).reduce((a, x) => `max(${a}, ${x})`)}, ${NEG_BIG});
${J.map((j) => `  let p${j} = select(0.0, exp(s${j} - m), ${j}u < p.nk);`).join("\n")}
  let inv = 1.0 / (${J.map((j) => `p${j}`).join(" + ")});
${I.map((i) => `  let o${i} = ${J.map((j) => `p${j} * vs[${j * d4 + i}u]`).join(" + ")};`).join("\n")}
  let ob = (b * p.nq + n) * p.heads * p.headDim + h * p.headDim;
${store}
}`
    )
  };
}
function fewKeySpecFor(headDim, v4) {
  const dp = 16 * Math.ceil(headDim / 16);
  const key = `fewk/${dp}/${v4}`;
  let spec4 = SPECS3.get(key);
  if (!spec4) {
    spec4 = fewKeySpec(dp, v4);
    SPECS3.set(key, spec4);
  }
  return {
    spec: spec4,
    bq: 64
  };
}
function specFor(headDim, nq, nk, v4, relPos, biasTable, half, halfOut) {
  const c = Math.ceil(headDim / 32);
  const vt = {
    c,
    rows: nq <= 8 ? 1 : 4,
    keys: nk <= 8 ? 1 : c <= 2 ? 4 : 2,
    v4,
    relPos,
    biasTable,
    ...half ? {
      half
    } : {},
    ...halfOut ? {
      halfOut
    } : {}
  };
  const key = JSON.stringify(vt);
  let spec4 = SPECS3.get(key);
  if (!spec4) {
    spec4 = attentionSpec(vt);
    SPECS3.set(key, spec4);
  }
  return {
    spec: spec4,
    bq: 8 * vt.rows
  };
}
function fewQuerySpecFor(headDim, v4) {
  const dp = 16 * Math.ceil(headDim / 16);
  const key = `fewq/${dp}/${v4}`;
  let spec4 = SPECS3.get(key);
  if (!spec4) {
    spec4 = fewQuerySpec(dp, v4);
    SPECS3.set(key, spec4);
  }
  return {
    spec: spec4,
    bq: FEW_Q
  };
}
function checkView(label, v, dims, tokens) {
  const { batch, heads, headDim } = dims;
  for (const [k, x] of [
    [
      "offset",
      v.offset
    ],
    [
      "rowStride",
      v.rowStride
    ]
  ]) {
    if (!Number.isInteger(x) || x < 0) {
      throw new Error(`attention: ${label}.${k} must be a non-negative integer, got ${x}`);
    }
  }
  if (v.rowStride < heads * headDim) {
    throw new Error(`attention: ${label}.rowStride ${v.rowStride} < heads*headDim = ${heads * headDim}`);
  }
  const last = v.offset + (batch * tokens - 1) * v.rowStride + heads * headDim - 1;
  if (last >= v.tensor.size) {
    throw new Error(`attention: ${label} view [batch ${batch}, tokens ${tokens}, heads ${heads}, headDim ${headDim}] at offset ${v.offset}, rowStride ${v.rowStride} reaches element ${last} of a tensor of ${v.tensor.size} ([${v.tensor.shape}])`);
  }
}
function attentionKey(dims, relPos, half = false, halfOut = false) {
  const { batch, heads, headDim, nq, nk } = dims;
  const rel = relPos ? `|relpos${relPos.kH}x${relPos.kW}` : "";
  const f16 = half || halfOut ? `|f16${half ? "qkv" : ""}${halfOut ? "o" : ""}` : "";
  return `attention|${batch * heads}x${nq}x${nk}x${headDim}${rel}${f16}`;
}
var ATTENTION_CANDIDATES = [
  "tiled",
  "rows2w8",
  "rows4w8",
  "rows8w8",
  "rows4w16",
  "rows16w8",
  "splitkv4",
  "splitkv8",
  "tiledpad",
  "tiledpar"
];
function attentionCandidates(f16 = false, subgroups = false) {
  if (f16) return ATTENTION_CANDIDATES.filter((n) => !n.startsWith("splitkv"));
  return subgroups ? [
    ...ATTENTION_CANDIDATES,
    "tiledsg"
  ] : ATTENTION_CANDIDATES;
}
function defaultAttentionVariant(software, vec4 = true) {
  return software ? vec4 ? "rows16w8" : "rows4w8" : "tiled";
}
var ROWS_SPECS = /* @__PURE__ */ new Map();
var PADDED_SPECS = /* @__PURE__ */ new Map();
function attention(ctx, q, k, v, dims, opts = {}) {
  const { batch, heads, headDim, nq, nk } = dims;
  for (const [key, x] of Object.entries({
    batch,
    heads,
    headDim,
    nq,
    nk
  })) {
    if (!Number.isInteger(x) || x < 1) {
      throw new Error(`attention: dims.${key} must be a positive integer, got ${x}`);
    }
  }
  if (headDim > MAX_HEAD_DIM) {
    throw new Error(`attention: headDim ${headDim} > ${MAX_HEAD_DIM} is not supported`);
  }
  checkView("q", q, dims, nq);
  checkView("k", k, dims, nk);
  checkView("v", v, dims, nk);
  const scale = opts.scale ?? 1 / Math.sqrt(headDim);
  if (!Number.isFinite(scale)) throw new Error(`attention: scale ${scale} is not finite`);
  const rel = opts.relPos;
  if (rel) {
    if (nk > 1 << 20) {
      throw new Error(`attention: relPos with nk ${nk} > 2^20 is not supported`);
    }
    if (rel.kH * rel.kW !== nk) {
      throw new Error(`attention: relPos kH*kW = ${rel.kH}*${rel.kW} != nk ${nk}`);
    }
    if (rel.relH.size !== batch * heads * nq * rel.kH) {
      throw new Error(`attention: relPos.relH has ${rel.relH.size} elements, need [batch*heads ${batch * heads}, nq ${nq}, kH ${rel.kH}]`);
    }
    if (rel.relW.size !== batch * heads * nq * rel.kW) {
      throw new Error(`attention: relPos.relW has ${rel.relW.size} elements, need [batch*heads ${batch * heads}, nq ${nq}, kW ${rel.kW}]`);
    }
  }
  const table = opts.biasTable;
  if (table) {
    if (rel) throw new Error("attention: relPos and biasTable cannot be combined");
    if (table.size !== heads * nq * nk) {
      throw new Error(`attention: biasTable has ${table.size} elements, need [heads ${heads}, nq ${nq}, nk ${nk}]`);
    }
  }
  const half = q.tensor.dtype === "f16";
  if (k.tensor.dtype !== q.tensor.dtype || v.tensor.dtype !== q.tensor.dtype) {
    throw new Error("attention: q, k and v must have one dtype");
  }
  if (half) requireShaderF16(ctx, "attention");
  for (const t of [
    rel?.relH,
    rel?.relW,
    table
  ]) {
    if (t && t.dtype !== "f32") throw new Error("attention: bias tables must be f32");
  }
  const halfOut = opts.out?.dtype === "f16";
  if (halfOut) requireShaderF16(ctx, "attention");
  const outShape = [
    batch,
    nq,
    heads * headDim
  ];
  const out = opts.out ?? emptyTensor(ctx, outShape, "attention.out");
  if (out.size !== batch * nq * heads * headDim) {
    throw new Error(`attention: out has ${out.size} elements, need [${outShape}]`);
  }
  const inputs = [
    q.tensor,
    k.tensor,
    v.tensor,
    ...rel ? [
      rel.relH,
      rel.relW
    ] : [],
    ...table ? [
      table
    ] : []
  ];
  if (inputs.some((t) => t.buffer === out.buffer)) {
    throw new Error("attention: out must not share a buffer with q, k, v or relPos");
  }
  const v4 = [
    headDim,
    q.offset,
    q.rowStride,
    k.offset,
    k.rowStride,
    v.offset,
    v.rowStride
  ].every((x) => x % 4 === 0);
  const small = !rel && !table && !half && !halfOut && headDim <= FEW_Q_MAX_DP && (nk <= FEW_K || nq <= FEW_Q);
  const name = opts.variant ?? (small || table ? "tiled" : variantFor(ctx, attentionKey(dims, rel, half, halfOut), defaultAttentionVariant(ctx.gpu.software, v4), (tuned) => attentionCandidates(half || halfOut, ctx.gpu.hasSubgroups).includes(tuned)));
  const slices = parseSplitKvName(name);
  if (slices !== null && !table && !half && !halfOut && splitKvFits(ctx, batch * heads * nq, headDim, slices)) {
    runSplitKv(ctx, {
      batch,
      heads,
      headDim,
      nq,
      nk,
      scale,
      v4,
      slices,
      q: {
        buffer: q.tensor.buffer,
        offset: q.offset,
        rowStride: q.rowStride
      },
      k: {
        buffer: k.tensor.buffer,
        offset: k.offset,
        rowStride: k.rowStride
      },
      v: {
        buffer: v.tensor.buffer,
        offset: v.offset,
        rowStride: v.rowStride
      },
      rel: rel && {
        relH: rel.relH.buffer,
        relW: rel.relW.buffer,
        kH: rel.kH,
        kW: rel.kW
      },
      out: out.buffer
    });
    return out;
  }
  const rowsShape = name === "tiled" || slices !== null ? null : parseRowsName(name);
  let padded = parsePaddedName(name);
  if (name !== "tiled" && slices === null && !rowsShape && !padded) {
    throw new Error(`attention: unknown variant "${name}"`);
  }
  if (padded === "subgroup") {
    if (!ctx.gpu.hasSubgroups) {
      throw new Error(`attention: variant "tiledsg" needs the adapter feature 'subgroups', which ${ctx.gpu.description} does not offer (use "tiledpar")`);
    }
    if (half || halfOut) padded = "tree";
  }
  const rowsFit = rowsShape && !table && (!rel || rel.kH <= ROWS_MAX_REL && rel.kW <= ROWS_MAX_REL);
  let spec4;
  let bq;
  if (rowsShape && rowsFit) {
    const rv = {
      ...rowsShape,
      dp: 16 * Math.ceil(headDim / 16),
      v4,
      relPos: rel !== void 0,
      ...half ? {
        half
      } : {},
      ...halfOut ? {
        halfOut
      } : {}
    };
    const key = JSON.stringify(rv);
    spec4 = ROWS_SPECS.get(key) ?? attentionRowsSpec(rv);
    ROWS_SPECS.set(key, spec4);
    bq = rv.rows * rv.wg;
  } else if (padded && !table) {
    const c = Math.ceil(headDim / 32);
    const keys = nk <= 8 ? 1 : c <= 2 ? 4 : 2;
    const limit = ctx.device.limits.maxComputeWorkgroupStorageSize;
    const pv = {
      softmax: padded,
      c,
      keys,
      rows: paddedRows(nq, {
        softmax: padded,
        c,
        keys
      }, limit),
      v4,
      relPos: rel !== void 0,
      ...half ? {
        half
      } : {},
      ...halfOut ? {
        halfOut
      } : {}
    };
    const key = JSON.stringify(pv);
    spec4 = PADDED_SPECS.get(key) ?? attentionPaddedSpec(pv);
    PADDED_SPECS.set(key, spec4);
    bq = 8 * pv.rows;
  } else {
    ({ spec: spec4, bq } = small && nk <= FEW_K ? fewKeySpecFor(headDim, v4) : small && nq <= FEW_Q ? fewQuerySpecFor(headDim, v4) : specFor(headDim, nq, nk, v4, rel !== void 0, table !== void 0, half, halfOut));
  }
  const nqb = Math.ceil(nq / bq);
  const params = new Params().u32(batch, heads, headDim, nq, nk).u32(q.offset, q.rowStride, k.offset, k.rowStride, v.offset, v.rowStride).f32(scale).u32(nqb, Math.ceil(headDim / 4), rel?.kH ?? 1, rel?.kW ?? 1).f32(1 / (rel?.kW ?? 1)).build();
  const buffers = [
    q.tensor.buffer,
    k.tensor.buffer,
    v.tensor.buffer
  ];
  if (rel) buffers.push(rel.relH.buffer, rel.relW.buffer);
  if (table) buffers.push(table.buffer);
  buffers.push(out.buffer);
  ctx.dispatch(spec4, params, buffers, grid(batch * heads * nqb));
  return out;
}

// src/decoder/two_way_transformer.ts
var LN_EPS = 1e-5;
var Scratch = class {
  ctx;
  tensors;
  constructor(ctx) {
    this.ctx = ctx;
    this.tensors = [];
  }
  /** Registers a temporary and returns it. */
  t(x) {
    this.tensors.push(x);
    return x;
  }
  get list() {
    return this.tensors;
  }
  /** Submits what was recorded; the buffers are freed once the GPU is done with them. */
  flush() {
    this.ctx.submit();
    for (const x of this.tensors.splice(0)) x.destroy();
  }
};
function transformerImage(ctx, scratch3, parts, maskInputs, opts) {
  const { transformer, promptEncoder, image, pe } = parts;
  const { hw, dim: D, label } = opts;
  if (opts.reuse && maskInputs.every((m) => m === void 0)) {
    image.layer0 ??= transformer.projectSharedImage(image.srcNoMask, pe);
    return {
      shared: image.layer0
    };
  }
  const t = (x) => scratch3.t(x);
  const src = t(emptyTensor(ctx, [
    maskInputs.length,
    hw,
    D
  ], `${label}.src`));
  maskInputs.forEach((m, b) => {
    let row = image.srcNoMask;
    if (m) {
      const side = opts.lowResSize;
      const mask = t(tensorFrom(ctx, m, [
        1,
        side,
        side
      ], `${label}.mask_input`));
      const dense = t(promptEncoder.embedMask(mask, scratch3.list));
      row = t(add(ctx, image.imageTokens, dense));
    }
    ctx.copy(row.buffer, 0, src.buffer, b * hw * D * 4, hw * D * 4);
  });
  return {
    keys: src
  };
}
var TwoWayTransformer = class {
  ctx;
  layers;
  finalAttn;
  normFinal;
  heads;
  dim;
  constructor(ctx, sd, arch, p = "mask_decoder.transformer.", precision = "f32") {
    this.ctx = ctx;
    const up = (n) => uploadWeight(ctx, sd, `${p}${n}`);
    const lin = (n) => ({
      w: up(`${n}.weight`),
      b: up(`${n}.bias`)
    });
    const matrix = (n) => ({
      w: uploadMatrix(ctx, sd, `${p}${n}.weight`, precision),
      b: up(`${n}.bias`)
    });
    const attn = (n) => {
      const q = matrix(`${n}.q_proj`);
      return {
        q,
        k: matrix(`${n}.k_proj`),
        v: matrix(`${n}.v_proj`),
        out: matrix(`${n}.out_proj`),
        internal: q.w.shape[0]
      };
    };
    this.heads = arch.decoderNumHeads;
    this.dim = arch.promptEmbedDim;
    this.layers = [];
    for (let i = 0; i < arch.decoderDepth; i++) {
      const l = `layers.${i}.`;
      const sam2Mlp = sd.has(`${p}${l}mlp.layers.0.weight`);
      this.layers.push({
        selfAttn: attn(`${l}self_attn`),
        norm1: lin(`${l}norm1`),
        tokenToImage: attn(`${l}cross_attn_token_to_image`),
        norm2: lin(`${l}norm2`),
        mlp1: matrix(sam2Mlp ? `${l}mlp.layers.0` : `${l}mlp.lin1`),
        mlp2: matrix(sam2Mlp ? `${l}mlp.layers.1` : `${l}mlp.lin2`),
        norm3: lin(`${l}norm3`),
        norm4: lin(`${l}norm4`),
        imageToToken: attn(`${l}cross_attn_image_to_token`)
      });
    }
    this.finalAttn = attn("final_attn_token_to_image");
    this.normFinal = lin("norm_final_attn");
  }
  /**
   * Attention(q, k, v) of SAM's decoder: projections, multi-head attention, out_proj, with
   * `residual` added to the output when given. q: (B, Nq, D), k and v: (B, Nk, D); an input
   * given as `{ projected }` (B, N, I) was already projected (shared image side) and is used
   * as is.
   */
  attend(s, w, q, k, v, residual) {
    const ctx = this.ctx;
    const proj = (x, l) => x instanceof Tensor ? s.t(linear(ctx, x, l.w, l.b)) : x.projected;
    const qp = proj(q, w.q);
    const kp = proj(k, w.k);
    const vp = proj(v, w.v);
    const [batch, nq] = qp.shape, nk = kp.shape[1];
    const I = w.internal;
    const o = s.t(attention(ctx, {
      tensor: qp,
      offset: 0,
      rowStride: I
    }, {
      tensor: kp,
      offset: 0,
      rowStride: I
    }, {
      tensor: vp,
      offset: 0,
      rowStride: I
    }, {
      batch,
      heads: this.heads,
      headDim: I / this.heads,
      nq,
      nk
    }));
    return linear(ctx, o, w.out.w, w.out.b, residual ? {
      residual
    } : {});
  }
  /**
   * Layer 0's image side for keys = `src` (HW, D) in every prompt: token->image k and v,
   * image->token q, each (HW, I). The caller owns the result (not `src`).
   */
  projectSharedImage(src, keyPe) {
    const ctx = this.ctx, L = this.layers[0];
    const kPe = add(ctx, src, keyPe);
    try {
      const a = L.tokenToImage, b = L.imageToToken;
      return {
        src,
        k: linear(ctx, kPe, a.k.w, a.k.b),
        v: linear(ctx, src, a.v.w, a.v.b),
        q: linear(ctx, kPe, b.q.w, b.q.b)
      };
    } finally {
      this.ctx.submit();
      kPe.destroy();
    }
  }
  /**
   * Runs the transformer on B prompts. queryPe: (B, Nt, D) (the initial tokens); the image
   * side is either `keys` (B, HW, D), one src per prompt, or `shared`: the same src for every
   * prompt with layer 0's image projections done once (projectSharedImage). keyPe: (HW, D),
   * the same for every prompt (broadcast by `add`). Returns the processed tokens (B, Nt, D)
   * and image tokens (B, HW, D); the caller owns both (and its own inputs).
   */
  forward(queryPe, image, keyPe) {
    const ctx = this.ctx;
    const batch = queryPe.shape[0];
    const repeat = (s2, x) => batch === 1 ? x.reshape([
      1,
      ...x.shape
    ]) : s2.t(stridedCopy(ctx, x, {
      offset: 0,
      shape: [
        batch,
        x.size
      ],
      strides: [
        0,
        1
      ]
    })).reshape([
      batch,
      ...x.shape
    ]);
    const shared = "shared" in image ? image.shared : null;
    const keys0 = "keys" in image ? image.keys : null;
    let queries = queryPe;
    let keys = keys0;
    let queriesPe = null;
    let keysPe = null;
    for (let i = 0; i < this.layers.length; i++) {
      const L = this.layers[i];
      const s2 = new Scratch(ctx);
      if (queries !== queryPe) s2.t(queries);
      if (keys && keys !== keys0) s2.t(keys);
      if (queriesPe) s2.t(queriesPe);
      if (keysPe) s2.t(keysPe);
      let attnOut;
      if (i === 0) {
        attnOut = s2.t(this.attendSelf(s2, L.selfAttn, queries, queries, null));
      } else {
        attnOut = s2.t(this.attendSelf(s2, L.selfAttn, queriesPe, queries, queries));
      }
      const n1 = addLayerNorm(ctx, attnOut, L.norm1.w, L.norm1.b, LN_EPS, {
        pe: queryPe
      });
      queries = s2.t(n1.y);
      const qPe2 = s2.t(n1.yPe);
      const sh = keys ? null : shared;
      const kPe2 = sh ? {
        projected: repeat(s2, sh.q)
      } : keysPe ?? s2.t(add(ctx, keys, keyPe));
      const cross = s2.t(this.attend(s2, L.tokenToImage, qPe2, sh ? {
        projected: repeat(s2, sh.k)
      } : kPe2, sh ? {
        projected: repeat(s2, sh.v)
      } : keys, queries));
      queries = s2.t(layerNorm(ctx, cross, L.norm2.w, L.norm2.b, LN_EPS));
      const hidden = s2.t(linear(ctx, queries, L.mlp1.w, L.mlp1.b, {
        activation: "relu"
      }));
      const mlp = s2.t(linear(ctx, hidden, L.mlp2.w, L.mlp2.b, {
        residual: queries
      }));
      const n3 = addLayerNorm(ctx, mlp, L.norm3.w, L.norm3.b, LN_EPS, {
        pe: queryPe
      });
      queries = n3.y;
      queriesPe = n3.yPe;
      const back = s2.t(this.attend(s2, L.imageToToken, kPe2, queriesPe, queries, keys ?? void 0));
      const n4 = addLayerNorm(ctx, back, L.norm4.w, L.norm4.b, LN_EPS, {
        residual: sh ? sh.src : void 0,
        pe: keyPe
      });
      keys = n4.y;
      keysPe = n4.yPe;
      s2.flush();
    }
    const s = new Scratch(ctx);
    if (queries !== queryPe) s.t(queries);
    if (queriesPe) s.t(queriesPe);
    if (keysPe) s.t(keysPe);
    const qPe = queriesPe ?? s.t(add(ctx, queries, queryPe));
    const kPe = keysPe ?? s.t(add(ctx, keys, keyPe));
    const fin = s.t(this.attend(s, this.finalAttn, qPe, kPe, keys, queries));
    const out = layerNorm(ctx, fin, this.normFinal.w, this.normFinal.b, LN_EPS);
    s.flush();
    return {
      queries: out,
      keys
    };
  }
  /** Self attention where q and k are the same tensor (projected separately), v another. */
  attendSelf(s, w, qk, v, residual) {
    const ctx = this.ctx;
    const [batch, n] = qk.shape;
    const qp = s.t(linear(ctx, qk, w.q.w, w.q.b));
    const kp = s.t(linear(ctx, qk, w.k.w, w.k.b));
    const vp = s.t(linear(ctx, v, w.v.w, w.v.b));
    const I = w.internal;
    const o = s.t(attention(ctx, {
      tensor: qp,
      offset: 0,
      rowStride: I
    }, {
      tensor: kp,
      offset: 0,
      rowStride: I
    }, {
      tensor: vp,
      offset: 0,
      rowStride: I
    }, {
      batch,
      heads: this.heads,
      headDim: I / this.heads,
      nq: n,
      nk: n
    }));
    return linear(ctx, o, w.out.w, w.out.b, residual ? {
      residual
    } : {});
  }
  dispose() {
    const all = [];
    const attn = (a) => all.push(a.q, a.k, a.v, a.out);
    for (const L of this.layers) {
      attn(L.selfAttn);
      attn(L.tokenToImage);
      attn(L.imageToToken);
      all.push(L.norm1, L.norm2, L.norm3, L.norm4, L.mlp1, L.mlp2);
    }
    attn(this.finalAttn);
    all.push(this.normFinal);
    for (const x of all) {
      x.w.destroy();
      x.b.destroy();
    }
  }
};

// src/decoder/mask_decoder.ts
var LN2D_EPS2 = 1e-6;
var MAX_BATCH = 16;
var IMAGE_CACHE_ENTRIES = 2;
function blockDiagonal(ws, bs, n, k) {
  const t = ws.length;
  const w = new Float32Array(t * n * t * k);
  const b = new Float32Array(t * n);
  for (let i = 0; i < t; i++) {
    for (let r = 0; r < n; r++) {
      w.set(ws[i].subarray(r * k, (r + 1) * k), (i * n + r) * t * k + i * k);
    }
    b.set(bs[i], i * n);
  }
  return {
    w,
    b
  };
}
var SamDecoder = class _SamDecoder {
  ctx;
  precision;
  arch;
  promptEncoder;
  transformer;
  /** Side of the image embedding (s); low-res masks are 4s x 4s. */
  embedSize;
  dim;
  numMaskTokens;
  /** Prompts per decoder pass. */
  maxBatch;
  /** iou_token then mask_tokens: (1 + T, D), the first output tokens of every prompt. */
  outputTokens;
  upscale0;
  upscaleNorm;
  upscale3;
  hyper;
  iouHead;
  images;
  constructor(ctx, sd, arch, precision = "f32") {
    this.ctx = ctx;
    this.precision = precision;
    this.images = new PinnedImageCache(IMAGE_CACHE_ENTRIES, (entry) => this.destroyImage(entry));
    this.arch = arch;
    this.dim = arch.promptEmbedDim;
    this.embedSize = arch.imgSize / arch.patchSize;
    this.numMaskTokens = arch.numMultimaskOutputs + 1;
    this.promptEncoder = PromptEncoder.create(ctx, sd, arch);
    this.transformer = new TwoWayTransformer(ctx, sd, arch, void 0, precision);
    const host2 = (n) => {
      const t = sd.get(n);
      if (!t) throw new Error(`decoder: checkpoint has no tensor '${n}'`);
      return tensorF32(t);
    };
    const p = "mask_decoder.";
    const iou = host2(`${p}iou_token.weight`), masks = host2(`${p}mask_tokens.weight`);
    this.outputTokens = new Float32Array(iou.length + masks.length);
    this.outputTokens.set(iou);
    this.outputTokens.set(masks, iou.length);
    const lin = (n) => ({
      w: uploadWeight(ctx, sd, `${p}${n}.weight`),
      b: uploadWeight(ctx, sd, `${p}${n}.bias`)
    });
    const matrix = (n) => ({
      w: uploadMatrix(ctx, sd, `${p}${n}.weight`, precision),
      b: uploadWeight(ctx, sd, `${p}${n}.bias`)
    });
    const packConvT = (n) => {
      const [cin, cout] = sd.get(`${p}${n}.weight`)?.shape ?? [];
      return packConvTranspose2d(ctx, host2(`${p}${n}.weight`), host2(`${p}${n}.bias`), cin, cout, `${p}${n}`);
    };
    this.upscale0 = packConvT("output_upscaling.0");
    this.upscaleNorm = lin("output_upscaling.1");
    this.upscale3 = packConvT("output_upscaling.3");
    const D = this.dim, T = this.numMaskTokens;
    this.hyper = [];
    for (let j = 0; j < 3; j++) {
      const names = [
        ...Array(T).keys()
      ].map((i) => `${p}output_hypernetworks_mlps.${i}.layers.${j}`);
      const shape = sd.get(`${names[0]}.weight`)?.shape;
      if (!shape) throw new Error(`decoder: checkpoint has no tensor '${names[0]}.weight'`);
      const [n, k] = shape;
      const bd = blockDiagonal(names.map((x) => host2(`${x}.weight`)), names.map((x) => host2(`${x}.bias`)), n, k);
      this.hyper.push({
        w: (precision === "f16" ? tensorFromF16 : tensorFrom)(ctx, bd.w, [
          T * n,
          T * k
        ], `hypernetworks.${j} (block diagonal)`),
        b: tensorFrom(ctx, bd.b, [
          T * n
        ], `hypernetworks.${j}.bias`)
      });
    }
    this.iouHead = [];
    for (let j = 0; j < arch.iouHeadDepth; j++) {
      this.iouHead.push(matrix(`iou_prediction_head.layers.${j}`));
    }
    const hw = this.embedSize * this.embedSize;
    const perPrompt = Math.max(2 * hw * D, 4 * 16 * hw, hw * 2 * D) * 4;
    const limit = ctx.device.limits.maxStorageBufferBindingSize;
    this.maxBatch = Math.max(1, Math.min(MAX_BATCH, Math.floor(limit / perPrompt)));
  }
  static create(ctx, sd, arch, precision = "f32") {
    return new _SamDecoder(ctx, sd, arch, precision);
  }
  /** Side of the low-res masks (4s; 256 for the real models). */
  get lowResSize() {
    return 4 * this.embedSize;
  }
  /**
   * Decodes every prompt against `embedding` (1, D, s, s), NCHW, on the GPU. Prompts are in
   * original-image pixels (opts.originalSize = [h, w]); results come in prompt order.
   */
  async predict(embedding, prompts, opts) {
    const D = this.dim, s = this.embedSize, hw = s * s;
    if (embedding.size !== D * hw) {
      throw new Error(`decoder: image embedding [${embedding.shape}] must be (1, ${D}, ${s}, ${s})`);
    }
    if (opts.lowResOut || opts.iouOut) {
      const counts = new Set(prompts.map((p) => opts.allTokens ? this.numMaskTokens : p.multimask ?? opts.multimask ?? defaultMultimask(p) ? this.numMaskTokens - 1 : 1));
      const c = counts.size === 1 ? [
        ...counts
      ][0] : -1;
      const need = prompts.length * c * this.lowResSize * this.lowResSize;
      if (opts.iouOut && (c < 0 || opts.iouOut.size !== prompts.length * c)) {
        throw new Error(`decoder: iouOut [${opts.iouOut.shape}] needs every prompt to return the same number of masks and (N=${prompts.length}, C) elements`);
      }
      if (opts.lowResOut && (c < 0 || opts.lowResOut.size !== need)) {
        throw new Error(`decoder: lowResOut [${opts.lowResOut.shape}] needs every prompt to return the same number of masks and (N=${prompts.length}, C, ${this.lowResSize}, ${this.lowResSize}) elements`);
      }
    }
    const frames = prompts.map((p, i) => toFramePrompt(p, opts.originalSize, this.arch.imgSize, this.lowResSize, i));
    const groups = /* @__PURE__ */ new Map();
    prompts.forEach((p, i) => {
      const multi = p.multimask ?? opts.multimask ?? defaultMultimask(p);
      const mask = p.maskInput ? "mask" : "none";
      const key = `${mask}:${sparseTokenCount(frames[i])}:${opts.allTokens ? "all" : multi}`;
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [
        i
      ]);
    });
    if (prompts.length === 0) return [];
    const reuse = opts.reuseImage ?? true;
    const pin = this.images.acquire(embedding.buffer, reuse, () => this.ctx.pooled(() => this.makeImage(embedding)));
    const entry = pin.entry;
    const results = new Array(prompts.length);
    const passes = [];
    for (const [key, members] of groups) {
      for (let start = 0; start < members.length; start += this.maxBatch) {
        passes.push({
          key,
          chunk: members.slice(start, start + this.maxBatch)
        });
      }
    }
    const output = opts.output ?? "masks";
    const T = this.numMaskTokens, low = this.lowResSize * this.lowResSize;
    let bytes = 0;
    for (const { key, chunk } of passes) {
      const count = key.endsWith("all") ? T : key.endsWith("true") ? T - 1 : 1;
      if (!opts.lowResOut) bytes += chunk.length * count * low * 4;
      if (!opts.iouOut) bytes += chunk.length * T * 4;
      if (output !== "none") {
        bytes += postprocessReadBytes(chunk.length * count, opts.originalSize, output);
      }
    }
    const rb = new Readback(this.ctx, bytes);
    try {
      const finishers = passes.map(({ key, chunk }) => {
        const multi = key.endsWith("true");
        const all = key.endsWith("all");
        const finish = this.ctx.pooled(() => this.recordPass(chunk, chunk.map((i) => frames[i]), chunk.map((i) => prompts[i].maskInput), entry, reuse, all ? "all" : multi ? "multi" : "single", opts, rb));
        return {
          chunk,
          finish
        };
      });
      if (bytes === 0) {
        this.ctx.submit();
        const data = [];
        for (const { chunk, finish } of finishers) {
          finish(data).forEach((r, j) => results[chunk[j]] = r);
        }
      } else {
        const data = await rb.map();
        for (const { chunk, finish } of finishers) {
          finish(data).forEach((r, j) => results[chunk[j]] = r);
        }
      }
    } catch (err) {
      rb.discard();
      this.images.drop(pin);
      throw err;
    } finally {
      this.images.unpin(pin);
    }
    return results;
  }
  /**
   * The prompt-independent tensors of `embedding` (kept by `images`, at most
   * IMAGE_CACHE_ENTRIES embeddings, pinned while a call uses them).
   */
  makeImage(embedding) {
    const ctx = this.ctx, D = this.dim, hw = this.embedSize * this.embedSize;
    const imageTokens = stridedCopy(ctx, embedding, {
      offset: 0,
      shape: [
        hw,
        D
      ],
      strides: [
        1,
        hw
      ]
    });
    const srcNoMask = add(ctx, imageTokens, this.promptEncoder.noMaskEmbedGpu());
    return {
      imageTokens,
      srcNoMask,
      layer0: null
    };
  }
  destroyImage(entry) {
    this.ctx.submit();
    entry.imageTokens.destroy();
    entry.srcNoMask.destroy();
    const l0 = entry.layer0;
    if (l0) {
      for (const x of [
        l0.k,
        l0.v,
        l0.q
      ]) x.destroy();
    }
    entry.layer0 = null;
  }
  /**
   * Forgets what was computed from `embedding` (call it before destroying the embedding or
   * rewriting its buffer in place; the predictor does). True when something was kept.
   */
  releaseEmbedding(embedding) {
    return this.images.release(embedding.buffer);
  }
  /** Whether the prompt-independent work of `embedding` is kept (for tests). */
  hasImageCached(embedding) {
    return this.images.has(embedding.buffer);
  }
  /** Number of image embeddings whose prompt-independent work is kept. */
  get cachedImages() {
    return this.images.size;
  }
  /**
   * Records one decoder pass over B prompts with the same token count, its outputs copied
   * into `rb`; the returned function makes the results from `rb`'s mapped ranges.
   */
  recordPass(indices, frames, maskInputs, image, reuse, mode, opts, rb) {
    const ctx = this.ctx, D = this.dim, s = this.embedSize, hw = s * s;
    const T = this.numMaskTokens, B = frames.length;
    const scratch3 = new Scratch(ctx);
    const t = (x) => scratch3.t(x);
    try {
      const nSparse = sparseTokenCount(frames[0]);
      const nt = 1 + T + nSparse;
      const tokens = new Float32Array(B * nt * D);
      frames.forEach((fp, b) => {
        tokens.set(this.outputTokens, b * nt * D);
        tokens.set(this.promptEncoder.sparse(fp), (b * nt + 1 + T) * D);
      });
      const queryPe = t(tensorFrom(ctx, tokens, [
        B,
        nt,
        D
      ], "decoder.tokens"));
      const pe = this.promptEncoder.densePeGpu();
      const forwardImage = transformerImage(ctx, scratch3, {
        transformer: this.transformer,
        promptEncoder: this.promptEncoder,
        image,
        pe
      }, maskInputs, {
        reuse,
        lowResSize: this.lowResSize,
        hw,
        dim: D,
        label: "decoder"
      });
      const { queries, keys } = this.transformer.forward(queryPe, forwardImage, pe);
      t(queries);
      t(keys);
      const up1 = t(convTranspose2dGemm(ctx, keys.reshape([
        B,
        s,
        s,
        D
      ]), this.upscale0, {
        pixelOrder: "blocks"
      }));
      const c4 = this.upscale0.cout;
      const up1n = t(layerNorm(ctx, up1, this.upscaleNorm.w, this.upscaleNorm.b, LN2D_EPS2));
      const up1g = t(activation(ctx, up1n, "gelu")).reshape([
        B,
        4 * hw,
        1,
        c4
      ]);
      const up2 = t(convTranspose2dGemm(ctx, up1g, this.upscale3, {
        activation: "gelu",
        pixelOrder: "blocks"
      }));
      const c8 = this.upscale3.cout;
      let h = t(stridedCopy(ctx, queries, {
        offset: D,
        shape: [
          B,
          T * D
        ],
        strides: [
          nt * D,
          1
        ]
      }));
      this.hyper.forEach((l, j) => {
        h = t(linear(ctx, h, l.w, l.b, {
          activation: j < this.hyper.length - 1 ? "relu" : "none"
        }));
      });
      const low = 16 * hw;
      const blocks = t(matmul(ctx, h.reshape([
        B,
        T,
        c8
      ]), up2.reshape([
        B,
        low,
        c8
      ]), {
        transposeB: true
      }));
      let q = t(stridedCopy(ctx, queries, {
        offset: 0,
        shape: [
          B,
          D
        ],
        strides: [
          nt * D,
          1
        ]
      }));
      this.iouHead.forEach((l, j) => {
        q = t(linear(ctx, q, l.w, l.b, {
          activation: j < this.iouHead.length - 1 ? "relu" : "none"
        }));
      });
      const [first, count] = mode === "multi" ? [
        1,
        T - 1
      ] : mode === "single" ? [
        0,
        1
      ] : [
        0,
        T
      ];
      const picked = count === T ? blocks : t(stridedCopy(ctx, blocks, {
        offset: first * low,
        shape: [
          B,
          count,
          low
        ],
        strides: [
          T * low,
          low,
          1
        ]
      }));
      const planes = B * count;
      const rows = t(stridedCopy(ctx, picked, {
        offset: 0,
        shape: [
          planes * s,
          2,
          s,
          8
        ],
        strides: [
          16 * s,
          8,
          16,
          1
        ]
      }));
      const selected = t(stridedCopy(ctx, rows, {
        offset: 0,
        shape: [
          planes * s * 2,
          2,
          2 * s,
          2
        ],
        strides: [
          8 * s,
          2,
          4,
          1
        ]
      })).reshape([
        B,
        count,
        low
      ]);
      const planeBytes = count * low * 4;
      if (opts.lowResOut) {
        indices.forEach((index, b) => ctx.copy(selected.buffer, b * planeBytes, opts.lowResOut.buffer, index * planeBytes, planeBytes));
      }
      if (opts.iouOut) {
        indices.forEach((index, b) => ctx.copy(q.buffer, (b * T + first) * 4, opts.iouOut.buffer, index * count * 4, count * 4));
      }
      const lowRange = opts.lowResOut ? -1 : rb.copy(selected.buffer, 0, B * planeBytes);
      const iouRange = opts.iouOut ? -1 : rb.copy(q.buffer, 0, B * T * 4);
      const output = opts.output ?? "masks";
      let finishPlanes = null;
      if (output !== "none") {
        const inputSize = preprocessShape(opts.originalSize[0], opts.originalSize[1], this.arch.imgSize);
        const side = this.lowResSize;
        finishPlanes = samPostprocessRecord(ctx, selected.reshape([
          B,
          count,
          side,
          side
        ]), {
          imgSize: this.arch.imgSize,
          inputSize,
          originalSize: opts.originalSize
        }, output, rb);
      }
      return (data) => {
        const lowRes = lowRange < 0 ? new Float32Array(0) : new Float32Array(data[lowRange]);
        const iouAll = iouRange < 0 ? null : new Float32Array(data[iouRange]);
        const results = [];
        for (let b = 0; b < B; b++) {
          results.push({
            count,
            lowRes: lowRange < 0 ? lowRes : lowRes.slice(b * count * low, (b + 1) * count * low),
            iou: iouAll ? iouAll.slice(b * T + first, b * T + first + count) : new Float32Array(0)
          });
        }
        finishPlanes?.(data, (plane, masksOut, logitsOut) => {
          const r = results[Math.floor(plane / count)];
          if (masksOut) (r.masks ??= []).push(masksOut);
          if (logitsOut) {
            const [oh, ow] = opts.originalSize;
            r.logits ??= new Float32Array(count * oh * ow);
            r.logits.set(logitsOut, plane % count * oh * ow);
          }
        });
        return results;
      };
    } finally {
      scratch3.flush();
    }
  }
  dispose() {
    this.images.clear();
    this.ctx.trimStoragePool();
    this.promptEncoder.dispose();
    this.transformer.dispose();
    for (const l of [
      this.upscaleNorm,
      ...this.hyper,
      ...this.iouHead
    ]) {
      l.w.destroy();
      l.b.destroy();
    }
    for (const c of [
      this.upscale0,
      this.upscale3
    ]) {
      c.weight.destroy();
      c.bias.destroy();
    }
  }
};

// src/kernels/sigmoid_affine.ts
var WG10 = 256;
function spec3(mode) {
  const m = mode === "sigmoid" ? "1.0 / (1.0 + exp(-v))" : "select(0.0, 1.0, v > 0.0)";
  return {
    name: `sigmoid_affine_${mode}_f32`,
    bindings: [
      "uniform",
      "read",
      "write"
    ],
    code: () => (
      /* wgsl */
      `
struct P { n: u32, scale: f32, bias: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG10})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG10}u;
  if (i >= p.n) { return; }
  let v = x[i];
  let m = ${m};
  // Two statements so the product is rounded before the sum (no fused multiply-add).
  let scaled = m * p.scale;
  out[i] = scaled + p.bias;
}`
    )
  };
}
var SPECS4 = {
  sigmoid: spec3("sigmoid"),
  binarize: spec3("binarize")
};
function sigmoidAffine(ctx, x, opts) {
  const s = SPECS4[opts.mode];
  if (!s) throw new Error(`sigmoidAffine: unknown mode ${opts.mode}`);
  if (!Number.isFinite(opts.scale) || !Number.isFinite(opts.bias)) {
    throw new Error(`sigmoidAffine: scale ${opts.scale} and bias ${opts.bias} must be finite`);
  }
  const y = opts.out ?? emptyTensor(ctx, x.shape, "sigmoid_affine.out");
  if (y.size !== x.size) {
    throw new Error(`sigmoidAffine: out has ${y.size} elements, need ${x.size}`);
  }
  if (y.buffer === x.buffer) throw new Error("sigmoidAffine: out must not alias x");
  const params = new Params().u32(x.size).f32(opts.scale, opts.bias).build();
  ctx.dispatch(s, params, [
    x.buffer,
    y.buffer
  ], grid(Math.ceil(x.size / WG10)));
  return y;
}

// src/amg/regions.ts
function connectedComponents8(mask, height, width) {
  const labels = new Int32Array(height * width);
  let background = 0;
  for (let i = 0; i < mask.length; i++) if (!mask[i]) background++;
  const sizes = [
    background
  ];
  const stack = new Int32Array(height * width);
  const flood = (start, label) => {
    let size = 0, top = 0;
    labels[start] = label;
    stack[top++] = start;
    while (top > 0) {
      const p = stack[--top];
      size++;
      const y = Math.floor(p / width), x = p - y * width;
      for (let ny = Math.max(0, y - 1); ny <= Math.min(height - 1, y + 1); ny++) {
        for (let nx = Math.max(0, x - 1); nx <= Math.min(width - 1, x + 1); nx++) {
          const q = ny * width + nx;
          if (mask[q] && !labels[q]) {
            labels[q] = label;
            stack[top++] = q;
          }
        }
      }
    }
    return size;
  };
  for (let by = 0; by < height; by += 2) {
    for (let bx = 0; bx < width; bx += 2) {
      for (let y = by; y < Math.min(by + 2, height); y++) {
        for (let x = bx; x < Math.min(bx + 2, width); x++) {
          const p = y * width + x;
          if (mask[p] && !labels[p]) sizes.push(flood(p, sizes.length));
        }
      }
    }
  }
  return {
    labels,
    sizes
  };
}

// src/sam2/regions.ts
function removeSmallRegions(plane, height, width, maxHoleArea, maxSprinkleArea) {
  const n = height * width;
  const fg = new Uint8Array(n);
  for (let q = 0; q < n; q++) fg[q] = plane[q] > 0 ? 1 : 0;
  const edits = [];
  if (maxHoleArea > 0) edits.push([
    fg.map((v) => 1 - v),
    maxHoleArea,
    10
  ]);
  if (maxSprinkleArea > 0) edits.push([
    fg,
    maxSprinkleArea,
    -10
  ]);
  const changes = [];
  for (const [mask, maxArea, value] of edits) {
    const { labels, sizes } = connectedComponents8(mask, height, width);
    for (let q = 0; q < n; q++) {
      const l = labels[q];
      if (l > 0 && sizes[l] <= maxArea) changes.push([
        q,
        value
      ]);
    }
  }
  for (const [q, value] of changes) plane[q] = value;
  return changes.length;
}

// src/sam2/mask_decoder.ts
var f2 = Math.fround;
var LN2D_EPS3 = 1e-6;
var MAX_BATCH2 = 16;
var IMAGE_CACHE_ENTRIES2 = 2;
var LOW_RES_CLAMP = 32;
var NO_OBJ_HEAD_SCORE = 10;
var Sam2Decoder = class _Sam2Decoder {
  ctx;
  arch;
  promptEncoder;
  transformer;
  embedSize;
  dim;
  numMaskTokens;
  maxBatch;
  /** obj_score_token (when predObjScores), iou_token, mask_tokens: (nPre + T, C). */
  outputTokens;
  /** Output tokens before the mask tokens: 2 (object score, IoU) or 1 (IoU). */
  nPre;
  upscale0;
  upscaleNorm;
  upscale3;
  hyper;
  iouHead;
  objHead;
  images;
  dec;
  constructor(ctx, sd, arch) {
    this.ctx = ctx;
    this.images = new PinnedImageCache(IMAGE_CACHE_ENTRIES2, (entry) => this.destroyImage(entry));
    this.arch = arch;
    const dec = this.dec = arch.decoder;
    if (!dec.useHighResFeatures) {
      throw new Error("sam2 decoder: no conv_s0 / conv_s1: models without high-res features are not supported");
    }
    this.dim = arch.dModel;
    this.embedSize = arch.imgSize / arch.backboneStride;
    this.numMaskTokens = dec.numMultimaskOutputs + 1;
    const shared = {
      imgSize: arch.imgSize,
      patchSize: arch.backboneStride,
      promptEmbedDim: arch.dModel,
      decoderDepth: dec.depth,
      decoderNumHeads: dec.numHeads
    };
    this.promptEncoder = PromptEncoder.create(ctx, sd, shared, "sam_prompt_encoder.");
    const p = "sam_mask_decoder.";
    this.transformer = new TwoWayTransformer(ctx, sd, shared, `${p}transformer.`);
    const shapeOf = (n) => {
      const t = sd.get(n);
      if (!t) throw new Error(`sam2 decoder: checkpoint has no tensor '${n}'`);
      return t.shape;
    };
    const host2 = (n) => {
      const t = sd.get(n);
      if (!t) throw new Error(`sam2 decoder: checkpoint has no tensor '${n}'`);
      return tensorF32(t);
    };
    this.nPre = dec.predObjScores ? 2 : 1;
    const parts = [
      ...dec.predObjScores ? [
        "obj_score_token"
      ] : [],
      "iou_token",
      "mask_tokens"
    ].map((n) => host2(`${p}${n}.weight`));
    this.outputTokens = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of parts) {
      this.outputTokens.set(x, at);
      at += x.length;
    }
    const lin = (n) => ({
      w: uploadWeight(ctx, sd, `${p}${n}.weight`),
      b: uploadWeight(ctx, sd, `${p}${n}.bias`)
    });
    const packConvT = (n) => {
      const [cin, cout] = shapeOf(`${p}${n}.weight`);
      return packConvTranspose2d(ctx, host2(`${p}${n}.weight`), host2(`${p}${n}.bias`), cin, cout, `${p}${n}`);
    };
    this.upscale0 = packConvT("output_upscaling.0");
    this.upscaleNorm = lin("output_upscaling.1");
    this.upscale3 = packConvT("output_upscaling.3");
    const T = this.numMaskTokens;
    this.hyper = [];
    for (let j = 0; j < 3; j++) {
      const names = [
        ...Array(T).keys()
      ].map((i) => `${p}output_hypernetworks_mlps.${i}.layers.${j}`);
      const [n, k] = shapeOf(`${names[0]}.weight`);
      const bd = blockDiagonal(names.map((x) => host2(`${x}.weight`)), names.map((x) => host2(`${x}.bias`)), n, k);
      this.hyper.push({
        w: tensorFrom(ctx, bd.w, [
          T * n,
          T * k
        ], `sam2 hypernetworks.${j} (block diagonal)`),
        b: tensorFrom(ctx, bd.b, [
          T * n
        ], `sam2 hypernetworks.${j}.bias`)
      });
    }
    this.iouHead = [];
    for (let j = 0; j < dec.iouHeadDepth; j++) {
      this.iouHead.push(lin(`iou_prediction_head.layers.${j}`));
    }
    this.objHead = !dec.predObjScores ? [] : dec.objScoreHeadDepth === 1 ? [
      lin("pred_obj_score_head")
    ] : [
      ...Array(dec.objScoreHeadDepth).keys()
    ].map((j) => lin(`pred_obj_score_head.layers.${j}`));
    const hw = this.embedSize * this.embedSize, D = this.dim;
    const perPrompt = Math.max(2 * hw * D, 4 * 16 * hw, hw * 2 * D) * 4;
    const limit = ctx.device.limits.maxStorageBufferBindingSize;
    this.maxBatch = Math.max(1, Math.min(MAX_BATCH2, Math.floor(limit / perPrompt)));
  }
  static create(ctx, sd, arch) {
    return new _Sam2Decoder(ctx, sd, arch);
  }
  /** Side of the low-res masks (4s; 256 for the real models). */
  get lowResSize() {
    return 4 * this.embedSize;
  }
  /**
   * SAM2Transforms.transform_coords (normalize=True) of one prompt, with SAM 1's checks of
   * the prompt: x / w * S, y / h * S in float32, as the torch tensors compute them.
   */
  toFrame(p, originalSize, i) {
    toFramePrompt(p, originalSize, this.arch.imgSize, this.lowResSize, i);
    const [h, w] = originalSize;
    const S = this.arch.imgSize;
    const coords = [];
    const labels = [];
    const push = (x, y, label) => {
      coords.push(f2(f2(f2(x) / w) * S), f2(f2(f2(y) / h) * S));
      labels.push(label);
    };
    if (p.box) {
      push(p.box[0], p.box[1], 2);
      push(p.box[2], p.box[3], 3);
    }
    const points = p.points ?? [];
    const pl = p.labels ?? points.map(() => 1);
    points.forEach((pt, k) => push(pt[0], pt[1], pl[k]));
    if (labels.length > 0) {
      coords.push(0, 0);
      labels.push(-1);
    }
    return {
      coords: Float32Array.from(coords),
      labels: Int32Array.from(labels)
    };
  }
  /** The sparse prompt embeddings (N, C) of one prompt, as the official prompt encoder. */
  sparseEmbeddings(p, originalSize) {
    const frame = this.toFrame(p, originalSize, 0);
    return this.promptEncoder.embedPoints(frame.coords, frame.labels);
  }
  /**
   * Decodes every prompt against `features`. Prompts are in original-image pixels
   * (opts.originalSize = [h, w]); results come in prompt order. `lowResOut`, when given,
   * receives the unclamped low-res logits that the upscaling reads (after hole / sprinkle
   * removal when asked); each result's lowRes is then empty.
   */
  async predict(features, prompts, opts) {
    const D = this.dim, s = this.embedSize;
    const expect = [
      [
        features.imageEmbed,
        D,
        s,
        "image_embed"
      ],
      [
        features.highRes0,
        D / 8,
        4 * s,
        "high_res_feats_0"
      ],
      [
        features.highRes1,
        D / 4,
        2 * s,
        "high_res_feats_1"
      ]
    ];
    for (const [t, c, side, name] of expect) {
      if (t.size !== c * side * side) {
        throw new Error(`sam2 decoder: ${name} [${t.shape}] must be (1, ${c}, ${side}, ${side})`);
      }
    }
    const modeOf = (p) => opts.allTokens ? "all" : p.multimask ?? opts.multimask ?? defaultMultimask(p) ? "multi" : "single";
    if (opts.lowResOut || opts.iouOut) {
      const counts = new Set(prompts.map((p) => this.countOf(modeOf(p))));
      const c = counts.size === 1 ? [
        ...counts
      ][0] : -1;
      if (opts.iouOut && (c < 0 || opts.iouOut.size !== prompts.length * c)) {
        throw new Error(`sam2 decoder: iouOut [${opts.iouOut.shape}] needs every prompt to return the same number of masks and (N=${prompts.length}, C) elements`);
      }
      const need = prompts.length * c * this.lowResSize * this.lowResSize;
      if (opts.lowResOut && (c < 0 || opts.lowResOut.size !== need)) {
        throw new Error(`sam2 decoder: lowResOut [${opts.lowResOut.shape}] needs every prompt to return the same number of masks and (N=${prompts.length}, C, ${this.lowResSize}, ${this.lowResSize}) elements`);
      }
    }
    const frames = prompts.map((p, i) => this.toFrame(p, opts.originalSize, i));
    const groups = /* @__PURE__ */ new Map();
    prompts.forEach((p, i) => {
      const key = `${p.maskInput ? "mask" : "none"}:${frames[i].labels.length}:${modeOf(p)}`;
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [
        i
      ]);
    });
    if (prompts.length === 0) return [];
    const reuse = opts.reuseImage ?? true;
    const pin = this.images.acquire(features.imageEmbed.buffer, reuse, () => this.ctx.pooled(() => this.makeImage(features)));
    const entry = pin.entry;
    const results = new Array(prompts.length);
    try {
      for (const [key, members] of groups) {
        const mode = key.split(":")[2];
        for (let start = 0; start < members.length; start += this.maxBatch) {
          const chunk = members.slice(start, start + this.maxBatch);
          const out = await this.ctx.pooled(() => this.runPass(chunk, chunk.map((i) => frames[i]), chunk.map((i) => prompts[i].maskInput), entry, reuse, mode, opts));
          chunk.forEach((i, j) => results[i] = out[j]);
        }
      }
    } catch (err) {
      this.images.drop(pin);
      throw err;
    } finally {
      this.images.unpin(pin);
    }
    return results;
  }
  countOf(mode) {
    return mode === "all" ? this.numMaskTokens : mode === "multi" ? this.numMaskTokens - 1 : 1;
  }
  makeImage(features) {
    const ctx = this.ctx, D = this.dim, hw = this.embedSize * this.embedSize;
    const tokens = (x, c, n) => stridedCopy(ctx, x, {
      offset: 0,
      shape: [
        n,
        c
      ],
      strides: [
        1,
        n
      ]
    });
    const imageTokens = tokens(features.imageEmbed, D, hw);
    const srcNoMask = add(ctx, imageTokens, this.promptEncoder.noMaskEmbedGpu());
    return {
      imageTokens,
      srcNoMask,
      layer0: null,
      highRes1: tokens(features.highRes1, D / 4, 4 * hw),
      highRes0: tokens(features.highRes0, D / 8, 16 * hw)
    };
  }
  destroyImage(entry) {
    this.ctx.submit();
    for (const x of [
      entry.imageTokens,
      entry.srcNoMask,
      entry.highRes0,
      entry.highRes1
    ]) {
      x.destroy();
    }
    const l0 = entry.layer0;
    if (l0) {
      for (const x of [
        l0.k,
        l0.v,
        l0.q
      ]) x.destroy();
    }
    entry.layer0 = null;
  }
  /**
   * Forgets what was computed from the feature set whose image_embed is `imageEmbed` (call it
   * before destroying the features). True when something was kept.
   */
  releaseEmbedding(imageEmbed) {
    return this.images.release(imageEmbed.buffer);
  }
  hasImageCached(imageEmbed) {
    return this.images.has(imageEmbed.buffer);
  }
  get cachedImages() {
    return this.images.size;
  }
  /** (B, n) rows through an MLP of linears with ReLU between. */
  mlp(scratch3, x, layers) {
    let h = x;
    layers.forEach((l, j) => {
      h = scratch3.t(linear(this.ctx, h, l.w, l.b, {
        activation: j < layers.length - 1 ? "relu" : "none"
      }));
    });
    return h;
  }
  async runPass(indices, frames, maskInputs, image, reuse, mode, opts) {
    const ctx = this.ctx, D = this.dim, s = this.embedSize, hw = s * s;
    const T = this.numMaskTokens, B = frames.length;
    const scratch3 = new Scratch(ctx);
    const t = (x) => scratch3.t(x);
    try {
      const pre = this.nPre, nOut = pre + T;
      const nt = nOut + frames[0].labels.length;
      const tokens = new Float32Array(B * nt * D);
      frames.forEach((fp, b) => {
        tokens.set(this.outputTokens, b * nt * D);
        tokens.set(this.promptEncoder.embedPoints(fp.coords, fp.labels), (b * nt + nOut) * D);
      });
      const queryPe = t(tensorFrom(ctx, tokens, [
        B,
        nt,
        D
      ], "sam2 decoder.tokens"));
      const pe = this.promptEncoder.densePeGpu();
      const forwardImage = transformerImage(ctx, scratch3, {
        transformer: this.transformer,
        promptEncoder: this.promptEncoder,
        image,
        pe
      }, maskInputs, {
        reuse,
        lowResSize: this.lowResSize,
        hw,
        dim: D,
        label: "sam2 decoder"
      });
      const { queries, keys } = this.transformer.forward(queryPe, forwardImage, pe);
      t(queries);
      t(keys);
      const c4 = this.upscale0.cout, c8 = this.upscale3.cout;
      const dc1 = t(convTranspose2dGemm(ctx, keys.reshape([
        B,
        s,
        s,
        D
      ]), this.upscale0, {
        temps: scratch3.list
      }));
      const sum1 = t(add(ctx, dc1.reshape([
        B,
        4 * hw,
        c4
      ]), image.highRes1));
      const ln1 = t(layerNorm(ctx, sum1, this.upscaleNorm.w, this.upscaleNorm.b, LN2D_EPS3));
      const act1 = t(activation(ctx, ln1, "gelu")).reshape([
        B,
        2 * s,
        2 * s,
        c4
      ]);
      const dc2 = t(convTranspose2dGemm(ctx, act1, this.upscale3, {
        temps: scratch3.list
      }));
      const sum2 = t(add(ctx, dc2.reshape([
        B,
        16 * hw,
        c8
      ]), image.highRes0));
      const up = t(activation(ctx, sum2, "gelu"));
      const hIn = t(stridedCopy(ctx, queries, {
        offset: pre * D,
        shape: [
          B,
          T * D
        ],
        strides: [
          nt * D,
          1
        ]
      }));
      const h = this.mlp(scratch3, hIn, this.hyper);
      const low = 16 * hw;
      const all = t(matmul(ctx, h.reshape([
        B,
        T,
        c8
      ]), up, {
        transposeB: true
      }));
      const iouIn = t(stridedCopy(ctx, queries, {
        offset: (pre - 1) * D,
        shape: [
          B,
          D
        ],
        strides: [
          nt * D,
          1
        ]
      }));
      const iouLogits = this.mlp(scratch3, iouIn, this.iouHead);
      const objLogits = this.objHead.length === 0 ? null : this.mlp(scratch3, t(stridedCopy(ctx, queries, {
        offset: 0,
        shape: [
          B,
          D
        ],
        strides: [
          nt * D,
          1
        ]
      })), this.objHead);
      const count = this.countOf(mode);
      const clean = (opts.maxHoleArea ?? 0) > 0 || (opts.maxSprinkleArea ?? 0) > 0;
      const stability = mode === "single" && this.dec.dynamicMultimaskViaStability;
      let objAll = new Float32Array(B).fill(NO_OBJ_HEAD_SCORE);
      let iouAll = null;
      let allRead = null;
      let tokenRead = null;
      if (opts.iouOut && !stability) {
        const iouProb = this.dec.iouUseSigmoid ? t(sigmoidAffine(ctx, iouLogits, {
          mode: "sigmoid",
          scale: 1,
          bias: 0
        })) : iouLogits;
        const first = mode === "multi" ? 1 : 0;
        indices.forEach((index, b) => ctx.copy(iouProb.buffer, (b * T + first) * 4, opts.iouOut.buffer, index * count * 4, count * 4));
        if (objLogits) objAll = new Float32Array(B).fill(NaN);
      } else {
        const needAll = stability || clean;
        const tokenBytes = opts.samOutputToken ? B * T * D * 4 : 0;
        const rb = new Readback(ctx, (objLogits ? B * 4 : 0) + B * T * 4 + (needAll ? B * T * low * 4 : 0) + tokenBytes);
        const objRange = objLogits ? rb.copy(objLogits.buffer, 0, B * 4) : -1;
        const iouRange = rb.copy(iouLogits.buffer, 0, B * T * 4);
        const allRange = needAll ? rb.copy(all.buffer, 0, B * T * low * 4) : -1;
        const tokenRange = tokenBytes > 0 ? rb.copy(hIn.buffer, 0, tokenBytes) : -1;
        const data = await rb.map();
        if (tokenRange >= 0) tokenRead = new Float32Array(data[tokenRange]);
        if (objRange >= 0) objAll = new Float32Array(data[objRange]);
        const iouRead = new Float32Array(data[iouRange]);
        iouAll = this.dec.iouUseSigmoid ? sigmoid(iouRead) : iouRead;
        if (allRange >= 0) allRead = new Float32Array(data[allRange]);
      }
      let chosen;
      if (stability) {
        chosen = [];
        for (let b = 0; b < B; b++) {
          const single = allRead.subarray(b * T * low, b * T * low + low);
          const stable = stabilityScore(single, this.dec.stabilityDelta) >= f2(this.dec.stabilityThresh);
          if (stable) chosen.push([
            0
          ]);
          else {
            let best = 1;
            for (let k = 2; k < T; k++) if (iouAll[b * T + k] > iouAll[b * T + best]) best = k;
            chosen.push([
              best
            ]);
          }
        }
      } else {
        const first = mode === "multi" ? 1 : 0;
        chosen = frames.map(() => [
          ...Array(count).keys()
        ].map((k) => first + k));
      }
      if (opts.iouOut && iouAll) {
        chosen.forEach((ks, b) => ctx.device.queue.writeBuffer(opts.iouOut.buffer, indices[b] * count * 4, Float32Array.from(ks, (k) => iouAll[b * T + k])));
      }
      const side = this.lowResSize;
      let selected;
      let lowRes = null;
      if (clean) {
        allRead ??= await all.read();
        lowRes = new Float32Array(B * count * low);
        chosen.forEach((ks, b) => ks.forEach((k, j) => lowRes.set(allRead.subarray((b * T + k) * low, (b * T + k + 1) * low), (b * count + j) * low)));
        for (let q = 0; q < B * count; q++) {
          removeSmallRegions(lowRes.subarray(q * low, (q + 1) * low), side, side, opts.maxHoleArea ?? 0, opts.maxSprinkleArea ?? 0);
        }
        selected = t(tensorFrom(ctx, lowRes, [
          B,
          count,
          side,
          side
        ], "sam2 decoder.low_res"));
      } else if (count === T) {
        selected = all.reshape([
          B,
          count,
          side,
          side
        ]);
      } else {
        selected = t(emptyTensor(ctx, [
          B,
          count,
          side,
          side
        ], "sam2 decoder.low_res"));
        chosen.forEach((ks, b) => ks.forEach((k, j) => ctx.copy(all.buffer, (b * T + k) * low * 4, selected.buffer, (b * count + j) * low * 4, low * 4)));
      }
      const planeBytes = count * low * 4;
      if (opts.lowResOut) {
        indices.forEach((index, b) => ctx.copy(selected.buffer, b * planeBytes, opts.lowResOut.buffer, index * planeBytes, planeBytes));
      } else {
        lowRes ??= await selected.read();
      }
      const results = [];
      for (let b = 0; b < B; b++) {
        let planes = new Float32Array(0);
        if (!opts.lowResOut) {
          planes = lowRes.slice(b * count * low, (b + 1) * count * low);
          for (let q = 0; q < planes.length; q++) {
            planes[q] = Math.min(LOW_RES_CLAMP, Math.max(-LOW_RES_CLAMP, planes[q]));
          }
        }
        results.push({
          count,
          lowRes: planes,
          iou: opts.iouOut ? new Float32Array(0) : Float32Array.from(chosen[b], (k) => iouAll[b * T + k]),
          objScore: objAll[b],
          tokens: chosen[b]
        });
        if (tokenRead) {
          let k = 0;
          if (mode === "multi") {
            k = 1;
            for (let j = 2; j < T; j++) if (iouAll[b * T + j] > iouAll[b * T + k]) k = j;
          }
          results[b].samOutputToken = tokenRead.slice((b * T + k) * D, (b * T + k + 1) * D);
        }
      }
      const output = opts.output ?? "masks";
      if (output !== "none") {
        await samPostprocessRead(ctx, selected, {
          imgSize: side,
          inputSize: [
            side,
            side
          ],
          originalSize: opts.originalSize
        }, output, (plane, masksOut, logitsOut) => {
          const r = results[Math.floor(plane / count)];
          if (masksOut) (r.masks ??= []).push(masksOut);
          if (logitsOut) {
            const [oh, ow] = opts.originalSize;
            r.logits ??= new Float32Array(count * oh * ow);
            r.logits.set(logitsOut, plane % count * oh * ow);
          }
        });
      }
      return results;
    } finally {
      scratch3.flush();
    }
  }
  dispose() {
    this.images.clear();
    this.ctx.trimStoragePool();
    this.promptEncoder.dispose();
    this.transformer.dispose();
    for (const l of [
      this.upscaleNorm,
      ...this.hyper,
      ...this.iouHead,
      ...this.objHead
    ]) {
      l.w.destroy();
      l.b.destroy();
    }
    for (const c of [
      this.upscale0,
      this.upscale3
    ]) {
      c.weight.destroy();
      c.bias.destroy();
    }
  }
};
function sigmoid(x) {
  return x.map((v) => f2(1 / (1 + Math.exp(-v))));
}
function stabilityScore(logits, delta) {
  const hi = f2(delta), lo = f2(-delta);
  let inter = 0, union = 0;
  for (let q = 0; q < logits.length; q++) {
    if (logits[q] > hi) inter++;
    if (logits[q] > lo) union++;
  }
  return union > 0 ? f2(inter / union) : 1;
}

// src/util/npy.ts
var MAGIC = [
  147,
  78,
  85,
  77,
  80,
  89
];
function parseNpy(bytes) {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) {
    throw new Error("npy: not a .npy file (bad magic)");
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen, headerStart;
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
  if (!descr || !fortran || shapeText === void 0) throw new Error(`npy: bad header ${header}`);
  if (fortran === "True") throw new Error("npy: Fortran order is not supported");
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const start = headerStart + headerLen;
  const ctors = {
    "<f4": [
      Float32Array,
      4
    ],
    "|u1": [
      Uint8Array,
      1
    ],
    "<i4": [
      Int32Array,
      4
    ],
    "<f8": [
      Float64Array,
      8
    ],
    "<i8": [
      BigInt64Array,
      8
    ]
  };
  const entry = ctors[descr];
  if (!entry) throw new Error(`npy: unsupported dtype ${descr}`);
  const [Ctor, itemSize] = entry;
  if (bytes.length < start + count * itemSize) {
    throw new Error(`npy: truncated, need ${count * itemSize} data bytes`);
  }
  const data = new Ctor(bytes.slice(start, start + count * itemSize).buffer);
  return {
    shape,
    dtype: descr,
    data
  };
}

// src/web/decoder/page_decoder.ts
var DTYPES = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  F64: "float64"
};
function parseSafetensors(bytes) {
  if (bytes.length < 8) throw new Error("decoder weights: shorter than a safetensors header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > bytes.length) throw new Error("decoder weights: truncated header");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  const data = bytes.subarray(8 + headerLen);
  const sd = /* @__PURE__ */ new Map();
  let metadata = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = entry;
      continue;
    }
    const e = entry;
    const dtype = DTYPES[e.dtype];
    const [begin, end] = e.data_offsets;
    if (!dtype || !(0 <= begin && begin <= end && end <= data.length)) {
      throw new Error(`decoder weights: bad entry for tensor '${name}'`);
    }
    const t = {
      name,
      dtype,
      shape: e.shape,
      bytes: data.subarray(begin, end)
    };
    sd.set(name, t);
  }
  return {
    sd,
    metadata
  };
}
function featureShapes(d) {
  if (d.family === "sam") {
    const D = d.arch.promptEmbedDim, s2 = d.arch.imgSize / d.arch.patchSize;
    return [
      {
        name: "image_embeddings",
        shape: [
          1,
          D,
          s2,
          s2
        ]
      }
    ];
  }
  const C = d.arch.dModel, s = d.arch.imgSize / d.arch.backboneStride;
  return [
    {
      name: "image_embed",
      shape: [
        1,
        C,
        s,
        s
      ]
    },
    {
      name: "high_res_feats_0",
      shape: [
        1,
        C / 8,
        4 * s,
        4 * s
      ]
    },
    {
      name: "high_res_feats_1",
      shape: [
        1,
        C / 4,
        2 * s,
        2 * s
      ]
    }
  ];
}
var PageDecoder = class _PageDecoder {
  ctx;
  model;
  /** The current image's tensors, in `featureNames` order. */
  features;
  size;
  /** The last call in line: one GPU job at a time, as the server's queue does (clicks overlap). */
  line;
  constructor(ctx, model) {
    this.ctx = ctx;
    this.model = model;
    this.features = [];
    this.size = null;
    this.line = Promise.resolve();
  }
  /** Uploads the decoder weights (safetensors bytes from GET /api/decoder/...). */
  static async create(gpu, weights) {
    const { sd, metadata } = parseSafetensors(new Uint8Array(weights));
    if (!metadata.wgsam_arch) throw new Error("decoder weights: no wgsam_arch in the metadata");
    const arch = JSON.parse(metadata.wgsam_arch);
    const ctx = new GpuContext(gpu);
    const model = "family" in arch && arch.family === "sam2" ? {
      family: "sam2",
      decoder: Sam2Decoder.create(ctx, sd, arch),
      arch
    } : {
      family: "sam",
      decoder: SamDecoder.create(ctx, sd, arch),
      arch
    };
    await ctx.sync();
    return new _PageDecoder(ctx, model);
  }
  /** The adapter, in words. */
  get adapter() {
    return this.ctx.gpu.description;
  }
  /** "sam" (SAM 1 layout) or "sam2" (SAM 2.1). */
  get family() {
    return this.model.family;
  }
  /** The architecture from the weights' metadata. */
  get arch() {
    return this.model.arch;
  }
  /**
   * The tensors `setImage` takes, in its order: the first is GET .../embedding, the others
   * GET .../embedding?tensor=NAME.
   */
  get featureNames() {
    return featureShapes(this.model).map((f3) => f3.name);
  }
  inLine(job) {
    const run = this.line.then(job, job);
    this.line = run.catch(() => {
    });
    return run;
  }
  /**
   * Makes an image current, for an image of [h, w] pixels: `npy` holds the tensors named by
   * `featureNames` (.npy bytes each, in that order; SAM 1's one embedding may come alone).
   */
  setImage(npy, originalSize) {
    const files = Array.isArray(npy) ? npy : [
      npy
    ];
    const want = featureShapes(this.model);
    if (files.length !== want.length) {
      throw new Error(`embedding: ${files.length} tensor(s), the model needs ${want.length}: ` + want.map((w) => w.name).join(", "));
    }
    const parsed = files.map((bytes, i) => {
      const { shape, data } = parseNpy(new Uint8Array(bytes));
      const { name, shape: need } = want[i];
      if (!(data instanceof Float32Array)) throw new Error(`embedding: ${name} is not float32`);
      if (shape.join() !== need.join()) {
        throw new Error(`embedding: ${name} has shape [${shape}], the model needs [${need}]`);
      }
      return {
        name,
        shape,
        data
      };
    });
    return this.inLine(async () => {
      this.releaseImage();
      this.features = parsed.map((p) => tensorFrom(this.ctx, p.data, p.shape, `page ${p.name}`));
      this.size = originalSize;
      await this.ctx.sync();
    });
  }
  /** Decodes one prompt (original-image pixels) against the current image. */
  decode(prompt) {
    return this.inLine(() => this.decodeNow(prompt));
  }
  async decodeNow(prompt) {
    if (this.features.length === 0 || !this.size) throw new Error("decode: no image yet");
    const opts = {
      originalSize: this.size,
      output: "masks"
    };
    const t0 = performance.now();
    let r;
    if (this.model.family === "sam2") {
      const [imageEmbed, highRes0, highRes1] = this.features;
      const features = {
        imageEmbed,
        highRes0,
        highRes1
      };
      [r] = await this.model.decoder.predict(features, [
        prompt
      ], opts);
    } else {
      [r] = await this.model.decoder.predict(this.features[0], [
        prompt
      ], opts);
    }
    const ms = performance.now() - t0;
    let best = 0;
    for (let i = 1; i < r.count; i++) if (r.iou[i] > r.iou[best]) best = i;
    const masks = r.masks ?? [];
    const areas = masks.map((m) => m.reduce((s, v) => s + v, 0));
    return {
      count: r.count,
      iou: r.iou,
      best,
      lowRes: r.lowRes,
      masks,
      areas,
      ...r.objScore !== void 0 ? {
        objScore: r.objScore
      } : {},
      ms
    };
  }
  releaseImage() {
    if (this.features.length === 0) return;
    this.model.decoder.releaseEmbedding(this.features[0]);
    this.ctx.submit();
    for (const t of this.features) t.destroy();
    this.features = [];
  }
  dispose() {
    this.releaseImage();
    this.model.decoder.dispose();
  }
};
export {
  PageDecoder,
  parseSafetensors,
  requestGpuDevice
};
