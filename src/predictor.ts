/**
 * The predictor API, modelled on the official `SamPredictor`: load a model once, set an
 * image (its embedding is computed by the encoder once and cached by content hash), then
 * prompt it as often as you like; each prompt runs only the light decoder.
 *
 * ```ts
 * import { readImageFile, SamModel, SamPredictor } from "../mod.ts";
 *
 * const model = await SamModel.load("sam-tiny"); // or "vit_b", or a .pth/.safetensors path
 * const predictor = new SamPredictor(model);
 * await predictor.setImage(await readImageFile("tests/fixtures/sam-tiny/image.png"));
 * const { masks, scores } = await predictor.predict({
 *   points: [[88, 53.5]],
 *   labels: [1],
 *   multimask: true,
 * });
 * console.log(masks.length, scores); // 3 candidate masks and their predicted IoU
 * predictor.dispose();
 * model.dispose();
 * ```
 *
 * @module
 */
import { getContext, type GpuContext } from "./gpu/context.ts";
import { type GpuChoice, type GpuProvider, parseGpuChoice } from "./gpu/device.ts";
import { type Tensor, tensorFrom } from "./gpu/tensor.ts";
import { createImageEncoder } from "./encoder/encoder.ts";
import { SamDecoder } from "./decoder/mask_decoder.ts";
import {
  destroyFeatures,
  type FamilyDecoder,
  type FamilyEncoder,
  featureBytes,
  type ImageFeatures,
  type ModelFamilyName,
  samDecoder,
  samEncoder,
} from "./family.ts";
import { loadSam2Modules } from "./sam2/model.ts";
import type { Sam2Arch, Sam2ArchHints } from "./sam2/arch.ts";
import { checkpointFamily } from "./sam2/load.ts";
import type { Sam2VideoModules } from "./sam2/video_model.ts";
import { loadSam } from "./weights/load.ts";
import { findModel, listModels, resolveModel, weightsDirFrom } from "./weights/registry.ts";
import { loadTuneCache, tuneCachePath } from "./kernels/tuning.ts";
import type { SamArch } from "./weights/types.ts";
import { checkPrecision, defaultPrecision, parsePrecision, type Precision } from "./precision.ts";
import { modelFamily } from "./weights/family.ts";
import { ByteLru } from "./util/lru.ts";
import type { ImageInfo, Prediction, Prompt, RgbImage } from "./types.ts";

/** Default bound of the embedding cache: 512 MiB (128 real-model embeddings of 4 MiB). */
export const DEFAULT_CACHE_BYTES = 512 * 1024 * 1024;

/**
 * A SAM model on the GPU: the image encoder and the prompt decoder, weights uploaded once.
 * SAM (ViT) and SAM 2.1 (Hiera) models both; `family` tells which, and everything else goes
 * through the family seam (src/family.ts).
 */
export class SamModel {
  private disposed = false;

  private constructor(
    /** Registry name ("vit_b", "sam-tiny", "sam2.1_hiera_tiny") or the file's base name. */
    readonly name: string,
    readonly family: ModelFamilyName,
    readonly arch: SamArch | Sam2Arch,
    readonly ctx: GpuContext,
    /** SAM's ViT, MobileSAM's TinyViT or SAM 2.1's Hiera behind the family seam. */
    readonly encoder: FamilyEncoder,
    readonly decoder: FamilyDecoder,
    /** "f32", or "f16": GEMM weights and the activations between GEMMs stored as f16. */
    readonly precision: Precision = "f32",
    /** SAM 2.1's memory modules for SamVideoPredictor (absent for SAM 1). */
    readonly sam2Video?: Sam2VideoModules,
  ) {}

