/**
 * The one place that brings up WebGPU for wgsam: adapter, device, the limits SAM needs,
 * and a clear error when the host has no adapter at all.
 */
import { ensureRuntimeDir } from "./runtime_dir.ts";
import { throttleDawnPolling } from "./dawn_pump.ts";

/** Which WebGPU implementation runs the kernels: Deno's built-in one, or Dawn (npm `webgpu`). */
export type GpuProvider = "deno" | "dawn" | "browser";
/**
 * What a caller asks for: a provider, or "auto" (a hardware adapter, Dawn's first since it
 * has no poll floor; without one, Deno's built-in WebGPU on its software adapter).
 */
export type GpuChoice = "auto" | "deno" | "dawn";
export const GPU_CHOICES: readonly GpuChoice[] = ["auto", "deno", "dawn"];

/** What the rest of the code needs to know about the device it runs on. */
export interface GpuDevice {
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  /** The WebGPU implementation behind `device`. */
  readonly provider: GpuProvider;
  /** Adapter description for logs and benchmark results, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  readonly info: GPUAdapterInfo;
  /** True where the adapter offers `timestamp-query`, so benchmarks can read GPU time. */
  readonly hasTimestamps: boolean;
  /** True for a CPU-emulated adapter (llvmpipe and the like): benches shrink their shapes. */
  readonly software: boolean;
  /** True where the device was created with `shader-f16` (needed by precision "f16"). */
  readonly hasF16: boolean;
  /** True where the device was created with `subgroups` (attention variant "tiledsg"). */
  readonly hasSubgroups: boolean;
}

/** True for CPU-emulated WebGPU adapters (Mesa llvmpipe / lavapipe, SwiftShader, WARP). */
export function isSoftwareAdapter(info: { description?: string; isFallbackAdapter?: boolean }) {
  return !!info.isFallbackAdapter ||
    /llvmpipe|lavapipe|softpipe|swiftshader|software|warp/i.test(info.description ?? "");
}

const NO_ADAPTER_HELP =
  "wgsam: WebGPU found no adapter. On a host without a GPU install Mesa's software Vulkan " +
  "driver (Debian/Ubuntu: `apt-get install -y mesa-vulkan-drivers`); on a GPU host install the " +
  "vendor's Vulkan driver and loader (libvulkan1).";

/** Checks a provider name (from WGSAM_GPU, --gpu or an API option); throws a clear error. */
export function parseGpuChoice(value: string, where = "gpu"): GpuChoice {
  const v = value.trim().toLowerCase();
  if ((GPU_CHOICES as readonly string[]).includes(v)) return v as GpuChoice;
  throw new Error(`${where}: '${value}' is not a GPU provider (use ${GPU_CHOICES.join(", ")})`);
}

let processChoice: GpuChoice | undefined;

/** The process's default provider (what `--gpu` sets; see gpu_flag.ts); beats $WGSAM_GPU. */
export function setDefaultGpuChoice(choice: GpuChoice): void {
  processChoice = parseGpuChoice(choice);
}

/** The provider asked for: `choice` when given, else --gpu, else $WGSAM_GPU, else "auto". */
export function resolveGpuChoice(choice?: GpuChoice | string): GpuChoice {
  if (choice !== undefined) return parseGpuChoice(choice);
  if (processChoice) return processChoice;
  const env = envFlag("WGSAM_GPU");
  return env ? parseGpuChoice(env, "WGSAM_GPU") : "auto";
}

const devices = new Map<GpuChoice | GpuProvider, Promise<GpuDevice>>();

/**
 * Returns the process-wide device of a provider (default: $WGSAM_GPU, else "auto"),
 * creating it on first use. "auto" resolves once, to the same device as its provider.
 */
export function getDevice(choice?: GpuChoice | string): Promise<GpuDevice> {
  const key = resolveGpuChoice(choice);
  let promise = devices.get(key);
  if (!promise) {
    promise = (key === "auto" ? createAuto() : createDevice(key)).then((gpu) => {
      // Lost devices are forgotten (see createDevice); keep auto pointing at the live one.
      if (key === "auto") devices.set(gpu.provider, devices.get(gpu.provider) ?? promise!);
      return gpu;
    }).catch((err) => {
      devices.delete(key); // let a later call try again
      throw err;
    });
    devices.set(key, promise);
  }
  return promise;
}

