/**
 * SAM's postprocess_masks on the GPU for a batch of low-res planes, read back in one readback:
 * low-res logits -> img_size -> crop to the resized image -> original size (one fused kernel,
 * resize_bilinear.ts), either as packed masks (logit > 0, 1 bit a pixel on the way back) or
 * as float logits. Planes go in chunks so each output buffer stays within the device's
 * storage-binding limit (and a bounded amount of memory).
 */
import { type GpuContext, Readback } from "../gpu/context.ts";
import {
  maskWordsPerPlane,
  type PostprocessGeometry,
  samPostprocess,
} from "../kernels/resize_bilinear.ts";
import type { Tensor } from "../gpu/tensor.ts";

/** Output bytes per chunk at most (the binding limit may be lower). */
const CHUNK_BYTES = 64 * 1024 * 1024;

/** Unpacks one plane of LSB-first mask bits into 0/1 bytes. */
export function unpackMaskBits(words: Uint32Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let q = 0; q < pixels; q++) out[q] = (words[q >>> 5] >>> (q & 31)) & 1;
  return out;
}

/** Bytes `samPostprocessRecord` adds to a readback for `planes` planes. */
export function postprocessReadBytes(
  planes: number,
  originalSize: readonly [number, number],
  output: "masks" | "logits" | "both",
): number {
  const [h, w] = originalSize;
  return planes * (output === "masks" ? maskWordsPerPlane([h, w]) * 4 : h * w * 4);
}

/**
 * Records the postprocess of every plane of `lowRes` ([..., l, l]) into `rb` (the outputs
 * are freed after its submit); once `rb` is mapped, `finish(data)` hands each plane in order
 * to `onPlane` as masks (0/1 bytes) and/or logits (h x w floats).
 */
export function samPostprocessRecord(
  ctx: GpuContext,
  lowRes: Tensor,
  geo: PostprocessGeometry,
  output: "masks" | "logits" | "both",
  rb: Readback,
): (
  data: ArrayBuffer[],
  onPlane: (plane: number, masks: Uint8Array | null, logits: Float32Array | null) => void,
) => void {
  const low = lowRes.shape[lowRes.shape.length - 1];
  const planes = lowRes.size / (low * low);
  const [h, w] = geo.originalSize;
  const useLogits = output !== "masks";
  const words = maskWordsPerPlane([h, w]);
  const planeBytes = useLogits ? h * w * 4 : words * 4;
  const limit = Math.min(CHUNK_BYTES, ctx.device.limits.maxStorageBufferBindingSize);
  if (planeBytes > ctx.device.limits.maxStorageBufferBindingSize) {
    throw new Error(
      `postprocess: one ${h}x${w} plane of ${useLogits ? "logits" : "mask bits"} is ` +
        `${planeBytes} bytes, over the device's storage binding limit`,
    );
  }
  const perChunk = Math.max(1, Math.floor(limit / planeBytes));
  const chunks: { first: number; count: number; range: number }[] = [];
  for (let first = 0; first < planes; first += perChunk) {
    const count = Math.min(perChunk, planes - first);
    const y = samPostprocess(ctx, lowRes, geo, useLogits ? "logits" : "bits", undefined, {
      first,
      count,
    });
    rb.destroyAfterSubmit(y);
    chunks.push({ first, count, range: rb.copy(y.buffer, 0, count * planeBytes) });
  }
  return (data, onPlane) => {
    for (const { first, count, range } of chunks) {
      const bytes = data[range];
      for (let k = 0; k < count; k++) {
        if (useLogits) {
          const logits = new Float32Array(bytes, k * h * w * 4, h * w);
          let masks: Uint8Array | null = null;
          if (output === "both") {
            masks = new Uint8Array(h * w);
            for (let q = 0; q < h * w; q++) masks[q] = logits[q] > 0 ? 1 : 0;
          }
          onPlane(first + k, masks, logits);
        } else {
          onPlane(
            first + k,
            unpackMaskBits(new Uint32Array(bytes, k * words * 4, words), h * w),
            null,
          );
        }
      }
    }
  };
}

/**
 * Runs the postprocess over every plane of `lowRes` ([..., l, l]) and hands each plane,
 * in order, to `onPlane` as masks (0/1 bytes) and/or logits (h x w floats): one readback.
 */
export async function samPostprocessRead(
  ctx: GpuContext,
  lowRes: Tensor,
  geo: PostprocessGeometry,
  output: "masks" | "logits" | "both",
  onPlane: (plane: number, masks: Uint8Array | null, logits: Float32Array | null) => void,
): Promise<void> {
  const low = lowRes.shape[lowRes.shape.length - 1];
  const planes = lowRes.size / (low * low);
  const rb = new Readback(ctx, postprocessReadBytes(planes, geo.originalSize, output));
  const finish = samPostprocessRecord(ctx, lowRes, geo, output, rb);
  finish(await rb.map(), onPlane);
}