  /**
   * Loads a model: a registry name (`vit_b`, `vit_l`, `vit_h`, `sam2.1_hiera_tiny` ... once
   * downloaded with `deno task weights <name>`; `sam-tiny` and `sam2-tiny`, the bundled
   * random-weight test models) or a path to a `.pth`, `.pt` or `.safetensors` checkpoint.
   * The family and the architecture are read from the tensors; a SAM 2 checkpoint of a shape
   * that no official config has needs `sam2Hints` for what no tensor shows (image size,
   * heads, windows: see src/sam2/arch.ts). `gpu` picks the WebGPU provider: "deno" (built
   * in), "dawn" (npm `webgpu`, needs --allow-ffi) or "auto" (default: $WGSAM_GPU, else a
   * hardware adapter, Dawn's first). `precision` (default: $WGSAM_PRECISION, else "f32"):
   * "f16" stores the weights of the matrix products and the activations between GEMMs as
   * float16 (half the bytes; f32 accumulation, LayerNorm, softmax and residual stream). It
   * needs the adapter's `shader-f16`, and covers the SAM 1 family (SAM, MobileSAM, SlimSAM);
   * a SAM 2.1 model refuses it.
   */
  static async load(
    source: string,
    opts: {
      quiet?: boolean;
      sam2Hints?: Sam2ArchHints;
      gpu?: GpuChoice;
      precision?: Precision;
    } = {},
  ): Promise<SamModel> {
    const gpu = opts.gpu === undefined ? undefined : parseGpuChoice(opts.gpu, "SamModel.load");
    const precision = opts.precision === undefined
      ? defaultPrecision()
      : parsePrecision(opts.precision, "SamModel.load");
    const path = await resolveModel(source);
    const name = source.includes("/") || /\.(pth|pt|safetensors)$/.test(source)
      ? source.split("/").pop()!.replace(/\.(pth|pt|safetensors)$/, "")
      : source;
    // The file is read and checked before a GPU device exists: a bad checkpoint then fails
    // without one (a process that exits while a device is being set up can crash in the driver).
    const family = await checkpointFamily(path);
    if (family === "sam2" && precision === "f16") {
      throw new Error(
        `SamModel.load: ${name} is a SAM 2.1 model; precision "f16" covers the SAM 1 family ` +
          `(SAM, MobileSAM, SlimSAM) only. Load it with precision "f32".`,
      );
    }
    const sam1 = family === "sam2" ? null : await loadSam(path);
    const ctx = await getContext(gpu);
    checkPrecision(ctx, precision);
    // Kernel variants measured by `deno task tune` on this adapter, if any (else defaults).
    await loadTuneCache(ctx, tuneCachePath(weightsDirFrom()));
    if (!sam1) {
      const hints = opts.sam2Hints ?? findModel(source)?.sam2Hints ?? await bundledHints(path);
      // The video modules too (a few MB on the GPU), so SamVideoPredictor can take the model.
      const m = await loadSam2Modules(ctx, path, hints, { video: true });
      await ctx.sync();
      return new SamModel(name, "sam2", m.arch, ctx, m.encoder, m.decoder, "f32", m.video);
    }
    const { sd, arch } = sam1;
    const encoder = createImageEncoder(ctx, sd, arch, precision);
    let decoder: SamDecoder;
    try {
      decoder = SamDecoder.create(ctx, sd, arch, precision);
    } catch (err) {
      encoder.dispose();
      throw err;
    }
    await ctx.sync(); // surface any GPU error of the uploads here, not at the first prompt
    const samFamily = modelFamily(sd, arch);
    return new SamModel(
      name,
      samFamily,
      arch,
      ctx,
      samEncoder(encoder, samFamily),
      samDecoder(decoder, samFamily),
      precision,
    );
  }

  /** Square encoder input side (1024 for the real models). */
  get imgSize(): number {
    return this.arch.imgSize;
  }

  /** The WebGPU implementation running the model: "deno" or "dawn". */
  get provider(): GpuProvider {
    return this.ctx.gpu.provider;
  }

  /** The GPU adapter, in words (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"). */
  get adapter(): string {
    return this.ctx.gpu.description;
  }

