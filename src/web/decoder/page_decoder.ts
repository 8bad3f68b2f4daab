/**
 * The page's decoder: the server's own prompt encoder, two-way transformer, upscaling and
 * postprocess (src/decoder/, src/sam2/mask_decoder.ts, src/kernels/, src/gpu/context.ts) on
 * the browser's WebGPU, bundled into src/web/decoder.js by `deno task bundle:web`. Nothing
 * here or below may use Deno APIs except behind a `typeof Deno` guard
 * (tests/server/page_decoder_test.ts checks the bundle).
 *
 * Inputs come from the server: the decoder weights (GET /api/decoder, safetensors with the
 * architecture in `__metadata__.wgsam_arch`; a SAM 2.1 arch has `family: "sam2"`) and, per
 * image, the tensors the decoder reads (`featureNames`, GET /api/images/:id/embedding with
 * `?tensor=NAME` for all but the first, .npy each): SAM 1's (1, D, s, s) embedding, or SAM
 * 2.1's image_embed (no_mem_embed already added) and high_res_feats_0/1 (conv_s0/conv_s1
 * already applied), as SAM2ImagePredictor keeps them.
 */
import { GpuContext } from "../../gpu/context.ts";
import { requestGpuDevice } from "../../gpu/browser_device.ts";
import type { GpuDevice } from "../../gpu/device.ts";
import { type Tensor, tensorFrom } from "../../gpu/tensor.ts";
import { type DecoderPrompt, type DecoderResult, SamDecoder } from "../../decoder/mask_decoder.ts";
import { Sam2Decoder, type Sam2Features } from "../../sam2/mask_decoder.ts";
import type { Sam2Arch } from "../../sam2/arch.ts";
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
  /** (count, 4s, 4s) low-res logits (SAM 2.1: clamped to [-32, 32] as its predictor does). */
  lowRes: Float32Array;
  /** count masks at the original size, 0/1 bytes, row-major. */
  masks: Uint8Array[];
  /** Pixels of each mask. */
  areas: number[];
  /** SAM 2.1's object-score logit (> 0: an object); absent for SAM 1. */
  objScore?: number;
  /** Wall time of the decode (prompt encoder to masks read back), ms. */
  ms: number;
}

/** The decoder of one family: SAM 1's layout (sam, mobile_sam, slimsam) or SAM 2.1's. */
type FamilyDecoder =
  | { family: "sam"; decoder: SamDecoder; arch: SamArch }
  | { family: "sam2"; decoder: Sam2Decoder; arch: Sam2Arch };

/** The per-image tensors each family's decoder reads, in the server's `featureNames` order. */
function featureShapes(d: FamilyDecoder): { name: string; shape: number[] }[] {
  if (d.family === "sam") {
    const D = d.arch.promptEmbedDim, s = d.arch.imgSize / d.arch.patchSize;
    return [{ name: "image_embeddings", shape: [1, D, s, s] }];
  }
  const C = d.arch.dModel, s = d.arch.imgSize / d.arch.backboneStride;
  return [
    { name: "image_embed", shape: [1, C, s, s] },
    { name: "high_res_feats_0", shape: [1, C / 8, 4 * s, 4 * s] },
    { name: "high_res_feats_1", shape: [1, C / 4, 2 * s, 2 * s] },
  ];
}

export class PageDecoder {
  /** The current image's tensors, in `featureNames` order. */
  private features: Tensor[] = [];
  private size: [number, number] | null = null;
  /** The last call in line: one GPU job at a time, as the server's queue does (clicks overlap). */
  private line: Promise<unknown> = Promise.resolve();

  private constructor(readonly ctx: GpuContext, private readonly model: FamilyDecoder) {}

