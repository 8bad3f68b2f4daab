/**
 * A `GpuDevice` from the page's own WebGPU (`navigator.gpu` in a browser): the seam that lets
 * `GpuContext` and the decoder run in the page's bundle. Same limits as device.ts asks for on
 * the server, no Deno APIs (device.ts sets up the process: runtime dir, env, logging).
 */
import { type GpuDevice, isSoftwareAdapter } from "./device.ts";

/** Requests an adapter and a device with SAM's limits; null where there is no adapter. */
export async function requestGpuDevice(gpu: GPU): Promise<GpuDevice | null> {
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return null;
  const a = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
  };
  const device = await adapter.requestDevice({ requiredLimits });
  return gpuDeviceFrom(adapter, device);
}

/** Describes a device the caller already has (timestamps are not asked for in the page). */
export function gpuDeviceFrom(adapter: GPUAdapter, device: GPUDevice): GpuDevice {
  const info = adapter.info;
  const description = info.description ||
    [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unknown adapter";
  const software = isSoftwareAdapter({
    description,
    isFallbackAdapter: (info as { isFallbackAdapter?: boolean }).isFallbackAdapter,
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
    hasSubgroups: device.features.has("subgroups"),
  };
}