  /** Frees the model's GPU buffers; the model can't be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.sam2Video?.dispose();
    this.encoder.dispose();
    this.decoder.dispose();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }
}

/**
 * A second-level embedding store behind the predictor's own cache, e.g. one shared by several
 * hosts (src/server/embedding_store.ts). `get` resolves null when it has nothing usable (or is
 * unreachable); `put` must not throw.
 */
export interface SharedEmbeddings {
  get(id: string): Promise<{ data: Float32Array; shape: number[] } | null>;
  /** Resolves once stored (or dropped); never rejects. */
  put(id: string, embedding: { data: Float32Array; shape: number[] }): Promise<void>;
}

/** Where setImage found an embedding, and how long the encoder took (0 when it did not run). */
export type EmbeddingEvent = { kind: "local-hit" | "shared-hit" | "encode"; ms: number };

/** The registry's hints for a bundled SAM 2 model loaded by its path (sam2-tiny.pt). */
async function bundledHints(path: string): Promise<Sam2ArchHints | undefined> {
  const real = async (p: string) => {
    try {
      return await Deno.realPath(p);
    } catch {
      return null;
    }
  };
  const target = await real(path);
  for (const e of listModels()) {
    if (e.sam2Hints && e.bundledPath && target && await real(e.bundledPath) === target) {
      return e.sam2Hints;
    }
  }
  return undefined;
}

interface CachedEmbedding {
  features: ImageFeatures;
  width: number;
  height: number;
  /** A read after the encoder's submit succeeded (its GPU errors would have shown). */
  checked?: boolean;
}

/** SHA-256 over the image's size and RGB bytes (alpha ignored), as hex. */
export async function imageId(image: RgbImage): Promise<string> {
  const rgb = toRgb(image);
  const header = new TextEncoder().encode(`${image.width}x${image.height}:`);
  const bytes = new Uint8Array(header.length + rgb.length);
  bytes.set(header);
  bytes.set(rgb, header.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function toRgb(image: RgbImage): Uint8Array {
  const { width, height, channels, data } = image;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new RangeError(`image: bad size ${width}x${height}`);
  }
  if (channels !== 3 && channels !== 4) {
    throw new RangeError(`image: ${channels} channels, expected 3 (RGB) or 4 (RGBA)`);
  }
  if (data.length !== width * height * channels) {
    throw new RangeError(
      `image: ${data.length} bytes for ${width}x${height}x${channels} (expected ` +
        `${width * height * channels})`,
    );
  }
  if (channels === 3) return data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, n = width * height; i < n; i++) {
    rgb[3 * i] = data[4 * i];
    rgb[3 * i + 1] = data[4 * i + 1];
    rgb[3 * i + 2] = data[4 * i + 2];
  }
  return rgb;
}

/**
 * Prompts one model against one current image at a time. Embeddings of earlier images stay
 * on the GPU in an LRU bounded by bytes, so going back to an image costs no encoder run.
 */
export class SamPredictor {
  private readonly cache: ByteLru<string, CachedEmbedding>;
  private current: (CachedEmbedding & { id: string }) | null = null;
  /** The current embedding was evicted from the cache: free it when it stops being current. */
  private currentEvicted = false;
  private disposed = false;
  /**
   * Ids of pixel arrays already hashed. A server sets the same stored image before every
   * prompt, and hashing megabytes each time would cost more than the decoder; so pixels are
   * taken as immutable once given (pass a new array for new pixels).
   */
  private readonly knownIds = new WeakMap<
    Uint8Array,
    { id: string; width: number; height: number; channels: number }
  >();

  private readonly shared: SharedEmbeddings | null;
  private readonly onEmbedding: (event: EmbeddingEvent) => void;

  constructor(
    readonly model: SamModel,
    opts: {
      cacheBytes?: number;
      shared?: SharedEmbeddings;
      onEmbedding?: (event: EmbeddingEvent) => void;
    } = {},
  ) {
    this.shared = opts.shared ?? null;
    this.onEmbedding = opts.onEmbedding ?? (() => {});
    this.cache = new ByteLru(opts.cacheBytes ?? DEFAULT_CACHE_BYTES, (entry) => {
      if (this.current && entry.features === this.current.features) this.currentEvicted = true;
      else this.destroyEmbedding(entry.features);
    });
  }

