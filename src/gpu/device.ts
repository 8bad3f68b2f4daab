/**
 * The one place that brings up WebGPU for wgsam: adapter, device, the limits SAM needs,
 * and a clear error when the host has no adapter at all.
 */
import { ensureRuntimeDir } from "./runtime_dir.ts";

/** What the rest of the code needs to know about the device it runs on. */
export interface GpuDevice {
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  /** Adapter description for logs and benchmark results, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  readonly info: GPUAdapterInfo;
  /** True where the adapter offers `timestamp-query`, so benchmarks can read GPU time. */
  readonly hasTimestamps: boolean;
  /** True for a CPU-emulated adapter (llvmpipe and the like): benches shrink their shapes. */
  readonly software: boolean;
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

let devicePromise: Promise<GpuDevice> | null = null;

/** Returns the process-wide device, creating it on first use. */
export function getDevice(): Promise<GpuDevice> {
  devicePromise ??= createDevice().catch((err) => {
    devicePromise = null; // let a later call try again
    throw err;
  });
  return devicePromise;
}

async function createDevice(): Promise<GpuDevice> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error(NO_ADAPTER_HELP);
  }
  ensureRuntimeDir(); // before the adapter is listed: see runtime_dir.ts
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
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
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const description = info.description ||
    [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unknown adapter";
  device.lost.then((lost) => {
    if (lost.reason !== "destroyed") {
      console.error(`wgsam: GPU device lost (${lost.reason}): ${lost.message}`);
    }
    devicePromise = null;
  });
  if (envFlag("WGSAM_QUIET") !== "1") {
    console.error(`wgsam: WebGPU adapter: ${description}`);
  }
  const software = isSoftwareAdapter({
    description,
    isFallbackAdapter: (info as { isFallbackAdapter?: boolean }).isFallbackAdapter,
  });
  return { adapter, device, description, info, hasTimestamps, software };
}

/** Reads an environment variable without failing when env access was not granted. */
export function envFlag(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
