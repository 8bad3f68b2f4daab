/**
 * Our SAM on the GPU (a family's encoder and decoder, src/family.ts: SAM's ViT + decoder or
 * SAM 2.1's Hiera + decoder) as the automatic mask generator's model: `SamGpuBackend` for
 * `ModelMaskSource`.
 *
 * The decoder writes its low-res logits into a GPU tensor (SamDecoder.predict's lowResOut),
 * so of the per-mask work only the IoU predictions, the statistics and the kept masks' bits
 * reach the CPU.
 */
import { getContext, type GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor } from "../gpu/tensor.ts";
import { createImageEncoder, type SamImageEncoder } from "../encoder/encoder.ts";
import { modelFamily } from "../weights/family.ts";
import { SamDecoder } from "../decoder/mask_decoder.ts";
import {
  destroyFeatures,
  type FamilyDecoder,
  type FamilyEncoder,
  type ImageFeatures,
  type ModelFamilyName,
  samDecoder,
  samEncoder,
} from "../family.ts";
import { loadSam } from "../weights/load.ts";
import { findModel, resolveModel } from "../weights/registry.ts";
import { checkpointFamily } from "../sam2/load.ts";
import { loadSam2Modules } from "../sam2/model.ts";
import type { SamArch, StateDict } from "../weights/types.ts";
import type { SamGpuBackend } from "./model_source.ts";

export class SamModelBackend implements SamGpuBackend {
  private embedding: ImageFeatures | null = null;
  private size: [number, number] = [0, 0];

  private constructor(
    readonly ctx: GpuContext,
    readonly encoder: FamilyEncoder,
    readonly decoder: FamilyDecoder,
    /** Where the weights came from (checkpoint path). */
    readonly source: string,
    /** Whether dispose() frees the encoder and decoder (false when they are shared). */
    private readonly ownsModules = true,
  ) {}

  get imgSize(): number {
    return this.encoder.imgSize;
  }

  get family(): ModelFamilyName {
    return this.decoder.family;
  }

  /** A registry name ("sam-tiny", "vit_b", "sam2-tiny", ...) or a checkpoint path (.pth / .pt / .safetensors). */
  static async load(source: string): Promise<SamModelBackend> {
    const path = await resolveModel(source);
    if (await checkpointFamily(path) === "sam2") {
      const ctx = await getContext();
      const m = await loadSam2Modules(ctx, path, findModel(source)?.sam2Hints);
      return new SamModelBackend(ctx, m.encoder, m.decoder, path);
    }
    const { sd, arch } = await loadSam(path);
    return SamModelBackend.fromStateDict(await getContext(), sd, arch, path);
  }

  /** From weights already in memory (`source` names them in messages). */
  static fromStateDict(
    ctx: GpuContext,
    sd: StateDict,
    arch: SamArch,
    source = "state dict",
  ): SamModelBackend {
    const encoder = createImageEncoder(ctx, sd, arch);
    const decoder = SamDecoder.create(ctx, sd, arch);
    const family = modelFamily(sd, arch);
    return new SamModelBackend(
      ctx,
      samEncoder(encoder, family),
      samDecoder(decoder, family),
      source,
    );
  }

  /**
   * On an encoder and decoder that someone else owns (e.g. a loaded model also serving
   * prompts): dispose() then frees only this backend's embedding.
   */
  static fromModules(
    ctx: GpuContext,
    _arch: SamArch,
    encoder: SamImageEncoder,
    decoder: SamDecoder,
    source = "shared model",
  ): SamModelBackend {
    return new SamModelBackend(ctx, samEncoder(encoder), samDecoder(decoder), source, false);
  }

  /** As fromModules, on any family's encoder and decoder (a loaded SamModel's). */
  static fromFamily(
    ctx: GpuContext,
    encoder: FamilyEncoder,
    decoder: FamilyDecoder,
    source = "shared model",
  ): SamModelBackend {
    return new SamModelBackend(ctx, encoder, decoder, source, false);
  }

  /** Frees the current embedding and the decoder's per-image work kept for it. */
  private dropEmbedding(): void {
    if (!this.embedding) return;
    this.decoder.releaseEmbedding(this.embedding);
    // The encoder's pass that writes it may still be recorded, not submitted: submit first.
    this.ctx.submit();
    destroyFeatures(this.embedding);
    this.embedding = null;
  }

  setImage(image: { width: number; height: number; data: Uint8Array }): Promise<void> {
    this.dropEmbedding();
    this.embedding = this.encoder.encode({
      width: image.width,
      height: image.height,
      channels: 3,
      data: image.data,
    });
    this.size = [image.height, image.width];
    return Promise.resolve();
  }

  decodePoints(
    points: Float32Array,
    n: number,
    opts: { minRegionArea?: number } = {},
  ): Promise<{ lowRes: Tensor; iou: Float32Array | Tensor }> {
    if (!this.embedding) throw new Error("SamModelBackend: setImage first");
    return decodePointPrompts(this.ctx, this.decoder, this.embedding, points, n, this.size, opts);
  }

  dispose(): void {
    this.dropEmbedding();
    if (!this.ownsModules) return;
    this.encoder.dispose();
    this.decoder.dispose();
  }
}

/**
 * N one-point foreground prompts (x, y in the pixels of an image of `originalSize` [h, w]),
 * multimask, through the decoder: the (N, 3, l, l) low-res logits and the (N, 3) IoU
 * predictions are written straight into GPU tensors (owned by the caller) and nothing is read
 * back here: the mask source reads the IoUs with the batch's statistics, in one readback per
 * batch of points. SAM 2 only: `minRegionArea`
 * holes and islands are removed from each low-res mask first (SAM2AutomaticMaskGenerator's
 * min_mask_region_area, which it hands to its predictor; that reads the masks back once more).
 */
export async function decodePointPrompts(
  ctx: GpuContext,
  decoder: FamilyDecoder,
  features: ImageFeatures,
  points: Float32Array,
  n: number,
  originalSize: readonly [number, number],
  opts: { minRegionArea?: number } = {},
): Promise<{ lowRes: Tensor; iou: Float32Array | Tensor }> {
  const prompts = Array.from({ length: n }, (_, i) => ({
    points: [[points[2 * i], points[2 * i + 1]] as const],
    labels: [1],
    multimask: true,
  }));
  const side = decoder.lowResSize;
  const lowRes = emptyTensor(ctx, [n, 3, side, side], "amg.low_res");
  const iou = emptyTensor(ctx, [n, 3], "amg.iou");
  try {
    await decoder.predict(features, prompts, {
      originalSize,
      multimask: true,
      output: "none",
      lowResOut: lowRes,
      iouOut: iou,
      ...(decoder.family === "sam2" ? { minRegionArea: opts.minRegionArea } : {}),
    });
    return { lowRes, iou };
  } catch (err) {
    lowRes.destroy();
    iou.destroy();
    throw err;
  }
}