  /**
   * Makes `image` current: its embedding comes from the cache when these pixels were seen
   * before, else from the encoder (SamPredictor.set_image). The pixel array is taken as
   * immutable once given: setting the same array again skips even the content hash.
   *
   * The encoder's work is submitted, not waited for: the first prompt's one readback
   * observes it (and throws its GPU errors, dropping the embedding). `waitForGpu` waits here
   * instead (one more GPU round trip), so `encodeMs` is the encoder's wall time; without it
   * `encodeMs` is the time to record and submit the encoder.
   */
  async setImage(image: RgbImage, opts: { waitForGpu?: boolean } = {}): Promise<ImageInfo> {
    this.checkUsable();
    const rgb: RgbImage = { ...image, channels: 3, data: toRgb(image) };
    const { width, height } = rgb;
    const known = this.knownIds.get(image.data);
    const id = known && known.width === width && known.height === height &&
        known.channels === image.channels
      ? known.id
      : await imageId(rgb);
    this.knownIds.set(image.data, { id, width, height, channels: image.channels });
    const hit = this.cache.get(id);
    if (hit) {
      this.makeCurrent(id, hit);
      if (opts.waitForGpu && !hit.checked) await this.model.ctx.sync();
      this.onEmbedding({ kind: "local-hit", ms: 0 });
      return { id, width, height, cached: true, encodeMs: 0 };
    }
    const fromShared = await this.fromShared(id);
    if (fromShared) {
      // Uploaded, not computed: no encoder error can be in it.
      const entry: CachedEmbedding = { features: fromShared, width, height, checked: true };
      this.makeCurrent(id, entry);
      this.cache.set(id, entry, featureBytes(fromShared));
      this.onEmbedding({ kind: "shared-hit", ms: 0 });
      return { id, width, height, cached: true, encodeMs: 0 };
    }
    const t0 = performance.now();
    const features = this.model.encoder.encode(rgb);
    const entry: CachedEmbedding = { features, width, height, checked: false };
    if (opts.waitForGpu) {
      try {
        await this.model.ctx.sync();
      } catch (err) {
        destroyFeatures(features);
        throw err;
      }
      entry.checked = true;
    } else {
      this.model.ctx.submit();
    }
    const encodeMs = performance.now() - t0;
    this.makeCurrent(id, entry);
    this.cache.set(id, entry, featureBytes(features));
    this.onEmbedding({ kind: "encode", ms: encodeMs });
    if (this.shared) await this.toShared(id, features);
    return { id, width, height, cached: false, encodeMs };
  }

  /**
   * Key of one feature tensor in the shared store: the image id for the embedding (SAM's only
   * tensor), `<id>/<name>` for the others (SAM 2's high-res features).
   */
  private static sharedKey(id: string, index: number, name: string): string {
    return index === 0 ? id : `${id}/${name}`;
  }

  /** Every feature tensor of an image into the shared store (best effort, awaited). */
  private async toShared(id: string, features: ImageFeatures): Promise<void> {
    // Awaited, so that once this image's id is known, every host can find its embedding.
    // Best effort: a failed readback costs the other hosts an encode, not this request.
    // The embedding goes last: a host that finds it finds the rest.
    const order = [...features.tensors.keys()].reverse();
    for (const i of order) {
      const { name, tensor } = features.tensors[i];
      const data = await tensor.read().catch(() => null);
      if (!data) return;
      await this.shared!.put(SamPredictor.sharedKey(id, i, name), {
        data,
        shape: [...tensor.shape],
      });
    }
  }

  /** The shared store's features of `id` on the GPU, or null (absent, or not these shapes). */
  private async fromShared(id: string): Promise<ImageFeatures | null> {
    if (!this.shared) return null;
    const expected = this.model.encoder.featureShapes;
    const found = [];
    for (const [i, { name, shape }] of expected.entries()) {
      const f = await this.shared.get(SamPredictor.sharedKey(id, i, name));
      const n = shape.reduce((a, b) => a * b, 1);
      if (!f || f.shape.join(",") !== shape.join(",") || f.data.length !== n) return null;
      found.push({ name, data: f.data, shape });
    }
    const tensors = found.map(({ name, data, shape }) => ({
      name,
      tensor: tensorFrom(this.model.ctx, data, shape, `shared ${name}`),
    }));
    return { embedding: tensors[0].tensor, tensors };
  }

  private makeCurrent(id: string, entry: CachedEmbedding): void {
    const previous = this.current;
    if (previous && previous.features !== entry.features && this.currentEvicted) {
      this.destroyEmbedding(previous.features);
    }
    this.currentEvicted = false;
    this.current = Object.assign(entry, { id });
  }

  /** Info of the current image, or null before the first `setImage`. */
  get currentImage(): { id: string; width: number; height: number } | null {
    return this.current
      ? { id: this.current.id, width: this.current.width, height: this.current.height }
      : null;
  }

  /** One prompt against the current image (SamPredictor.predict). */
  async predict(prompt: Prompt, opts: { returnLogits?: boolean } = {}): Promise<Prediction> {
    const [prediction] = await this.predictBatch([prompt], opts);
    return prediction;
  }

