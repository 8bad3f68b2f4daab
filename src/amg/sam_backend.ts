/**
 * Our SAM on the GPU (src/encoder ImageEncoder + src/decoder SamDecoder) as the automatic
 * mask generator's model: `SamGpuBackend` for `ModelMaskSource`.
 *
 * The decoder writes its low-res logits into a GPU tensor (SamDecoder.predict's lowResOut),
 * so of the per-mask work only the IoU predictions, the statistics and the kept masks' bits
 * reach the CPU.
 */
import { getContext, type GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor } from "../gpu/tensor.ts";
import { encodeImage } from "../encoder/image_encoder.ts";
import { createImageEncoder, type SamImageEncoder } from "../encoder/encoder.ts";
import { SamDecoder } from "../decoder/mask_decoder.ts";
import { loadSam } from "../weights/load.ts";
import { resolveModel } from "../weights/registry.ts";
import type { SamArch, StateDict } from "../weights/types.ts";
import type { SamGpuBackend } from "./model_source.ts";

export class SamModelBackend implements SamGpuBackend {
  private embedding: Tensor | null = null;
  private size: [number, number] = [0, 0];

  private constructor(
    readonly ctx: GpuContext,
    readonly arch: SamArch,
    readonly encoder: SamImageEncoder,
    readonly decoder: SamDecoder,
    /** Where the weights came from (checkpoint path). */
    readonly source: string,
    /** Whether dispose() frees the encoder and decoder (false when they are shared). */
    private readonly ownsModules = true,
  ) {}

  get imgSize(): number {
    return this.arch.imgSize;
  }

  /** A registry name ("sam-tiny", "vit_b", ...) or a checkpoint path (.pth / .safetensors). */
  static async load(source: string): Promise<SamModelBackend> {
    const path = await resolveModel(source);
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
    return new SamModelBackend(ctx, arch, encoder, decoder, source);
  }

  /**
   * On an encoder and decoder that someone else owns (e.g. a loaded model also serving
   * prompts): dispose() then frees only this backend's embedding.
   */
  static fromModules(
    ctx: GpuContext,
    arch: SamArch,
    encoder: SamImageEncoder,
    decoder: SamDecoder,
    source = "shared model",
  ): SamModelBackend {
    return new SamModelBackend(ctx, arch, encoder, decoder, source, false);
  }

  /** Frees the current embedding and the decoder's per-image work kept for it. */
  private dropEmbedding(): void {
    if (!this.embedding) return;
    this.decoder.releaseEmbedding(this.embedding);
    // The encoder's pass that writes it may still be recorded, not submitted: submit first.
    this.ctx.submit();
    this.embedding.destroy();
    this.embedding = null;
  }

  setImage(image: { width: number; height: number; data: Uint8Array }): Promise<void> {
    this.dropEmbedding();
    const encoded = encodeImage(this.encoder, {
      width: image.width,
      height: image.height,
      channels: 3,
      data: image.data,
    });
    this.embedding = encoded.embedding;
    this.size = [image.height, image.width];
    return Promise.resolve();
  }

  decodePoints(points: Float32Array, n: number): Promise<{ lowRes: Tensor; iou: Float32Array }> {
    if (!this.embedding) throw new Error("SamModelBackend: setImage first");
    return decodePointPrompts(this.ctx, this.decoder, this.embedding, points, n, this.size);
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
 * multimask, through the decoder: the (N, 3, l, l) low-res logits are written straight into a
 * GPU tensor (owned by the caller) for the mask source's postprocess and statistics, so they
 * never come back to the CPU; the IoU predictions (N, 3) do.
 */
export async function decodePointPrompts(
  ctx: GpuContext,
  decoder: SamDecoder,
  embedding: Tensor,
  points: Float32Array,
  n: number,
  originalSize: readonly [number, number],
): Promise<{ lowRes: Tensor; iou: Float32Array }> {
  const prompts = Array.from({ length: n }, (_, i) => ({
    points: [[points[2 * i], points[2 * i + 1]] as const],
    labels: [1],
    multimask: true,
  }));
  const side = decoder.lowResSize;
  const lowRes = emptyTensor(ctx, [n, 3, side, side], "amg.low_res");
  try {
    const results = await decoder.predict(embedding, prompts, {
      originalSize,
      multimask: true,
      output: "none",
      lowResOut: lowRes,
    });
    const iou = new Float32Array(n * 3);
    results.forEach((r, i) => iou.set(r.iou, i * 3));
    return { lowRes, iou };
  } catch (err) {
    lowRes.destroy();
    throw err;
  }
}
