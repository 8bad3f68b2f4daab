/**
 * The page's decoder: the server's own prompt encoder, two-way transformer, upscaling and
 * postprocess (src/decoder/, src/kernels/, src/gpu/context.ts) on the browser's WebGPU,
 * bundled into src/web/decoder.js by `deno task bundle:web`. Nothing here or below may use
 * Deno APIs except behind a `typeof Deno` guard (tests/server/page_decoder_test.ts checks the
 * bundle).
 *
 * Inputs come from the server: the decoder weights (GET /api/decoder, safetensors with the
 * architecture in `__metadata__.wgsam_arch`) and one image embedding per image (GET
 * /api/images/:id/embedding, .npy). SAM 2's three-tensor embedding would add a `setImage`
 * variant taking its high-resolution features beside the (1, D, s, s) embedding.
 */
import { GpuContext } from "../../gpu/context.ts";
import { requestGpuDevice } from "../../gpu/browser_device.ts";
import type { GpuDevice } from "../../gpu/device.ts";
import { type Tensor, tensorFrom } from "../../gpu/tensor.ts";
import { type DecoderPrompt, SamDecoder } from "../../decoder/mask_decoder.ts";
import { parseNpy } from "../../util/npy.ts";
import type { DType, HostTensor, SamArch, StateDict } from "../../weights/types.ts";

export { requestGpuDevice };

const DTYPES: Record<string, DType> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  F64: "float64",
};

/** A safetensors file in memory: its tensors (views into `bytes`) and string metadata. */
export function parseSafetensors(
  bytes: Uint8Array,
): { sd: StateDict; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new Error("decoder weights: shorter than a safetensors header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > bytes.length) throw new Error("decoder weights: truncated header");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  const data = bytes.subarray(8 + headerLen);
  const sd: StateDict = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const dtype = DTYPES[e.dtype];
    const [begin, end] = e.data_offsets;
    if (!dtype || !(0 <= begin && begin <= end && end <= data.length)) {
      throw new Error(`decoder weights: bad entry for tensor '${name}'`);
    }
    const t: HostTensor = { name, dtype, shape: e.shape, bytes: data.subarray(begin, end) };
    sd.set(name, t);
  }
  return { sd, metadata };
}

/** One decoded prompt, as the page shows it. */
export interface PageDecodeResult {
  /** Mask count: 3 (multimask) or 1. */
  count: number;
  iou: Float32Array;
  /** Index of the highest predicted IoU. */
  best: number;
  /** (count, 4s, 4s) low-res logits. */
  lowRes: Float32Array;
  /** count masks at the original size, 0/1 bytes, row-major. */
  masks: Uint8Array[];
  /** Pixels of each mask. */
  areas: number[];
  /** Wall time of the decode (prompt encoder to masks read back), ms. */
  ms: number;
}

export class PageDecoder {
  private embedding: Tensor | null = null;
  private size: [number, number] | null = null;
  /** The last call in line: one GPU job at a time, as the server's queue does (clicks overlap). */
  private line: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly ctx: GpuContext,
    readonly decoder: SamDecoder,
    readonly arch: SamArch,
  ) {}

  /** Uploads the decoder weights (safetensors bytes from GET /api/decoder/...). */
  static async create(gpu: GpuDevice, weights: ArrayBuffer): Promise<PageDecoder> {
    const { sd, metadata } = parseSafetensors(new Uint8Array(weights));
    if (!metadata.wgsam_arch) throw new Error("decoder weights: no wgsam_arch in the metadata");
    const arch = JSON.parse(metadata.wgsam_arch) as SamArch;
    const ctx = new GpuContext(gpu);
    const decoder = SamDecoder.create(ctx, sd, arch);
    await ctx.sync(); // a GPU error of the uploads shows here, not at the first click
    return new PageDecoder(ctx, decoder, arch);
  }

  /** The adapter, in words. */
  get adapter(): string {
    return this.ctx.gpu.description;
  }

  private inLine<T>(job: () => Promise<T>): Promise<T> {
    const run = this.line.then(job, job);
    this.line = run.catch(() => {});
    return run;
  }

  /** Makes `npy` (the image's (1, D, s, s) embedding) current, for an image of [h, w] pixels. */
  setImage(npy: ArrayBuffer, originalSize: [number, number]): Promise<void> {
    const { shape, data } = parseNpy(new Uint8Array(npy));
    if (!(data instanceof Float32Array)) throw new Error("embedding: not float32");
    const D = this.arch.promptEmbedDim, s = this.arch.imgSize / this.arch.patchSize;
    if (shape.join() !== [1, D, s, s].join()) {
      throw new Error(`embedding: shape [${shape}], the model needs [1, ${D}, ${s}, ${s}]`);
    }
    return this.inLine(async () => {
      this.releaseImage();
      this.embedding = tensorFrom(this.ctx, data, shape, "page embedding");
      this.size = originalSize;
      await this.ctx.sync();
    });
  }

  /** Decodes one prompt (original-image pixels) against the current embedding. */
  decode(prompt: DecoderPrompt): Promise<PageDecodeResult> {
    return this.inLine(() => this.decodeNow(prompt));
  }

  private async decodeNow(prompt: DecoderPrompt): Promise<PageDecodeResult> {
    if (!this.embedding || !this.size) throw new Error("decode: no image yet");
    const t0 = performance.now();
    const [r] = await this.decoder.predict(this.embedding, [prompt], {
      originalSize: this.size,
      output: "masks",
    });
    const ms = performance.now() - t0;
    let best = 0;
    for (let i = 1; i < r.count; i++) if (r.iou[i] > r.iou[best]) best = i;
    const masks = r.masks ?? [];
    const areas = masks.map((m) => m.reduce((s, v) => s + v, 0));
    return { count: r.count, iou: r.iou, best, lowRes: r.lowRes, masks, areas, ms };
  }

  private releaseImage(): void {
    if (!this.embedding) return;
    this.decoder.releaseEmbedding(this.embedding);
    this.ctx.submit();
    this.embedding.destroy();
    this.embedding = null;
  }

  dispose(): void {
    this.releaseImage();
    this.decoder.dispose();
  }
}