async function createAuto(): Promise<GpuDevice> {
  const known = devices.get("dawn") ?? devices.get("deno");
  if (known) return known;
  // Deno's WebGPU first: when the best adapter it finds is a CPU one (llvmpipe), the host has
  // no hardware adapter that Dawn could use either, so Dawn is never loaded there (it would
  // print its own refusal of lavapipe on every command).
  const deno = await denoAdapter();
  if (deno && adapterSoftware(deno)) return await createOn("deno", deno);
  let dawnFailure = "";
  try {
    const dawn = await dawnAdapter();
    if (dawn && !adapterSoftware(dawn)) return await createOn("dawn", dawn);
    dawnFailure = dawn ? `Dawn has only ${describe(dawn.info)}` : "Dawn found no adapter";
  } catch (err) {
    dawnFailure = `Dawn unavailable (${(err as Error).message.split("\n")[0]})`;
  }
  if (!deno) throw new Error(NO_ADAPTER_HELP);
  if (envFlag("WGSAM_QUIET") !== "1") {
    console.error(`wgsam: gpu auto: ${dawnFailure}; using Deno's WebGPU`);
  }
  return await createOn("deno", deno);
}

async function createDevice(provider: GpuProvider): Promise<GpuDevice> {
  const adapter = provider === "dawn" ? await dawnAdapter() : await denoAdapter();
  if (!adapter) {
    throw new Error(
      provider === "dawn"
        ? "wgsam: Dawn (npm webgpu) found no adapter. On a host without a GPU point Vulkan at " +
          "SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json " +
          "(Debian: apt-get install chromium)."
        : NO_ADAPTER_HELP,
    );
  }
  return await createOn(provider, adapter);
}

async function denoAdapter(): Promise<GPUAdapter | null> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) return null;
  ensureRuntimeDir(); // before the adapter is listed: see runtime_dir.ts
  return await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
}

let dawnGpu: Promise<GPU> | null = null;

/** Dawn's GPU object, through Node-API (needs --allow-ffi and the npm package). */
function dawnInstance(): Promise<GPU> {
  // A versioned npm: specifier, so src/ runs without our deno.json (mod_import_test.ts).
  // deno-lint-ignore no-import-prefix
  dawnGpu ??= import("npm:webgpu@0.6.2").then((m) => {
    const mod = m as unknown as { create(flags: string[]): GPU };
    throttleDawnPolling(); // Dawn's busy polling stalls Deno after long waits: see dawn_pump.ts
    return mod.create([]);
  }).catch((err) => {
    dawnGpu = null;
    throw err;
  });
  return dawnGpu;
}

async function dawnAdapter(): Promise<GPUAdapter | null> {
  ensureRuntimeDir(); // before the adapter is listed: see runtime_dir.ts
  const gpu = await dawnInstance();
  return await gpu.requestAdapter({ powerPreference: "high-performance" });
}

/** "vendor architecture device (description)", from whatever fields the adapter fills in. */
function describe(info: GPUAdapterInfo): string {
  return info.description ||
    [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unknown adapter";
}

function adapterSoftware(adapter: GPUAdapter): boolean {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return isSoftwareAdapter({
    description: describe(info),
    isFallbackAdapter: info.isFallbackAdapter ??
      (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter,
  });
}

async function createOn(provider: GpuProvider, adapter: GPUAdapter): Promise<GpuDevice> {
  const a = adapter.limits;
  // SAM's largest tensors (ViT-H MLP activations: 4096 x 5120 floats = 84 MB) need the
  // adapter's full storage limits, not WebGPU's defaults (128 MB binding, 16 KB shared).
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
  };
  const hasTimestamps = adapter.features.has("timestamp-query");
  const requiredFeatures: GPUFeatureName[] = hasTimestamps ? ["timestamp-query"] : [];
  // f16 storage and arithmetic for precision "f16"; f32 shaders do not change with it.
  const hasF16 = adapter.features.has("shader-f16");
  if (hasF16) requiredFeatures.push("shader-f16");
  // Subgroup operations, asked for only where offered (Deno's lavapipe does not offer them).
  const hasSubgroups = adapter.features.has("subgroups");
  if (hasSubgroups) requiredFeatures.push("subgroups" as GPUFeatureName);
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const description = describe(info);
  device.lost.then((lost) => {
    if (lost.reason !== "destroyed") {
      console.error(`wgsam: GPU device lost (${lost.reason}): ${lost.message}`);
    }
    for (const [key, p] of devices) {
      p.then((gpu) => gpu.device === device && devices.delete(key), () => {});
    }
  });
  if (envFlag("WGSAM_QUIET") !== "1") {
    console.error(`wgsam: WebGPU: ${provider}, adapter: ${description}`);
  }
  const software = adapterSoftware(adapter);
  return {
    adapter,
    device,
    provider,
    description,
    info,
    hasTimestamps,
    software,
    hasF16,
    hasSubgroups,
  };
}

/** Reads an environment variable without failing when env access was not granted. */
export function envFlag(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