  /** Uploads the decoder weights (safetensors bytes from GET /api/decoder/...). */
  static async create(gpu: GpuDevice, weights: ArrayBuffer): Promise<PageDecoder> {
    const { sd, metadata } = parseSafetensors(new Uint8Array(weights));
    if (!metadata.wgsam_arch) throw new Error("decoder weights: no wgsam_arch in the metadata");
    const arch = JSON.parse(metadata.wgsam_arch) as SamArch | Sam2Arch;
    const ctx = new GpuContext(gpu);
    const model: FamilyDecoder = "family" in arch && arch.family === "sam2"
      ? { family: "sam2", decoder: Sam2Decoder.create(ctx, sd, arch), arch }
      : {
        family: "sam",
        decoder: SamDecoder.create(ctx, sd, arch as SamArch),
        arch: arch as SamArch,
      };
    await ctx.sync(); // a GPU error of the uploads shows here, not at the first click
    return new PageDecoder(ctx, model);
  }

  /** The adapter, in words. */
  get adapter(): string {
    return this.ctx.gpu.description;
  }

  /** "sam" (SAM 1 layout) or "sam2" (SAM 2.1). */
  get family(): "sam" | "sam2" {
    return this.model.family;
  }

  /** The architecture from the weights' metadata. */
  get arch(): SamArch | Sam2Arch {
    return this.model.arch;
  }

  /**
   * The tensors `setImage` takes, in its order: the first is GET .../embedding, the others
   * GET .../embedding?tensor=NAME.
   */
  get featureNames(): string[] {
    return featureShapes(this.model).map((f) => f.name);
  }

  private inLine<T>(job: () => Promise<T>): Promise<T> {
    const run = this.line.then(job, job);
    this.line = run.catch(() => {});
    return run;
  }

  /**
   * Makes an image current, for an image of [h, w] pixels: `npy` holds the tensors named by
   * `featureNames` (.npy bytes each, in that order; SAM 1's one embedding may come alone).
   */
  setImage(npy: ArrayBuffer | ArrayBuffer[], originalSize: [number, number]): Promise<void> {
    const files = Array.isArray(npy) ? npy : [npy];
    const want = featureShapes(this.model);
    if (files.length !== want.length) {
      throw new Error(
        `embedding: ${files.length} tensor(s), the model needs ${want.length}: ` +
          want.map((w) => w.name).join(", "),
      );
    }
    const parsed = files.map((bytes, i) => {
      const { shape, data } = parseNpy(new Uint8Array(bytes));
      const { name, shape: need } = want[i];
      if (!(data instanceof Float32Array)) throw new Error(`embedding: ${name} is not float32`);
      if (shape.join() !== need.join()) {
        throw new Error(`embedding: ${name} has shape [${shape}], the model needs [${need}]`);
      }
      return { name, shape, data };
    });
    return this.inLine(async () => {
      this.releaseImage();
      this.features = parsed.map((p) => tensorFrom(this.ctx, p.data, p.shape, `page ${p.name}`));
      this.size = originalSize;
      await this.ctx.sync();
    });
  }

  /** Decodes one prompt (original-image pixels) against the current image. */
  decode(prompt: DecoderPrompt): Promise<PageDecodeResult> {
    return this.inLine(() => this.decodeNow(prompt));
  }

  private async decodeNow(prompt: DecoderPrompt): Promise<PageDecodeResult> {
    if (this.features.length === 0 || !this.size) throw new Error("decode: no image yet");
    const opts = { originalSize: this.size, output: "masks" as const };
    const t0 = performance.now();
    let r: DecoderResult & { objScore?: number };
    if (this.model.family === "sam2") {
      const [imageEmbed, highRes0, highRes1] = this.features;
      const features: Sam2Features = { imageEmbed, highRes0, highRes1 };
      [r] = await this.model.decoder.predict(features, [prompt], opts);
    } else {
      [r] = await this.model.decoder.predict(this.features[0], [prompt], opts);
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
      ...(r.objScore !== undefined ? { objScore: r.objScore } : {}),
      ms,
    };
  }

  private releaseImage(): void {
    if (this.features.length === 0) return;
    // Both decoders key their per-image work by the embedding's buffer.
    this.model.decoder.releaseEmbedding(this.features[0]);
    this.ctx.submit();
    for (const t of this.features) t.destroy();
    this.features = [];
  }

  dispose(): void {
    this.releaseImage();
    this.model.decoder.dispose();
  }
}