  /**
   * Many prompts against the current image, in batched decoder passes (prompts with the same
   * number of points and box share a pass). One Prediction per prompt, in order.
   */
  async predictBatch(
    prompts: readonly Prompt[],
    opts: { returnLogits?: boolean } = {},
  ): Promise<Prediction[]> {
    this.checkUsable();
    const current = this.current;
    if (!current) throw new Error("predict: call setImage first");
    if (!Array.isArray(prompts)) throw new TypeError("predictBatch: prompts must be an array");
    if (prompts.length === 0) return [];
    const { width, height } = current;
    let results;
    try {
      results = await this.model.decoder.predict(current.features, prompts, {
        originalSize: [height, width],
        output: opts.returnLogits ? "both" : "masks",
      });
    } catch (err) {
      this.dropUnchecked(current);
      throw err;
    }
    current.checked = true;
    return results.map((r) => ({
      width,
      height,
      masks: r.masks ?? [],
      scores: r.iou,
      lowResLogits: r.lowRes,
      lowResSize: this.model.decoder.lowResSize,
      logits: opts.returnLogits ? r.logits : undefined,
      ...(r.objectScore !== undefined ? { objectScore: r.objectScore } : {}),
    }));
  }

  /**
   * The current image's embedding (1, D, s, s), NCHW: (1, 256, 64, 64) for the real models
   * (SAM 2: image_embed, with no_mem_embed added; its decoder also needs the two high-res
   * feature maps, see `getImageFeatures`).
   */
  async getImageEmbedding(): Promise<{ data: Float32Array; shape: number[] }> {
    this.checkUsable();
    if (!this.current) throw new Error("getImageEmbedding: call setImage first");
    const current = this.current;
    const { embedding } = current.features;
    let data: Float32Array;
    try {
      data = await embedding.read();
    } catch (err) {
      this.dropUnchecked(current);
      throw err;
    }
    current.checked = true;
    return { data, shape: [...embedding.shape] };
  }

  /**
   * Every tensor the decoder reads for the current image, by official name, NCHW: SAM
   * `image_embeddings`; SAM 2 `image_embed`, `high_res_feats_0` (1, C/8, 4s, 4s) and
   * `high_res_feats_1` (1, C/4, 2s, 2s).
   */
  async getImageFeatures(): Promise<{ name: string; data: Float32Array; shape: number[] }[]> {
    this.checkUsable();
    if (!this.current) throw new Error("getImageFeatures: call setImage first");
    const out = [];
    for (const { name, tensor } of this.current.features.tensors) {
      out.push({ name, data: await tensor.read(), shape: [...tensor.shape] });
    }
    return out;
  }

  /** The current embedding on the GPU (owned by the predictor: do not destroy it). */
  get embeddingTensor(): Tensor | null {
    return this.current?.features.embedding ?? null;
  }

  /** The current image's features on the GPU (owned by the predictor: do not destroy them). */
  get currentFeatures(): ImageFeatures | null {
    return this.current?.features ?? null;
  }

  /**
   * Drops one image's cached embedding (by the id `setImage` returned); true when it was
   * cached. The current image stays usable until another one is set.
   */
  forget(id: string): boolean {
    this.checkUsable();
    return this.cache.delete(id);
  }

  /** Frees every cached embedding. The model stays loaded. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const current = this.current;
    this.current = null;
    this.cache.clear();
    if (current && this.currentEvicted) this.destroyEmbedding(current.features);
  }

  /**
   * After a failed read: features never read successfully may hold the encoder's GPU error,
   * so they leave the cache (the image is encoded again when set again).
   */
  private dropUnchecked(entry: CachedEmbedding & { id: string }): void {
    if (!entry.checked && this.cache.get(entry.id)?.features === entry.features) {
      this.cache.delete(entry.id);
    }
  }

  /** Frees an image's features and what the decoder computed from them (never stale, never kept). */
  private destroyEmbedding(features: ImageFeatures): void {
    this.model.decoder.releaseEmbedding(features);
    destroyFeatures(features);
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error("SamPredictor: used after dispose()");
    if (this.model.isDisposed) throw new Error("SamPredictor: its model was disposed");
  }
}
